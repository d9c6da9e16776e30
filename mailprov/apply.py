"""Execute a HostPlan on its host: one script (mailprov/hostscript.py), run detached from the SSH session.
If the connection drops, mailprov connects again and reads how the apply ended. Nothing here decides
*what* to change: the plan did."""

from __future__ import annotations

import getpass
import secrets
import socket
import time
from collections.abc import Callable

from mailprov import __version__
from mailprov.errors import MailprovError, TransportError
from mailprov.hostscript import ApplyResult, build_script, ended, follow, launcher, parse_result, run_id
from mailprov.plan import HostPlan
from mailprov.transport.base import CommandResult, Transport

__all__ = ["ApplyResult", "execute"]

RECONNECT_SECONDS = 180.0  # how long to try to reach a host again after the connection dropped


def who() -> str:
    """Who runs this apply, for the host's lock message."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()} with mailprov {__version__}"


def execute(
    plan: HostPlan,
    transport: Transport,
    stamp: str,
    reconnect: Callable[[], Transport] | None = None,
) -> ApplyResult:
    """Run the plan on its host. An empty plan runs nothing at all."""
    if plan.empty:
        return ApplyResult(plan.host, True, ())
    run = run_id(stamp, secrets.token_hex(4))
    masks = [s.reveal() for s in plan.secrets()]
    try:
        result = transport.run_script(
            launcher(build_script(plan, stamp, who()), run), check=False, timeout=1800, secrets=masks
        )
    except TransportError as exc:
        if reconnect is None:
            raise
        return _after_a_cut(plan.host, run, exc, reconnect)
    output = result.stdout + ("\n" + result.stderr if result.stderr else "")
    if not ended(output) and reconnect is not None:
        # The launcher always prints the run's last line: without it, the session was cut off.
        return _after_a_cut(plan.host, run, TransportError(f"{plan.host}: the SSH session ended early"), reconnect)
    return parse_result(plan.host, result.rc, output)


def _after_a_cut(host: str, run: str, cut: TransportError, reconnect: Callable[[], Transport]) -> ApplyResult:
    """The launcher was cut off, not the apply: reach the host again and read how the apply ended."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    result: CommandResult | None = None
    last: MailprovError = cut
    while result is None and time.monotonic() < deadline:
        try:
            again = reconnect()
            try:
                result = again.run_script(follow(run), check=False, timeout=1900)
            finally:
                again.close()
        except MailprovError as exc:
            last = exc
            time.sleep(2.0)
    if result is None:
        return ApplyResult(
            host,
            False,
            (),
            "connection",
            f"the SSH connection to {host} was lost during the apply and could not be made again ({last}); "
            "the apply goes on on the host: run `mailprov plan` to see where it stands",
        )
    parsed = parse_result(host, result.rc, result.stdout)
    ended = "finished it" if parsed.ok else f"stopped it at {parsed.failed_step}"
    note = f"the SSH connection to {host} was lost during the apply; the host {ended} at {parsed.finished_at} UTC"
    return ApplyResult(
        host,
        parsed.ok,
        parsed.steps,
        parsed.failed_step,
        f"{note}: {parsed.message}" if parsed.message else note,
        parsed.rolled_back,
        parsed.output_tail,
        parsed.finished_at,
    )
