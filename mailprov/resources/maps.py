"""Postfix lookup tables: /etc/aliases (newaliases) and sender_access (postmap), and their compiled
files (`.db`, `.lmdb`, … in the host's map type). A compiled map older than its source is rebuilt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.config.model import Mailbox
from mailprov.facts.probe import Facts, Read
from mailprov.render import render_template
from mailprov.resources import files
from mailprov.resources.base import (
    Change,
    Command,
    Desired,
    Handler,
    HandlerStep,
    HostCheck,
    HostContext,
    ManagedFile,
    Phase,
    Resource,
)
from mailprov.resources.checks import FAIL, PASS, SKIP

NAME = "maps"
NEWALIASES = Handler(NAME, "newaliases")
POSTMAP = Handler(NAME, "postmap")
POSTFIX_RELOAD = Handler("postfix", "reload")  # a changed access table is read again on reload


@dataclass(frozen=True)
class Table:
    label: str  # aliases, sender_access
    source: str
    compiled: str
    rebuild: Handler


@dataclass(frozen=True)
class Maps(Desired):
    tables: tuple[Table, ...] = ()


def tables(ctx: HostContext) -> tuple[Table, ...]:
    d = ctx.dialect
    out = [Table("aliases", d.paths.aliases, d.compiled_map(d.paths.aliases), NEWALIASES)]
    if ctx.site.sender_access:
        src = d.paths.sender_access
        out.append(Table("sender_access", src, d.compiled_map(src), POSTMAP))
    return tuple(out)


class MapsResource(Resource[Maps]):
    name = NAME

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        t = tables(ctx)
        return files.reads([x.source for x in t], [x.compiled for x in t])

    def desired(self, ctx: HostContext) -> Maps:
        context = {"site": ctx.site, "maildir": ctx.site.mailbox is Mailbox.MAILDIR}
        rendered = {
            "aliases": ManagedFile(
                ctx.dialect.paths.aliases, render_template("postfix/aliases.j2", **context), "aliases"
            ),
            "sender_access": ManagedFile(
                ctx.dialect.paths.sender_access, render_template("postfix/sender_access.j2", **context), "map"
            ),
        }
        t = tables(ctx)
        return Maps(files=tuple(rendered[x.label] for x in t), tables=t)

    def changes(self, ctx: HostContext, desired: Maps, facts: Facts) -> Sequence[Change]:
        owed = {x.source: x.rebuild for x in desired.tables}

        def notify(f: ManagedFile, *_: object) -> frozenset[Handler]:
            rebuild = owed[f.path]
            return frozenset({rebuild}) if rebuild is NEWALIASES else frozenset({rebuild, POSTFIX_RELOAD})

        out = list(files.changes(desired.files, facts, notify))
        written = {c.file.path for c in out if c.file is not None}
        for table in desired.tables:
            if table.source in written:
                continue
            db = files.state(facts, table.compiled, secret=True)
            src = files.state(facts, table.source)
            if not db.exists or (src.exists and src.mtime > db.mtime):
                out.append(
                    Change(
                        f"map:{table.source}",
                        Phase.FILES,
                        "rebuild",
                        f"{table.source}: compiled map missing or stale",
                        notifies=frozenset({table.rebuild}),
                    )
                )
        return out

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        d = ctx.dialect
        steps = []
        if NEWALIASES.action in actions:
            steps.append(HandlerStep("newaliases", (Command(("newaliases",)),)))
        if POSTMAP.action in actions:
            target = f"{d.map_type}:{d.paths.sender_access}"
            steps.append(HandlerStep(f"postmap {target}", (Command(("postmap", target)),)))
        return steps

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        return tuple(HostCheck(f"host.map_fresh.{t.label}", partial(_fresh, table=t, ctx=ctx)) for t in tables(ctx))


def _fresh(h: object, table: Table, ctx: HostContext) -> tuple[str, str]:
    if not ctx.dialect.map_suffix:
        return SKIP, f"no known file name for {ctx.dialect.map_type}: maps"
    src, db = h.file(table.source), h.file(table.compiled)  # type: ignore[attr-defined]
    fix = "newaliases" if table.rebuild is NEWALIASES else f"postmap {ctx.dialect.map_type}:{table.source}"
    if not src.exists:
        return FAIL, f"{table.source} does not exist"
    if not db.exists:
        return FAIL, f"{table.compiled} does not exist: run {fix}"
    if db.mtime < src.mtime:
        return FAIL, f"{table.compiled} is older than {table.source}: run {fix}"
    return PASS, f"{table.compiled} is up to date with {table.source}"
