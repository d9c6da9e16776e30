"""Throwaway real Debian hosts (bullseye, bookworm, trixie, forky) on this machine, reached over SSH.
Needs root on Linux.

See mailprov.lab.api for the design; mailprov.lab.network for names and addresses.
"""

from mailprov.lab.api import (
    LabDns,
    LabHost,
    LabReceiver,
    dns_up,
    down,
    ensure_image,
    in_use_by_others,
    outside_netns,
    receiver_up,
    status,
    up,
    up_at,
)

__all__ = [
    "LabDns",
    "LabHost",
    "LabReceiver",
    "dns_up",
    "down",
    "ensure_image",
    "in_use_by_others",
    "outside_netns",
    "receiver_up",
    "status",
    "up",
    "up_at",
]
