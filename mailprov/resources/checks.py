"""Helpers for on-host checks that several resources share. A check gets a testinfra Host (duck-typed:
resources do not import testinfra; verify runs the checks over its own strict SSH transport)."""

from __future__ import annotations

from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


def verdict(ok: bool, detail: str) -> tuple[str, str]:
    return (PASS if ok else FAIL), detail


def quiet_command(h: Any, command: str, *, stdout_counts: bool) -> tuple[str, str]:
    """Exit 0 and nothing on stderr (nor on stdout, for `postfix check`): warnings are findings."""
    cmd = h.run(command)
    noise = ((cmd.stdout if stdout_counts else "") + cmd.stderr).strip()
    if cmd.rc == 0 and not noise:
        return PASS, f"{command}: clean"
    return FAIL, f"{command} (exit {cmd.rc}): {tail(noise)}"


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().split("\n")[-lines:]) or "(no output)"
