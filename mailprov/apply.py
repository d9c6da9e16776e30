"""Execute a HostPlan on its host: one script (mailprov/hostscript.py), one round trip. Nothing here
decides *what* to change: the plan did."""

from __future__ import annotations

from mailprov.hostscript import ApplyResult, build_script, parse_result
from mailprov.plan import HostPlan
from mailprov.transport.base import Transport

__all__ = ["ApplyResult", "execute"]


def execute(plan: HostPlan, transport: Transport, stamp: str) -> ApplyResult:
    """Run the plan on its host. An empty plan runs nothing at all."""
    if plan.empty:
        return ApplyResult(plan.host, True, ())
    script = build_script(plan, stamp)
    secrets = [s.reveal() for s in plan.secrets()]
    result = transport.run_script(script, check=False, timeout=1800, secrets=secrets)
    return parse_result(plan.host, result.rc, result.stdout + ("\n" + result.stderr if result.stderr else ""))
