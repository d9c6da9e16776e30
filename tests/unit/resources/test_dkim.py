"""DKIM (OpenDKIM): the keys read captured on a lab host (public halves only) in, changes and DNS records
out; the converged case; rotation and retirement; Postfix's milter wiring; the dialect's package names."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from mailprov.config.model import Site
from mailprov.dialects import Dialect
from mailprov.errors import ConfigError
from mailprov.facts.files import file_md5
from mailprov.facts.platform import PRESETS
from mailprov.facts.probe import EOF_MARK, Facts
from mailprov.render import render_host
from mailprov.resources.base import Phase
from mailprov.resources.dkim import OpenDkimResource, _keys_read, parse_keys
from resources.helpers import DATA, context, plan_for, site_from, site_text, with_new_reads, with_section

KEYS = "/etc/opendkim/keys/example.test"
# Captured on bookworm-40 after a rotation (s1: 2048 bits, s2: 3072), in a two-host site: each host signs with
# <selector>-<first label>. Renamed here as host mx1 of the lab site names its keys.
CAPTURED = (DATA / "dkim-keys-bookworm.txt").read_text().replace("-bookworm-40 ", "-mx1 ")
RESOURCE = OpenDkimResource()


def dkim_site(tmp_path: Path, dkim: str = "{selector: s2, bits: 3072}") -> Site:
    return site_from(site_text() + f"dkim: {dkim}\n", tmp_path)


def file_section(content: str, owner: str = "root root 644") -> str:
    return f"{owner} 1796249000\n{file_md5(content)}  -\n{content}\n{EOF_MARK}\n"


def host_facts(site: Site, *, keys: str = CAPTURED, conf: str | None = None) -> Facts:
    """The lab site's captured facts, plus what a host with OpenDKIM says: its config and its keys."""
    facts = with_new_reads(site, "bookworm")
    facts = with_section(facts, _keys_read(KEYS).key, keys)
    if conf is not None:
        facts = with_section(facts, "file /etc/opendkim.conf", file_section(conf))
    return facts


def dkim_changes(site: Site, facts: Facts) -> list[tuple[str, Phase, str]]:
    ctx = context(site, "bookworm", facts)
    return [(c.key, c.phase, c.action) for c in RESOURCE.changes(ctx, RESOURCE.desired(ctx), facts)]


def rendered_conf(site: Site) -> str:
    ctx = context(site, "bookworm")
    return RESOURCE.desired(ctx).files[0].text()


def test_the_keys_read_parses_to_public_keys_only() -> None:
    keys = parse_keys(CAPTURED)
    assert [(k.selector, k.owner, k.group, k.mode) for k in keys] == [
        ("s1-mx1", "opendkim", "opendkim", 0o600),
        ("s2-mx1", "opendkim", "opendkim", 0o600),
    ]
    sizes = []
    for k in keys:
        public = load_der_public_key(base64.b64decode(k.public))  # DER SubjectPublicKeyInfo
        assert isinstance(public, rsa.RSAPublicKey)
        sizes.append(public.key_size)
    assert sizes == [2048, 3072]
    assert parse_keys("") == ()


def test_every_key_on_the_host_is_published_retired_ones_until_removed(tmp_path: Path) -> None:
    site = dkim_site(tmp_path, "{selector: s2, retire: [s1]}")
    facts = host_facts(site)
    records = RESOURCE.records(context(site, "bookworm", facts), facts)
    assert [(r.name, r.rtype) for r in records] == [
        ("s1-mx1._domainkey.example.test", "TXT"),
        ("s2-mx1._domainkey.example.test", "TXT"),
    ]
    assert all(r.value.startswith("v=DKIM1; k=rsa; p=MII") and " " not in r.value.split("p=")[1] for r in records)
    assert records[1].value == "v=DKIM1; k=rsa; p=" + parse_keys(CAPTURED)[1].public


def test_no_dkim_reads_and_publishes_nothing(tmp_path: Path) -> None:
    site = site_from(site_text(), tmp_path)
    ctx = context(site, "bookworm")
    assert not RESOURCE.reads(ctx) and not RESOURCE.packages(ctx) and not RESOURCE.services(ctx)
    assert "milter" not in render_host(site, site.hosts[0], PRESETS["debian12"]).file("/etc/postfix/main.cf").text()


def test_a_fresh_host_gets_opendkim_a_key_made_there_and_the_milter(tmp_path: Path) -> None:
    site = dkim_site(tmp_path)
    plan = plan_for(site, "bookworm", host_facts(site, keys=""))
    changes = {c.key: c for c in plan.changes}
    key = changes[f"dkim-key:{KEYS}/s2-mx1.private"]
    assert (key.phase, key.action) == (Phase.PREPARE, "generate")
    argv = [" ".join(c.argv) for c in key.commands]
    assert any("openssl genrsa" in a and a.endswith(f"{KEYS}/s2-mx1.private 3072") for a in argv)
    assert argv[-2:] == [f"chown opendkim:opendkim {KEYS}/s2-mx1.private", f"chmod 0600 {KEYS}/s2-mx1.private"]
    assert any("opendkim-tools" in c.argv for c in changes["packages"].commands)
    assert "file:/etc/opendkim.conf" in changes
    assert "validate-opendkim" in [g.step for g in plan.gates]
    names = [h.name.split()[0] for h in plan.handlers]
    assert names.index("opendkim") < names.index("postfix")  # the milter listens before Postfix calls it
    assert "enable:opendkim" in changes and "start:opendkim" in changes  # the services resource runs it
    assert any("mp_milter_answers" in c.argv for c in plan.health)
    main = changes["file:/etc/postfix/main.cf"].file
    assert main is not None
    text = main.text()
    assert "smtpd_milters = inet:127.0.0.1:8891\n" in text and "non_smtpd_milters = $smtpd_milters\n" in text
    assert "milter_default_action = accept\n" in text


def test_the_config_signs_the_site_domain_with_the_selector_s_key(tmp_path: Path) -> None:
    conf = rendered_conf(dkim_site(tmp_path))
    lines = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in conf.splitlines() if line[:1].isalpha()}
    assert lines["Domain"] == "example.test" and lines["Selector"] == "s2-mx1"  # one key per host and name
    assert lines["KeyFile"] == f"{KEYS}/s2-mx1.private"
    assert lines["Socket"] == "inet:8891@127.0.0.1" and lines["Mode"] == "s"
    assert lines["InternalHosts"] == "csl:127.0.0.1,::1,10.231.0.0/16,127.0.0.0/8"  # mynetworks


def test_converged_host_plans_nothing_for_dkim(tmp_path: Path) -> None:
    site = dkim_site(tmp_path)
    assert dkim_changes(site, host_facts(site, conf=rendered_conf(site))) == []


def test_a_present_key_is_never_made_again_only_its_mode_fixed(tmp_path: Path) -> None:
    site = dkim_site(tmp_path)
    loose = CAPTURED.replace("key s2-mx1 opendkim opendkim 600", "key s2-mx1 root root 644")
    facts = host_facts(site, keys=loose, conf=rendered_conf(site))
    assert dkim_changes(site, facts) == [(f"dkim-key:{KEYS}/s2-mx1.private", Phase.PREPARE, "set")]


def test_a_new_selector_makes_a_new_key_and_keeps_the_old(tmp_path: Path) -> None:
    site = dkim_site(tmp_path, "{selector: s3}")
    facts = host_facts(site, conf=rendered_conf(dkim_site(tmp_path)))
    assert dkim_changes(site, facts) == [
        ("file:/etc/opendkim.conf", Phase.FILES, "update"),
        (f"dkim-key:{KEYS}/s3-mx1.private", Phase.PREPARE, "generate"),
    ]
    records = RESOURCE.records(context(site, "bookworm", facts), facts)
    assert [r.name.split(".")[0] for r in records] == ["s1-mx1", "s2-mx1"]  # s3 is published once it exists


def test_a_retired_selector_s_key_is_deleted_after_the_switch(tmp_path: Path) -> None:
    site = dkim_site(tmp_path, "{selector: s2, bits: 3072, retire: [s1, s0]}")
    facts = host_facts(site, conf=rendered_conf(site))
    ctx = context(site, "bookworm", facts)
    (change,) = RESOURCE.changes(ctx, RESOURCE.desired(ctx), facts)
    assert (change.phase, change.action) == (Phase.FINISH, "remove")
    assert [c.argv for c in change.commands] == [("rm", "-f", f"{KEYS}/s1-mx1.private")]


def test_a_single_host_signs_with_the_site_s_selector(tmp_path: Path) -> None:
    text = site_text()
    start = text.index("  - name: mx2.example.test")
    end = text.index("\n\n", start) if "\n\n" in text[start:] else len(text)
    single = site_from(text[:start] + text[end:].lstrip("\n") + "dkim: {selector: s2}\n", tmp_path)
    assert len(single.hosts) == 1
    ctx = context(single, "bookworm")
    assert "\nSelector\t\ts2\n" in RESOURCE.desired(ctx).files[0].text()


def test_hosts_of_one_site_need_distinct_first_labels(tmp_path: Path) -> None:
    text = site_text().replace("mx2.example.test", "mx1.example.org")
    site_from(text, tmp_path)  # fine without DKIM
    with pytest.raises(ConfigError) as err:
        site_from(text + "dkim: {selector: s1}\n", tmp_path)
    assert "same DKIM selector (s1-mx1)" in str(err.value)


@pytest.mark.parametrize(
    ("dkim", "problem"),
    [
        ("{selector: s1, retire: [s1]}", "signs the mail"),
        ("{selector: 'mail_2026'}", "not a DKIM selector"),
        ("{selector: s1, bits: 1024}", "dkim.bits"),
    ],
)
def test_bad_dkim_fields_are_refused(tmp_path: Path, dkim: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        dkim_site(tmp_path, dkim)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    ("preset", "packages", "pid_file"),
    [
        ("debian12", ("opendkim", "opendkim-tools"), "/run/opendkim/opendkim.pid"),
        ("rocky9", ("opendkim", "opendkim-tools"), "/run/opendkim/opendkim.pid"),
        ("centos7", ("opendkim",), "/run/opendkim/opendkim.pid"),
        ("centos6", ("opendkim",), "/var/run/opendkim/opendkim.pid"),
    ],
)
def test_dialect_names_opendkim_s_packages(preset: str, packages: tuple[str, ...], pid_file: str) -> None:
    o = Dialect.of(PRESETS[preset]).opendkim
    assert (o.packages, o.pid_file, o.milter) == (packages, pid_file, "inet:127.0.0.1:8891")


def test_the_private_key_never_travels(tmp_path: Path) -> None:
    site = dkim_site(tmp_path)
    ctx = context(site, "bookworm")
    (read,) = [r for r in RESOURCE.reads(ctx) if r.key.startswith("dkim keys")]
    assert "-pubout" in read.script and "cat " not in read.script
    plan = plan_for(site, "bookworm", host_facts(site, keys=""))
    assert not any(c.stdin for ch in plan.changes for c in ch.commands if ch.key.startswith("dkim-key:"))
