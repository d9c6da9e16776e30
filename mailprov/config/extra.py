"""What the escape hatches (`postfix.extra`, `dovecot.extra`) may not do, and the values they must have.

Parameters mailprov writes itself are refused in model.py (POSTFIX_MANAGED, DOVECOT_MANAGED). This module
adds the ones it does not write but that would weaken relay, TLS or authentication policy behind the
site's back, and the type of the well-known numeric, time and boolean Postfix parameters: `postconf -n`
and `postfix check` accept `smtpd_client_connection_count_limit = lots`, and smtpd then dies at run time
with `fatal: bad numerical configuration`. Pure data and pure functions; each answer is a sentence that
says what to write instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# --- weakening parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weakening:
    """Why a parameter weakens the site's policy, and what to write instead. `when` limits the refusal to
    values that weaken (None: every value)."""

    why: str
    instead: str
    when: Callable[[str], bool] | None = None


def _words(value: str) -> set[str]:
    return {w.lower() for w in re.split(r"[\s,]+", value) if w}


def _no(value: str) -> bool:
    return value.strip().lower() == "no"


def _yes(value: str) -> bool:
    return value.strip().lower() == "yes"


def _enables_ssl(value: str) -> bool:
    """A Postfix protocol list that turns SSLv2 or SSLv3 on (`SSLv3`, `>=SSLv3`, `<=TLSv1`, not `!SSLv3`)."""
    words = _words(value)
    return bool(words & {"sslv2", "sslv3", ">=sslv2", ">=sslv3"}) or any(w.startswith("<=") for w in words)


_RELAY = "use mynetworks, relay_domains and restrictions.relay in the site"
_TLS = "use the site's tls section (tls.security_level, tls.min_protocol, tls.files)"
_SASL = "use the site's sasl and tls sections (sasl.mechanisms, tls.auth_only)"

POSTFIX_WEAKENING: dict[str, Weakening] = {
    # relay: who counts as trusted, and which addresses may be routed through this host
    "smtpd_authorized_xclient_hosts": Weakening(
        "lets those clients claim any client address and name (XCLIENT), e.g. one in mynetworks, and relay", _RELAY
    ),
    "smtpd_upstream_proxy_protocol": Weakening(
        "takes the client address from a proxy header the client may write itself, e.g. one in mynetworks", _RELAY
    ),
    "allow_untrusted_routing": Weakening(
        "relays sender-routed addresses (user%remote@here, remote!user@here) from untrusted clients", _RELAY, _yes
    ),
    "smtpd_reject_unlisted_recipient": Weakening(
        "accepts mail for local recipients that do not exist (and bounces it later: backscatter)",
        "the site's users and aliases define who receives mail",
        _no,
    ),
    "local_recipient_maps": Weakening(
        "decides which local recipients exist; empty accepts mail for any name (backscatter)",
        "the site's users and aliases define who receives mail",
    ),
    # TLS: what STARTTLS offers and with which ciphers
    "smtpd_use_tls": Weakening("is the old switch for STARTTLS on port 25", _TLS),
    "smtpd_enforce_tls": Weakening("is the old switch for required TLS on port 25", _TLS),
    "smtpd_tls_wrappermode": Weakening("turns port 25 into TLS-on-connect, which other servers cannot speak", _TLS),
    "smtpd_discard_ehlo_keywords": Weakening(
        "hides STARTTLS or AUTH from clients (a TLS downgrade)",
        "leave starttls and auth out of the list",
        lambda v: bool(_words(v) & {"starttls", "auth"}),
    ),
    "smtpd_discard_ehlo_keyword_address_maps": Weakening(
        "can hide STARTTLS or AUTH from chosen clients (a TLS downgrade)", "no site field: leave EHLO as it is"
    ),
    "smtpd_tls_ciphers": Weakening(
        "`export`, `low` and `null` allow broken ciphers",
        "write `medium` or `high`",
        lambda v: v.lower() not in {"medium", "high"},
    ),
    "smtpd_tls_mandatory_ciphers": Weakening(
        "`export`, `low` and `null` allow broken ciphers",
        "write `medium` or `high`",
        lambda v: v.lower() not in {"medium", "high"},
    ),
    "tls_high_cipherlist": Weakening("redefines what the `high` cipher grade means", _TLS),
    "tls_medium_cipherlist": Weakening("redefines what the `medium` cipher grade means", _TLS),
    "tls_low_cipherlist": Weakening("redefines the `low` cipher grade", _TLS),
    "tls_export_cipherlist": Weakening("redefines the `export` cipher grade", _TLS),
    "tls_null_cipherlist": Weakening("redefines the `null` cipher grade", _TLS),
    "smtpd_tls_eecdh_grade": Weakening(
        "`none` turns off forward secrecy", "leave it out (Postfix's default is `auto`)", lambda v: v.lower() == "none"
    ),
    "smtpd_tls_chain_files": Weakening("replaces the site's certificate and key", "use tls.files"),
    "smtpd_tls_eccert_file": Weakening("adds a second certificate beside the site's", "use tls.files"),
    "smtpd_tls_eckey_file": Weakening("adds a second key beside the site's", "use tls.files"),
    "smtpd_tls_dcert_file": Weakening("adds a second certificate beside the site's", "use tls.files"),
    "smtpd_tls_dkey_file": Weakening("adds a second key beside the site's", "use tls.files"),
    "tls_config_file": Weakening("loads OpenSSL settings that can lower the TLS floor", _TLS),
    "tls_config_name": Weakening("selects OpenSSL settings that can lower the TLS floor", _TLS),
    "smtpd_tls_fingerprint_digest": Weakening(
        "`md5` and `sha1` let a forged client certificate match a permit_tls_clientcerts fingerprint",
        "write `sha256`",
        lambda v: v.lower() in {"md5", "sha1"},
    ),
    # TLS to other servers: mailprov writes smtp_tls_security_level = may (TLS whenever offered)
    "smtp_tls_policy_maps": Weakening(
        "can turn outbound TLS off for chosen destinations", "no site field: leave it out (TLS whenever offered)"
    ),
    "smtp_tls_per_site": Weakening("is the old per-destination TLS table (can turn TLS off)", "leave it out"),
    "smtp_use_tls": Weakening("is the old switch for outbound TLS", "leave it out (TLS whenever offered)"),
    "smtp_enforce_tls": Weakening("is the old switch for required outbound TLS", "leave it out"),
    "smtp_tls_ciphers": Weakening(
        "`export`, `low` and `null` allow broken ciphers",
        "write `medium` or `high`",
        lambda v: v.lower() not in {"medium", "high"},
    ),
    "smtp_tls_mandatory_ciphers": Weakening(
        "`export`, `low` and `null` allow broken ciphers",
        "write `medium` or `high`",
        lambda v: v.lower() not in {"medium", "high"},
    ),
    "smtp_tls_protocols": Weakening(
        "enables SSLv2 or SSLv3", "exclude them (`>=TLSv1`, Postfix's default)", lambda v: _enables_ssl(v)
    ),
    "smtp_tls_mandatory_protocols": Weakening(
        "enables SSLv2 or SSLv3", "exclude them (`>=TLSv1`, Postfix's default)", lambda v: _enables_ssl(v)
    ),
    # authentication
    "smtpd_sasl_tls_security_options": Weakening(
        "sets which SASL mechanisms TLS clients may use (empty allows anonymous logins)", _SASL
    ),
    "smtpd_sasl_exceptions_networks": Weakening("changes to whom AUTH is offered", _SASL),
    "smtpd_forbid_bare_newline": Weakening(
        "`no` re-opens SMTP smuggling (forged senders that pass SPF/DKIM)", "leave it out", _no
    ),
}

_DOVECOT_AUTH = "use the site's tls and sasl sections"

DOVECOT_WEAKENING: dict[str, Weakening] = {
    "haproxy_trusted_networks": Weakening(
        "lets those hosts claim any client address and that the client used TLS (so clear-text logins pass)",
        _DOVECOT_AUTH,
    ),
    "auth_allow_weak_schemes": Weakening("accepts password hashes that are easily cracked", "leave it out"),
    "auth_verbose_passwords": Weakening("writes (parts of) wrong passwords to the log", "leave it out"),
    "auth_debug_passwords": Weakening("writes passwords to the log", "leave it out"),
    "auth_username_chars": Weakening(
        "empty lets any character through in user names (e.g. into passdb lookups)",
        "leave it out (Dovecot's default list)",
        lambda v: not v.strip(),
    ),
    "auth_ssl_username_from_cert": Weakening("takes the login name from a client certificate", _DOVECOT_AUTH),
    "auth_master_user_separator": Weakening("lets a master user log in as anyone", "leave it out"),
}


# The site field that sets a parameter mailprov writes itself (model.py refuses these in `extra`).
MANAGED_FIELDS: dict[str, str] = {
    # Postfix
    "mynetworks": "mynetworks", "mynetworks_style": "mynetworks (a list of networks)",
    "relay_domains": "relay_domains", "permit_mx_backup_networks": "mynetworks and relay_domains",
    "smtpd_relay_restrictions": "restrictions.relay", "smtpd_recipient_restrictions": "restrictions.recipient",
    "smtpd_client_restrictions": "restrictions.client", "smtpd_helo_restrictions": "restrictions.helo",
    "smtpd_sender_restrictions": "restrictions.sender", "smtpd_data_restrictions": "restrictions.data",
    "smtpd_delay_reject": "restrictions.delay_reject", "smtpd_helo_required": "restrictions.helo_required",
    "smtpd_tls_security_level": "tls.security_level", "smtpd_tls_auth_only": "tls.auth_only",
    "smtpd_milters": "dkim", "non_smtpd_milters": "dkim", "milter_default_action": "dkim",
    "smtpd_sender_login_maps": "users and aliases (built by mailprov)",
    "smtpd_tls_protocols": "tls.min_protocol", "smtpd_tls_mandatory_protocols": "tls.min_protocol",
    "smtpd_tls_cert_file": "tls.files (or tls.cert_path)", "smtpd_tls_key_file": "tls.files (or tls.key_path)",
    "smtpd_tls_loglevel": "tls.loglevel", "smtpd_tls_session_cache_timeout": "tls.session_cache_timeout",
    "smtpd_tls_session_cache_database": "tls.session_cache", "smtpd_sasl_auth_enable": "sasl.enabled (sasl.on_port_25)",
    "smtpd_sasl_security_options": "sasl.mechanisms (anonymous logins are never allowed)",
    "broken_sasl_auth_clients": "sasl.broken_clients", "message_size_limit": "postfix.message_size_limit",
    "inet_interfaces": "postfix.inet_interfaces", "inet_protocols": "postfix.inet_protocols",
    "maillog_file": "postfix.maillog_file", "mydestination": "mydestination", "myorigin": "myorigin",
    "myhostname": "hosts[].name", "mydomain": "domain", "home_mailbox": "mailbox", "alias_maps": "aliases",
    "alias_database": "aliases",
    # Dovecot
    "ssl": "tls.enabled", "ssl_min_protocol": "tls.min_protocol", "ssl_protocols": "tls.min_protocol",
    "ssl_cert": "tls.files (or tls.cert_path)", "ssl_key": "tls.files (or tls.key_path)",
    "disable_plaintext_auth": "tls (clear-text logins are refused whenever TLS is on)",
    "auth_allow_cleartext": "tls (clear-text logins are refused whenever TLS is on)",
    "auth_mechanisms": "sasl.mechanisms", "protocols": "dovecot.protocols",
    "listen": "postfix.inet_protocols (Dovecot listens on the same address families)",
    "mail_location": "mailbox", "mail_driver": "mailbox", "mail_path": "mailbox", "mail_inbox_path": "mailbox",
}  # fmt: skip


def managed_field(name: str) -> str:
    """` (site field: X)` for a managed parameter with a field of its own, else an empty string."""
    field = MANAGED_FIELDS.get(name) or ("tls" if name.startswith("ssl") else None)
    return f" (for {name}: {field})" if field else ""


def postfix_weakening(name: str, value: str | None = None) -> str | None:
    """Why `postfix.extra: {name: value}` is refused (value None: judge the name alone), or None."""
    return _refusal(POSTFIX_WEAKENING, "main.cf", name, value)


def dovecot_weakening(name: str, value: str | None = None) -> str | None:
    """Why `dovecot.extra: {name: value}` is refused (value None: judge the name alone), or None."""
    return _refusal(DOVECOT_WEAKENING, "dovecot.conf", name, value)


def _refusal(table: dict[str, Weakening], where: str, name: str, value: str | None) -> str | None:
    weak = table.get(name)
    if weak is None:
        return None
    if weak.when is not None and (value is None or not weak.when(value)):
        return None
    shown = f"{name} = {value}" if weak.when is not None else name
    return f"{shown} in {where} {weak.why}, weakening the site's policy: {weak.instead}"


def login_trusted_networks_problem(value: str, mynetworks: Sequence[str]) -> str | None:
    """Dovecot lets clients in login_trusted_networks log in with a clear-text password, as if they used
    TLS: only networks the site already trusts (mynetworks) may be listed."""
    trusted = [ipaddress.ip_network(n) for n in mynetworks]
    for item in _words(value):
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not a network (write networks such as 192.0.2.0/24, separated by spaces)"
        if not any(net.version == t.version and net.subnet_of(t) for t in trusted):  # type: ignore[arg-type]
            return (
                f"{item} is not inside mynetworks ({', '.join(mynetworks)}): clients there could log in with a "
                "clear-text password; list only networks in mynetworks (e.g. a webmail host), or add the "
                "network to mynetworks if it is yours"
            )
    return None


# --- types of well-known Postfix parameters ----------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_INTEGER = _names(
    """
    smtpd_client_connection_count_limit smtpd_client_connection_rate_limit smtpd_client_message_rate_limit
    smtpd_client_recipient_rate_limit smtpd_client_new_tls_session_rate_limit smtpd_client_auth_rate_limit
    smtpd_recipient_limit smtpd_recipient_overshoot_limit smtpd_hard_error_limit smtpd_soft_error_limit
    smtpd_junk_command_limit smtpd_history_flush_threshold smtpd_sasl_response_limit smtpd_policy_service_try_limit
    smtpd_tls_ccert_verifydepth default_process_limit default_destination_concurrency_limit
    default_destination_recipient_limit default_recipient_limit initial_destination_concurrency
    smtp_destination_concurrency_limit smtp_destination_recipient_limit local_destination_concurrency_limit
    local_destination_recipient_limit virtual_destination_concurrency_limit lmtp_destination_concurrency_limit
    mailbox_size_limit virtual_mailbox_limit header_size_limit header_address_token_limit line_length_limit
    queue_minfree qmgr_message_active_limit qmgr_message_recipient_limit duplicate_filter_limit
    smtp_mx_address_limit smtp_mx_session_limit max_use hopcount_limit smtp_tls_loglevel debug_peer_level
    postscreen_pre_queue_limit body_checks_size_limit
    """
)
_TIME = _names(
    """
    smtpd_timeout smtpd_starttls_timeout smtpd_error_sleep_time smtpd_proxy_timeout smtpd_policy_service_timeout
    smtpd_policy_service_max_idle smtpd_policy_service_max_ttl smtpd_policy_service_retry_delay smtp_connect_timeout
    smtp_helo_timeout smtp_mail_timeout smtp_rcpt_timeout smtp_data_init_timeout smtp_data_xfer_timeout
    smtp_data_done_timeout smtp_quit_timeout smtp_starttls_timeout maximal_queue_lifetime bounce_queue_lifetime
    delay_warning_time minimal_backoff_time maximal_backoff_time queue_run_delay anvil_rate_time_unit
    anvil_status_update_time max_idle ipc_timeout ipc_idle daemon_timeout in_flow_delay
    smtp_tls_session_cache_timeout address_verify_positive_expire_time address_verify_negative_expire_time
    postscreen_greet_wait transport_retry_time command_time_limit
    """
)
_BOOLEAN = _names(
    """
    disable_vrfy_command smtputf8_enable smtpd_sasl_authenticated_header smtpd_tls_received_header
    smtpd_peername_lookup smtpd_reject_unlisted_sender smtpd_reject_unlisted_recipient strict_rfc821_envelopes
    allow_percent_hack append_dot_mydomain swap_bangpath show_user_unknown_table_name smtpd_client_port_logging
    smtpd_tls_ask_ccert smtpd_tls_req_ccert smtp_tls_note_starttls_offer tls_preempt_cipherlist
    enable_long_queue_ids soft_bounce owner_request_special expand_owner_alias enable_original_recipient
    smtpd_delay_open_until_valid_rcpt smtpd_tls_always_issue_session_ids smtp_skip_5xx_greeting
    smtp_always_send_ehlo smtp_never_send_ehlo disable_dns_lookups allow_untrusted_routing smtpd_per_record_deadline
    smtp_sasl_auth_enable smtp_tls_wrappermode smtpd_tls_wrappermode resolve_dequoted_address resolve_null_domain
    resolve_numeric_domain smtpd_forbid_unauth_pipelining enable_errors_to strict_mailbox_ownership
    smtp_defer_if_no_mx_address_found
    """
)
_CHOICES: dict[str, tuple[str, ...]] = {
    "smtp_address_preference": ("any", "ipv4", "ipv6"),
    "smtp_dns_support_level": ("disabled", "enabled", "dnssec"),
    "smtp_host_lookup": ("dns", "native", "dns, native", "native, dns"),
    "smtpd_forbid_bare_newline": ("yes", "no", "normalize"),
    "smtpd_tls_ciphers": ("export", "low", "medium", "high", "null"),
    "smtpd_tls_mandatory_ciphers": ("export", "low", "medium", "high", "null"),
    "smtp_tls_ciphers": ("export", "low", "medium", "high", "null"),
    "smtp_tls_mandatory_ciphers": ("export", "low", "medium", "high", "null"),
    "smtpd_tls_eecdh_grade": ("auto", "strong", "ultra", "none"),
}
POSTFIX_TYPES: dict[str, str] = (
    dict.fromkeys(_INTEGER, "integer") | dict.fromkeys(_TIME, "time") | dict.fromkeys(_BOOLEAN, "boolean")
)
_PARAM_REFERENCE = re.compile(r"\$[a-z][a-z0-9_]*")


def postfix_value_problem(name: str, value: str) -> str | None:
    """Why `value` cannot be `name`'s value (Postfix would stop at run time: `fatal: bad numerical/time/
    boolean configuration`), or None. A value that is one `$parameter` reference is left to Postfix."""
    if _PARAM_REFERENCE.fullmatch(value):
        return None
    kind = POSTFIX_TYPES.get(name)
    if kind == "integer" and not re.fullmatch(r"\d{1,18}", value):
        return (
            f"{value!r} is not a number: {name} is an integer (a count or a size, e.g. 50 or 10240000); "
            "Postfix would stop with `fatal: bad numerical configuration`"
        )
    if kind == "time" and not re.fullmatch(r"\d{1,9}[smhdw]?", value):
        return (
            f"{value!r} is not a time: {name} is a number with an optional unit s, m, h, d or w (e.g. 300s or "
            "5m, no space); Postfix would stop with `fatal: bad time configuration`"
        )
    if kind == "boolean" and value.lower() not in ("yes", "no"):
        return (
            f"{value!r} is not `yes` or `no`: {name} is a boolean (write 'yes' or 'no' in quotes); "
            "Postfix would stop with `fatal: bad boolean configuration`"
        )
    choices = _CHOICES.get(name)
    if choices and value.lower() not in choices:
        return f"{value!r} is not one of {', '.join(choices)}: {name} takes one of those words"
    return None
