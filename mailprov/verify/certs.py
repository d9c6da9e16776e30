"""The certificate a server presents: the names it is valid for and its dates. Pure functions.

Self-signed certificates are expected (the guide generates one), so the chain is not judged: what matters
is that the certificate names the host the clients connect to, and that it has not expired. A password is
another matter: it goes only to a server presenting a certificate in a CertTrust.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertInfo:
    subject: str
    common_names: tuple[str, ...]
    dns_names: tuple[str, ...]  # subjectAltName dNSName entries
    not_before: datetime
    not_after: datetime
    self_signed: bool

    def days_left(self, now: datetime | None = None) -> int:
        return (self.not_after - (now or datetime.now(UTC))).days

    def names(self) -> tuple[str, ...]:
        """The names that count (RFC 6125): the SAN DNS names when there are any, else the CN."""
        return self.dns_names or self.common_names


class CertificateError(ValueError):
    """The bytes are not an X.509 certificate."""


def parse_certificate(der: bytes) -> CertInfo:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateError(f"the server's certificate cannot be read: {exc}") from None
    cns = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        common_names=cns,
        dns_names=dns,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        self_signed=cert.issuer == cert.subject,
    )


def name_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching: case-insensitive; a wildcard only as the whole left-most label, for one label."""
    pattern = pattern.lower().rstrip(".")
    hostname = hostname.lower().rstrip(".")
    if not pattern or not hostname:
        return False
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        head, dot, tail = hostname.partition(".")
        return bool(head) and bool(dot) and "." + tail == suffix and suffix.count(".") >= 2
    return pattern == hostname


def certificate_names_host(info: CertInfo, hostname: str) -> bool:
    return any(name_matches(name, hostname) for name in info.names())


# --- whom verify trusts with a password --------------------------------------------------------------


@dataclass(frozen=True)
class CertTrust:
    """The certificates a server must present before verify sends it a password.

    `pinned`: certificates read from the host over the strictly host-key-checked SSH session (or the
    site's own tls.files.cert, which mailprov pushes): the server must present one of them exactly.
    `cas`: CA certificates the site names (tls.files.ca): a certificate they issued directly, valid now
    and naming the host, is accepted too. Anything else may be whoever answers at the address.
    """

    pinned: frozenset[bytes] = frozenset()
    cas: tuple[bytes, ...] = ()
    source: str = ""  # for messages: where the pinned certificates came from

    @staticmethod
    def der_certificates(pem: bytes) -> tuple[bytes, ...]:
        """Every certificate of a PEM file, as DER; CertificateError when there is none."""
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise CertificateError(f"no PEM certificate could be read: {exc}") from None
        return tuple(c.public_bytes(Encoding.DER) for c in certs)

    def merged(self, other: CertTrust) -> CertTrust:
        source = " and ".join(s for s in (self.source, other.source) if s)
        return CertTrust(self.pinned | other.pinned, self.cas + other.cas, source)

    def refusal(self, cert_der: bytes, hostname: str, now: datetime | None = None) -> str | None:
        """None when cert_der may be sent a password for hostname; else why not (never the password)."""
        if not cert_der:
            return "the server presented no certificate"
        if cert_der in self.pinned:
            return None
        try:
            leaf = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            return "the server's certificate cannot be read"
        when = now or datetime.now(UTC)
        for ca_der in self.cas:
            ca = x509.load_der_x509_certificate(ca_der)
            try:
                leaf.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            info = parse_certificate(cert_der)
            if not info.not_before <= when <= info.not_after:
                return "the server's certificate, issued by the site's CA, is not valid now"
            if not certificate_names_host(info, hostname):
                return f"the server's certificate, issued by the site's CA, does not name {hostname}"
            return None
        fingerprint = hashlib.sha256(cert_der).hexdigest()[:16]
        expected = self.source or "a certificate mailprov could check"
        return f"the server's certificate (SHA-256 {fingerprint}…) is not {expected}"
