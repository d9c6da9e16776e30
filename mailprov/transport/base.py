"""The contract every transport meets. The transport is the only door to a host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailprov.errors import CommandError
from mailprov.transport.shell import mask


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did. `command` is the display form, secrets already masked."""

    command: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host. Values left None come from ~/.ssh/config, then OpenSSH defaults."""

    host: str  # the name shown in output (the site's host name)
    address: str | None = None
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None  # extra known_hosts file, checked besides ~/.ssh/known_hosts
    become: bool = False  # run commands through `sudo -n`
    sudo_password: str | None = field(default=None, repr=False)
    accept_new_host_keys: bool = False
    connect_timeout: float = 15.0


class Transport(Protocol):
    """A session on one host. Commands are argv lists or shell scripts; quoting is done in shell.py."""

    @property
    def host(self) -> str: ...

    @property
    def round_trips(self) -> int:
        """How many commands were sent so far (for benchmarks and tests)."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = 300.0,
        secrets: Sequence[str] = (),
    ) -> CommandResult:
        """Run one command (as root when the target says become). check=True raises CommandError."""
        ...

    def run_script(
        self,
        script: str,
        *,
        check: bool = True,
        timeout: float | None = 300.0,
        secrets: Sequence[str] = (),
    ) -> CommandResult:
        """Run a POSIX sh script in one round trip (sent on stdin to `sh -s`, as root when becoming)."""
        ...

    def close(self) -> None: ...


def checked_result(
    host: str, command: str, rc: int, stdout: str, stderr: str, *, check: bool, secrets: Sequence[str]
) -> CommandResult:
    """The result of a finished command; with check=True a non-zero exit raises CommandError.

    `command` must already be masked. The error's stderr is masked too: it is shown to the admin.
    """
    if check and rc != 0:
        raise CommandError(host, command, rc, mask(stderr, secrets))
    return CommandResult(command, rc, stdout, stderr)
