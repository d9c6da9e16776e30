"""What a site promises, as expectations a client can test: pure functions of the site model.

Which ports must answer from where, which restrictions a client at a given position meets, which
addresses the relay probes use. No I/O here, so every rule is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailprov.config.mailservices import MAIL_SERVICES, PORTS
from mailprov.config.model import AccessAction, Host, SenderAccessEntry, Site, User
from mailprov.config.restrictions import Restriction

# Evaluation order with smtpd_delay_reject: every list is checked at RCPT time, in this order.
LIST_ORDER = ("client", "helo", "sender", "relay", "recipient")
_EXTERNAL_CANDIDATES = ("example.net", "example.org", "example.com")


# --- addresses -------------------------------------------------------------------------------------------


def local_domains(site: Site, host: Host) -> tuple[str, ...]:
    """Domains this host is final destination for (mydestination with $myhostname/$mydomain expanded)."""
    out = []
    for dest in site.mydestination:
        value = dest.replace("$myhostname", host.name).replace("$mydomain", site.domain)
        out.append(value.lower())
    return tuple(dict.fromkeys(out))


def mail_domain(site: Site, host: Host) -> str:
    """The domain user addresses are tested in: the site's domain when local, else the host's name."""
    return site.domain if site.domain in local_domains(site, host) else host.name


def external_domain(site: Site, host: Host) -> str:
    """A domain this host must never relay to: reserved for documentation, not local, not a relay domain."""
    ours = set(local_domains(site, host)) | set(site.relay_domains) | {site.domain, host.name}
    for candidate in _EXTERNAL_CANDIDATES:
        if not any(candidate == d or d.endswith("." + candidate) or candidate.endswith("." + d) for d in ours):
            return candidate
    return "relay-test.invalid"


def test_user(site: Site) -> User | None:
    """The user whose credentials the checks use: the first with a password secret reference."""
    return next((u for u in site.users if u.password is not None), None)


def delivery_recipient(site: Site, host: Host, user: User) -> str:
    """The user's first alias (proves alias expansion), else the login, in the mail domain."""
    local = user.aliases[0] if user.aliases else user.login
    return f"{local}@{mail_domain(site, host)}"


@dataclass(frozen=True)
class AliasProbe:
    """An alias from the site's `aliases:` map to deliver to, and the site users it reaches."""

    alias: str
    logins: tuple[str, ...]


def alias_expansion(site: Site, name: str) -> tuple[frozenset[str], bool]:
    """The site users mail to `name` reaches through the aliases map (and users' own aliases), and
    whether it also leaves the site (a target with `@`)."""
    owners = {alias: user.login for user in site.users for alias in user.aliases}
    logins = {user.login for user in site.users}
    reached: set[str] = set()
    offsite = False
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for target in site.aliases.get(current, ()):
            if "@" in target:
                offsite = True
            elif target in site.aliases:
                todo.append(target)
            elif target in logins:
                reached.add(target)
            elif target in owners:
                reached.add(owners[target])
    return frozenset(reached), offsite


def alias_probe(site: Site) -> AliasProbe | None:
    """The first alias of `aliases:` that reaches a site user and no address off the site (a test
    message is never sent beyond the site), or None."""
    for alias in site.aliases:
        reached, offsite = alias_expansion(site, alias)
        if reached and not offsite:
            return AliasProbe(alias, tuple(sorted(reached)))
    return None


def relay_variants(host: Host, external: str, user: str = "relaytest") -> tuple[tuple[str, str], ...]:
    """(check name, recipient) for RCPT TO: the plain case and the classic address tricks."""
    h, e = host.name, external
    return (
        ("relay.external_recipient", f"{user}@{e}"),
        ("relay.quoted_local_part", f'"{user}@{e}"@{h}'),
        ("relay.percent_hack", f"{user}%{e}@{h}"),
        ("relay.source_route", f"@{h}:{user}@{e}"),
        ("relay.bang_path", f"{e}!{user}@{h}"),
        ("relay.double_at", f"{user}@{e}@{h}"),
    )


def rejecting_sender(site: Site, external: str) -> tuple[str, SenderAccessEntry] | None:
    """A MAIL FROM address that the site's sender_access table REJECTs (or answers 5xx), and the entry."""
    for entry in site.sender_access:
        action = str(entry.action)
        if action != AccessAction.REJECT and not action.startswith("5"):
            continue
        pattern = entry.pattern
        if pattern.endswith("@"):
            address = f"{pattern}{external}"
        elif "@" in pattern:
            address = pattern
        else:
            address = f"verify@{pattern}"
        return address, entry
    return None


# --- restrictions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """Whether a client meets a restriction, and why (or why not), in words for the report."""

    applies: bool
    reason: str


def _lists(site: Site) -> dict[str, tuple[Restriction, ...]]:
    r = site.restrictions
    return {
        "client": r.client,
        "helo": r.helo,
        "sender": r.sender,
        "relay": r.relay or (),
        "recipient": r.recipient,
    }


def is_greylisting(reply_text: str) -> bool:
    """A deferral that says it is greylisting (postgrey: `450 4.2.0 <…>: Recipient address rejected:
    Greylisted, see …`). Any other 4xx — `451 4.3.5 Server configuration problem` when the policy service
    is down, `temporary lookup failure` — is the server failing to take mail, not a policy."""
    return "greylist" in reply_text.lower()


def greylisting_reach(site: Site, *, trusted: bool) -> Reach:
    """Can greylisting apply to an unauthenticated client sending to a local recipient? It comes from a
    policy service (check_policy_service: postgrey, or the site's own policy server), so only where one
    is reached may a greylisting 4xx count where a 2xx or 5xx is due."""
    return restriction_reach(site, ("check_policy_service",), trusted=trusted)


def restriction_reach(site: Site, names: tuple[str, ...], *, trusted: bool) -> Reach:
    """Does an unauthenticated client — in mynetworks when `trusted` — sending to a local recipient
    reach one of `names` in the site's restriction lists?

    What stops the walk down a list before the restriction: `permit` (always), `permit_mynetworks`
    (trusted clients), `permit_auth_destination` (local recipients). Other entries let such a client on.
    """
    lists = _lists(site)
    found = []
    for list_name in LIST_ORDER:
        items = lists[list_name]
        for index, item in enumerate(items):
            if item.name in names:
                found.append(f"restrictions.{list_name}")
                return Reach(True, f"{item.name} in restrictions.{list_name} applies to this client")
            stop = _stops(item, trusted)
            if stop is not None:
                if any(x.name in names for x in items[index + 1 :]):
                    found.append(f"restrictions.{list_name} (after {item.name}: {stop})")
                break
    if found:
        return Reach(False, "; ".join(found))
    return Reach(False, f"the site does not use {' or '.join(names)}")


def _stops(item: Restriction, trusted: bool) -> str | None:
    if item.name == "permit":
        return "every client passes"
    if item.name == "permit_mynetworks" and trusted:
        return "a client in mynetworks passes"
    if item.name == "permit_auth_destination":
        return "mail to a local recipient passes"
    return None


# --- ports -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortExpectation:
    service: str
    port: int
    expect_open: bool
    reason: str


def _listens(site: Site, service: str) -> tuple[bool, str]:
    loopback = site.postfix.inet_interfaces in ("loopback-only", "localhost")
    proto = {"imap": "imap", "imaps": "imap", "pop3": "pop3", "pop3s": "pop3"}.get(service)
    if service == "smtp":
        return (not loopback, "Postfix listens on loopback only" if loopback else "Postfix smtpd")
    if service in ("submission", "smtps"):
        enabled = getattr(site.postfix, service)
        if not enabled:
            return False, f"postfix.{service} is off"
        return (not loopback, "Postfix listens on loopback only" if loopback else f"postfix.{service}")
    assert proto is not None
    if proto not in site.dovecot.protocols:
        return False, f"{proto} is not in dovecot.protocols"
    if service in ("imap", "pop3") and not site.dovecot.plaintext_ports:
        return False, "dovecot.plaintext_ports is off"
    return True, f"Dovecot {proto}"


def port_expectations(site: Site, *, from_outside: bool) -> tuple[PortExpectation, ...]:
    """For every mail port: must it answer from here? (the site's firewall: open, LAN only, or closed)"""
    where = "outside" if from_outside else "the LAN"
    out = []
    for service in MAIL_SERVICES:
        port = PORTS[service]
        listens, why = _listens(site, service)
        if not site.firewall.enabled:
            allowed, fw = True, "no firewall"
        elif service in site.firewall.open:
            allowed, fw = True, "firewall.open"
        elif service in site.firewall.lan_only:
            allowed, fw = (
                not from_outside,
                f"firewall.lan_only: {'refused' if from_outside else 'allowed'} from {where}",
            )
        else:
            allowed, fw = False, "not in firewall.open or firewall.lan_only: refused"
        expect_open = listens and allowed
        reason = f"{why}; {fw}" if listens else why
        out.append(PortExpectation(service, port, expect_open, reason))
    return tuple(out)
