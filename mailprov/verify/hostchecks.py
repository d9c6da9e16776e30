"""Checks on the host itself: each resource's on-host checks, run with pytest-testinfra's modules over
mailprov's own SSH transport.

testinfra's paramiko backend accepts unknown host keys (paramiko's WarningPolicy, and it never reads
known_hosts), so it is not used: `TransportBackend` runs testinfra's commands through the `Transport`
that verify was given, whose host key checking is strict (unknown or changed keys are refused), with
the same user, key, known_hosts and sudo settings as `plan` and `apply`.
"""

from __future__ import annotations

from typing import Any

import testinfra.backend.base
import testinfra.host

from mailprov.errors import MailprovError
from mailprov.resources import REGISTRY
from mailprov.resources.base import HostContext
from mailprov.resources.checks import tail
from mailprov.transport.base import Transport
from mailprov.transport.shell import quote
from mailprov.verify.results import CheckResult, Status

COMMAND_TIMEOUT = 60.0


class TransportBackend(testinfra.backend.base.BaseBackend):  # type: ignore[misc]
    """A testinfra backend whose commands go through a mailprov Transport (already logged in)."""

    NAME = "mailprov"

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport.host)
        self._transport = transport
        self._encoding = "utf-8"  # testinfra would ask the host's Python, which a minimal host lacks

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        cmd = self.get_command(command, *args)
        result = self._transport.run_script(cmd, check=False, timeout=COMMAND_TIMEOUT)
        return self.result(result.rc, self.encode(cmd), result.stdout, result.stderr)


def testinfra_host(transport: Transport) -> Any:
    """A `testinfra.host.Host` over `transport` (fresh: testinfra's own host cache is not used)."""
    backend = TransportBackend(transport)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def host_checks(ctx: HostContext, transport: Transport) -> list[CheckResult]:
    """Every resource's on-host checks, one result each.

    Each check runs on its own: testinfra's assertion on an unexpected exit status, or a dropped SSH
    session, fails that check by name and the others still run.
    """
    h = testinfra_host(transport)
    out: list[CheckResult] = []
    for resource in REGISTRY:
        for check in resource.checks(ctx):
            try:
                status, detail = check.probe(h)
            except (AssertionError, RuntimeError, MailprovError) as exc:
                status, detail = "fail", f"could not check: {tail(str(exc))}"
            out.append(CheckResult(ctx.host.name, check.name, _status(status), detail))
    return out


def _status(text: str) -> Status:
    return "pass" if text == "pass" else "skip" if text == "skip" else "fail"


def find_in_maildir(transport: Transport, login: str, token: str) -> list[str]:
    """Files in the user's Maildir (new/ and cur/) that contain `token`."""
    script = (
        f"h=$(getent passwd {quote(login)} | cut -d: -f6) && "
        f'grep -rlF -- {quote(token)} "$h/Maildir/new" "$h/Maildir/cur" 2>/dev/null; true'
    )
    result = transport.run_script(script, check=False, timeout=COMMAND_TIMEOUT)
    # "\n" only, never splitlines(): a file name holding U+2028 or U+0085 is one name, not two.
    return [line for line in result.stdout.split("\n") if line.strip()]


def remove_files(transport: Transport, paths: list[str]) -> None:
    """Remove verify's own test messages (paths find_in_maildir returned) so no mailbox keeps them."""
    transport.run(["rm", "-f", "--", *paths], check=False, timeout=COMMAND_TIMEOUT)
