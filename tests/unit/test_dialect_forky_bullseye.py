"""Debian 11 (Postfix 3.5, Dovecot 2.3.13: the versions EL8/EL9 ship) and Debian 14 (Postfix 3.11 without
Berkeley DB as the default), from what their lab hosts answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.dialects import Dialect
from mailprov.facts.platform import Version
from mailprov.facts.probe import Facts, parse_platform, parse_probe
from mailprov.plan import build_plan
from mailprov.resources.base import HostContext

FORKY_OS = """PRETTY_NAME="Debian GNU/Linux forky/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=forky
ID=debian
HOME_URL="https://www.debian.org/"
"""
BULLSEYE_OS = """PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"
NAME="Debian GNU/Linux"
VERSION_ID="11"
VERSION="11 (bullseye)"
VERSION_CODENAME=bullseye
ID=debian
"""
# A fresh forky lab host: apt-cache policy before anything is installed (real output, file: repository).
FORKY_CANDIDATES = """postfix:
  Installed: (none)
  Candidate: 3.11.7-1
  Version table:
     3.11.7-1 500
        500 file:/srv/repo ./ Packages
dovecot-core:
  Installed: (none)
  Candidate: 1:2.4.5+dfsg1-4
  Version table:
     1:2.4.5+dfsg1-4 500
        500 file:/srv/repo ./ Packages
"""
FRESH_KV = "arch=x86_64\ninit=sysv\nhas_apt-get=1\nhas_openssl=1\nipv6=1\n"
# forky-30 after the first apply: `postconf -dh mail_version default_database_type`, `postconf -m`.
FORKY_INSTALLED_KV = (
    FRESH_KV + "has_postconf=1\nhas_dovecot=1\nhas_doveconf=1\npostfix_version=3.11.7\ndefault_database_type=cdb\n"
    "map_types=btree cdb cidr debug environ fail hash inline internal lmdb memcache nis pipemap proxy randmap "
    "regexp socketmap static tcp texthash unionmap unix\ndovecot_version=2.4.5 (0c1ea3ac86)\n"
)


def test_forky_installed_uses_cdb_maps_and_lmdb_caches() -> None:
    platform = parse_platform("forky-30", {"os": FORKY_OS, "kv": FORKY_INSTALLED_KV})
    dialect = Dialect.of(platform)
    assert (platform.postfix_version, platform.dovecot_version) == (Version(3, 11, 7), Version(2, 4, 5))
    assert dialect.map_type == "cdb" and dialect.compiled_map("/etc/aliases") == "/etc/aliases.cdb"
    assert dialect.cache_type == "lmdb"  # 3.11 warns "hash/btree support is deprecated" for a btree cache
    # Below 3.11, `postfix check` says "Postfix is using backwards-compatible default settings" every time.
    assert dialect.compatibility_level == "3.11"


def test_forky_before_install_predicts_what_the_installed_postfix_will_say() -> None:
    fresh = Dialect.of(parse_platform("forky-30", {"os": FORKY_OS, "kv": FRESH_KV, "candidates": FORKY_CANDIDATES}))
    installed = Dialect.of(parse_platform("forky-30", {"os": FORKY_OS, "kv": FORKY_INSTALLED_KV}))
    assert (fresh.map_type, fresh.cache_type) == (installed.map_type, installed.cache_type) == ("cdb", "lmdb")


def test_bullseye_and_bookworm_keep_berkeley_db() -> None:
    kv = FRESH_KV + "postfix_version=3.5.25\ndefault_database_type=hash\nmap_types=btree cidr hash lmdb regexp\n"
    dialect = Dialect.of(parse_platform("bullseye-30", {"os": BULLSEYE_OS, "kv": kv + "dovecot_version=2.3.13\n"}))
    assert (dialect.map_type, dialect.cache_type) == ("hash", "btree")
    assert dialect.compatibility_level == "2"  # 3.0-3.5 take an integer level only
    assert not dialect.tls_min_version_syntax and dialect.tls_exclusion_syntax  # ">=TLSv1.2" is 3.6+
    assert dialect.dovecot_syntax.min_protocol  # ssl_min_protocol: Dovecot 2.3


# --- the whole plan, from probes captured on converged lab hosts (tests/data/capture_probes.py --more) ---

DATA = Path(__file__).resolve().parents[1] / "data"
MORE = {"bullseye": 0, "forky": 1}  # host index in tests/data/lab-site-more.yaml


def _captured(distro: str) -> tuple[Site, Facts]:
    site = load_site(DATA / "lab-site-more.yaml")
    host = site.hosts[MORE[distro]]
    facts = parse_probe((DATA / f"probe-{distro}.txt").read_text(), host.name)
    second = DATA / f"probe-{distro}-2.txt"  # the second round trip (forky's .cdb maps), as read_facts makes it
    if second.exists():
        facts = facts.merged(parse_probe(second.read_text(), host.name, facts.platform))
    return site, facts


def test_captured_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "Live-john-pw-42")
    bullseye, forky = _captured("bullseye")[1].platform, _captured("forky")[1].platform
    assert (str(bullseye.postfix_version), str(bullseye.dovecot_version)) == ("3.5.25", "2.3.13")
    assert (str(forky.postfix_version), str(forky.dovecot_version)) == ("3.11.7", "2.4.5")
    assert forky.default_database_type == "cdb" and bullseye.default_database_type == "hash"


@pytest.mark.parametrize("distro", list(MORE))
def test_converged_bullseye_and_forky_plan_no_change(distro: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "Live-john-pw-42")  # the captured shadow hash's password
    site, facts = _captured(distro)
    plan = build_plan(HostContext.of(site, site.hosts[MORE[distro]], facts.platform, DATA), facts)
    assert plan.changes == () and plan.handlers == () and plan.gates == () and plan.health == ()
