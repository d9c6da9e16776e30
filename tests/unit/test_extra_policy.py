"""Issue 9: the escape hatches cannot undo the site. `postfix.extra`/`dovecot.extra` refuse what weakens
relay, TLS or authentication policy (managed or not), and the values of well-known numeric, time and
boolean Postfix parameters are type-checked at validate: exit 2, `file:line  field: reason`, what to write."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mailprov.cli import main
from mailprov.config import extra
from mailprov.config.loader import parse_site
from mailprov.errors import ConfigError

BASE = """\
domain: example.com
hosts: [{name: mail.example.com}]
mynetworks: [127.0.0.0/8, 192.168.0.0/24]
"""


def refusal(section: str, name: str, value: str) -> str:
    text = BASE + f"{section}:\n  extra:\n    {name}: {value}\n"
    with pytest.raises(ConfigError) as info:
        parse_site(text)
    message = str(info.value)
    assert f"site.yaml:6  {section}.extra.{name}: " in message, message
    return message


@pytest.mark.parametrize(
    ("section", "name", "value", "instead"),
    [
        # named in the issue: managed (refused before this branch) and not managed
        ("postfix", "smtpd_tls_auth_only", "'no'", "tls.auth_only"),
        ("postfix", "smtpd_sasl_security_options", "''", "sasl.mechanisms"),
        ("postfix", "smtpd_tls_security_level", "none", "tls.security_level"),
        ("postfix", "mynetworks_style", "subnet", "mynetworks"),
        ("postfix", "mynetworks", "0.0.0.0/0", "mynetworks"),
        ("postfix", "smtpd_recipient_restrictions", "permit", "restrictions.recipient"),
        ("postfix", "smtpd_relay_restrictions", "permit", "restrictions.relay"),
        ("dovecot", "disable_plaintext_auth", "'no'", "tls"),
        ("dovecot", "auth_allow_cleartext", "'yes'", "tls"),
        ("dovecot", "ssl", "'no'", "tls.enabled"),
        ("dovecot", "ssl_min_protocol", "TLSv9", "tls.min_protocol"),
        # weakening, not managed: refused whatever the value
        ("postfix", "smtpd_authorized_xclient_hosts", "0.0.0.0/0", "mynetworks"),
        ("postfix", "smtpd_upstream_proxy_protocol", "haproxy", "mynetworks"),
        ("postfix", "smtpd_sasl_tls_security_options", "noplaintext", "sasl"),
        ("postfix", "smtpd_use_tls", "'no'", "tls"),
        ("postfix", "smtpd_enforce_tls", "'no'", "tls"),
        ("postfix", "smtpd_tls_wrappermode", "'yes'", "tls"),
        ("postfix", "tls_high_cipherlist", "ALL:eNULL", "tls"),
        ("postfix", "smtpd_tls_chain_files", "/etc/ssl/other.pem", "tls.files"),
        ("postfix", "smtpd_tls_eccert_file", "/etc/ssl/ec.pem", "tls.files"),
        ("postfix", "local_recipient_maps", "''", "users and aliases"),
        ("postfix", "smtpd_discard_ehlo_keyword_address_maps", "cidr:/etc/postfix/x", "EHLO"),
        ("dovecot", "haproxy_trusted_networks", "0.0.0.0/0", "tls"),
        ("dovecot", "auth_debug_passwords", "'yes'", "leave it out"),
        ("dovecot", "auth_verbose_passwords", "plain", "leave it out"),
        ("dovecot", "auth_allow_weak_schemes", "'yes'", "leave it out"),
        ("dovecot", "auth_master_user_separator", "'*'", "leave it out"),
        # weakening only with some values
        ("postfix", "allow_untrusted_routing", "'yes'", "relay_domains"),
        ("postfix", "smtpd_reject_unlisted_recipient", "'no'", "users and aliases"),
        ("postfix", "smtpd_discard_ehlo_keywords", "starttls", "leave starttls and auth out"),
        ("postfix", "smtpd_tls_ciphers", "export", "`medium` or `high`"),
        ("postfix", "smtpd_tls_mandatory_ciphers", "low", "`medium` or `high`"),
        ("postfix", "smtpd_tls_eecdh_grade", "none", "leave it out"),
        ("postfix", "smtpd_forbid_bare_newline", "'no'", "leave it out"),
        ("dovecot", "auth_username_chars", "''", "leave it out"),
        ("postfix", "smtpd_tls_fingerprint_digest", "md5", "sha256"),
        ("postfix", "smtp_tls_policy_maps", "hash:/etc/postfix/tls_policy", "TLS whenever offered"),
        ("postfix", "smtp_use_tls", "'no'", "leave it out"),
        ("postfix", "smtp_tls_ciphers", "export", "`medium` or `high`"),
        ("postfix", "smtp_tls_protocols", "SSLv3, TLSv1", "exclude them"),
        ("postfix", "smtp_tls_mandatory_protocols", "'>=SSLv3'", "exclude them"),
    ],
)
def test_extra_refuses_what_weakens_relay_tls_or_authentication(
    section: str, name: str, value: str, instead: str
) -> None:
    message = refusal(section, name, value)
    assert instead in message, message


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("smtpd_client_connection_count_limit", "lots", "is an integer"),
        ("smtpd_client_connection_count_limit", "-1", "is an integer"),
        ("message_size_limit", "10M", None),  # managed: refused as such (postfix.message_size_limit)
        ("mailbox_size_limit", "10M", "is an integer"),
        ("smtpd_timeout", "5 minutes", "optional unit s, m, h, d or w"),
        ("maximal_queue_lifetime", "5days", "optional unit s, m, h, d or w"),
        ("disable_vrfy_command", "maybe", "write 'yes' or 'no'"),
        ("smtputf8_enable", "on", "write 'yes' or 'no'"),
        ("smtp_address_preference", "ipv5", "any, ipv4, ipv6"),
    ],
)
def test_numeric_time_and_boolean_postfix_values_are_type_checked(name: str, value: str, kind: str | None) -> None:
    message = refusal("postfix", name, value)
    if kind is not None:
        assert kind in message and repr(value) in message, message
        assert "fatal: bad" in message or "takes one of" in message


@pytest.mark.parametrize(
    ("name", "value", "seen"),
    [
        ("smtpd_client_connection_count_limit", "50", "50"),
        ("smtpd_client_connection_count_limit", "'50'", "50"),
        ("smtpd_client_connection_count_limit", "$default_process_limit", "$default_process_limit"),
        ("smtpd_timeout", "300s", "300s"),
        ("maximal_queue_lifetime", "5d", "5d"),
        ("smtpd_error_sleep_time", "1", "1"),
        ("disable_vrfy_command", "'yes'", "yes"),
        ("disable_vrfy_command", "true", "yes"),  # YAML's true is Postfix's yes
        ("smtpd_tls_ciphers", "high", "high"),
        ("smtpd_discard_ehlo_keywords", "silent-discard, dsn", "silent-discard, dsn"),
        ("allow_untrusted_routing", "'no'", "no"),
        ("smtpd_banner", "$myhostname ESMTP", "$myhostname ESMTP"),
        ("smtp_tls_protocols", "'TLSv1.2, TLSv1.3'", "TLSv1.2, TLSv1.3"),
        ("smtp_tls_mandatory_protocols", "'>=TLSv1.2'", ">=TLSv1.2"),
        ("smtpd_tls_fingerprint_digest", "sha256", "sha256"),
    ],
)
def test_good_values_still_pass(name: str, value: str, seen: str) -> None:
    site = parse_site(BASE + f"postfix:\n  extra:\n    {name}: {value}\n")
    assert site.postfix.extra[name] == seen


def test_login_trusted_networks_only_inside_mynetworks() -> None:
    site = parse_site(BASE + "dovecot:\n  extra:\n    login_trusted_networks: 127.0.0.1/32 192.168.0.5\n")
    assert site.dovecot.extra["login_trusted_networks"] == "127.0.0.1/32 192.168.0.5"
    message = refusal("dovecot", "login_trusted_networks", "0.0.0.0/0")
    assert "not inside mynetworks" in message and "clear-text password" in message
    assert "not a network" in refusal("dovecot", "login_trusted_networks", "anywhere")


def test_managed_refusal_names_the_site_field() -> None:
    message = refusal("postfix", "smtpd_tls_protocols", "SSLv3")
    assert "mailprov writes smtpd_tls_protocols itself" in message and "tls.min_protocol" in message
    assert extra.managed_field("ssl_cipher_list") == " (for ssl_cipher_list: tls)"
    assert extra.managed_field("service") == ""


def test_cli_validate_exits_2_with_file_line_and_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + "postfix:\n  extra:\n    smtpd_client_connection_count_limit: lots\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:6  postfix.extra.smtpd_client_connection_count_limit: 'lots' is not a number" in result.output
    assert "integer" in result.output


def test_the_type_tables_do_not_overlap() -> None:
    assert not set(extra.POSTFIX_TYPES) & set(extra.MANAGED_FIELDS)  # a managed name never reaches a type check
