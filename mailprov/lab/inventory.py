"""inventory.yaml: the running lab hosts, in a form a person or a site file can copy from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class InventoryEntry:
    name: str
    distro: str
    address: str
    outside_address: str
    ssh_port: int
    user: str


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def render_inventory(entries: Sequence[InventoryEntry], *, root_key: str, known_hosts: str, outside_netns: str) -> str:
    lines = [
        "# mailprov lab: running hosts. Written by `mailprov lab up/down`; edits are overwritten.",
        "# Each host's `ssh` block has the shape of a site.yaml host's `ssh` settings (log in as the",
        "# NOPASSWD sudo user and become root); root can also log in directly with the same key.",
        f"root_key: {_q(root_key)}",
        f"known_hosts: {_q(known_hosts)}",
        f"outside_netns: {_q(outside_netns)}",
    ]
    if not entries:
        lines.append("hosts: []")
    else:
        lines.append("hosts:")
    for entry in entries:
        lines += [
            f"  - name: {_q(entry.name)}",
            f"    distro: {_q(entry.distro)}",
            f"    address: {_q(entry.address)}",
            f"    outside_address: {_q(entry.outside_address)}",
            f"    user: {_q(entry.user)}",
            "    ssh:",
            f"      address: {_q(entry.address)}",
            f"      port: {entry.ssh_port}",
            f"      user: {_q(entry.user)}",
            f"      identity_file: {_q(root_key)}",
            f"      known_hosts: {_q(known_hosts)}",
            "      become: true",
        ]
    return "\n".join(lines) + "\n"
