"""The DNS records of the site: MX, A/AAAA, SPF, DMARC, what the hosts' resources publish (DKIM), PTR.

A site resource: the zone is shared by every host, so it is read and changed from the admin's machine,
after the hosts' applies. With `dns:` set, the plan reads the current records from the primary server
(directly, no resolver cache) and apply updates them by RFC 2136, signed with the site's TSIG key.
Without it, `mailprov dns SITE` prints a zone-file snippet to paste at any provider.

What the site owns, and so changes (nothing else is ever deleted):
- the whole MX RRset of the domain, the A/AAAA RRsets of each host's name, the PTR RRset of each host's
  public address (only where a `dns.reverse_zones` zone holds it: else it is the network owner's, reported);
- among the TXT records of the domain and of the host names, only those that start with `v=spf1`;
- every TXT record at `_dmarc.DOMAIN` and at the `SELECTOR._domainkey.DOMAIN` names the hosts publish.
A DKIM selector removed from every host, or a host removed from the site, leaves its records behind:
delete them by hand (the server is never listed to find them).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from mailprov.config.model import DnsServer, Host, Site
from mailprov.config.secrets import Secret, resolve
from mailprov.errors import ConfigError, MailprovError
from mailprov.resources.base import DnsRecord, SiteChange, SiteContext, SitePlan, SiteResource

QUERY_TIMEOUT = 5.0
UPDATE_TIMEOUT = 15.0
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


class DnsError(MailprovError):
    """The DNS server could not be read or refused an update."""


# --- what the site needs (pure) ---------------------------------------------------------------------------


def ip_of(host: Host) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The host's public address as an IP (public_address, else ssh.address if it is one), or None."""
    for value in (host.public_address, host.ssh.address):
        if value is None:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address) and (address.scope_id or address.is_link_local):
            continue  # fe80::1%eth0: no record can hold it
        return address
    return None


def spf_text(site: Site) -> str:
    """`v=spf1 …` for the domain: the site's mechanisms, else every host's public address (`mx` when a
    host has none), then `all` with its qualifier."""
    mechanisms = site.spf.mechanisms
    if mechanisms is None:
        addresses = [ip_of(h) for h in site.hosts]
        if any(a is None for a in addresses):
            mechanisms = ("mx",)
        else:
            mechanisms = tuple(dict.fromkeys(f"ip{a.version}:{a}" for a in addresses if a is not None))
    return " ".join(("v=spf1", *mechanisms, site.spf.all))


def dmarc_text(site: Site) -> str:
    """`v=DMARC1; p=…` (RFC 7489 6.3); tags at their defaults are left out, except p."""
    d = site.dmarc
    tags = [f"v=DMARC1; p={d.policy}"]
    if d.subdomain_policy is not None:
        tags.append(f"sp={d.subdomain_policy}")
    if d.rua:
        tags.append("rua=" + ",".join(f"mailto:{a}" for a in d.rua))
    if d.pct != 100:
        tags.append(f"pct={d.pct}")
    if d.adkim != "r":
        tags.append(f"adkim={d.adkim}")
    if d.aspf != "r":
        tags.append(f"aspf={d.aspf}")
    return "; ".join(tags)


def site_records(site: Site, from_hosts: Sequence[DnsRecord] = ()) -> tuple[DnsRecord, ...]:
    """Every record the site needs, in a stable order: MX, A/AAAA, SPF, DMARC, the hosts' resources'
    records (DKIM keys read on the hosts), PTR."""
    ttl = site.dns.ttl if site.dns is not None else 3600
    out: list[DnsRecord] = []
    for host in site.hosts:
        out.append(
            DnsRecord(site.domain, "MX", f"{host.mx_priority} {host.name}.", ttl, f"mail for the domain: {host.name}")
        )
    for host in site.hosts:
        address = ip_of(host)
        if address is not None:
            rtype = "AAAA" if address.version == 6 else "A"
            out.append(DnsRecord(host.name, rtype, str(address), ttl, f"public address of {host.name}"))
    if site.spf.enabled:
        out.append(DnsRecord(site.domain, "TXT", spf_text(site), ttl, "SPF: who may send mail for the domain"))
        for host in site.hosts:
            if host.name != site.domain and ip_of(host) is not None:
                why = f"SPF of {host.name} itself (the HELO name of its bounces)"
                out.append(DnsRecord(host.name, "TXT", f"v=spf1 a {site.spf.all}", ttl, why))
    if site.dmarc.enabled:
        out.append(DnsRecord(f"_dmarc.{site.domain}", "TXT", dmarc_text(site), ttl, "DMARC policy of the domain"))
    out += [DnsRecord(r.name.lower().rstrip("."), r.rtype, r.value, ttl, r.why) for r in from_hosts]
    for host in site.hosts:
        address = ip_of(host)
        if address is not None:
            why = f"reverse of {address}: forward-confirmed (its A/AAAA names the address back)"
            out.append(DnsRecord(address.reverse_pointer, "PTR", f"{host.name}.", ttl, why))
    return tuple(dict.fromkeys(out))


# --- what the site owns (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Owned:
    """An RRset, or the part of one, that the site owns: (name, type, which TXT strings)."""

    name: str
    rtype: str
    part: str = "all"  # TXT at a shared name: "spf" (only the v=spf1 strings)

    def owns(self, value: str) -> bool:
        return self.part == "all" or value.lower().startswith("v=spf1")

    def show(self) -> str:
        return f"{self.name} {self.rtype}" + (" (v=spf1)" if self.part == "spf" else "")


def owned_of(record: DnsRecord) -> Owned:
    if record.rtype == "TXT" and not any(label.startswith("_") for label in record.name.split(".")):
        return Owned(record.name, "TXT", "spf")  # the apex and host names carry others' TXT records too
    # `_dmarc.DOMAIN`, `SELECTOR._domainkey.DOMAIN`: names of one purpose, wholly the site's
    return Owned(record.name, record.rtype)


def canonical(rtype: str, value: str) -> str:
    """One form to compare a wished value with one read: names absolute and lower case, TXT joined."""
    if rtype == "TXT":
        return value
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value, origin=dns.name.root, relativize=False
    )
    return str(rdata.to_text()).lower()


def rdata_text(rtype: str, value: str) -> str:
    """A value in zone-file form: TXT quoted and cut into strings of at most 255 bytes."""
    if rtype != "TXT":
        return canonical(rtype, value)
    data = value.encode("utf-8")
    return " ".join('"' + _escape(data[i : i + 255]) + '"' for i in range(0, len(data), 255)) or '""'


def _escape(chunk: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\{b:03d}" for b in chunk)


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def zone_of(name: str, zones: Sequence[str]) -> str | None:
    """The most specific zone of `zones` that holds `name`."""
    holding = [z for z in zones if in_zone(name, z)]
    return max(holding, key=len) if holding else None


def managed_zones(server: DnsServer) -> tuple[str, ...]:
    return (server.zone, *server.reverse_zones)


# --- the diff (pure) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordChange:
    """One owned RRset (or SPF part of one) to change: values to delete and to add."""

    zone: str
    owned: Owned
    ttl: int
    remove: tuple[str, ...]
    add: tuple[str, ...]

    @property
    def action(self) -> str:
        return "create" if not self.remove else "delete" if not self.add else "update"

    def diff(self) -> tuple[str, ...]:
        o = self.owned
        return tuple(f"-{o.name}. IN {o.rtype} {rdata_text(o.rtype, v)}" for v in self.remove) + tuple(
            f"+{o.name}. {self.ttl} IN {o.rtype} {rdata_text(o.rtype, v)}" for v in self.add
        )


@dataclass(frozen=True)
class DnsDetail:
    """What apply sends: the changes per zone; and what is left to the admin (records outside the zones)."""

    changes: tuple[RecordChange, ...]
    by_hand: tuple[DnsRecord, ...] = ()


Current = Mapping[tuple[str, str], tuple[str, ...]]  # (name, rtype) -> values read (TXT joined)


def record_changes(wanted: Sequence[DnsRecord], current: Current, zones: Sequence[str]) -> DnsDetail:
    """Compare the wished records with those read. Only owned values are removed; records whose name is
    in none of `zones` are not changed but listed for the admin to publish (`by_hand`)."""
    groups: dict[Owned, list[DnsRecord]] = defaultdict(list)
    by_hand: list[DnsRecord] = []
    for record in wanted:
        if zone_of(record.name, zones) is None:
            by_hand.append(record)
        else:
            groups[owned_of(record)].append(record)
    out: list[RecordChange] = []
    for owned, records in groups.items():
        want = {canonical(owned.rtype, r.value): r.value for r in records}
        have = [canonical(owned.rtype, v) for v in current.get((owned.name, owned.rtype), ()) if owned.owns(v)]
        remove = tuple(v for v in dict.fromkeys(have) if v not in want)
        add = tuple(want[v] for v in want if v not in have)
        if remove or add:
            zone = zone_of(owned.name, zones)
            assert zone is not None
            out.append(RecordChange(zone, owned, records[0].ttl, remove, add))
    return DnsDetail(tuple(out), tuple(by_hand))


def site_changes(detail: DnsDetail) -> tuple[SiteChange, ...]:
    return tuple(
        SiteChange(
            f"dns:{c.owned.name}/{c.owned.rtype}",
            c.action,
            f"DNS {c.owned.show()}: {_count(c)}",
            c.diff(),
        )
        for c in detail.changes
    )


def _count(change: RecordChange) -> str:
    parts = []
    if change.add:
        parts.append(f"{len(change.add)} to add")
    if change.remove:
        parts.append(f"{len(change.remove)} to delete")
    return ", ".join(parts)


# --- the TSIG key and the update message ----------------------------------------------------------------


@dataclass(frozen=True)
class TsigKey:
    """`ALGORITHM:NAME:BASE64SECRET`, as knsupdate/kdig `-y` take it. The secret stays a Secret."""

    algorithm: str
    name: str
    secret: Secret

    @staticmethod
    def parse(text: Secret, where: str) -> TsigKey:
        parts = text.reveal().strip().split(":")
        if len(parts) != 3:
            raise ConfigError(f"{where}: a TSIG key is one line `ALGORITHM:NAME:BASE64SECRET` (e.g. hmac-sha256:…)")
        algorithm, name, secret = parts
        if algorithm.lower() not in TSIG_ALGORITHMS:
            raise ConfigError(f"{where}: TSIG algorithm {algorithm!r} is not one of {', '.join(TSIG_ALGORITHMS)}")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,253}", name):
            raise ConfigError(f"{where}: the TSIG key name must be a DNS name (letters, digits, `.`, `_`, `-`)")
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: the TSIG secret (after the second `:`) is not base64") from None
        return TsigKey(algorithm.lower(), name, Secret(secret))

    def dns_key(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret.reveal(), self.algorithm)


def update_messages(detail: DnsDetail, key: TsigKey | None) -> list[dns.update.UpdateMessage]:
    """One RFC 2136 update per zone: each owned value removed, each wished value added (RFC 2136 2.5)."""
    by_zone: dict[str, list[RecordChange]] = defaultdict(list)
    for change in detail.changes:
        by_zone[change.zone].append(change)
    messages = []
    for zone, changes in by_zone.items():
        message = dns.update.UpdateMessage(zone)
        for c in changes:
            rdtype = dns.rdatatype.from_text(c.owned.rtype)
            name = dns.name.from_text(c.owned.name)
            for value in c.remove:
                message.delete(name, _rdata(rdtype, value))
            for value in c.add:
                message.add(name, c.ttl, _rdata(rdtype, value))
        if key is not None:
            message.use_tsig(key.dns_key())
        messages.append(message)
    return messages


def _rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
    if rdtype == dns.rdatatype.TXT:
        data = value.encode("utf-8")
        strings = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, strings)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)


# --- talking to the server ------------------------------------------------------------------------------


def read_current(server: str, port: int, keys: Iterable[tuple[str, str]], timeout: float = QUERY_TIMEOUT) -> Current:
    """The records at each (name, type), asked of the server itself (no recursion, UDP then TCP)."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for name, rtype in dict.fromkeys(keys):
        query = dns.message.make_query(name, rtype)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(query, server, timeout=timeout, port=port)
        except dns.exception.Timeout:
            raise DnsError(f"the DNS server {server} port {port} did not answer within {timeout:g} s") from None
        except (OSError, dns.exception.DNSException) as exc:
            raise DnsError(f"the DNS server {server} port {port} cannot be asked for {name} {rtype}: {exc}") from None
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsError(
                f"the DNS server {server} port {port} answered {dns.rcode.to_text(rcode)} for {name} {rtype}: "
                "is it the primary of the site's zone (dns.zone)?"
            )
        values: list[str] = []
        for rrset in response.answer:
            if rrset.name == dns.name.from_text(name) and rrset.rdtype == dns.rdatatype.from_text(rtype):
                for rdata in rrset:
                    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
                        values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
                    else:
                        values.append(str(rdata.to_text()).lower())
        out[(name, rtype)] = tuple(values)
    return out


def send_updates(server: str, port: int, messages: Sequence[dns.update.UpdateMessage], key: TsigKey) -> None:
    for message in messages:
        zone = str(message.origin).rstrip(".") if message.origin is not None else "?"
        try:
            response = dns.query.tcp(message, server, timeout=UPDATE_TIMEOUT, port=port)
        except dns.tsig.PeerError as exc:
            raise DnsError(
                f"the server refused the update of {zone} ({type(exc).__name__}): check tsig_key (algorithm "
                f"{key.algorithm}, name {key.name}, secret) against the server's key"
            ) from None
        except dns.exception.Timeout:
            raise DnsError(f"the DNS server {server} port {port} did not answer the update of {zone}") from None
        except (OSError, dns.exception.DNSException) as exc:
            raise DnsError(f"the update of {zone} could not be sent to {server} port {port}: {exc}") from None
        rcode = response.rcode()
        if rcode in (dns.rcode.NOTAUTH, dns.rcode.REFUSED):
            raise DnsError(
                f"the server refused the update of {zone} ({dns.rcode.to_text(rcode)}): check tsig_key (algorithm "
                f"{key.algorithm}, name {key.name}) and that the server lets this key update {zone}"
            )
        if rcode != dns.rcode.NOERROR:
            raise DnsError(f"the server answered {dns.rcode.to_text(rcode)} to the update of {zone}")


# --- the resource -------------------------------------------------------------------------------------------


class DnsResource(SiteResource[DnsDetail]):
    name = "dns"

    def plan(self, ctx: SiteContext) -> SitePlan[DnsDetail]:
        server = ctx.site.dns
        if server is None:
            return SitePlan(self.name, (), DnsDetail(()))
        self._key(ctx, server)  # a key apply could not use is refused now, not after the hosts' applies
        wanted = site_records(ctx.site, ctx.records)
        zones = managed_zones(server)
        keys = [(r.name, r.rtype) for r in wanted if zone_of(r.name, zones) is not None]
        detail = record_changes(wanted, read_current(server.server, server.port, keys), zones)
        notes = tuple(
            f"publish by hand (in no zone of dns:): {r.name}. IN {r.rtype} {rdata_text(r.rtype, r.value)}"
            + (" — the network owner sets it" if r.rtype == "PTR" else "")
            for r in detail.by_hand
        )
        return SitePlan(self.name, site_changes(detail), detail, notes)

    def apply(self, ctx: SiteContext, plan: SitePlan[DnsDetail]) -> str:
        server = ctx.site.dns
        if server is None or not plan.detail.changes:
            return "no DNS changes"
        key = self._key(ctx, server)
        messages = update_messages(plan.detail, key)
        send_updates(server.server, server.port, messages, key)
        zones = ", ".join(dict.fromkeys(c.zone for c in plan.detail.changes))
        return f"updated {len(plan.detail.changes)} RRset(s) in {zones} at {server.server}"

    @staticmethod
    def _key(ctx: SiteContext, server: DnsServer) -> TsigKey:
        return TsigKey.parse(resolve(server.tsig_key, ctx.base_dir), f"dns.tsig_key ({server.tsig_key.describe()})")


# --- a zone-file snippet ------------------------------------------------------------------------------------


def zone_snippet(site: Site, from_hosts: Sequence[DnsRecord] = ()) -> list[str]:
    """Zone-file lines for every record the site needs, each preceded by why, to paste at any provider."""
    lines: list[str] = []
    for record in site_records(site, from_hosts):
        if record.why:
            lines.append(f"; {record.why}")
        lines.append(f"{record.name}. {record.ttl} IN {record.rtype} {rdata_text(record.rtype, record.value)}")
    return lines
