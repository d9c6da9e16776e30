"""Issue 12 item 5: verify sends the test user's password only to a server whose certificate matches the
one read from the host over the (strictly host-key-checked) SSH session, or one issued by the site's CA.

verify_host runs against 127.0.0.1 where nothing listens; the SMTP session is replaced by one that offers
AUTH after STARTTLS, and smtp_auth by a recorder, so what is tested is verify's decision to send.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailprov.config.loader import parse_site
from mailprov.transport.base import CommandResult
from mailprov.verify import checks, probes
from mailprov.verify.checks import VerifyOptions, verify_host
from mailprov.verify.results import CheckResult

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Pa55-w0rd-not-shown"
SITE = """
domain: example.test
hosts: [{name: mx1.example.test, ssh: {address: 127.0.0.1}}]
mynetworks: [10.231.0.0/16, 127.0.0.0/8]
users: [{login: john, password: {env: MP_TEST_PW}}]
sasl: {enabled: true}
"""


def certificate_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


HOST_CERT = certificate_pem("mx1.example.test")
IMPOSTOR_CERT = certificate_pem("mx1.example.test")


class FakeHost:
    """An SSH session to a Debian 12 host whose certificate file holds HOST_CERT."""

    host = "mx1.example.test"
    round_trips = 0

    def __init__(self) -> None:
        self.ran: list[Sequence[str]] = []

    def run(self, argv: Sequence[str], **kwargs: object) -> CommandResult:
        self.ran.append(list(argv))
        if argv[0] == "cat":
            return CommandResult(" ".join(argv), 0, HOST_CERT, "")
        return CommandResult(" ".join(argv), 1, "", "not in this fake")

    def run_script(self, script: str, **kwargs: object) -> CommandResult:
        return CommandResult("sh -s", 0, (REPO / "tests/data/probe-bookworm.txt").read_text(), "")

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _nothing_listens() -> None:
    for port in (25, 110, 143, 465, 587, 993, 995):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"something listens on 127.0.0.1:{port}")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[probes.Credentials]:
    """A server at the address that offers AUTH after STARTTLS with `presented` as its certificate."""
    monkeypatch.setenv("MP_TEST_PW", PASSWORD)
    calls: list[probes.Credentials] = []

    def smtp_auth(endpoint: probes.Endpoint, mechanism: str, creds: probes.Credentials) -> probes.SmtpReply:
        creds.check_server(der(presented[0]), "mx1.example.test")  # what SmtpClient.auth does first
        calls.append(creds)
        return probes.SmtpReply(235 if creds.password.reveal() == PASSWORD else 535, "ok")

    session = probes.SmtpSession(
        probes.SmtpReply(220, "mx1.example.test ESMTP"), probes.parse_ehlo("mx1\nSTARTTLS"),
        probes.SmtpReply(220, "Ready"), probes.TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", der(presented[0])),
        None, probes.parse_ehlo("mx1\nAUTH PLAIN LOGIN"), "127.0.0.1",
    )  # fmt: skip
    monkeypatch.setattr(probes, "smtp_session", lambda endpoint: session)
    monkeypatch.setattr(probes, "smtp_auth", smtp_auth)
    monkeypatch.setattr(probes, "smtp_tls_attempt", lambda e, v: probes.TlsAttempt(v, "refused", "refused"))
    monkeypatch.setattr(checks.HostVerification, "_local_recipient", lambda self: None)
    monkeypatch.setattr(checks.HostVerification, "delivery", lambda self, transport: None)
    return calls


presented = [HOST_CERT]


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def run(tmp_path: Path, host_checks: bool) -> dict[str, CheckResult]:
    site = parse_site(SITE)
    options = VerifyOptions(host_checks=host_checks, dns=False, connect_timeout=1.0)
    return by_name(verify_host(site, site.hosts[0], options, tmp_path, lambda host: FakeHost()))  # type: ignore[arg-type,return-value]


def test_without_ssh_the_password_is_never_sent(sent: list[probes.Credentials], tmp_path: Path) -> None:
    presented[0] = HOST_CERT
    results = run(tmp_path, host_checks=False)
    assert sent == []
    auth = results["smtp.auth_valid_password"]
    assert auth.status == "skip" and "matches the one read from the host over SSH" in auth.detail


def test_the_certificate_read_over_ssh_is_trusted(sent: list[probes.Credentials], tmp_path: Path) -> None:
    presented[0] = HOST_CERT
    results = run(tmp_path, host_checks=True)
    assert results["smtp.auth_valid_password"].status == "pass", results["smtp.auth_valid_password"]
    assert results["smtp.auth_wrong_password"].status == "pass", results["smtp.auth_wrong_password"]
    assert sent and sent[0].trust is not None and "over SSH)" in sent[0].trust.source


def test_an_impostor_at_the_address_gets_no_password(sent: list[probes.Credentials], tmp_path: Path) -> None:
    presented[0] = IMPOSTOR_CERT
    try:
        results = run(tmp_path, host_checks=True)
    finally:
        presented[0] = HOST_CERT
    assert sent == []
    auth = results["smtp.auth_valid_password"]
    assert auth.status == "fail" and "the password was not sent" in auth.detail
    assert PASSWORD not in repr(results)


def test_the_sites_own_pushed_certificate_is_trusted_without_ssh(
    sent: list[probes.Credentials], tmp_path: Path
) -> None:
    presented[0] = HOST_CERT
    (tmp_path / "mail.pem").write_text(HOST_CERT)
    (tmp_path / "mail.key").write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    site = parse_site(SITE + "tls: {files: {cert: mail.pem, key: mail.key}}\n")
    options = VerifyOptions(host_checks=False, dns=False, connect_timeout=1.0)
    results = by_name(verify_host(site, site.hosts[0], options, tmp_path))
    assert results["smtp.auth_valid_password"].status == "pass"
    assert sent and sent[0].trust is not None and "tls.files.cert" in sent[0].trust.source
