"""The lab's networks: a LAN bridge in the runner's namespace and an "outside" namespace, one netns per host.

    runner (root netns)                 mplab-<host> (one per host)            mplab-outside
    mplab0 10.231.0.1/16  ── veth ──    eth0 10.231.<d>.<i>/16
                                        eth1 10.232.<d>.<i>/16  ── veth ──    br-out 10.232.0.1/16
                                                                              route 10.231.<d>.<i>/32 via
                                                                                    10.232.<d>.<i>

<d> is the distro's number (bookworm 1, trixie 2, bullseye 3, forky 4) and <i> the host's index. The runner
sits on the trusted LAN; a client in mplab-outside reaches a host's LAN address from 10.232.0.1, which is
outside that LAN.
Nothing here touches the runner's existing links, addresses, routes, sysctls or firewall. One thing is
added and deliberately kept after `down`: "unreachable" routes for the lab's two ranges at a high metric
(the route guard). While the lab is up, mplab0's connected route wins; once it is gone, a client that still
talks to a lab address gets "no route to host" at once instead of its packets leaving through the runner's
default route for the real network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError
from mailprov.lab.commands import run

LAN_BRIDGE = "mplab0"
LAN_GATEWAY = "10.231.0.1"
OUTSIDE_NETNS = "mplab-outside"
OUTSIDE_BRIDGE = "br-out"
OUTSIDE_GATEWAY = "10.232.0.1"
LAB_DNS_ADDRESS = "10.231.0.53"  # the lab DNS server (mailprov.lab.dns) on the LAN; every host resolves through it
LAB_DNS_OUTSIDE_ADDRESS = "10.232.0.53"  # the same server on the outside network
PREFIX_LENGTH = 16
NETNS_PREFIX = "mplab-"
ROOT_VETH_PREFIXES = ("mpl",)  # every lab link in the runner's namespace starts so (mplab0, mpl1-3 ...)
LAB_RANGES = ("10.231.0.0/16", "10.232.0.0/16")
GUARD_METRIC = "4242"  # above any connected route (0), so it only applies when the lab is down

DISTRO_NUMBERS = {"bookworm": 1, "trixie": 2, "bullseye": 3, "forky": 4}
MAX_HOSTS_PER_DISTRO = 99

_HOST_NAME = re.compile(r"^(?P<distro>[a-z]+)-(?P<index>[1-9][0-9]?)$")


@dataclass(frozen=True)
class HostNetwork:
    """Names and addresses of one host's network, all derived from its distro and index."""

    name: str  # bookworm-1
    distro: str
    index: int

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def distro_number(self) -> int:
        return DISTRO_NUMBERS[self.distro]

    @property
    def lan_address(self) -> str:
        return f"10.231.{self.distro_number}.{self.index}"

    @property
    def outside_address(self) -> str:
        return f"10.232.{self.distro_number}.{self.index}"

    @property
    def lan_veth(self) -> str:
        """Runner-side end of eth0 (interface names are at most 15 characters)."""
        return f"mpl{self.distro_number}-{self.index}"

    @property
    def outside_veth(self) -> str:
        """mplab-outside end of eth1."""
        return f"mpo{self.distro_number}-{self.index}"


def host_network(distro: str, index: int) -> HostNetwork:
    if distro not in DISTRO_NUMBERS:
        raise LabError(f"unknown lab distro {distro!r}: choose one of {', '.join(DISTRO_NUMBERS)}")
    if not 1 <= index <= MAX_HOSTS_PER_DISTRO:
        raise LabError(f"lab host index {index} is out of range 1..{MAX_HOSTS_PER_DISTRO}")
    return HostNetwork(name=f"{distro}-{index}", distro=distro, index=index)


def parse_host_name(name: str) -> HostNetwork:
    """`bookworm-3` -> its network; anything else is not a lab host name."""
    match = _HOST_NAME.match(name)
    if match is None or match["distro"] not in DISTRO_NUMBERS:
        raise LabError(f"{name!r} is not a lab host name (expected <distro>-<1..99>, e.g. bookworm-1)")
    return host_network(match["distro"], int(match["index"]))


# --- reading state ---------------------------------------------------------------------------------------


def parse_netns_list(text: str) -> list[str]:
    """Names from `ip netns list` ("name" or "name (id: 3)" per line)."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def lab_netns_names() -> list[str]:
    listing = run(["ip", "netns", "list"], what="list network namespaces").stdout
    return [name for name in parse_netns_list(listing) if name.startswith(NETNS_PREFIX)]


def netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def netns_pids(netns: str) -> list[int]:
    if not netns_exists(netns):
        return []
    result = run(["ip", "netns", "pids", netns], what=f"list processes in {netns}", check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def parse_link_names(text: str) -> list[str]:
    """Interface names from `ip -o link show` ("3: mpl1-1@if2: <...") without the @peer suffix."""
    names = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def root_lab_links() -> list[str]:
    listing = run(["ip", "-o", "link", "show"], what="list links").stdout
    return [name for name in parse_link_names(listing) if name.startswith(ROOT_VETH_PREFIXES)]


def _link_exists(name: str, netns: str | None = None) -> bool:
    argv = ["ip", *(["-n", netns] if netns else []), "link", "show", "dev", name]
    return run(argv, what=f"look up {name}", check=False).returncode == 0


def _addresses(name: str, netns: str | None = None) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), "-o", "addr", "show", "dev", name]
    return run(argv, what=f"read addresses of {name}", check=False).stdout


# --- creating --------------------------------------------------------------------------------------------


def ensure_route_guard() -> None:
    """Lab addresses never route to the real network, lab up or down (see the module docstring)."""
    for lab_range in LAB_RANGES:
        run(
            ["ip", "route", "replace", "unreachable", lab_range, "metric", GUARD_METRIC],
            what=f"guard route for {lab_range}",
        )


def close_runner_connections_to_the_lab() -> None:
    """Abort the runner's TCP connections to lab addresses, so none retransmits once the bridge is gone."""
    for lab_range in LAB_RANGES:
        run(["ss", "--kill", "--tcp", "dst", lab_range], what=f"close connections to {lab_range}", check=False)


def ensure_lab_networks() -> None:
    """The LAN bridge and the outside namespace; each step skipped when already there (half-built is fine)."""
    ensure_route_guard()
    if not _link_exists(LAN_BRIDGE):
        run(["ip", "link", "add", LAN_BRIDGE, "type", "bridge"], what="create the lab LAN bridge")
    _quiet_ipv6(LAN_BRIDGE)
    if f" {LAN_GATEWAY}/{PREFIX_LENGTH} " not in _addresses(LAN_BRIDGE):
        run(["ip", "addr", "add", f"{LAN_GATEWAY}/{PREFIX_LENGTH}", "dev", LAN_BRIDGE], what="address mplab0")
    run(["ip", "link", "set", LAN_BRIDGE, "up"], what="bring up mplab0")

    if not netns_exists(OUTSIDE_NETNS):
        run(["ip", "netns", "add", OUTSIDE_NETNS], what="create the outside namespace")
    outside = ["ip", "-n", OUTSIDE_NETNS]
    run([*outside, "link", "set", "lo", "up"], what="bring up lo in mplab-outside")
    if not _link_exists(OUTSIDE_BRIDGE, OUTSIDE_NETNS):
        run([*outside, "link", "add", OUTSIDE_BRIDGE, "type", "bridge"], what="create the outside bridge")
    if f" {OUTSIDE_GATEWAY}/{PREFIX_LENGTH} " not in _addresses(OUTSIDE_BRIDGE, OUTSIDE_NETNS):
        run(
            [*outside, "addr", "add", f"{OUTSIDE_GATEWAY}/{PREFIX_LENGTH}", "dev", OUTSIDE_BRIDGE],
            what="address br-out",
        )
    run([*outside, "link", "set", OUTSIDE_BRIDGE, "up"], what="bring up br-out")


def create_host_network(net: HostNetwork) -> None:
    """A fresh namespace for the host with eth0 on the LAN and eth1 on the outside network."""
    delete_host_network(net)
    inside = ["ip", "-n", net.netns]
    run(["ip", "netns", "add", net.netns], what=f"create {net.netns}")
    run([*inside, "link", "set", "lo", "up"], what=f"bring up lo in {net.netns}")

    run(
        ["ip", "link", "add", net.lan_veth, "type", "veth", "peer", "name", "eth0", "netns", net.netns],
        what=f"create eth0 of {net.name}",
    )
    _quiet_ipv6(net.lan_veth)
    run(["ip", "link", "set", net.lan_veth, "master", LAN_BRIDGE, "up"], what=f"attach {net.lan_veth}")

    run(
        ["ip", "link", "add", net.outside_veth, "type", "veth", "peer", "name", "eth1", "netns", net.netns],
        what=f"create eth1 of {net.name}",
    )
    run(["ip", "link", "set", net.outside_veth, "netns", OUTSIDE_NETNS], what=f"move {net.outside_veth}")
    run(
        ["ip", "-n", OUTSIDE_NETNS, "link", "set", net.outside_veth, "master", OUTSIDE_BRIDGE, "up"],
        what=f"attach {net.outside_veth}",
    )

    # Outside clients reach the LAN address through eth1: the host must not drop that as martian.
    run(
        ["ip", "netns", "exec", net.netns, "sysctl", "-q", "-w",
         "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
         "net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0"],
        what=f"disable rp_filter in {net.netns}",
    )  # fmt: skip
    run(
        [*inside, "addr", "add", f"{net.lan_address}/{PREFIX_LENGTH}", "dev", "eth0"],
        what=f"address eth0 of {net.name}",
    )
    run(
        [*inside, "addr", "add", f"{net.outside_address}/{PREFIX_LENGTH}", "dev", "eth1"],
        what=f"address eth1 of {net.name}",
    )
    for device, address in (("eth0", net.lan_address), ("eth1", net.outside_address)):
        run([*inside, "link", "set", device, "address", fixed_mac(address)], what=f"MAC of {device} of {net.name}")
    run([*inside, "link", "set", "eth0", "up"], what=f"bring up eth0 of {net.name}")
    run([*inside, "link", "set", "eth1", "up"], what=f"bring up eth1 of {net.name}")
    run(
        ["ip", "-n", OUTSIDE_NETNS, "route", "replace", f"{net.lan_address}/32", "via", net.outside_address],
        what=f"route to {net.name} from mplab-outside",
    )


def fixed_mac(address: str) -> str:
    """A fixed, locally administered MAC for a lab interface, derived from its IPv4 address.

    A host or box started again gets the same MAC, so the neighbour caches of the runner, mplab-outside and
    the others (which still hold the previous entry for a while) stay right: no 30 s of lost packets, no
    sshd that seems not to come up.
    """
    octets = [int(part) for part in address.split(".")]
    return "02:6d:6c:{:02x}:{:02x}:{:02x}".format(*octets[1:])


def _quiet_ipv6(link: str) -> None:
    """No IPv6 on the runner-side lab links: no router solicitations or DAD from the runner's side."""
    switch = Path("/proc/sys/net/ipv6/conf", link, "disable_ipv6")
    if switch.exists():
        switch.write_text("1\n")


# --- removing --------------------------------------------------------------------------------------------


def delete_host_network(net: HostNetwork) -> None:
    """Remove the host's namespace (its veths go with it) and its route; fine if parts are missing."""
    if netns_exists(net.netns):
        run(["ip", "netns", "delete", net.netns], what=f"delete {net.netns}")
    if _link_exists(net.lan_veth):  # a veth whose namespace never got its peer
        run(["ip", "link", "delete", net.lan_veth], what=f"delete {net.lan_veth}", check=False)
    if netns_exists(OUTSIDE_NETNS):
        run(
            ["ip", "-n", OUTSIDE_NETNS, "route", "del", f"{net.lan_address}/32"],
            what="delete outside route",
            check=False,
        )


def teardown_lab_networks() -> None:
    """Every lab namespace, veth and bridge; the caller has stopped the hosts' processes first."""
    ensure_route_guard()  # first: from here on nothing may fall through to the default route
    close_runner_connections_to_the_lab()
    for netns in lab_netns_names():
        run(["ip", "netns", "delete", netns], what=f"delete {netns}")
    for link in root_lab_links():
        run(["ip", "link", "delete", link], what=f"delete {link}", check=False)
    leftover = root_lab_links() + lab_netns_names()
    if leftover:
        raise LabError(f"could not remove lab network pieces: {', '.join(leftover)}")
