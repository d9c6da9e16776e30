"""The vocabulary of Postfix SMTP restrictions that a site may use, and their arguments.

A site lists restrictions by name, or as a one-key mapping `{name: argument}` for those that take one.
Names outside this vocabulary are refused with a hint, so a typo never reaches main.cf.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from mailprov.config.text import safe_text
from mailprov.config.types import _fqdn, _hostname

# Restrictions that take no argument.
SIMPLE = frozenset(
    {
        "permit",
        "reject",
        "defer",
        "defer_if_permit",
        "defer_if_reject",
        "warn_if_reject",
        "permit_mynetworks",
        "permit_sasl_authenticated",
        "permit_tls_clientcerts",
        "permit_auth_destination",
        "reject_unauth_destination",
        "defer_unauth_destination",
        "reject_unauth_pipelining",
        "reject_non_fqdn_helo_hostname",
        "reject_invalid_helo_hostname",
        "reject_unknown_helo_hostname",
        "reject_non_fqdn_sender",
        "reject_unknown_sender_domain",
        "reject_non_fqdn_recipient",
        "reject_unknown_recipient_domain",
        "reject_unknown_client_hostname",
        "reject_unknown_reverse_client_hostname",
        "reject_unlisted_recipient",
        "reject_unlisted_sender",
        "reject_unverified_recipient",
        "reject_unverified_sender",
        "reject_authenticated_sender_login_mismatch",
        "reject_sender_login_mismatch",
        "reject_multi_recipient_bounce",
        "reject_plaintext_session",
    }
)


class ArgKind(StrEnum):
    TABLE = "table"  # the name of a site table (only sender_access today)
    DNSBL = "dnsbl"  # a DNS list zone, optionally =127.0.0.N
    POLICY = "policy"  # postgrey, or inet:host:port / unix:path
    SECONDS = "seconds"


WITH_ARGUMENT: dict[str, ArgKind] = {
    "check_sender_access": ArgKind.TABLE,
    "reject_rbl_client": ArgKind.DNSBL,
    "reject_rhsbl_sender": ArgKind.DNSBL,
    "reject_rhsbl_client": ArgKind.DNSBL,
    "reject_rhsbl_helo": ArgKind.DNSBL,
    "check_policy_service": ArgKind.POLICY,
    "sleep": ArgKind.SECONDS,
}

# Postfix 2.2 names (CentOS 4): renamed in 2.3. Users copying old guides hit these.
RENAMED = {
    "reject_non_fqdn_hostname": "reject_non_fqdn_helo_hostname",
    "reject_invalid_hostname": "reject_invalid_helo_hostname",
    "reject_unknown_hostname": "reject_unknown_helo_hostname",
    "reject_unknown_client": "reject_unknown_client_hostname",
}

SITE_TABLES = frozenset({"sender_access"})


@dataclass(frozen=True)
class Restriction:
    name: str
    argument: str | None = None


def _suggest(name: str) -> str:
    if name in RENAMED:
        return f" (Postfix 2.3 renamed it: use {RENAMED[name]})"
    close = difflib.get_close_matches(name, sorted(SIMPLE | WITH_ARGUMENT.keys()), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_argument(name: str, kind: ArgKind, argument: str) -> str:
    """One token of its kind: a restriction argument is never more than one word of main.cf.

    Postfix splits a restriction list on whitespace and commas; an argument holding either would add
    restrictions the site's rules (the open-relay check first) never saw.
    """
    safe_text(argument)
    if kind is ArgKind.TABLE:
        if argument not in SITE_TABLES:
            raise ValueError(f"{name} takes the name of a site table: {', '.join(sorted(SITE_TABLES))}")
        return argument
    if kind is ArgKind.DNSBL:
        return _dnsbl(name, argument)
    if kind is ArgKind.POLICY:
        return _policy_endpoint(argument)
    if not re.fullmatch(r"\d{1,3}", argument):
        raise ValueError("sleep takes a whole number of seconds, e.g. `sleep: 1`")
    return argument


def _dnsbl(name: str, argument: str) -> str:
    zone, eq, reply = argument.partition("=")
    try:
        _fqdn(zone)
    except ValueError:
        raise ValueError(
            f"{name} takes one DNS list zone, optionally with a reply filter: e.g. `{name}: zen.spamhaus.org` "
            "or `zen.spamhaus.org=127.0.0.2` (one list per item)"
        ) from None
    if eq and not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}\.(\d{1,3}|\[\d{1,3}(\.\.\d{1,3}|(;\d{1,3})*)\])", reply):
        raise ValueError(f"{name}: the reply filter after `=` must look like 127.0.0.2 or 127.0.0.[2..11]")
    return argument.lower()


_UNIX_PATH = re.compile(r"[A-Za-z0-9._/-]{1,200}")


def _policy_endpoint(argument: str) -> str:
    """postgrey, inet:HOST:PORT (HOST a name, an IPv4 address or a bracketed IPv6 address) or unix:PATH."""
    usage = (
        "check_policy_service takes one endpoint: `postgrey`, `inet:HOST:PORT` (e.g. inet:127.0.0.1:10023 "
        "or inet:[::1]:10023) or `unix:PATH` (e.g. unix:private/policy)"
    )
    if argument == "postgrey":
        return argument
    if argument.startswith("unix:"):
        if not _UNIX_PATH.fullmatch(argument[5:]) or ".." in argument[5:].split("/"):
            raise ValueError(usage)
        return argument
    match = re.fullmatch(r"inet:(\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})", argument)
    if match is None:
        if "%" in argument:
            raise ValueError(usage + "; an IPv6 address takes no `%zone`")
        raise ValueError(usage)
    host, port = match.group(1), int(match.group(2))
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(usage) from None
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(usage) from None
    else:
        try:
            _hostname(host)
        except ValueError:
            raise ValueError(usage) from None
    if not 0 < port < 65536:
        raise ValueError(f"{argument!r}: the port must be 1 to 65535")
    return argument


def parse_restriction(item: object) -> Restriction:
    """Turn one list item of the site file into a Restriction, or raise ValueError."""
    if isinstance(item, str):
        if item in SIMPLE:
            return Restriction(item)
        if item in WITH_ARGUMENT:
            raise ValueError(f"{item} needs an argument: write it as `{item}: VALUE`")
        raise ValueError(f"unknown restriction {item!r}{_suggest(item)}")
    if isinstance(item, dict) and len(item) == 1:
        ((name, argument),) = item.items()
        if not isinstance(name, str) or not isinstance(argument, str | int):
            raise ValueError("a restriction with an argument is written `name: value`")
        if name in SIMPLE:
            raise ValueError(f"{name} takes no argument")
        if name not in WITH_ARGUMENT:
            raise ValueError(f"unknown restriction {name!r}{_suggest(name)}")
        return Restriction(name, _check_argument(name, WITH_ARGUMENT[name], str(argument)))
    raise ValueError("a restriction is a name, or a one-key mapping `name: argument`")
