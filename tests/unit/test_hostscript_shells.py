"""The whole host script, for every preset, on a fresh and on a converged host, as the shells of those
hosts read it: `bash --posix -n`, `dash -n` and `shellcheck -s sh`. CentOS 5's /bin/sh is bash 3.2, so
nothing bash 4 brought in may appear either.

EL presets use the probe answers of tests/data/el/; Debian and Ubuntu presets the lab's captured probes
(converged) and the same reads answered as on a host without anything (fresh)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.facts.platform import PRESETS, OsFamily
from mailprov.facts.probe import PLATFORM_READS, Facts, parse_probe
from mailprov.facts.traits import parse_traits
from mailprov.hostscript import build_script
from mailprov.plan import build_plan, reads
from mailprov.resources.base import HostContext

DATA = Path(__file__).resolve().parents[1] / "data"
EL = DATA / "el"

# What shellcheck says of the script's deliberate idioms (every other finding fails the test):
SHELLCHECK_EXCLUDE = {
    "SC2317": "the mp_* functions are called through `run`, which shellcheck cannot follow",
    "SC2015": "`A && B || fail` is meant: fail when either A or B fails",
    "SC2217": "every command runs with stdin from /dev/null, whether it reads it or not",
    "SC2016": "yum's own $basearch/$releasever are passed literally, in single quotes",
    "SC2012": "ls lists mailprov's own run and backup names (timestamps)",
    "SC2034": "STATE is set in the frame for the state directory, whether this plan uses it or not",
}
# bash 4+ (and non-POSIX) constructs that bash 3.2 on CentOS 5 does not know.
BASH4 = re.compile(r"declare -A|\bmapfile\b|\breadarray\b|\$\{[A-Za-z_]+(,,|\^\^)|\|&|&>>|;;&|\bcoproc\b")


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "Live-john-pw-42")  # the lab site's user (lab-site.yaml)


def _site(preset: str) -> Site:
    if PRESETS[preset].os_family is OsFamily.RHEL:
        own = EL / f"site-{preset}.yaml"  # CentOS 5: the site without TLS (tests/data/el/README.md)
        return load_site(own if own.exists() else EL / "site.yaml")
    return load_site(DATA / "lab-site.yaml")


def _facts(preset: str, state: str, site: Site) -> Facts:
    platform = PRESETS[preset]
    probe = EL / f"probe-{preset}-{state}.txt"
    if probe.exists():
        return parse_probe(probe.read_text(), site.hosts[0].name)
    captured = "trixie" if platform.dovecot_version.major == 2 and platform.dovecot_version.minor >= 4 else "bookworm"
    base = parse_probe((DATA / f"probe-{captured}.txt").read_text(), site.hosts[0].name)
    ctx = HostContext.of(site, site.hosts[0], platform, DATA)
    keys = [r.key for r in (*PLATFORM_READS, *reads(ctx))]
    if state == "fresh":
        sections = {k: (base.sections.get(k, "") if k in ("os", "redhat", "kv") else "") for k in keys}
    else:
        sections = {k: base.sections.get(k, "") for k in keys}
    return Facts(platform, sections)


def _script(preset: str, state: str) -> str:
    site = _site(preset)
    facts = _facts(preset, state, site)
    ctx = HostContext.of(site, site.hosts[0], facts.platform, DATA, parse_traits(facts.sections))  # SELinux: relabels
    return build_script(build_plan(ctx, facts), "20260101-000000")


CASES = [(p, s) for p in sorted(PRESETS) for s in ("fresh", "converged")]


@pytest.mark.parametrize(("preset", "state"), CASES)
def test_the_host_script_is_posix_sh(tmp_path: Path, preset: str, state: str) -> None:
    script = _script(preset, state)
    if state == "fresh":  # a fresh host's script installs, and checks the install on rpm hosts
        rpm = PRESETS[preset].os_family is OsFamily.RHEL
        assert ("run rpm -q " if rpm else "run apt-get -q update") in script
    path = tmp_path / "apply.sh"
    path.write_text(script)
    for shell in (["bash", "--posix", "-n"], ["dash", "-n"]):
        if shutil.which(shell[0]) is None:
            pytest.fail(f"{shell[0]} is not installed (scripts/setup.sh installs it)")
        result = subprocess.run([*shell, str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{' '.join(shell)}: {result.stderr}"
    assert not BASH4.search(script), BASH4.search(script)


@pytest.mark.parametrize(("preset", "state"), CASES)
def test_shellcheck_finds_nothing(tmp_path: Path, preset: str, state: str) -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: scripts/setup.sh installs it (apt-get install shellcheck)")
    path = tmp_path / "apply.sh"
    path.write_text(_script(preset, state))
    result = subprocess.run(
        ["shellcheck", "-s", "sh", "-f", "gcc", "-e", ",".join(SHELLCHECK_EXCLUDE), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
