"""Postfix lookup tables: /etc/aliases (newaliases), sender_access and sender_login (postmap), and their
compiled files (`.db`, `.lmdb`, … in the host's map type). A compiled map older than its source is rebuilt.

sender_login (smtpd_sender_login_maps, with submission or smtps) says which login owns which address: a
user owns login@ and their aliases @ the site's domain and each host's name, and every site alias that
points to that user alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.config.model import Mailbox, Site
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
POSTMAP_LOGINS = Handler(NAME, "postmap-logins")
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
    if ctx.site.sasl.enabled and (ctx.site.postfix.submission or ctx.site.postfix.smtps):
        src = d.paths.sender_login
        out.append(Table("sender_login", src, d.compiled_map(src), POSTMAP_LOGINS))
    return tuple(out)


def sender_owners(site: Site) -> tuple[tuple[str, str], ...]:
    """(address, login) for smtpd_sender_login_maps, sorted: each address has exactly one owner."""
    domains = (site.domain, *(h.name for h in site.hosts if h.name != site.domain))
    logins = {u.login for u in site.users}
    names: dict[str, str] = {}
    for user in site.users:
        for name in (user.login, *user.aliases):
            names[name] = user.login
    for alias, targets in site.aliases.items():
        if len(targets) == 1 and targets[0] in logins:
            names[alias] = targets[0]
    return tuple(sorted((f"{name}@{domain}", login) for name, login in names.items() for domain in domains))


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
            "sender_login": ManagedFile(
                ctx.dialect.paths.sender_login,
                render_template("postfix/sender_login.j2", owners=sender_owners(ctx.site)),
                "map",
            ),
        }
        t = tables(ctx)
        return Maps(files=tuple(rendered[x.label] for x in t), tables=t)

    def changes(self, ctx: HostContext, desired: Maps, facts: Facts) -> Sequence[Change]:
        owed = {x.source: x.rebuild for x in desired.tables}

        def notify(f: ManagedFile, *_: object) -> frozenset[Handler]:
            rebuild = owed[f.path]
            return frozenset({rebuild}) if rebuild == NEWALIASES else frozenset({rebuild, POSTFIX_RELOAD})

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
        for handler, source in ((POSTMAP, d.paths.sender_access), (POSTMAP_LOGINS, d.paths.sender_login)):
            if handler.action in actions:
                target = f"{d.map_type}:{source}"
                steps.append(HandlerStep(f"postmap {target}", (Command(("postmap", target)),)))
        return steps

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        return tuple(HostCheck(f"host.map_fresh.{t.label}", partial(_fresh, table=t, ctx=ctx)) for t in tables(ctx))


def _fresh(h: object, table: Table, ctx: HostContext) -> tuple[str, str]:
    if not ctx.dialect.map_suffix:
        return SKIP, f"no known file name for {ctx.dialect.map_type}: maps"
    src, db = h.file(table.source), h.file(table.compiled)  # type: ignore[attr-defined]
    fix = "newaliases" if table.rebuild == NEWALIASES else f"postmap {ctx.dialect.map_type}:{table.source}"
    if not src.exists:
        return FAIL, f"{table.source} does not exist"
    if not db.exists:
        return FAIL, f"{table.compiled} does not exist: run {fix}"
    if db.mtime < src.mtime:
        return FAIL, f"{table.compiled} is older than {table.source}: run {fix}"
    return PASS, f"{table.compiled} is up to date with {table.source}"
