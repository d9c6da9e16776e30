from __future__ import annotations

from pathlib import Path

from mailprov.facts.platform import PRESETS
from mailprov.render import render_host
from mailprov.resources.certificate import parse_cert
from resources.helpers import DATA, captured, lab_site, plan_for, section_key, site_from, site_text, with_section


def test_certificate_parses_from_openssl() -> None:
    facts = captured("bookworm")
    cert = parse_cert(facts.section(section_key(facts, "cert ")))
    assert cert.exists and not cert.expiring and cert.subject.endswith("mx1.example.test")
    assert not parse_cert("").exists


def test_fresh_certificate_needs_nothing() -> None:
    assert not [c for c in plan_for(lab_site(), "bookworm").changes if c.key.startswith("cert:")]


def test_expiring_certificate_is_generated_again_and_restarts_both_daemons() -> None:
    facts = captured("bookworm")
    key = section_key(facts, "cert ")
    plan = plan_for(lab_site(), "bookworm", with_section(facts, key, facts.section(key).replace("fresh=1", "fresh=0")))
    (change,) = plan.changes
    assert change.summary.endswith("(expiring)")
    assert any("openssl" in c.argv for c in change.commands)
    assert [h.name for h in plan.handlers] == ["postfix reload", "dovecot restart"]


def test_pushed_key_is_a_secret_everywhere(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp_path / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRETKEY\n-----END PRIVATE KEY-----\n")
    site = site_from(
        site_text().replace("tls:\n  generate:\n    days: 365\n", "tls:\n  files: {cert: c.pem, key: k.pem}\n"),
        tmp_path,
    )
    rendered = render_host(site, site.hosts[0], PRESETS["debian12"], tmp_path)
    key = rendered.file("/etc/ssl/private/mx1.example.test.key")
    assert key.secret and key.mode == 0o600 and "TOPSECRETKEY" not in repr(rendered)
    assert DATA.is_dir()
