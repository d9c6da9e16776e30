"""The contract every transport meets. The transport is the only door to a host."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mailprov.errors import CommandError
from mailprov.transport.shell import (
    Become,
    command_line,
    join,
    mask,
    script_command,
    script_display,
    script_text,
    stdin_bytes,
)

log = logging.getLogger("mailprov.transport")


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


TransportKind = Literal["paramiko", "openssh"]


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
    kind: TransportKind = "paramiko"  # paramiko in this process, or the system `ssh` (openssh.py)
    legacy_algorithms: bool = False  # ssh-rsa and SHA-1 key exchange for an old sshd (openssh only)


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


class ShellTransport(ABC):
    """What every transport shares: argv and scripts wrapped the same way (preamble, sudo), secrets
    masked in what is shown, results checked. A subclass only says how to run a command line."""

    @property
    @abstractmethod
    def host(self) -> str: ...

    @abstractmethod
    def _sudo_password(self) -> str | None: ...

    @abstractmethod
    def _become_mode(self) -> Become:
        """How commands get root here; may open the connection first."""

    @abstractmethod
    def _execute(self, command: str, stdin: bytes | None, timeout: float | None, display: str) -> tuple[int, str, str]:
        """Run one sh command line with stdin; return (exit code, stdout, stderr)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = 300.0,
        secrets: Sequence[str] = (),
    ) -> CommandResult:
        become = self._become_mode()
        secrets = self._all_secrets(secrets)
        display = mask(join(argv), secrets)
        log.debug("%s: run %s", self.host, display)
        data = stdin_bytes(become, self._sudo_password(), stdin)
        return self._finish(command_line(argv, become), data, timeout, display, check, secrets)

    def run_script(
        self,
        script: str,
        *,
        check: bool = True,
        timeout: float | None = 300.0,
        secrets: Sequence[str] = (),
    ) -> CommandResult:
        become = self._become_mode()
        secrets = self._all_secrets(secrets)
        display = script_display(script, secrets)
        # Never the script's text: it may carry a pushed private key or a file that masking cannot know.
        log.debug("%s: script %s (%d bytes)", self.host, display, len(script))
        text = script_text(script).encode("utf-8", "surrogateescape")
        data = stdin_bytes(become, self._sudo_password(), text)
        return self._finish(script_command(become), data, timeout, display, check, secrets)

    def _all_secrets(self, secrets: Sequence[str]) -> list[str]:
        password = self._sudo_password()
        return [*secrets, password] if password else list(secrets)

    def _finish(
        self,
        command: str,
        data: bytes | None,
        timeout: float | None,
        display: str,
        check: bool,
        secrets: Sequence[str],
    ) -> CommandResult:
        rc, out, err = self._execute(command, data, timeout, display)
        password = self._sudo_password()
        if password:  # sudo -S never echoes it; this is belt and braces
            out, err = mask(out, [password]), mask(err, [password])
        return checked_result(self.host, display, rc, out, err, check=check, secrets=secrets)
