"""The only module that formats output: messages, tables, colored unified diffs, JSON.

Everything reaches the terminal through a `Reporter`, so colors, JSON mode and redaction are decided
in one place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold red": "1;31"}
# Control and invisible formatting characters a host or a site could put in a message: shown escaped, so
# no output can move the cursor, recolor the terminal or reorder text (bidi overrides).
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def clean(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_STATUS_STYLE = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}
_NAME_WIDTH = 30  # longer check names push their detail right instead of widening every line


class Reporter:
    """Lines are written directly (rich is loaded only for tables and diffs: a quick command needs none)."""

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self._color = color
        self._console: Console | None = None

    @property
    def color(self) -> bool:
        if self._color is not None:
            return self._color
        return self.stream.isatty() and "NO_COLOR" not in os.environ

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.stream,
                highlight=False,
                soft_wrap=True,
                no_color=self._color is False,
                force_terminal=self._color if self._color else None,
            )
        return self._console

    def _write(self, stream: TextIO, parts: Sequence[tuple[str, str | None]], *, color: bool) -> None:
        text = "".join(
            f"\x1b[{_STYLES[style]}m{clean(t)}\x1b[0m" if color and style in _STYLES else clean(t) for t, style in parts
        )
        stream.write(text + "\n")
        stream.flush()

    # -- plain lines ------------------------------------------------------------------------------------

    def line(self, text: str = "", style: str | None = None) -> None:
        self._write(self.stream, [(text, style)], color=self.color)

    def heading(self, text: str) -> None:
        self.line(text, "bold")

    def ok(self, text: str) -> None:
        self._write(self.stream, [("✓ ", "green"), (text, None)], color=self.color)

    def warn(self, text: str) -> None:
        self._write(self.stream, [("! ", "yellow"), (text, None)], color=self.color)

    def fail(self, text: str) -> None:
        """A failed outcome on the normal output (error() is for errors, on stderr)."""
        self._write(self.stream, [("✗ ", "bold red"), (text, None)], color=self.color)

    def error(self, text: str) -> None:
        self._write(sys.stderr, [("error: ", "bold red"), (text, None)], color=sys.stderr.isatty())

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
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, show_lines=False, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*[Text(clean(str(c))) for c in row])
        self.console.print(table)

    def checks(self, rows: Iterable[Sequence[str]], width: int | None = None) -> None:
        """Check results, one line each: `STATUS  name  short detail`, cut to the width (80 when not a
        terminal, as in CI logs) with `…`. A failure whose detail was cut gets it in full below, indented.
        Rows are (host, name, STATUS, detail), hosts in order; each host starts with its name as a heading."""
        rows = list(rows)
        width = width or (shutil.get_terminal_size((80, 24)).columns if self.stream.isatty() else 80)
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
            self._write(
                self.stream, [(status.ljust(4), _STATUS_STYLE.get(status)), (head + short, None)], color=self.color
            )
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
            handlers=[{"name": h.name, "commands": [cmd.display() for cmd in h.commands]} for h in plan.handlers],
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


def site_data(outcome: Any) -> dict[str, Any]:
    """A site resource's plan (and apply) as JSON-ready data: records are data, no secret is in them."""
    plan = outcome.plan
    data: dict[str, Any] = {"site": outcome.resource, "error": outcome.error}
    if plan is not None:
        data.update(
            notes=list(plan.notes),
            changes=[
                {"key": c.key, "action": c.action, "summary": c.summary, "diff": list(c.diff)} for c in plan.changes
            ],
        )
    if outcome.applied is not None:
        data["applied"] = outcome.applied
    return data


def show_site_plan(reporter: Reporter, outcome: Any, *, diffs: bool = True) -> None:
    """A site resource's changes (the DNS records), shown after the hosts' plans like a host's; after an
    apply (diffs=False) one line per change and what was done."""
    data = site_data(outcome)
    if data["error"]:
        reporter.line(f"● site: {outcome.resource}", "bold red")
        reporter.error(f"{outcome.resource}: {data['error']}")
        return
    if not data.get("changes") and not data.get("notes"):
        return  # nothing kept (no `dns:`) and nothing to say
    reporter.line(f"● site: {outcome.resource}", "bold")
    for note in data["notes"]:
        reporter.warn(note)
    if not data["changes"]:
        reporter.ok(f"no changes: the {outcome.resource} records match the site")
    for change in data["changes"]:
        mark = {"update": "~", "delete": "-"}.get(change["action"], "+")
        reporter.line(f"  {mark} {change['summary']}")
        if diffs:
            reporter.diff("      " + line for line in change["diff"])
    if "applied" in data:
        reporter.ok(f"{outcome.resource}: {data['applied']}")


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
            status, detail = ("unchanged" if n == 0 else f"applied {n} change{'s' if n != 1 else ''}"), result.message
        else:
            status = "FAILED" + (" (rolled back)" if result.rolled_back else "")
            detail = f"{result.failed_step}: {result.message}"[:300]
            if result.output_tail:
                detail += "\n" + result.output_tail[-600:]
        rows.append([o.host, status, detail])
    reporter.table("summary", ["host", "status", "detail"], rows)
