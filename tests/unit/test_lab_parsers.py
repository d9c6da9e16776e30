"""Small parsers the lab reads the runner's state with: mountinfo, /proc status, passwd, inventory."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mailprov.errors import LabError
from mailprov.lab.hosts import parse_nspid, passwd_entry
from mailprov.lab.inventory import InventoryEntry, render_inventory
from mailprov.lab.mounts import is_under, parse_mount_points

MOUNTINFO = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "98 22 0:51 / /var/lib/mailprov-lab/hosts/bookworm-1/merged rw - overlay overlay rw,lowerdir=/x\n"
    "99 22 0:52 / /var/lib/mailprov\\040lab/with\\040space rw - tmpfs tmpfs rw\n"
)


def test_mount_points_decode_escapes_and_keep_order() -> None:
    assert parse_mount_points(MOUNTINFO) == [
        "/",
        "/var/lib/mailprov-lab/hosts/bookworm-1/merged",
        "/var/lib/mailprov lab/with space",
    ]


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/var/lib/mailprov-lab/hosts", True),
        ("/var/lib/mailprov-lab/hosts/bookworm-1/merged", True),
        ("/var/lib/mailprov-lab/hosts2", False),  # a sibling sharing the prefix is not inside
        ("/var/lib", False),
    ],
)
def test_is_under(path: str, inside: bool) -> None:
    assert is_under(path, Path("/var/lib/mailprov-lab/hosts")) is inside


def test_nspid_of_a_host_init_and_of_a_runner_process() -> None:
    assert parse_nspid("Name:\tsshd\nNSpid:\t7084\t1\nNSsid:\t1\n") == [7084, 1]
    assert parse_nspid("Name:\tbash\nNSpid:\t42\n") == [42]
    assert parse_nspid("Name:\tkthreadd\n") == []


PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "admin:x:1000:1000::/home/admin:/bin/bash\n"
    "pwadmin:x:1001:1001::/home/pwadmin:/bin/bash\n"
)


def test_passwd_entry() -> None:
    assert passwd_entry(PASSWD, "admin") == (1000, 1000, "/home/admin")
    assert passwd_entry(PASSWD, "root") == (0, 0, "/root")
    with pytest.raises(LabError, match="no user 'nobody'"):
        passwd_entry(PASSWD, "nobody")


def test_inventory_is_yaml_with_every_host() -> None:
    text = render_inventory(
        [InventoryEntry("bookworm-1", "bookworm", "10.231.1.1", "10.232.1.1", 22, "admin")],
        root_key="/state dir/id_ed25519",
        known_hosts="/state dir/known_hosts",
        outside_netns="mplab-outside",
    )
    data = YAML(typ="safe").load(text)
    assert data["outside_netns"] == "mplab-outside"
    [host] = data["hosts"]
    assert (host["name"], host["address"], host["outside_address"], host["user"]) == (
        "bookworm-1",
        "10.231.1.1",
        "10.232.1.1",
        "admin",
    )
    assert host["ssh"] == {
        "address": "10.231.1.1",
        "port": 22,
        "user": "admin",
        "identity_file": "/state dir/id_ed25519",
        "known_hosts": "/state dir/known_hosts",
        "become": True,
    }


def test_empty_inventory() -> None:
    text = render_inventory([], root_key="/k", known_hosts="/h", outside_netns="mplab-outside")
    assert YAML(typ="safe").load(text)["hosts"] == []
