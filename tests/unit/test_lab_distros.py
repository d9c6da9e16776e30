"""The lab's four Debian releases, and its prerequisites checked up front with the command that installs them."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from mailprov import lab
from mailprov.cli import LAB_DISTROS, main
from mailprov.config.loader import load_site
from mailprov.errors import LabError
from mailprov.lab import images, prereqs
from mailprov.lab.images import DISTROS, ImageRecipe
from mailprov.lab.network import DISTRO_NUMBERS, host_network

REPO = Path(__file__).resolve().parents[2]


def test_four_releases_with_their_own_address_ranges() -> None:
    assert set(DISTROS) == {"bullseye", "bookworm", "trixie", "forky"} == set(DISTRO_NUMBERS)
    assert (DISTRO_NUMBERS["bookworm"], DISTRO_NUMBERS["trixie"]) == (1, 2)  # existing sites keep their addresses
    assert len(set(DISTRO_NUMBERS.values())) == 4
    assert host_network("bullseye", 30).lan_address == "10.231.3.30"
    assert host_network("forky", 31).outside_address == "10.232.4.31"
    assert set(LAB_DISTROS) == set(DISTROS)  # the CLI's choices (kept literal: the lab is imported lazily)


def test_plain_releases_keep_their_image_keys() -> None:
    # bookworm/trixie images built before bullseye/forky existed stay valid: no spec in their recipe.
    assert ImageRecipe("bookworm").spec == images.DistroSpec("bookworm")
    assert ImageRecipe("forky").spec.script == "sid"  # the runner's (bookworm) debootstrap has no forky script
    assert ImageRecipe("forky").spec.ignore_valid_until
    assert any("bullseye-updates" in line for line in ImageRecipe("bullseye").spec.extra_sources)
    keys = {ImageRecipe(d).key() for d in DISTROS}
    assert len(keys) == 4


def test_missing_tools_are_named_with_the_install_command() -> None:
    present = {"ip", "ss", "ssh-keygen", "mount", "umount", "sysctl", "setsid", "unshare", "chroot"}
    lacking = prereqs.missing(building=True, which=lambda p: p if p in present else None, exists=lambda _p: True)
    assert [r.what for r in lacking] == ["debootstrap", "dpkg-scanpackages"]
    text = prereqs.message(lacking)
    assert "debootstrap (package debootstrap)" in text and "dpkg-scanpackages (package dpkg-dev)" in text
    assert "sh scripts/lab-prereqs.sh" in text
    assert "apt-get install --no-install-recommends debootstrap dpkg-dev" in text


def test_starting_from_a_cached_image_does_not_need_the_build_tools() -> None:
    lacking = prereqs.missing(
        building=False, which=lambda p: None if p == "debootstrap" else p, exists=lambda _p: False
    )
    assert lacking == []


def test_a_missing_keyring_file_is_named() -> None:
    lacking = prereqs.missing(building=True, which=lambda p: p, exists=lambda _p: False)
    assert [r.package for r in lacking] == ["debian-archive-keyring"]


def test_up_without_debootstrap_says_which_command_installs_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILPROV_LAB_CACHE", str(tmp_path))  # no image built yet
    monkeypatch.setenv("MAILPROV_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(prereqs, "_SBIN", ())
    with pytest.raises(LabError, match=r"(?s)debootstrap \(package debootstrap\).*sh scripts/lab-prereqs\.sh"):
        lab.up_at("forky", [30])


def test_cli_lab_up_prints_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILPROV_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("MAILPROV_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(prereqs, "_SBIN", ())
    result = CliRunner().invoke(main, ["lab", "up", "--distro", "bullseye", "--index", "30"])
    assert result.exit_code != 0
    flat = " ".join(result.output.split())
    assert "sh scripts/lab-prereqs.sh" in flat and "apt-get install" in flat, result.output


def test_the_prereqs_script_installs_every_required_package() -> None:
    script = prereqs.script_packages(REPO / "scripts" / "lab-prereqs.sh")
    assert {r.package for r in prereqs.REQUIREMENTS} - {"coreutils"} <= script  # coreutils is Essential


def test_up_at_needs_an_index() -> None:
    with pytest.raises(LabError, match="no lab host index"):
        lab.up_at("bookworm", [])


def test_the_test_command_collects_the_conformance_suite_before_the_lab_goes_down() -> None:
    # scripts/test.sh runs `pytest` with no path: testpaths must reach tests/conformance, and the module
    # that takes the lab down must still come last.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/conformance",
         "tests/live/test_zz_lab_down.py"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    ids = [line for line in out.splitlines() if "::" in line]
    assert ids[-1].startswith("tests/live/test_zz_lab_down.py::")
    assert sum(i.startswith("tests/conformance/") for i in ids) == 6
    import tomllib

    testpaths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    assert testpaths == ["tests"]  # so a bare `pytest` (scripts/test.sh) collects tests/conformance too


def _conformance_conftest() -> ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location("conformance_conftest", REPO / "tests/conformance/conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("transport", ["paramiko", "openssh"])
def test_the_lab_conformance_site_names_its_transport(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conftest = _conformance_conftest()
    monkeypatch.setenv(conftest.TRANSPORT_ENV, transport)
    monkeypatch.delenv(conftest.PASSWORD_ENV, raising=False)
    hosts = [(f"{d}-30", host_network(d, 30).lan_address) for d in conftest.LAB_DISTROS]
    path = conftest.write_lab_site(tmp_path / "site.yaml", hosts, "/k", "/kh", conftest.lab_transport())
    text = path.read_text()
    assert text.count("transport: openssh") == (4 if transport == "openssh" else 0)
    if transport == "paramiko":  # the default needs no key (and main's model knows none yet)
        site = load_site(path)
        assert [h.ssh.address for h in site.hosts] == ["10.231.3.30", "10.231.1.30", "10.231.2.30", "10.231.4.30"]
        assert all(h.ssh.become for h in site.hosts)


def test_an_unknown_conformance_transport_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    conftest = _conformance_conftest()
    monkeypatch.setenv(conftest.TRANSPORT_ENV, "telnet")
    with pytest.raises(pytest.UsageError, match="paramiko or openssh"):
        conftest.lab_transport()
