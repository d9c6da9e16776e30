"""The only module that formats output: messages, tables, colored unified diffs, JSON.

Everything reaches the terminal through a `Reporter`, so colors, JSON mode and redaction are decided
in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text


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

    def json(self, data: Any) -> None:
        self.stream.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        self.stream.flush()
