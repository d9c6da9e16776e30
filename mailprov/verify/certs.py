"""The certificate a server presents: the names it is valid for and its dates. Pure functions.

Self-signed certificates are expected (the guide generates one), so the chain is not judged: what matters
is that the certificate names the host the clients connect to, and that it has not expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
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
