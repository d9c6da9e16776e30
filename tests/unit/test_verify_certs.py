"""Certificate names and dates, as verify judges them (self-signed certificates are expected)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from test_verify_probes import make_certificate  # tests/unit is on sys.path (no __init__.py)

from mailprov.verify.certs import CertificateError, certificate_names_host, name_matches, parse_certificate


def _der(tmp_path: Path, cn: str, san: tuple[str, ...] = ()) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    cert_path, _ = make_certificate(tmp_path, cn, san)
    return x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(Encoding.DER)


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("mx1.example.test", "mx1.example.test", True),
        ("MX1.Example.Test.", "mx1.example.test", True),
        ("mx2.example.test", "mx1.example.test", False),
        ("*.example.test", "mx1.example.test", True),
        ("*.example.test", "a.mx1.example.test", False),  # one label only
        ("*.example.test", "example.test", False),
        ("*.test", "example.test", False),  # no wildcard for a whole TLD
        ("mx1.*.test", "mx1.example.test", False),
        ("", "mx1.example.test", False),
    ],
)
def test_name_matching(pattern: str, host: str, ok: bool) -> None:
    assert name_matches(pattern, host) is ok


def test_cn_counts_without_san(tmp_path: Path) -> None:
    """`openssl req -subj /CN=host` (the guide's way) gives no SAN: the CN names the host."""
    info = parse_certificate(_der(tmp_path, "mx1.example.test"))
    assert info.names() == ("mx1.example.test",) and info.self_signed
    assert certificate_names_host(info, "mx1.example.test")
    assert not certificate_names_host(info, "mx2.example.test")


def test_san_wins_over_cn(tmp_path: Path) -> None:
    info = parse_certificate(_der(tmp_path, "mx1.example.test", ("mail.example.test",)))
    assert not certificate_names_host(info, "mx1.example.test")
    assert certificate_names_host(info, "mail.example.test")


def test_days_left(tmp_path: Path) -> None:
    info = parse_certificate(_der(tmp_path, "mx1.example.test"))
    assert info.days_left() in (29, 30)
    assert info.days_left(info.not_after + dt.timedelta(days=2)) < 0


def test_garbage_is_an_error() -> None:
    with pytest.raises(CertificateError):
        parse_certificate(b"not a certificate")
