"""verify's DNS checks with real libraries and no network: pyspf evaluates the site's SPF record, dkimpy
checks a signature against a key served by a fake resolver, DMARC tags and alignment, the resolver choice."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailprov.config.loader import parse_site
from mailprov.resources.dns import dmarc_text, site_records, spf_text
from mailprov.verify import records
from mailprov.verify.dns import DnsUnavailable

SITE = parse_site(
    """domain: example.test
hosts:
  - {name: mx1.example.test, public_address: 192.0.2.10}
  - {name: mx2.example.test, public_address: '2001:db8::20'}
dmarc: {policy: reject, adkim: s}
dns: {server: 192.0.2.53, port: 5353, zone: example.test, tsig_key: {env: MAILPROV_TSIG}}
"""
)


@dataclass(frozen=True)
class FakeResolver(records.Resolver):
    """Answers from a table instead of the network."""

    table: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    down: bool = False

    def ask(self, name: str, rtype: str) -> tuple[str, ...]:
        if self.down:
            raise DnsUnavailable("no answer from 192.0.2.53 within 1 s")
        return self.table.get((name.lower().rstrip("."), rtype), ())


def served(extra: dict[tuple[str, str], tuple[str, ...]] | None = None) -> FakeResolver:
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    for r in site_records(SITE):
        table[(r.name, r.rtype)] = (*table.get((r.name, r.rtype), ()), r.value)
    table.update(extra or {})
    return FakeResolver("192.0.2.53", table=table)


def test_resolver_choice_override_then_site_then_system() -> None:
    assert records.choose(SITE, "198.51.100.53", 2.0) == records.Resolver("198.51.100.53", 53, 2.0, "--resolver")
    site_server = records.choose(SITE, None, 2.0)
    assert site_server is not None
    assert (site_server.server, site_server.port) == ("192.0.2.53", 5353)
    plain = parse_site("domain: example.test\nhosts: [{name: mx1.example.test}]\n")
    chosen = records.choose(plain, None, 2.0)
    assert chosen is None or chosen.source == records.SYSTEM


@pytest.mark.parametrize(
    ("address", "expected"),
    [("192.0.2.10", "pass"), ("2001:db8::20", "pass"), ("203.0.113.9", "fail"), ("2001:db8::99", "fail")],
)
def test_spf_is_evaluated_by_pyspf_for_each_address(address: str, expected: str) -> None:
    result, _ = records.spf_result(served(), address, "postmaster@example.test", "mx1.example.test")
    assert result == expected


def test_spf_changed_record_fails_and_missing_record_is_none() -> None:
    changed = served({("example.test", "TXT"): ("v=spf1 ip4:198.51.100.1 -all",)})
    assert records.spf_result(changed, "192.0.2.10", "postmaster@example.test", "mx1.example.test")[0] == "fail"
    missing = served({("example.test", "TXT"): ("google-site-verification=x",)})
    assert records.spf_result(missing, "192.0.2.10", "postmaster@example.test", "mx1.example.test")[0] == "none"


def test_spf_mx_mechanism_resolves_through_the_resolver() -> None:
    site = parse_site(
        "domain: example.test\nhosts: [{name: mx1.example.test, public_address: 192.0.2.10}]\nspf: {mechanisms: [mx]}\n"
    )
    table = {
        ("example.test", "TXT"): (spf_text(site),),
        ("example.test", "MX"): ("10 mx1.example.test.",),
        ("mx1.example.test", "A"): ("192.0.2.10",),
    }
    resolver = FakeResolver("192.0.2.53", table=table)
    assert records.spf_result(resolver, "192.0.2.10", "a@example.test", "mx1.example.test")[0] == "pass"
    assert records.spf_result(resolver, "192.0.2.11", "a@example.test", "mx1.example.test")[0] == "fail"


def test_spf_with_an_unreachable_resolver_is_temperror() -> None:
    down = FakeResolver("192.0.2.53", down=True)
    assert records.spf_result(down, "192.0.2.10", "a@example.test", "mx1.example.test")[0] == "temperror"


def test_dmarc_tags_and_alignment() -> None:
    tags = records.dmarc_tags(dmarc_text(SITE))
    assert tags == {"v": "DMARC1", "p": "reject", "adkim": "s"}
    assert records.aligned("example.test", "example.test", "s")
    assert not records.aligned("mail.example.test", "example.test", "s")
    assert records.aligned("mail.example.test", "example.test", "r")
    assert not records.aligned("example.org", "example.test", "r")


# --- DKIM: a real signature, a key in the fake DNS ----------------------------------------------------


def _key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


MESSAGE = b"From: john@example.test\r\nTo: john@example.test\r\nSubject: mailprov verify t\r\n\r\nhello\r\n"


def _signed(private: bytes, selector: bytes = b"mail") -> bytes:
    signature = dkim.sign(MESSAGE, selector, b"example.test", private, include_headers=[b"from", b"to", b"subject"])
    return bytes(signature) + MESSAGE


def test_dkim_signature_verifies_against_the_published_key() -> None:
    private, txt = _key()
    resolver = FakeResolver("192.0.2.53", table={("mail._domainkey.example.test", "TXT"): (txt,)})
    verdict = records.dkim_check(_signed(private), resolver)
    assert verdict.ok and verdict.domain == "example.test" and verdict.selector == "mail"


def test_dkim_fails_with_another_key_published_no_key_or_no_signature() -> None:
    private, _ = _key()
    _, other = _key()
    wrong = FakeResolver("192.0.2.53", table={("mail._domainkey.example.test", "TXT"): (other,)})
    assert not records.dkim_check(_signed(private), wrong).ok
    assert not records.dkim_check(_signed(private), FakeResolver("192.0.2.53")).ok
    unsigned = records.dkim_check(MESSAGE, wrong)
    assert not unsigned.ok and "no DKIM-Signature" in unsigned.detail


def test_dkim_signature_tags_unfold() -> None:
    private, _ = _key()
    tags = records.dkim_signature_tags(_signed(private, b"s2026"))
    assert tags["d"] == "example.test" and tags["s"] == "s2026"


# --- the submission → IMAPS → dkimpy check, with the network stood in --------------------------------

SUBMISSION_SITE = """domain: example.test
hosts: [{name: mx1.example.test, public_address: 192.0.2.10}]
users: [{login: john, password: {env: MAILPROV_JOHN}}]
sasl: {enabled: true}
postfix: {submission: true}
"""


def _run(monkeypatch: pytest.MonkeyPatch, sign_as: bytes, published: str, submission: bool = True) -> tuple[str, str]:
    from mailprov.config.secrets import Secret
    from mailprov.resources.base import DnsRecord
    from mailprov.verify import probes
    from mailprov.verify.checks import HostVerification, VerifyOptions

    text = SUBMISSION_SITE if submission else SUBMISSION_SITE.replace("submission: true", "submission: false")
    site = parse_site(text)
    run = HostVerification(site, site.hosts[0], VerifyOptions(host_checks=False, delivery_timeout=0.1), Path("."))
    run.creds = probes.Credentials("john", Secret("pw"))
    run.user = site.users[0]
    private, txt = _key()
    run.published = (DnsRecord("mail._domainkey.example.test", "TXT", txt),)
    sent: list[bytes] = []

    def transaction(endpoint: Any, **kwargs: Any) -> probes.Transaction:
        assert kwargs["port"] == 587 and kwargs["starttls"] and kwargs["auth"] is not None
        sent.append(kwargs["message"])
        return probes.Transaction((("done", probes.SmtpReply(250, "2.0.0 Ok: queued")),), "done")

    def fetch(endpoint: Any, creds: Any, token: str, *, delete: bool) -> bytes:
        signature = dkim.sign(sent[0], b"mail", sign_as, private, include_headers=[b"from", b"subject"])
        return bytes(signature) + sent[0]

    monkeypatch.setattr(probes, "smtp_transaction", transaction)
    monkeypatch.setattr(probes, "imap_fetch", fetch)
    key = txt if published == "same" else _key()[1]
    table = {(f"mail._domainkey.{sign_as.decode()}", "TXT"): (key,)}
    run._dkim_signature(FakeResolver("192.0.2.53", table=table))
    (result,) = [r for r in run.results if r.name == "dkim.signature"]
    return result.status, result.detail


def test_a_message_sent_on_587_and_read_back_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    status, detail = _run(monkeypatch, b"example.test", "same")
    assert status == "pass", detail
    assert "verified against DNS" in detail and "aligned with From example.test" in detail


def test_another_key_in_dns_fails_the_signature_check(monkeypatch: pytest.MonkeyPatch) -> None:
    status, detail = _run(monkeypatch, b"example.test", "other")
    assert status == "fail" and "does not verify" in detail


def test_a_signature_of_another_domain_does_not_align(monkeypatch: pytest.MonkeyPatch) -> None:
    status, detail = _run(monkeypatch, b"example.org", "same")  # verifies, but for another domain
    assert status == "fail" and "d=example.org does not align with From example.test" in detail


def test_without_submission_the_signature_check_says_why_it_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    status, detail = _run(monkeypatch, b"example.test", "same", submission=False)
    assert status == "skip" and "postfix.submission" in detail
