"""The lab's DNS server: Knot, authoritative for the lab's zones, open to TSIG-signed dynamic updates (RFC 2136).

    mplab-dns (netns)
      eth0 10.231.0.53/16  ── veth mpld-lan ── mplab0 (the LAN bridge: lab hosts, the runner)
      eth1 10.232.0.53/16  ── veth mpod-out ── br-out in mplab-outside (outside clients, the receiver)

Zones: example.test (the lab sites' domain), receiver.test (the receiver's), and the reverse zones of both
lab networks, 231.10.in-addr.arpa and 232.10.in-addr.arpa. Every zone accepts updates signed with the TSIG
key `mailprov-lab` (hmac-sha256), kept in /var/lib/mailprov-lab/dns/tsig.key as `hmac-sha256:name:secret`.

What the lab writes, and what it leaves to sites: the zone files hold SOA, NS and the lab's own names
(ns.example.test, outside.example.test for 10.232.0.1, mx.receiver.test and receiver.test's MX). For every
lab host that is up, the lab plays the network owner and the hosting provider once: PTR of its LAN and its
outside address -> `<host>.example.test`, and A `<host>.example.test` -> its outside address (the public
address of a lab site's host, so the PTR is forward-confirmed). These are added with the prerequisite
"no such record set yet": a site's DNS resource that manages the same name (MX, A, TXT of example.test) sets
its own records and the lab never overwrites them. Knot keeps updates in its journal (the zone files are
never rewritten), so they survive a knotd restart; `lab down` throws the zones away.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from mailprov.errors import LabError
from mailprov.lab.commands import run
from mailprov.lab.network import (
    LAB_DNS_ADDRESS,
    LAB_DNS_OUTSIDE_ADDRESS,
    LAN_BRIDGE,
    OUTSIDE_BRIDGE,
    OUTSIDE_GATEWAY,
    OUTSIDE_NETNS,
    PREFIX_LENGTH,
    HostNetwork,
    fixed_mac,
    netns_exists,
)
from mailprov.lab.paths import LabPaths
from mailprov.lab.services import Box, boot_box, box_is_running, console_tail, stop_box

DNS_ADDRESS = LAB_DNS_ADDRESS
DNS_OUTSIDE_ADDRESS = LAB_DNS_OUTSIDE_ADDRESS
LAB_DOMAIN = "example.test"
RECEIVER_DOMAIN = "receiver.test"
RECEIVER_HOST = f"mx.{RECEIVER_DOMAIN}"
RECEIVER_ADDRESS = "10.232.0.25"
NS_HOST = f"ns.{LAB_DOMAIN}"
OUTSIDE_HOST = f"outside.{LAB_DOMAIN}"
LAN_REVERSE_ZONE = "231.10.in-addr.arpa"
OUTSIDE_REVERSE_ZONE = "232.10.in-addr.arpa"
ZONES = (LAB_DOMAIN, RECEIVER_DOMAIN, LAN_REVERSE_ZONE, OUTSIDE_REVERSE_ZONE)
TSIG_NAME = "mailprov-lab"
TSIG_ALGORITHM = "hmac-sha256"
TTL = 300
READY_TIMEOUT = 20.0
RUNNING_GRACE = 5.0  # how long a running box's knotd may take to answer before the box is started anew

DNS_BOX = Box(name="dns", netns="mplab-dns", hostname=NS_HOST)
_LAN_VETH = "mpld-lan"  # in the runner's namespace: starts with "mpl", so teardown removes it
_OUTSIDE_VETH = "mpod-out"  # in mplab-outside

_INIT_SCRIPT = """\
set -eu
src=/srv/mailprov-lab
install -d -o knot -g knot -m 0755 /run/knot /var/log/knot
install -d -o knot -g knot -m 0750 /var/lib/knot /var/lib/knot/zones
for zone in "$src"/zones/*.zone; do
    install -o knot -g knot -m 0640 "$zone" /var/lib/knot/zones/
done
install -o root -g knot -m 0640 "$src/knot.conf" /etc/knot/knot.conf
knotc -c /etc/knot/knot.conf conf-check
# PID 1 keeps knotd running: `knotc stop` (or a crash) restarts it, with the zones and journal it left.
while :; do
    knotd -c /etc/knot/knot.conf || echo "knotd exited ($?)" >&2
    sleep 0.5
done
"""


@dataclass(frozen=True)
class LabDns:
    address: str = DNS_ADDRESS
    outside_address: str = DNS_OUTSIDE_ADDRESS
    zones: tuple[str, ...] = ZONES
    tsig_key_file: Path = Path("/var/lib/mailprov-lab/dns/tsig.key")
    tsig_name: str = TSIG_NAME


@dataclass(frozen=True)
class ZoneRecord:
    """One resource record; `name` is relative to the zone's origin ("@" for the apex) or absolute (with a dot)."""

    name: str
    rtype: str
    value: str
    ttl: int = TTL


# --- pure: keys, zones, configuration --------------------------------------------------------------------


def tsig_key_line(secret: bytes) -> str:
    """The key file's one line, in the `alg:name:secret` form knsupdate/kdig `-y` accept."""
    return f"{TSIG_ALGORITHM}:{TSIG_NAME}:{base64.b64encode(secret).decode()}\n"


def parse_tsig_key_line(text: str) -> tuple[str, str, str]:
    """(algorithm, name, base64 secret) from the key file's text."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(parts):
        raise LabError("the lab's TSIG key file is not one `algorithm:name:secret` line: delete it, `lab down`")
    algorithm, name, secret = parts
    base64.b64decode(secret, validate=True)
    return algorithm, name, secret


def reverse_name(address: str) -> str:
    """10.231.1.50 -> 50.1.231.10.in-addr.arpa (no trailing dot)."""
    return ipaddress.ip_address(address).reverse_pointer


def static_records() -> dict[str, tuple[ZoneRecord, ...]]:
    """The lab's own records in each zone (besides SOA and NS); host records come by update."""
    return {
        LAB_DOMAIN: (
            ZoneRecord("ns", "A", DNS_ADDRESS),
            ZoneRecord("ns", "A", DNS_OUTSIDE_ADDRESS),
            ZoneRecord("outside", "A", OUTSIDE_GATEWAY),
        ),
        RECEIVER_DOMAIN: (
            ZoneRecord("@", "MX", f"10 {RECEIVER_HOST}."),
            ZoneRecord("@", "A", RECEIVER_ADDRESS),
            ZoneRecord("mx", "A", RECEIVER_ADDRESS),
        ),
        LAN_REVERSE_ZONE: (ZoneRecord(_relative(reverse_name(DNS_ADDRESS), LAN_REVERSE_ZONE), "PTR", f"{NS_HOST}."),),
        OUTSIDE_REVERSE_ZONE: (
            ZoneRecord(_relative(reverse_name(DNS_OUTSIDE_ADDRESS), OUTSIDE_REVERSE_ZONE), "PTR", f"{NS_HOST}."),
            ZoneRecord(_relative(reverse_name(RECEIVER_ADDRESS), OUTSIDE_REVERSE_ZONE), "PTR", f"{RECEIVER_HOST}."),
            ZoneRecord(_relative(reverse_name(OUTSIDE_GATEWAY), OUTSIDE_REVERSE_ZONE), "PTR", f"{OUTSIDE_HOST}."),
        ),
    }


def _relative(name: str, origin: str) -> str:
    suffix = "." + origin
    if not name.endswith(suffix):
        raise LabError(f"{name} is not inside zone {origin}")
    return name.removesuffix(suffix)


def render_zone(origin: str, records: Sequence[ZoneRecord], serial: int) -> str:
    """A zone file: $ORIGIN, SOA, NS ns.example.test., then `records` in the order given."""
    lines = [
        f"$ORIGIN {origin}.",
        f"$TTL {TTL}",
        f"@\t{TTL}\tIN\tSOA\t{NS_HOST}. hostmaster.{LAB_DOMAIN}. {serial} 3600 600 86400 60",
        f"@\t{TTL}\tIN\tNS\t{NS_HOST}.",
    ]
    lines += [f"{record.name}\t{record.ttl}\tIN\t{record.rtype}\t{record.value}" for record in records]
    return "\n".join(lines) + "\n"


def render_knot_conf(tsig_secret: str, zones: Sequence[str] = ZONES) -> str:
    """knot.conf: listen on both lab addresses, one TSIG key allowed to update every zone, journal kept.

    `zonefile-sync: -1` never writes the zone file back: updates live in the journal (journal-content:
    changes) and are replayed on top of the unchanged zone file when knotd starts again.
    """
    zone_lines = "".join(f"  - domain: {zone}\n" for zone in zones)
    return (
        "# mailprov lab DNS server (written by `mailprov lab`; rewritten at every start)\n"
        "server:\n"
        "    rundir: /run/knot\n"
        "    user: knot:knot\n"
        f"    listen: [ {DNS_ADDRESS}@53, {DNS_OUTSIDE_ADDRESS}@53 ]\n"
        "\n"
        "log:\n"
        "  - target: /var/log/knot/knot.log\n"
        "    any: info\n"
        "\n"
        "database:\n"
        "    storage: /var/lib/knot\n"
        "\n"
        "key:\n"
        f"  - id: {TSIG_NAME}\n"
        f"    algorithm: {TSIG_ALGORITHM}\n"
        f"    secret: {tsig_secret}\n"
        "\n"
        "acl:\n"
        "  - id: lab-update\n"
        f"    key: {TSIG_NAME}\n"
        "    action: [update, transfer]\n"
        "\n"
        "template:\n"
        "  - id: default\n"
        "    storage: /var/lib/knot/zones\n"
        '    file: "%s.zone"\n'
        "    zonefile-sync: -1\n"
        "    zonefile-load: whole\n"
        "    journal-content: changes\n"
        "    acl: lab-update\n"
        "\n"
        "zone:\n" + zone_lines
    )


def box_files(tsig_secret: str, serial: int) -> dict[str, str]:
    """Every file the DNS box gets under /srv/mailprov-lab."""
    files = {"init.sh": _INIT_SCRIPT, "knot.conf": render_knot_conf(tsig_secret)}
    for zone, records in static_records().items():
        files[f"zones/{zone}.zone"] = render_zone(zone, records, serial)
    return files


@dataclass(frozen=True)
class HostRecords:
    """What the lab publishes for one lab host (each only where the name has no such record yet)."""

    fqdn: str
    a: tuple[str, str]  # (name, address): name -> outside address
    ptrs: tuple[tuple[str, str, str], ...]  # (zone, reverse name, fqdn)


def host_records(net: HostNetwork) -> HostRecords:
    fqdn = f"{net.name}.{LAB_DOMAIN}"
    return HostRecords(
        fqdn=fqdn,
        a=(fqdn, net.outside_address),
        ptrs=(
            (LAN_REVERSE_ZONE, reverse_name(net.lan_address), fqdn),
            (OUTSIDE_REVERSE_ZONE, reverse_name(net.outside_address), fqdn),
        ),
    )


# --- the running server ----------------------------------------------------------------------------------


def tsig_key_file(paths: LabPaths) -> Path:
    return paths.state / "dns" / "tsig.key"


def ensure_tsig_key(paths: LabPaths) -> str:
    """The lab's TSIG secret (base64), made once per state directory; the file is 0600."""
    path = tsig_key_file(paths)
    if path.is_file():
        return parse_tsig_key_line(path.read_text())[2]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    temporary = path.with_name(".tsig.key.tmp")
    temporary.unlink(missing_ok=True)
    temporary.touch(mode=0o600)
    temporary.write_text(tsig_key_line(secrets.token_bytes(32)))
    temporary.replace(path)
    return parse_tsig_key_line(path.read_text())[2]


def lab_dns(paths: LabPaths) -> LabDns:
    return LabDns(tsig_key_file=tsig_key_file(paths))


def is_running() -> bool:
    return box_is_running(DNS_BOX)


def ensure_dns(paths: LabPaths, image: Path, hosts: Sequence[HostNetwork]) -> LabDns:
    """Start the DNS box unless it runs, then publish `hosts` (the caller holds the lab lock)."""
    secret = ensure_tsig_key(paths)
    # A running box whose knotd is restarting (PID 1 starts it again) is kept: restarting the box would
    # throw away every update in the journal.
    if not (box_is_running(DNS_BOX) and _serves_within(LAB_DOMAIN, RUNNING_GRACE)):
        stop_box(paths, DNS_BOX)
        _create_network()
        boot_box(paths, DNS_BOX, image, box_files(secret, int(time.time())), binds=())
        _wait_ready(paths)
    publish_hosts(paths, hosts)
    return lab_dns(paths)


def stop(paths: LabPaths) -> None:
    stop_box(paths, DNS_BOX)
    if netns_exists(OUTSIDE_NETNS):
        run(["ip", "-n", OUTSIDE_NETNS, "link", "delete", _OUTSIDE_VETH], what="delete mpod-out", check=False)
    run(["ip", "link", "delete", _LAN_VETH], what=f"delete {_LAN_VETH}", check=False)


def keyring(paths: LabPaths) -> dict[dns.name.Name, dns.tsig.Key]:
    algorithm, name, secret = parse_tsig_key_line(tsig_key_file(paths).read_text())
    key = dns.tsig.Key(name, secret, algorithm)
    return {key.name: key}


def publish_hosts(paths: LabPaths, hosts: Sequence[HostNetwork]) -> None:
    """Add each host's A and PTRs where that name has no such record set yet (a site's own records win)."""
    ring = keyring(paths)
    for net in hosts:
        records = host_records(net)
        _add_if_absent(ring, LAB_DOMAIN, records.a[0], "A", records.a[1])
        for zone, name, target in records.ptrs:
            _add_if_absent(ring, zone, name, "PTR", f"{target}.")


def _add_if_absent(ring: dict[dns.name.Name, dns.tsig.Key], zone: str, name: str, rtype: str, value: str) -> None:
    update = dns.update.UpdateMessage(zone, keyring=ring, keyalgorithm=TSIG_ALGORITHM)
    update.absent(f"{name}.", rtype)
    update.add(f"{name}.", TTL, rtype, value)
    response = _send(update)
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.YXRRSET):
        raise LabError(f"lab DNS refused adding {name} {rtype} {value}: {dns.rcode.to_text(response.rcode())}")


def _send(message: dns.message.Message) -> dns.message.Message:
    try:
        return dns.query.tcp(message, DNS_ADDRESS, timeout=5.0)
    except (OSError, dns.exception.DNSException) as exc:
        raise LabError(f"lab DNS at {DNS_ADDRESS} did not answer: {exc}") from exc


def _serves(zone: str) -> bool:
    """knotd answers the zone's SOA with authority."""
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    try:
        answer = dns.query.udp(query, DNS_ADDRESS, timeout=0.5)
    except (OSError, dns.exception.DNSException):
        return False
    return answer.rcode() == dns.rcode.NOERROR and bool(answer.answer)


def _serves_within(zone: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _serves(zone):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _wait_ready(paths: LabPaths) -> None:
    """Until knotd answers the SOA of every zone (or the time is up)."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(ZONES)
    while pending and time.monotonic() < deadline:
        if _serves(pending[0]):
            pending.pop(0)
            continue
        time.sleep(0.1)
    if pending:
        raise LabError(f"lab DNS: knotd does not serve {', '.join(pending)}\n{console_tail(paths, DNS_BOX)}")


def _create_network() -> None:
    """mplab-dns with eth0 on the LAN bridge and eth1 on the outside bridge (both bridges exist already)."""
    ns = DNS_BOX.netns
    run(["ip", "netns", "add", ns], what=f"create {ns}")
    run(["ip", "-n", ns, "link", "set", "lo", "up"], what=f"bring up lo in {ns}")
    run(["ip", "link", "delete", _LAN_VETH], what=f"delete a stale {_LAN_VETH}", check=False)
    run(
        ["ip", "link", "add", _LAN_VETH, "type", "veth", "peer", "name", "eth0", "netns", ns],
        what="create eth0 of the lab DNS",
    )
    disable_ipv6 = Path("/proc/sys/net/ipv6/conf", _LAN_VETH, "disable_ipv6")
    if disable_ipv6.exists():
        disable_ipv6.write_text("1\n")
    run(["ip", "link", "set", _LAN_VETH, "master", LAN_BRIDGE, "up"], what=f"attach {_LAN_VETH}")
    run(["ip", "-n", OUTSIDE_NETNS, "link", "delete", _OUTSIDE_VETH], what="delete a stale mpod-out", check=False)
    run(
        ["ip", "-n", OUTSIDE_NETNS, "link", "add", _OUTSIDE_VETH, "type", "veth", "peer", "name", "eth1", "netns", ns],
        what="create eth1 of the lab DNS",
    )
    run(
        ["ip", "-n", OUTSIDE_NETNS, "link", "set", _OUTSIDE_VETH, "master", OUTSIDE_BRIDGE, "up"],
        what=f"attach {_OUTSIDE_VETH}",
    )
    run(
        ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0",
         "net.ipv4.conf.default.rp_filter=0"],
        what=f"disable rp_filter in {ns}",
    )  # fmt: skip
    for device, address in (("eth0", DNS_ADDRESS), ("eth1", DNS_OUTSIDE_ADDRESS)):
        run(["ip", "-n", ns, "link", "set", "dev", device, "address", fixed_mac(address)], what=f"MAC of {device}")
        run(["ip", "-n", ns, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", device], what=f"address {device}")
        run(["ip", "-n", ns, "link", "set", device, "up"], what=f"bring up {device} of the lab DNS")
