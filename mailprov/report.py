"""The only module that formats output: messages, tables, colored unified diffs, JSON.

Everything reaches the terminal through a `Reporter`, so colors, JSON mode and redaction are decided
in one place.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

_STATUS_STYLE = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}
_NAME_WIDTH = 30  # longer check names push their detail right instead of widening every line


class Reporter:
    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.console = Console(
            file=self.stream,
            highlight=False,
            soft_wrap=True,
            no_color=color is False,
            force_terminal=color if color else None,
        )

    # -- plain lines ------------------------------------------------------------------------------------

    def line(self, text: str = "", style: str | None = None) -> None:
        self.console.print(Text(text, style=style) if style else Text(text))

    def heading(self, text: str) -> None:
        self.console.print(Text(text, style="bold"))

    def ok(self, text: str) -> None:
        self.console.print(Text("✓ ", style="green") + Text(text))

    def warn(self, text: str) -> None:
        self.console.print(Text("! ", style="yellow") + Text(text))

    def fail(self, text: str) -> None:
        """A failed outcome on the normal output (error() is for errors, on stderr)."""
        self.console.print(Text("✗ ", style="bold red") + Text(text))

    def error(self, text: str) -> None:
        err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        err.print(Text("error: ", style="bold red") + Text(text))

    # -- structures -------------------------------------------------------------------------------------

    def diff(self, lines: Iterable[str]) -> None:
        """A unified diff, colored: additions green, removals red, hunk headers cyan."""
        for line in lines:
            if line.startswith(("+++", "---")):
                style = "bold"
            elif line.startswith("+"):
                style = "green"
            elif line.startswith("-"):
                style = "red"
            elif line.startswith("@@"):
                style = "cyan"
            else:
                style = None
            self.line(line.rstrip("\n"), style)

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        table = Table(title=title, show_lines=False, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*[Text(str(c)) for c in row])
        self.console.print(table)

    def checks(self, rows: Iterable[Sequence[str]], width: int | None = None) -> None:
        """Check results, one line each: `STATUS  name  short detail`, cut to the width (80 when not a
        terminal, as in CI logs) with `…`. A failure whose detail was cut gets it in full below, indented.
        Rows are (host, name, STATUS, detail), hosts in order; each host starts with its name as a heading."""
        rows = list(rows)
        width = width or self.console.width
        name_width = min(max((len(r[1]) for r in rows), default=0), _NAME_WIDTH)
        current = None
        for host, name, status, detail in rows:
            if host != current:
                self.heading(host)
                current = host
            head = f"  {name:<{name_width}}  "
            flat = " ".join(detail.split())
            room = width - len(status.ljust(4)) - len(head)
            short = flat if len(flat) <= room else flat[: max(room - 1, 0)] + "…"
            self.console.print(Text(status.ljust(4), style=_STATUS_STYLE.get(status, "")) + Text(head + short))
            if status == "FAIL" and short != flat:
                for part in detail.split("\n"):
                    for piece in textwrap.wrap(part, max(width - 6, 20), break_on_hyphens=False) or [""]:
                        self.line("      " + piece)

    def json(self, data: Any) -> None:
        self.stream.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        self.stream.flush()


# --- plans and apply results ---------------------------------------------------------------------------


def plan_data(outcome: Any) -> dict[str, Any]:
    """A host's plan as JSON-ready data (secrets already redacted in the plan's diffs and commands)."""
    from mailprov.apply import handler_commands

    plan = outcome.plan
    data: dict[str, Any] = {"host": outcome.host, "error": outcome.error}
    if plan is not None:
        data.update(
            platform=plan.platform,
            notes=list(plan.notes),
            changes=[
                {
                    "key": c.key,
                    "action": c.action,
                    "summary": c.summary,
                    "drift": c.drift,
                    "diff": list(c.diff),
                    "commands": [cmd.display() for cmd in c.commands],
                }
                for c in plan.changes
            ],
            handlers=[{"name": h.name.lower(), "commands": handler_commands(h, plan)} for h in plan.handlers],
        )
    result = getattr(outcome, "result", None)
    if result is not None:
        data["apply"] = {
            "ok": result.ok,
            "steps": list(result.steps),
            "failed_step": result.failed_step,
            "message": result.message,
            "rolled_back": result.rolled_back,
        }
    return data


def show_plan(reporter: Reporter, outcome: Any) -> None:
    data = plan_data(outcome)
    if data["error"]:
        reporter.line(f"● {outcome.host}", "bold red")
        reporter.error(f"{outcome.host}: {data['error']}")
        return
    reporter.line(f"● {outcome.host}  ({data['platform']})", "bold")
    for note in data["notes"]:
        reporter.warn(note)
    if not data["changes"]:
        reporter.ok("no changes: the host matches the site")
        return
    for change in data["changes"]:
        reporter.line(
            f"  {'~' if change['action'] == 'update' else '+'} {change['summary']}",
            "yellow" if change["drift"] else None,
        )
        for command in change["commands"]:
            reporter.line(f"      $ {command}", "dim")
        if change["diff"]:
            reporter.diff("      " + line for line in change["diff"])
    for handler in data["handlers"]:
        reporter.line(f"  ↻ {handler['name']}: {'; '.join(handler['commands'])}", "cyan")


def show_summary(reporter: Reporter, outcomes: Sequence[Any]) -> None:
    rows = []
    for o in outcomes:
        if o.error and o.plan is None:
            rows.append([o.host, "error", o.error.splitlines()[0][:80]])
            continue
        n = len(o.plan.changes) if o.plan else 0
        result = getattr(o, "result", None)
        if result is None and not o.error:
            status = "no changes" if n == 0 else f"{n} change{'s' if n != 1 else ''} pending"
            detail = ""
        elif o.error or result is None:
            status, detail = "error", (o.error or "").splitlines()[0][:80] if o.error else ""
        elif result.ok:
            status, detail = ("unchanged" if n == 0 else f"applied {n} change{'s' if n != 1 else ''}"), ""
        else:
            status = "FAILED" + (" (rolled back)" if result.rolled_back else "")
            detail = f"{result.failed_step}: {result.message}"[:300]
            if result.output_tail:
                detail += "\n" + result.output_tail[-600:]
        rows.append([o.host, status, detail])
    reporter.table("summary", ["host", "status", "detail"], rows)
