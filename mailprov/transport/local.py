"""LocalTransport: the Transport contract on this machine (tests, and mailprov run on the server itself).

Commands go through `sh -c` exactly as over SSH (same preamble, same sudo wrapping), so what works here
works on a host.
"""

from __future__ import annotations

import getpass
import logging
import os
import signal
import subprocess
from types import TracebackType

from mailprov.errors import TransportError
from mailprov.transport import shell
from mailprov.transport.base import ShellTransport
from mailprov.transport.shell import Become

log = logging.getLogger(__name__)


class LocalTransport(ShellTransport):
    """Runs commands on this machine; `become` uses sudo unless already root."""

    def __init__(self, host: str = "localhost", *, become: bool = False, sudo_password: str | None = None) -> None:
        self._host = host
        self._want_become = become
        self._password = sudo_password
        self._become: Become | None = None
        self._round_trips = 0

    @property
    def host(self) -> str:
        return self._host

    @property
    def round_trips(self) -> int:
        return self._round_trips

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release; kept for the contract."""

    def _sudo_password(self) -> str | None:
        return self._password

    def _become_mode(self) -> Become:
        if self._become is None:
            if not self._want_become or os.geteuid() == 0:
                self._become = Become.NONE
            else:
                self._become = shell.resolve_become(self._host, getpass.getuser(), self._password, self._probe)
        return self._become

    def _probe(self, command: str, stdin: bytes | None) -> tuple[int, str]:
        rc, _, err = self._execute(command, stdin, 30.0, "sudo probe")
        return rc, err

    def _execute(self, command: str, stdin: bytes | None, timeout: float | None, display: str) -> tuple[int, str, str]:
        self._round_trips += 1
        # A session of its own, so a timeout can kill the whole process group, not just sh.
        proc = subprocess.Popen(
            ["sh", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin or b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            try:  # a daemon that left the group may still hold the pipes: do not wait on it
                proc.communicate(timeout=1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise TransportError(f"{self._host}: command timed out after {timeout:g}s: {display}") from None
        return proc.returncode, _text(out), _text(err)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
