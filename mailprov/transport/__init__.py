"""The transport: the only door to a host (SSH with paramiko, or this machine)."""

from __future__ import annotations

from mailprov.transport.base import CommandResult, SshTarget, Transport
from mailprov.transport.local import LocalTransport
from mailprov.transport.shell import Script, heredoc, join, mask, quote
from mailprov.transport.ssh import SshTransport

__all__ = [
    "CommandResult",
    "LocalTransport",
    "Script",
    "SshTarget",
    "SshTransport",
    "Transport",
    "connect",
    "heredoc",
    "join",
    "mask",
    "quote",
]


def connect(target: SshTarget) -> SshTransport:
    """An open SshTransport to `target` (host key checked, logged in); close it, or use `with`."""
    transport = SshTransport(target)
    transport.connect()
    return transport
