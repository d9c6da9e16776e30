"""verify_host's decisions without a mail server: skips with reasons, failures named, secrets masked.

Probes go to 127.0.0.1 only, where nothing listens on the mail ports (connections are refused at once);
where a probe's answer matters it is replaced.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from mailprov.config.loader import parse_site
from mailprov.config.model import Site
from mailprov.errors import TransportError
from mailprov.verify import checks, probes
from mailprov.verify.checks import VerifyOptions, verify_host
from mailprov.verify.results import CheckResult

PASSWORD = "Pa55-w0rd-not-shown"
SITE = """
domain: example.test
hosts: [{name: mx1.example.test, ssh: {address: 127.0.0.1}}]
mynetworks: [10.231.0.0/16, 127.0.0.0/8]
users: [{login: john, password: {env: MP_TEST_PW}, aliases: [jsmith]}]
restrictions:
  helo: [permit_mynetworks, reject_non_fqdn_helo_hostname, permit]
sasl: {enabled: true}
"""
OFFLINE = VerifyOptions(host_checks=False, dns=False, connect_timeout=1.0)


@pytest.fixture(autouse=True)
def _nothing_listens() -> None:
    for port in (25, 110, 143, 465, 587, 993, 995):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"something listens on 127.0.0.1:{port}")


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("MP_TEST_PW", PASSWORD)
    return parse_site(SITE)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_unreachable_host_fails_named_checks_and_skips_the_rest(site: Site, tmp_path: Path) -> None:
    results = by_name(verify_host(site, site.hosts[0], OFFLINE, tmp_path))
    assert results["smtp.connect"].status == "fail"
    assert "refused" in results["smtp.connect"].detail
    assert results["smtp.auth_valid_password"].status == "skip"
    assert results["ports.smtp_from_lan"].status == "fail"
    assert results["ports.submission_from_lan"].status == "pass"  # closed, as the site wants
    assert results["delivery.smtp_accepted"].status == "skip"
    assert results["dns.mx"].status == "skip"


def test_inside_mynetworks_relay_and_restrictions_skip_with_reason(site: Site, tmp_path: Path) -> None:
    results = by_name(verify_host(site, site.hosts[0], OFFLINE, tmp_path))
    assert results["client.position"].status == "pass"  # 127.0.0.1 is in mynetworks
    relay = results["relay.percent_hack"]
    assert relay.status == "skip" and "--from-outside" in relay.detail
    helo = results["restrictions.non_fqdn_helo"]
    assert helo.status == "skip" and "permit_mynetworks" in helo.detail


def test_claimed_outside_from_a_trusted_address_is_flagged(site: Site, tmp_path: Path) -> None:
    options = VerifyOptions(from_outside=True, host_checks=False, dns=False, connect_timeout=1.0)
    results = by_name(verify_host(site, site.hosts[0], options, tmp_path))
    assert results["client.position"].status == "skip"
    assert "run without --from-outside" in results["client.position"].detail
    assert "ports.imap_from_outside" in results


def test_missing_password_skips_auth_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MP_TEST_PW", raising=False)
    site = parse_site(SITE)
    session = probes.SmtpSession(
        probes.SmtpReply(220, "mx1.example.test ESMTP"), probes.parse_ehlo("mx1\nSTARTTLS"),
        probes.SmtpReply(220, "Ready"), probes.TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", b""), None,
        probes.parse_ehlo("mx1\nAUTH PLAIN LOGIN"), "127.0.0.1",
    )  # fmt: skip
    monkeypatch.setattr(probes, "smtp_session", lambda endpoint: session)
    monkeypatch.setattr(probes, "smtp_tls_attempt", lambda e, v: probes.TlsAttempt(v, "refused", "refused"))
    monkeypatch.setattr(checks.HostVerification, "_local_recipient", lambda self: None)
    results = by_name(verify_host(site, site.hosts[0], OFFLINE, tmp_path))
    assert results["smtp.banner_names_host"].status == "pass"
    assert results["smtp.starttls_handshake"].status == "pass"
    assert results["smtp.auth_before_tls"].status == "pass"
    assert results["smtp.auth_offered_after_tls"].status == "pass"
    auth = results["smtp.auth_valid_password"]
    assert auth.status == "skip" and "MP_TEST_PW is not set" in auth.detail
    assert results["smtp.tls_refuses_tls1_0"].status == "pass"
    assert results["smtp.cert_names_host"].status == "skip"


def test_auth_off_on_port_25_is_checked_as_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = parse_site(SITE.replace("sasl: {enabled: true}", "sasl: {enabled: true, on_port_25: false}")
                      + "postfix: {submission: true}\n")  # fmt: skip
    assert not site.sasl.on_port_25
    for offered, status in (("mx1", "pass"), ("mx1\nAUTH PLAIN", "fail")):
        session = probes.SmtpSession(
            probes.SmtpReply(220, "mx1.example.test ESMTP"), probes.parse_ehlo("mx1\nSTARTTLS"),
            probes.SmtpReply(220, "Ready"), probes.TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", b""), None,
            probes.parse_ehlo(offered), "127.0.0.1",
        )  # fmt: skip
        monkeypatch.setattr(probes, "smtp_session", lambda endpoint, session=session: session)
        monkeypatch.setattr(probes, "smtp_tls_attempt", lambda e, v: probes.TlsAttempt(v, "refused", "refused"))
        monkeypatch.setattr(checks.HostVerification, "_local_recipient", lambda self: None)
        results = by_name(verify_host(site, site.hosts[0], OFFLINE, tmp_path))
        assert results["smtp.auth_offered_after_tls"].status == status
        assert results["smtp.auth_valid_password"].status == "skip"
        assert "on_port_25" in results["smtp.auth_valid_password"].detail


def test_secrets_never_leave_verify(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a server (or a bug) that echoes the credentials back cannot put them in a result."""
    plain = base64.b64encode(f"\0john\0{PASSWORD}".encode()).decode()

    def echoing_session(endpoint: probes.Endpoint) -> probes.SmtpSession:
        raise probes.ProbeError(f"server said: AUTH PLAIN {plain} / {PASSWORD}")

    monkeypatch.setattr(probes, "smtp_session", echoing_session)
    results = verify_host(site, site.hosts[0], OFFLINE, tmp_path)
    text = repr(results)
    assert PASSWORD not in text and plain not in text
    assert "server said: AUTH PLAIN *** / ***" in by_name(results)["smtp.connect"].detail


class _DeadTransport:
    """A session that drops on the first command."""

    host = "mx1.example.test"
    round_trips = 0

    def run(self, argv: object, **kwargs: object) -> object:
        raise TransportError("mx1.example.test: the SSH session dropped")

    def run_script(self, script: str, **kwargs: object) -> object:
        raise TransportError("mx1.example.test: the SSH session dropped")

    def close(self) -> None:
        pass


def test_host_checks_fail_one_by_one_when_the_session_drops(site: Site, tmp_path: Path) -> None:
    from mailprov.facts.platform import PRESETS
    from mailprov.resources.base import HostContext
    from mailprov.verify.hostchecks import host_checks

    ctx = HostContext.of(site, site.hosts[0], PRESETS["debian12"], tmp_path)
    results = by_name(host_checks(ctx, _DeadTransport()))  # type: ignore[arg-type]
    assert "host.package.postfix" in results and "host.postfix_check" in results and "host.maildir.john" in results
    assert {r.status for r in results.values()} == {"fail"}
    assert all("could not check" in r.detail and "dropped" in r.detail for r in results.values())
