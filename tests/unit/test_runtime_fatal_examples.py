"""The issue's examples of values only a running daemon rejects are refused before they reach a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.errors import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("postfix:\n  extra: {smtpd_client_connection_count_limit: lots}\n", "postfix.extra"),
        ("postfix:\n  extra: {mynetworks: 0.0.0.0/0}\n", "postfix.extra"),
        ("postfix:\n  extra: {smtpd_relay_restrictions: permit}\n", "postfix.extra"),
        ("postfix:\n  extra: {smtpd_tls_auth_only: 'no'}\n", "postfix.extra"),
    ],
)
def test_postfix_extra_cannot_undo_the_site(tmp_path: Path, extra: str, field: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text((DATA / "lab-site.yaml").read_text() + extra)
    with pytest.raises(ConfigError, match=rf"site.yaml:\d+  {field}"):
        load_site(site)


def test_dovecot_extra_cannot_undo_tls_or_plaintext_policy(tmp_path: Path) -> None:
    text = (DATA / "lab-site.yaml").read_text()
    for extra in ("ssl_min_protocol: TLSv9", "ssl: 'no'", "disable_plaintext_auth: 'no'"):
        site = tmp_path / "site.yaml"
        site.write_text(text.replace("dovecot:\n", f"dovecot:\n  extra: {{{extra}}}\n", 1))
        with pytest.raises(ConfigError, match=r"site.yaml:\d+  dovecot.extra"):
            load_site(site)
