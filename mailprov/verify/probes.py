"""Small network clients that speak to a mail host the way real clients do: SMTP, IMAP, POP3, TLS, TCP.

Each probe opens its own connection (connect timeout 5 s by default), returns a typed result and prints
nothing. Protocol and network failures come back as values (`ProbeError` carries the reason), never as
exceptions from the standard library, so a check can always say what happened.

Commands are sent raw where smtplib would rewrite them (`RCPT TO:<"user@external"@host>`), and DATA is
only ever sent by `smtp_transaction` with a message, which the caller sends to local recipients only.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import imaplib
import poplib
import smtplib
import socket
import ssl
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

from mailprov.config.secrets import Secret
from mailprov.verify.certs import CertTrust

CONNECT_TIMEOUT = 5.0
PROBE_HELO = "verify.mailprov.invalid"  # fully qualified and never a real host

T = TypeVar("T")


class ProbeError(Exception):
    """A probe could not complete; `str()` says why (connection refused, timeout, protocol error …)."""


class TlsHandshakeError(ProbeError):
    """The TLS handshake itself failed (the server refused our offer, or we could not make one)."""


@dataclass(frozen=True)
class Endpoint:
    address: str
    server_name: str | None = None  # sent as SNI: the host's name, for servers with per-name certificates
    timeout: float = CONNECT_TIMEOUT


class UntrustedServer(ProbeError):
    """The server's certificate is not one verify may send a password to: the password was not sent."""


@dataclass(frozen=True)
class Credentials:
    """A site user's login, and the certificates a server must present before it gets the password.

    trust None: no certificate could be read from the host (no SSH session, and no tls.files in the
    site): the password is never sent.
    """

    user: str
    password: Secret = field(repr=False)
    trust: CertTrust | None = field(default=None, repr=False)

    def check_server(self, cert_der: bytes, hostname: str) -> None:
        """Raise UntrustedServer unless the TLS session's certificate is trusted with this password."""
        if self.trust is None:
            raise UntrustedServer(
                "the password was not sent: no certificate to check the server against (verify reads it "
                "from the host over SSH, or give tls.files in the site)"
            )
        reason = self.trust.refusal(cert_der, hostname)
        if reason is not None:
            raise UntrustedServer(f"the password was not sent: {reason}")

    def encoded_forms(self) -> tuple[str, ...]:
        """Every form of the password a probe sends on the wire, for masking output."""
        pw = self.password.reveal()
        plain = f"\0{self.user}\0{pw}".encode()
        return (pw, base64.b64encode(pw.encode()).decode(), base64.b64encode(plain).decode())


# --- TCP -------------------------------------------------------------------------------------------------

PortStateName = Literal["open", "refused", "filtered", "unreachable"]


@dataclass(frozen=True)
class PortState:
    port: int
    state: PortStateName
    detail: str
    local_address: str | None = None  # this machine's address on the connection (when open)


def tcp_port(endpoint: Endpoint, port: int) -> PortState:
    """Connect and close: open, refused (RST or ICMP unreachable), filtered (no answer) or unreachable."""
    try:
        with socket.create_connection((endpoint.address, port), timeout=endpoint.timeout) as sock:
            local = sock.getsockname()[0]
            return PortState(port, "open", f"connected from {local}", str(local))
    except ConnectionRefusedError:
        return PortState(port, "refused", "connection refused")
    except TimeoutError:
        return PortState(port, "filtered", f"no answer within {endpoint.timeout:g} s")
    except OSError as exc:
        return PortState(port, "unreachable", exc.strerror or str(exc))


# --- TLS -------------------------------------------------------------------------------------------------

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = MappingProxyType(
    {
        "TLSv1": ssl.TLSVersion.TLSv1,
        "TLSv1.1": ssl.TLSVersion.TLSv1_1,
        "TLSv1.2": ssl.TLSVersion.TLSv1_2,
        "TLSv1.3": ssl.TLSVersion.TLSv1_3,
    }
)


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str
    cert_der: bytes = field(repr=False)


def client_context(only: str | None = None) -> ssl.SSLContext:
    """A client context that accepts any certificate (self-signed is expected: names are checked apart).

    `only` limits the handshake to one protocol version (TLSv1 … TLSv1.3), lowering OpenSSL's security
    level so that this machine can still offer the old versions a server must refuse.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if only is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point: the server must refuse them
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = TLS_VERSIONS[only]
            ctx.maximum_version = TLS_VERSIONS[only]
    return ctx


def _tls_info(sock: ssl.SSLSocket) -> TlsInfo:
    cipher = sock.cipher()
    return TlsInfo(sock.version() or "?", cipher[0] if cipher else "?", sock.getpeercert(binary_form=True) or b"")


TlsOutcome = Literal["accepted", "refused", "untestable", "error"]


@dataclass(frozen=True)
class TlsAttempt:
    """A handshake limited to one protocol version: did the server accept it?"""

    version: str
    outcome: TlsOutcome
    detail: str


def classify_tls_failure(version: str, error: str) -> TlsAttempt:
    """A failed handshake offering only `version`: the server refused it, or this machine cannot offer it."""
    if "NO_PROTOCOLS_AVAILABLE" in error.upper() or "no protocols available" in error.lower():
        return TlsAttempt(version, "untestable", f"this machine's OpenSSL cannot offer {version}")
    return TlsAttempt(version, "refused", f"refused: {error}")


def implicit_tls(endpoint: Endpoint, port: int, only: str | None = None) -> TlsInfo:
    """TLS on connect (IMAPS 993, POP3S 995, SMTPS 465). Raises TlsHandshakeError or ProbeError."""
    ctx = client_context(only)
    try:
        raw = socket.create_connection((endpoint.address, port), timeout=endpoint.timeout)
    except OSError as exc:
        raise ProbeError(_oserror(exc, port)) from None
    with raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=endpoint.server_name) as sock:
                return _tls_info(sock)
        except (ssl.SSLError, OSError) as exc:
            raise TlsHandshakeError(f"TLS handshake failed: {exc}") from None


def implicit_tls_attempt(endpoint: Endpoint, port: int, version: str) -> TlsAttempt:
    try:
        info = implicit_tls(endpoint, port, only=version)
    except TlsHandshakeError as exc:
        return classify_tls_failure(version, str(exc))
    except ProbeError as exc:
        return TlsAttempt(version, "error", str(exc))
    return TlsAttempt(version, "accepted", f"server accepted {info.version} ({info.cipher})")


# --- SMTP ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpReply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


@dataclass(frozen=True)
class EhloInfo:
    """A parsed EHLO reply: the server's name and its extensions (keyword upper-case → parameters)."""

    name: str
    extensions: Mapping[str, str]

    def offers(self, keyword: str) -> bool:
        return keyword.upper() in self.extensions

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """Mechanisms from `AUTH …` and the old `AUTH=…` form."""
        mechs = self.extensions.get("AUTH", "").split() + self.extensions.get("AUTH=", "").split()
        return frozenset(m.upper() for m in mechs)


def parse_ehlo(text: str) -> EhloInfo:
    """`mx1.example.test\\nPIPELINING\\nAUTH PLAIN LOGIN\\nAUTH=PLAIN LOGIN` (code and dashes stripped)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return EhloInfo("", MappingProxyType({}))
    name = lines[0].split()[0] if lines[0].split() else ""
    extensions: dict[str, str] = {}
    for line in lines[1:]:
        if line.upper().startswith("AUTH="):  # broken_sasl_auth_clients: `AUTH=PLAIN LOGIN`
            extensions["AUTH="] = line[5:].strip()
            continue
        keyword, _, params = line.partition(" ")
        extensions[keyword.upper()] = params.strip()
    return EhloInfo(name, MappingProxyType(extensions))


def banner_name(banner: str) -> str:
    """The host name a `220 name ESMTP …` greeting announces (first word)."""
    words = banner.split()
    return words[0] if words else ""


class SmtpClient:
    """One SMTP conversation over smtplib, with commands sent verbatim (no address rewriting)."""

    def __init__(self, endpoint: Endpoint, port: int = 25) -> None:
        self.endpoint = endpoint
        self.port = port
        self._smtp = smtplib.SMTP(timeout=endpoint.timeout)
        self.banner: SmtpReply | None = None
        self.tls: TlsInfo | None = None

    def __enter__(self) -> SmtpClient:
        try:
            code, msg = self._smtp.connect(self.endpoint.address, self.port)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise ProbeError(_oserror(exc, self.port)) from None
        self.banner = SmtpReply(code, _text(msg))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def local_address(self) -> str | None:
        sock = self._smtp.sock
        return str(sock.getsockname()[0]) if sock is not None else None

    def close(self) -> None:
        try:
            if self._smtp.sock is not None:
                self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._smtp.close()

    def command(self, verb: str, argument: str = "") -> SmtpReply:
        return self._guard(lambda: self._reply(self._smtp.docmd(verb, argument)))

    def ehlo(self, name: str = PROBE_HELO) -> tuple[SmtpReply, EhloInfo]:
        reply = self.command("EHLO", name)
        info = parse_ehlo(reply.text) if reply.positive else EhloInfo("", MappingProxyType({}))
        return reply, info

    def starttls(self, ctx: ssl.SSLContext | None = None) -> tuple[SmtpReply, TlsInfo | None]:
        """STARTTLS and the handshake. A refused handshake raises ProbeError (the session is gone)."""
        reply = self.command("STARTTLS")
        if reply.code != 220:
            return reply, None
        ctx = ctx or client_context()

        plain = self._smtp.sock
        if plain is None:
            raise ProbeError("the server closed the connection")
        try:
            sock = ctx.wrap_socket(plain, server_hostname=self.endpoint.server_name)
        except (ssl.SSLError, OSError) as exc:
            raise TlsHandshakeError(f"TLS handshake failed: {exc}") from None
        self._smtp.sock = sock
        self._smtp.file = None  # smtplib reads replies through a file made from the (new) socket
        self.tls = _tls_info(sock)
        return reply, self.tls

    def auth(self, mechanism: str, creds: Credentials) -> SmtpReply:
        """AUTH PLAIN (initial response) or AUTH LOGIN; 235 on success, 535 on bad credentials.

        Only inside a TLS session whose certificate the credentials trust (UntrustedServer otherwise)."""
        if self.tls is None:
            raise ProbeError("no TLS session: the password is never sent in clear")
        creds.check_server(self.tls.cert_der, self.endpoint.server_name or self.endpoint.address)
        pw = creds.password.reveal()
        if mechanism.upper() == "PLAIN":
            token = base64.b64encode(f"\0{creds.user}\0{pw}".encode()).decode()
            return self.command("AUTH", f"PLAIN {token}")
        reply = self.command("AUTH", "LOGIN")
        for part in (creds.user, pw):
            if reply.code != 334:
                return reply
            reply = self._guard(functools.partial(self._send_line, base64.b64encode(part.encode()).decode()))
        return reply

    def data(self, message: bytes) -> SmtpReply:
        def send() -> SmtpReply:
            try:
                return self._reply(self._smtp.data(message))
            except smtplib.SMTPDataError as exc:  # DATA itself refused: a reply, not a failure
                return SmtpReply(exc.smtp_code, _text(exc.smtp_error))

        return self._guard(send)

    def _send_line(self, line: str) -> SmtpReply:
        self._smtp.send(line + "\r\n")
        return self._reply(self._smtp.getreply())

    def _guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except smtplib.SMTPServerDisconnected:
            raise ProbeError("the server closed the connection") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProbeError(_oserror(exc, self.port)) from None

    @staticmethod
    def _reply(pair: tuple[int, bytes]) -> SmtpReply:
        return SmtpReply(pair[0], _text(pair[1]))


def smtp_tls_attempt(endpoint: Endpoint, version: str, port: int = 25) -> TlsAttempt:
    """EHLO, STARTTLS with only `version` offered: refused or accepted?"""
    try:
        with SmtpClient(endpoint, port) as smtp:
            smtp.ehlo()
            reply, info = smtp.starttls(client_context(version))
    except TlsHandshakeError as exc:
        return classify_tls_failure(version, str(exc))
    except ProbeError as exc:
        return TlsAttempt(version, "error", str(exc))
    if info is None:
        return TlsAttempt(version, "error", f"STARTTLS not available: {reply}")
    return TlsAttempt(version, "accepted", f"server accepted {info.version} ({info.cipher})")


Stage = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "done"]


@dataclass(frozen=True)
class Transaction:
    """An SMTP transaction up to the first refusal: each step's reply, and where it stopped."""

    steps: tuple[tuple[Stage, SmtpReply], ...]
    stopped_at: Stage  # "done" when every step was accepted
    local_address: str | None = None

    @property
    def final(self) -> SmtpReply:
        return self.steps[-1][1]

    @property
    def accepted(self) -> bool:
        return self.stopped_at == "done"

    def describe(self) -> str:
        stage, reply = self.steps[-1]
        return f"{stage.upper() if stage != 'done' else 'last step'}: {reply}"


def smtp_transaction(
    endpoint: Endpoint,
    *,
    sender: str,
    recipient: str,
    helo: str = PROBE_HELO,
    starttls: bool = False,
    auth: tuple[str, Credentials] | None = None,
    message: bytes | None = None,
    port: int = 25,
) -> Transaction:
    """EHLO [STARTTLS EHLO] [AUTH] MAIL RCPT [DATA], stopping at the first reply ≥ 400.

    Without `message` the transaction ends with RSET: nothing is ever queued. Addresses are sent
    verbatim between angle brackets. Raises ProbeError when the connection fails or drops.
    """
    steps: list[tuple[Stage, SmtpReply]] = []

    def step(stage: Stage, reply: SmtpReply) -> bool:
        steps.append((stage, reply))
        return reply.positive

    with SmtpClient(endpoint, port) as smtp:
        assert smtp.banner is not None
        local = smtp.local_address
        if not step("connect", smtp.banner):
            return Transaction(tuple(steps), "connect", local)
        reply, ehlo = smtp.ehlo(helo)
        if not step("ehlo", reply):
            return Transaction(tuple(steps), "ehlo", local)
        if starttls and ehlo.offers("STARTTLS"):
            tls_reply, _ = smtp.starttls()
            if not step("starttls", tls_reply):
                return Transaction(tuple(steps), "starttls", local)
            reply, ehlo = smtp.ehlo(helo)
            if not step("ehlo", reply):
                return Transaction(tuple(steps), "ehlo", local)
        if auth is not None:
            if smtp.tls is None:
                raise ProbeError("no TLS session: the password is never sent in clear (STARTTLS not offered)")
            if not step("auth", smtp.auth(*auth)):
                return Transaction(tuple(steps), "auth", local)
        if not step("mail", smtp.command("MAIL", f"FROM:<{sender}>")):
            smtp.command("RSET")
            return Transaction(tuple(steps), "mail", local)
        if not step("rcpt", smtp.command("RCPT", f"TO:<{recipient}>")):
            smtp.command("RSET")
            return Transaction(tuple(steps), "rcpt", local)
        if message is None:
            smtp.command("RSET")
            return Transaction(tuple(steps), "done", local)
        if not step("data", smtp.data(message)):
            return Transaction(tuple(steps), "data", local)
        return Transaction(tuple(steps), "done", local)


@dataclass(frozen=True)
class SmtpSession:
    """What a client sees on port 25: banner, EHLO before and after STARTTLS, the TLS session."""

    banner: SmtpReply
    ehlo: EhloInfo
    starttls: SmtpReply | None  # None: not offered, not tried
    tls: TlsInfo | None
    tls_error: str | None
    ehlo_tls: EhloInfo | None
    local_address: str | None


def smtp_session(endpoint: Endpoint, port: int = 25) -> SmtpSession:
    with SmtpClient(endpoint, port) as smtp:
        assert smtp.banner is not None
        local = smtp.local_address
        _, ehlo = smtp.ehlo()
        if not ehlo.offers("STARTTLS"):
            return SmtpSession(smtp.banner, ehlo, None, None, None, None, local)
        try:
            reply, tls = smtp.starttls()
        except ProbeError as exc:
            return SmtpSession(smtp.banner, ehlo, None, None, str(exc), None, local)
        ehlo_tls = smtp.ehlo()[1] if tls is not None else None
        return SmtpSession(smtp.banner, ehlo, reply, tls, None, ehlo_tls, local)


def smtp_auth(endpoint: Endpoint, mechanism: str, creds: Credentials, port: int = 25) -> SmtpReply:
    """EHLO, STARTTLS, EHLO, AUTH: the server's answer to the credentials (never sent without TLS)."""
    with SmtpClient(endpoint, port) as smtp:
        _, ehlo = smtp.ehlo()
        if not ehlo.offers("STARTTLS"):
            raise ProbeError("STARTTLS not offered: the password is never sent in clear")
        reply, _ = smtp.starttls()
        if reply.code != 220:
            raise ProbeError(f"STARTTLS refused ({reply}): the password is never sent in clear")
        smtp.ehlo()
        return smtp.auth(mechanism, creds)


# --- IMAP and POP3 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaintextLogin:
    """A login attempt with made-up credentials on a port without TLS (the real password is never sent)."""

    capabilities: frozenset[str]
    refused: bool  # the server refused the plaintext login itself, not just the made-up credentials
    reply: str


DUMMY_USER = "mailprov-verify"
DUMMY_PASSWORD = "not-a-password"  # deliberately wrong: the only password ever sent without TLS

# How servers say "not without TLS": Dovecot 2.3 "Plaintext authentication disallowed", 2.4 "Cleartext
# authentication disallowed", RFC 5530's [PRIVACYREQUIRED], RFC 3501's LOGINDISABLED.
_PRIVACY_MARKERS = ("PRIVACYREQUIRED", "DISALLOWED", "NOT ALLOWED", "LOGINDISABLED")


def imap_plaintext_login(endpoint: Endpoint, port: int = 143) -> PlaintextLogin:
    try:
        imap = imaplib.IMAP4(endpoint.address, port, timeout=endpoint.timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    try:
        caps = frozenset(c.upper() for c in imap.capabilities)
        try:
            typ, data = imap.login(DUMMY_USER, DUMMY_PASSWORD)
            return PlaintextLogin(caps, False, f"{typ} {_text(data[-1] if data else b'')}")
        except imaplib.IMAP4.error as exc:
            text = _error_text(exc)
            refused = "LOGINDISABLED" in caps or any(m in text.upper() for m in _PRIVACY_MARKERS)
            return PlaintextLogin(caps, refused, text)
    except OSError as exc:
        raise ProbeError(_oserror(exc, port)) from None
    finally:
        _quietly(imap.logout)


def pop3_plaintext_login(endpoint: Endpoint, port: int = 110) -> PlaintextLogin:
    try:
        pop = poplib.POP3(endpoint.address, port, timeout=endpoint.timeout)
    except (OSError, poplib.error_proto) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    try:
        try:
            caps = frozenset(k.upper() for k in pop.capa())
        except poplib.error_proto:
            caps = frozenset()
        try:
            pop.user(DUMMY_USER)
            reply = pop.pass_(DUMMY_PASSWORD)
            return PlaintextLogin(caps, False, _text(reply))
        except poplib.error_proto as exc:
            text = _error_text(exc)
            # RFC 2449: a server that lists capabilities but not USER offers no USER/PASS login here.
            no_user = bool(caps) and "USER" not in caps
            return PlaintextLogin(caps, no_user or any(m in text.upper() for m in _PRIVACY_MARKERS), text)
    except OSError as exc:
        raise ProbeError(_oserror(exc, port)) from None
    finally:
        _quietly(pop.quit)


@dataclass(frozen=True)
class MailboxSearch:
    logged_in: bool
    found: bool
    detail: str


def imap_find(endpoint: Endpoint, creds: Credentials, token: str, *, delete: bool, port: int = 993) -> MailboxSearch:
    """IMAPS login, then the INBOX messages whose Subject holds `token` (deleted afterwards if asked)."""
    try:
        imap = imaplib.IMAP4_SSL(endpoint.address, port, ssl_context=client_context(), timeout=endpoint.timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    try:
        creds.check_server(_peer_der(imap.sock), endpoint.server_name or endpoint.address)  # before LOGIN
        try:
            imap.login(creds.user, creds.password.reveal())
        except imaplib.IMAP4.error as exc:
            return MailboxSearch(False, False, f"login refused: {_error_text(exc)}")
        typ, _ = imap.select("INBOX", readonly=not delete)
        if typ != "OK":
            return MailboxSearch(True, False, "cannot select INBOX")
        typ, data = imap.search(None, "SUBJECT", f'"{token}"')
        ids = data[0].split() if typ == "OK" and data and data[0] else []
        if ids and delete:
            for num in ids:
                imap.store(num.decode(), "+FLAGS", "\\Deleted")
            imap.expunge()
        return MailboxSearch(True, bool(ids), f"{len(ids)} message(s) with the token in INBOX")
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    finally:
        _quietly(imap.logout)


def imap_fetch(endpoint: Endpoint, creds: Credentials, token: str, *, delete: bool, port: int = 993) -> bytes | None:
    """IMAPS login, then the raw first INBOX message whose Subject holds `token` (deleted afterwards if
    asked); None when there is none yet. ProbeError when the login is refused or the connection fails."""
    try:
        imap = imaplib.IMAP4_SSL(endpoint.address, port, ssl_context=client_context(), timeout=endpoint.timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    try:
        creds.check_server(_peer_der(imap.sock), endpoint.server_name or endpoint.address)  # before LOGIN
        try:
            imap.login(creds.user, creds.password.reveal())
        except imaplib.IMAP4.error as exc:
            raise ProbeError(f"IMAPS login refused: {_error_text(exc)}") from None
        typ, _ = imap.select("INBOX", readonly=not delete)
        if typ != "OK":
            raise ProbeError("cannot select INBOX")
        typ, data = imap.search(None, "SUBJECT", f'"{token}"')
        ids = data[0].split() if typ == "OK" and data and data[0] else []
        if not ids:
            return None
        typ, fetched = imap.fetch(ids[0].decode(), "(BODY.PEEK[])")
        raw = next((part[1] for part in fetched if isinstance(part, tuple) and len(part) > 1), None)
        if delete:
            for num in ids:
                imap.store(num.decode(), "+FLAGS", "\\Deleted")
            imap.expunge()
        return bytes(raw) if isinstance(raw, bytes | bytearray) else None
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    finally:
        _quietly(imap.logout)


def pop3_find(endpoint: Endpoint, creds: Credentials, token: str, *, delete: bool, port: int = 995) -> MailboxSearch:
    """POP3S login, then the messages whose headers hold `token` (deleted at QUIT if asked)."""
    try:
        pop = poplib.POP3_SSL(endpoint.address, port, context=client_context(), timeout=endpoint.timeout)
    except (OSError, poplib.error_proto) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    try:
        creds.check_server(_peer_der(pop.sock), endpoint.server_name or endpoint.address)  # before USER
        try:
            pop.user(creds.user)
            pop.pass_(creds.password.reveal())
        except poplib.error_proto as exc:
            return MailboxSearch(False, False, f"login refused: {_error_text(exc)}")
        count, _ = pop.stat()
        hits = []
        for number in range(1, count + 1):
            _, lines, _ = pop.top(number, 0)
            if any(token.encode() in line for line in lines):
                hits.append(number)
        if delete:
            for number in hits:
                pop.dele(number)
        return MailboxSearch(True, bool(hits), f"{len(hits)} of {count} message(s) hold the token")
    except (OSError, poplib.error_proto) as exc:
        raise ProbeError(_oserror(exc, port)) from None
    finally:
        _quietly(pop.quit)


# --- helpers ---------------------------------------------------------------------------------------------


def _peer_der(sock: object) -> bytes:
    """The certificate of an ssl socket's peer (DER), b"" when there is none."""
    if isinstance(sock, ssl.SSLSocket):
        return sock.getpeercert(binary_form=True) or b""
    return b""


def _text(raw: bytes | str) -> str:
    return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()


def _error_text(exc: BaseException) -> str:
    """imaplib and poplib put the server's reply, as bytes, in the exception's first argument."""
    first = exc.args[0] if exc.args else ""
    return _text(first) if isinstance(first, bytes | str) else str(exc)


def _oserror(exc: BaseException, port: int) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"port {port}: connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"port {port}: no answer (timeout)"
    if isinstance(exc, ssl.SSLError):
        return f"port {port}: TLS handshake failed: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"port {port}: {exc.strerror}"
    return f"port {port}: {exc}"


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error, poplib.error_proto, EOFError):
        call()
