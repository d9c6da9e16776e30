"""The transport: the only door to a host (SSH with paramiko or the system ssh, or this machine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailprov.transport.base import CommandResult, SshTarget, Transport
from mailprov.transport.local import LocalTransport
from mailprov.transport.openssh import OpenSshTransport
from mailprov.transport.shell import Script, heredoc, join, mask, quote

if TYPE_CHECKING:
    from mailprov.transport.ssh import SshTransport

__all__ = [
    "CommandResult",
    "LocalTransport",
    "OpenSshTransport",
    "Script",
    "SshTarget",
    "SshTransport",
    "Transport",
    "connect",
    "heredoc",
    "join",
    "make",
    "mask",
    "quote",
]


def __getattr__(name: str) -> object:
    """SshTransport on first use: importing paramiko costs a run over openssh a third of a second."""
    if name == "SshTransport":
        from mailprov.transport.ssh import SshTransport

        return SshTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make(target: SshTarget) -> SshTransport | OpenSshTransport:
    """The transport `target.kind` names, not connected yet (it connects on first use, or connect())."""
    if target.kind == "openssh":
        return OpenSshTransport(target)
    from mailprov.transport.ssh import SshTransport

    return SshTransport(target)


def connect(target: SshTarget) -> SshTransport | OpenSshTransport:
    """An open transport to `target` (host key checked, logged in); close it, or use `with`."""
    transport = make(target)
    transport.connect()
    return transport
