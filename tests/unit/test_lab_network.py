"""Lab host names map to fixed addresses and interface names that site files and tests rely on."""

from __future__ import annotations

import pytest

from mailprov.errors import LabError
from mailprov.lab.network import host_network, parse_host_name, parse_link_names, parse_netns_list


@pytest.mark.parametrize(
    ("distro", "index", "lan", "outside"),
    [
        ("bookworm", 1, "10.231.1.1", "10.232.1.1"),
        ("bookworm", 20, "10.231.1.20", "10.232.1.20"),
        ("trixie", 1, "10.231.2.1", "10.232.2.1"),
        ("trixie", 99, "10.231.2.99", "10.232.2.99"),
    ],
)
def test_addresses_follow_distro_and_index(distro: str, index: int, lan: str, outside: str) -> None:
    net = host_network(distro, index)
    assert (net.name, net.netns) == (f"{distro}-{index}", f"mplab-{distro}-{index}")
    assert (net.lan_address, net.outside_address) == (lan, outside)


def test_interface_names_fit_the_kernel_limit_and_are_unique() -> None:
    nets = [host_network(distro, index) for distro in ("bookworm", "trixie") for index in range(1, 100)]
    names = [name for net in nets for name in (net.lan_veth, net.outside_veth)]
    assert max(len(name) for name in names) <= 15
    assert len(set(names)) == len(names)
    assert all(net.lan_veth.startswith("mpl") for net in nets)  # down() finds leftovers by this prefix


@pytest.mark.parametrize(("distro", "index"), [("bookworm", 0), ("bookworm", 100), ("sid", 1)])
def test_out_of_range_hosts_are_refused(distro: str, index: int) -> None:
    with pytest.raises(LabError):
        host_network(distro, index)


def test_host_names_parse_back() -> None:
    assert parse_host_name("trixie-12") == host_network("trixie", 12)


@pytest.mark.parametrize("name", ["outside", "bookworm", "bookworm-0", "bookworm-01", "bookworm-100", "sid-1"])
def test_other_names_are_not_lab_hosts(name: str) -> None:
    with pytest.raises(LabError, match="not a lab host name"):
        parse_host_name(name)


def test_netns_list_with_and_without_ids() -> None:
    assert parse_netns_list("mplab-bookworm-1 (id: 2)\nmplab-outside (id: 0)\nother\n") == [
        "mplab-bookworm-1",
        "mplab-outside",
        "other",
    ]


def test_link_names_drop_the_peer_suffix() -> None:
    listing = (
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback\n"
        "5: mplab0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    link/ether\n"
        "6: mpl1-1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue\\    link/ether\n"
    )
    assert parse_link_names(listing) == ["lo", "mplab0", "mpl1-1"]


def test_each_host_interface_has_a_fixed_mac_of_its_own() -> None:
    from mailprov.lab.network import fixed_mac, host_network

    nets = [host_network(distro, index) for distro in ("bookworm", "trixie", "bullseye", "forky") for index in (1, 99)]
    macs = [fixed_mac(address) for net in nets for address in (net.lan_address, net.outside_address)]
    assert len(set(macs)) == len(macs)
    assert fixed_mac(host_network("bookworm", 31).outside_address) == "02:6d:6c:e8:01:1f"
    assert all(int(mac.split(":")[0], 16) & 0b11 == 0b10 for mac in macs)  # locally administered, unicast
