"""Rendered files checked by the real programs installed here (Postfix 3.7, Dovecot 2.3 on Debian 12).

For every preset, main.cf must pass `postfix -c DIR check` silently and `postconf -c DIR -n` without a
warning. Postfix 3.7 reads the older dialects too, so a warning means a parameter 3.7 does not know: the
exemptions below (docs/dialects-exemptions.md) name each one that is right for an older Postfix.

dovecot.conf must pass `doveconf -n -c FILE` for every preset whose dialect the installed Dovecot reads
(2.0-2.3 here; 2.4 needs a 2.4 doveconf, 1.x has no doveconf).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.config.model import Dkim, Site
from mailprov.dialects import DovecotGen
from mailprov.facts.platform import PRESETS, Version
from mailprov.render import render_host
from mailprov.render.output import write_tree
from mailprov.resources.postfix import MASTER_BEGIN, MASTER_END

POSTFIX, POSTCONF = "/usr/sbin/postfix", "/usr/sbin/postconf"
DOVECOT, DOVECONF = "/usr/sbin/dovecot", "/usr/bin/doveconf"
SYSTEM_MASTER_CF = Path("/etc/postfix/master.cf")

# Parameters a preset's (older) Postfix needs that Postfix 3.7 reports as `unused parameter`.
# Each entry: parameter → why it is right for the preset. Today none is needed.
POSTCONF_EXEMPT: dict[str, str] = {}

# doveconf 2.3 reading a 2.1/2.2 config: it still accepts ssl_protocols but says 2.3 renamed it, and its
# translation to ssl_min_protocol fails on OpenSSL 3, which has no SSLv2 any more. Dovecot 2.2 itself
# (CentOS 7, OpenSSL 1.0.2) reads `ssl_protocols = !SSLv2 !SSLv3 …` as documented.
DOVECONF_2_0_EXEMPT = (
    re.compile(r"doveconf: Warning: NOTE: You can get a new clean config file with: doveconf -Pn > dovecot-new.conf"),
    re.compile(r"doveconf: Warning: Obsolete setting in \S+:\d+: ssl_protocols has been replaced by ssl_min_protocol"),
    re.compile(
        r"doveconf: Error: Could not find a minimum ssl_min_protocol setting from ssl_protocols = "
        r"!SSLv2 [!A-Za-z0-9. ]+: Unrecognized protocol 'SSLv2'"
    ),
)


def _missing(*paths: str) -> list[str]:
    return [p for p in paths if not os.access(p, os.X_OK)]


needs_postfix = pytest.mark.skipif(
    bool(_missing(POSTFIX, POSTCONF)) or not SYSTEM_MASTER_CF.is_file(),
    reason=f"Postfix is not installed here ({', '.join(_missing(POSTFIX, POSTCONF)) or SYSTEM_MASTER_CF})",
)
needs_dovecot = pytest.mark.skipif(
    bool(_missing(DOVECOT, DOVECONF, shutil.which("openssl") or "openssl")),
    reason="doveconf, dovecot or openssl is not installed here",
)


@dataclass(frozen=True)
class Variant:
    name: str
    inventory: str
    services: bool = False  # submission + smtps (a managed block in master.cf), AUTH off on 25, DKIM milter


VARIANTS = [
    Variant("example", "example.com.yaml"),
    Variant("minimal", "minimal.yaml"),
    Variant("services", "example.com.yaml", True),
]
INVENTORIES = Path(__file__).resolve().parents[2] / "inventories"


def _site(variant: Variant, cert_dir: Path | None = None) -> Site:
    site = load_site(INVENTORIES / variant.inventory)
    if variant.services:
        site = site.model_copy(
            update={
                "postfix": site.postfix.model_copy(update={"submission": True, "smtps": True}),
                "sasl": site.sasl.model_copy(update={"on_port_25": False}),
                "dkim": Dkim(),
            }
        )
    if cert_dir is not None:
        tls = {"cert_path": str(cert_dir / "cert.pem"), "key_path": str(cert_dir / "key.pem")}
        site = site.model_copy(update={"tls": site.tls.model_copy(update=tls)})
    return site


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# --- Postfix -------------------------------------------------------------------------------------------


def _postfix_dir(tmp_path: Path, variant: Variant, preset: str) -> Path:
    site = _site(variant)
    rendered = render_host(site, site.hosts[0], PRESETS[preset])
    write_tree(rendered, tmp_path)
    conf = tmp_path / "etc" / "postfix"
    master = SYSTEM_MASTER_CF.read_text()
    block = conf / "master.cf.mailprov-block"
    if block.exists():  # what apply does: the managed block inside the distribution's master.cf
        master += f"{MASTER_BEGIN}\n{block.read_text()}{MASTER_END}\n"
        block.unlink()
    (conf / "master.cf").write_text(master)
    _age(conf)
    return conf


def _age(directory: Path) -> None:
    """Postfix re-reads a config file every 0.3 s until it is over a second old ("pausing to let … cool
    down", util/load_file.c); date the files back so each call does not wait two seconds."""
    past = time.time() - 60
    for path in directory.iterdir():
        os.utime(path, (past, past))


def _unexpected_postconf_warnings(stderr: str) -> list[str]:
    unexpected = []
    for line in stderr.splitlines():
        unused = re.search(r"warning: .*: unused parameter: ([a-z0-9_]+)=", line)
        if unused and unused.group(1) in POSTCONF_EXEMPT:
            continue
        unexpected.append(line)
    return unexpected


@needs_postfix
@pytest.mark.skipif(os.geteuid() != 0, reason="`postfix check` runs only as root")
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_postfix_check_is_silent(tmp_path: Path, preset: str, variant: Variant) -> None:
    conf = _postfix_dir(tmp_path, variant, preset)
    result = _run(POSTFIX, "-c", str(conf), "check")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_postfix
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_postconf_has_no_warnings(tmp_path: Path, preset: str, variant: Variant) -> None:
    conf = _postfix_dir(tmp_path, variant, preset)
    result = _run(POSTCONF, "-c", str(conf), "-n")
    assert result.returncode == 0, result.stderr
    assert _unexpected_postconf_warnings(result.stderr) == []
    # what Postfix read is what mailprov wrote
    assert "myhostname = mail.example." in result.stdout


@needs_postfix
def test_postconf_warning_detection_works(tmp_path: Path) -> None:
    """The check above can fail: an unknown parameter is reported, an exempted one is not."""
    conf = _postfix_dir(tmp_path, VARIANTS[0], "debian12")
    with (conf / "main.cf").open("a") as f:
        f.write("smtpd_bogus_parameter = yes\n")
    _age(conf)
    stderr = _run(POSTCONF, "-c", str(conf), "-n").stderr
    assert any("smtpd_bogus_parameter" in line for line in _unexpected_postconf_warnings(stderr))
    POSTCONF_EXEMPT["smtpd_bogus_parameter"] = "test"
    try:
        assert _unexpected_postconf_warnings(stderr) == []
    finally:
        del POSTCONF_EXEMPT["smtpd_bogus_parameter"]


@needs_postfix
def test_every_postconf_exemption_is_still_needed(tmp_path: Path) -> None:
    rendered = ""
    for preset in PRESETS:
        for variant in VARIANTS:
            site = _site(variant)
            rendered += render_host(site, site.hosts[0], PRESETS[preset]).file("/etc/postfix/main.cf").content
    stale = [name for name in POSTCONF_EXEMPT if not re.search(rf"^{name}\s*=", rendered, re.M)]
    assert stale == [], "exempted parameters that no preset renders any more"


# --- Dovecot -------------------------------------------------------------------------------------------


def _installed_dovecot() -> Version:
    return Version.parse(_run(DOVECOT, "--version").stdout)


def _readable_by_installed(gen: DovecotGen) -> str | None:
    """None when the installed doveconf reads this dialect, else why not."""
    installed = _installed_dovecot()
    if gen in (DovecotGen.V1_0, DovecotGen.V1_2):
        return "Dovecot 1.x has no doveconf (1.x checks itself with `dovecot -n`)"
    if (gen is DovecotGen.V2_4) != (installed >= Version(2, 4)):
        return f"the installed doveconf is {installed}; the {gen.value} dialect needs a matching Dovecot"
    return None


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cert")
    result = _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=mail.example.com", "-keyout", str(path / "key.pem"), "-out", str(path / "cert.pem"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


@needs_dovecot
@pytest.mark.parametrize("variant", VARIANTS[:2], ids=[v.name for v in VARIANTS[:2]])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_doveconf_accepts_dovecot_conf(tmp_path: Path, cert_dir: Path, preset: str, variant: Variant) -> None:
    site = _site(variant, cert_dir)
    rendered = render_host(site, site.hosts[0], PRESETS[preset])
    if reason := _readable_by_installed(rendered.dialect.dovecot_gen):
        pytest.skip(reason)
    write_tree(rendered, tmp_path)
    conf = tmp_path / rendered.dialect.paths.dovecot_conf.lstrip("/")
    assert str(cert_dir / "cert.pem") in conf.read_text()  # doveconf reads the certificate we made

    result = _run(DOVECONF, "-n", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    messages = [line for line in result.stderr.splitlines() if line.strip()]
    if rendered.dialect.dovecot_gen is DovecotGen.V2_0:
        messages = [m for m in messages if not any(p.fullmatch(m) for p in DOVECONF_2_0_EXEMPT)]
    assert messages == []
    assert "ssl = required" in result.stdout


@needs_dovecot
def test_doveconf_check_can_fail(tmp_path: Path, cert_dir: Path) -> None:
    """A wrong setting is caught, and the 2.0 exemptions do not hide it."""
    site = _site(VARIANTS[0], cert_dir)
    rendered = render_host(site, site.hosts[0], PRESETS["centos7"])
    write_tree(rendered, tmp_path)
    conf = tmp_path / "etc" / "dovecot" / "dovecot.conf"
    conf.write_text(conf.read_text() + "ssl_bogus_setting = yes\n")
    result = _run(DOVECONF, "-n", "-c", str(conf))
    assert result.returncode != 0 and "ssl_bogus_setting" in result.stderr
