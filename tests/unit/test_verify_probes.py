"""The SMTP probes against a scripted SMTP server on loopback, and the pure parsers they use."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailprov.config.secrets import Secret
from mailprov.verify import probes
from mailprov.verify.certs import CertTrust, certificate_names_host, parse_certificate
from mailprov.verify.probes import Credentials, Endpoint

# --- pure parsing ----------------------------------------------------------------------------------------

# What Postfix 3.7 answered on a lab host (bookworm), code and dashes stripped by smtplib.
EHLO_BEFORE_TLS = "bookworm-5.example.test\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\nSTARTTLS\nENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING"  # noqa: E501
EHLO_AFTER_TLS = "bookworm-5.example.test\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\nAUTH PLAIN LOGIN\nENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING"  # noqa: E501


def test_parse_ehlo_before_and_after_tls() -> None:
    before = probes.parse_ehlo(EHLO_BEFORE_TLS)
    assert before.name == "bookworm-5.example.test"
    assert before.offers("starttls") and not before.auth_mechanisms
    after = probes.parse_ehlo(EHLO_AFTER_TLS)
    assert not after.offers("STARTTLS")
    assert after.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert after.extensions["SIZE"] == "10240000"


def test_parse_ehlo_old_auth_equals_form() -> None:
    """broken_sasl_auth_clients adds `AUTH=PLAIN LOGIN` for Outlook Express 4."""
    info = probes.parse_ehlo("mx\nAUTH=PLAIN LOGIN\n")
    assert info.auth_mechanisms == {"PLAIN", "LOGIN"}


def test_parse_empty_ehlo() -> None:
    assert probes.parse_ehlo("").name == ""


def test_banner_name() -> None:
    assert probes.banner_name("mx1.example.test ESMTP Postfix (Debian/GNU)") == "mx1.example.test"
    assert probes.banner_name("") == ""


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("TLS handshake failed: [SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version", "refused"),
        ("TLS handshake failed: [SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure", "refused"),
        ("TLS handshake failed: [SSL: NO_PROTOCOLS_AVAILABLE] no protocols available", "untestable"),
    ],
)
def test_tls_failure_classification(error: str, outcome: str) -> None:
    assert probes.classify_tls_failure("TLSv1", error).outcome == outcome


def test_credentials_list_every_wire_form_and_never_print() -> None:
    creds = Credentials("john", Secret("s3cret"))
    forms = creds.encoded_forms()
    assert "s3cret" in forms
    assert base64.b64encode(b"\0john\0s3cret").decode() in forms
    assert "s3cret" not in repr(creds)


# --- a scripted SMTP server ------------------------------------------------------------------------------


def make_certificate(tmp: Path, cn: str, san: tuple[str, ...] = ()) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Script:
    """How the fake server behaves, and what it heard."""

    context: ssl.SSLContext
    auth_before_tls: bool = False
    local_domain: str = "example.test"
    password: str = "s3cret"
    heard: list[str] = field(default_factory=list)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        script = self.server.script
        tls = False
        self.reply("220 mx.example.test ESMTP fake")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            script.heard.append(text)
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                auth = ["250-AUTH PLAIN LOGIN"] if tls or script.auth_before_tls else []
                lines = ["250-mx.example.test", *(["250-STARTTLS"] if not tls else []), *auth, "250 8BITMIME"]
                self.reply("\r\n".join(lines))
            elif verb == "STARTTLS":
                self.reply("220 2.0.0 Ready to start TLS")
                conn = script.context.wrap_socket(self.connection, server_side=True)
                self.connection = conn
                self.rfile = conn.makefile("rb")
                self.wfile = conn.makefile("wb")
                tls = True
            elif verb == "AUTH":
                expected = base64.b64encode(f"\0john\0{script.password}".encode()).decode()
                ok = text == f"AUTH PLAIN {expected}"
                self.reply("235 2.7.0 Authentication successful" if ok else "535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                address = text.split(":", 1)[1].strip()
                local = address.endswith(f"@{script.local_domain}>") and address.count("@") == 1
                self.reply("250 2.1.5 Ok" if local else "554 5.7.1 Relay access denied")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.reply("250 2.0.0 Ok: queued as ABC123")
            elif verb == "RSET":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Error: command not recognized")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    script: Script


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[Endpoint, int, Script]]:
    cert, key = make_certificate(tmp_path, "mx.example.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.script = Script(ctx)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Endpoint("127.0.0.1", "mx.example.test", 3.0), server.server_address[1], server.script
    finally:
        server.shutdown()
        server.server_close()


def test_session_sees_starttls_then_auth(smtp_server: tuple[Endpoint, int, Script]) -> None:
    endpoint, port, _ = smtp_server
    session = probes.smtp_session(endpoint, port)
    assert session.banner.code == 220
    assert session.ehlo.offers("STARTTLS") and not session.ehlo.auth_mechanisms
    assert session.tls is not None and session.tls.version.startswith("TLS")
    assert session.ehlo_tls is not None and session.ehlo_tls.auth_mechanisms == {"PLAIN", "LOGIN"}
    cert = parse_certificate(session.tls.cert_der)
    assert certificate_names_host(cert, "mx.example.test")
    assert session.local_address == "127.0.0.1"


def pinned(tmp_path: Path) -> CertTrust:
    """Trust in the scripted server's certificate, as verify reads the host's over SSH."""
    return CertTrust(frozenset(CertTrust.der_certificates((tmp_path / "cert.pem").read_bytes())), source="pinned")


def test_auth_good_and_wrong_password(smtp_server: tuple[Endpoint, int, Script], tmp_path: Path) -> None:
    endpoint, port, _ = smtp_server
    trust = pinned(tmp_path)
    assert probes.smtp_auth(endpoint, "PLAIN", Credentials("john", Secret("s3cret"), trust), port).code == 235
    assert probes.smtp_auth(endpoint, "PLAIN", Credentials("john", Secret("wrong"), trust), port).code == 535


# Issue 12 item 5: the password goes only to a server whose certificate verify could check.


def test_no_password_to_a_server_whose_certificate_is_not_pinned(
    smtp_server: tuple[Endpoint, int, Script], tmp_path: Path
) -> None:
    endpoint, port, script = smtp_server
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other, _ = make_certificate(other_dir, "mx.example.test")
    trust = CertTrust(frozenset(CertTrust.der_certificates(other.read_bytes())), source="the one read over SSH")
    for creds in (Credentials("john", Secret("s3cret"), trust), Credentials("john", Secret("s3cret"))):
        with pytest.raises(probes.UntrustedServer, match="the password was not sent"):
            probes.smtp_auth(endpoint, "PLAIN", creds, port)
        with pytest.raises(probes.UntrustedServer):
            probes.smtp_transaction(
                endpoint, sender="john@example.test", recipient="john@example.test", starttls=True,
                auth=("PLAIN", creds), port=port,
            )  # fmt: skip
    assert "STARTTLS" in script.heard
    assert not any(line.upper().startswith("AUTH") for line in script.heard)


def test_a_certificate_issued_by_the_sites_ca_is_trusted(tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example CA")])
    now = dt.datetime.now(dt.UTC)

    def issue(cn: str, key: ec.EllipticCurvePrivateKey, *, san: str | None, days: int = 30) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    ca = issue("Example CA", ca_key, san=None)
    trust = CertTrust(cas=(ca,))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    assert trust.refusal(issue("mx", leaf_key, san="mx.example.test"), "mx.example.test") is None
    assert "does not name" in (trust.refusal(issue("mx", leaf_key, san="other.test"), "mx.example.test") or "")
    expired = issue("mx", leaf_key, san="mx.example.test", days=-1)
    assert "not valid now" in (trust.refusal(expired, "mx.example.test") or "")


def test_relay_addresses_are_sent_verbatim_and_never_followed_by_data(
    smtp_server: tuple[Endpoint, int, Script],
) -> None:
    endpoint, port, script = smtp_server
    for recipient in ('"u@example.net"@mx.example.test', "@mx.example.test:u@example.net", "u@example.net@x"):
        tx = probes.smtp_transaction(endpoint, sender="v@example.test", recipient=recipient, port=port)
        assert tx.stopped_at == "rcpt" and tx.final.code == 554
        assert f"RCPT TO:<{recipient}>" in script.heard
    assert not any(line.upper() == "DATA" for line in script.heard)
    assert "RSET" in script.heard


def test_accepted_transaction_without_message_ends_in_rset(smtp_server: tuple[Endpoint, int, Script]) -> None:
    endpoint, port, script = smtp_server
    tx = probes.smtp_transaction(endpoint, sender="v@example.test", recipient="john@example.test", port=port)
    assert tx.accepted and tx.final.code == 250
    assert "DATA" not in script.heard and [h.upper() for h in script.heard[-2:]] == ["RSET", "QUIT"]


def test_delivery_with_tls_auth_and_data(smtp_server: tuple[Endpoint, int, Script], tmp_path: Path) -> None:
    endpoint, port, script = smtp_server
    tx = probes.smtp_transaction(
        endpoint, sender="john@example.test", recipient="jsmith@example.test", starttls=True,
        auth=("PLAIN", Credentials("john", Secret("s3cret"), pinned(tmp_path))), message=b"Subject: t\r\n\r\nhi\r\n",
        port=port,
    )  # fmt: skip
    assert tx.accepted and "queued as ABC123" in tx.final.text
    assert [stage for stage, _ in tx.steps] == ["connect", "ehlo", "starttls", "ehlo", "auth", "mail", "rcpt", "data"]
    assert script.heard.index("STARTTLS") < next(i for i, h in enumerate(script.heard) if h.startswith("AUTH"))


def test_refused_connection_is_a_probe_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(probes.ProbeError, match="refused"):
            probes.smtp_session(Endpoint("127.0.0.1", timeout=2.0), port)
        assert probes.tcp_port(Endpoint("127.0.0.1", timeout=2.0), port).state == "refused"


def test_tcp_port_open(smtp_server: tuple[Endpoint, int, Script]) -> None:
    endpoint, port, _ = smtp_server
    state = probes.tcp_port(endpoint, port)
    assert (state.state, state.local_address) == ("open", "127.0.0.1")


def test_old_tls_against_a_tls12_server(smtp_server: tuple[Endpoint, int, Script]) -> None:
    endpoint, port, script = smtp_server
    script.context.minimum_version = ssl.TLSVersion.TLSv1_2
    attempt = probes.smtp_tls_attempt(endpoint, "TLSv1.1", port)
    assert attempt.outcome in ("refused", "untestable")  # untestable where local OpenSSL lacks TLS 1.1
    assert probes.smtp_tls_attempt(endpoint, "TLSv1.2", port).outcome == "accepted"


def test_credentials_are_never_sent_without_tls(smtp_server: tuple[Endpoint, int, Script]) -> None:
    endpoint, port, script = smtp_server
    creds = Credentials("john", Secret("s3cret"))
    with pytest.raises(probes.ProbeError, match="never sent in clear"):
        probes.smtp_transaction(
            endpoint, sender="john@example.test", recipient="john@example.test", auth=("PLAIN", creds), port=port
        )
    assert not any(line.startswith("AUTH") for line in script.heard)
