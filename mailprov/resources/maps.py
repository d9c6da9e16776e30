"""Postfix lookup tables: /etc/aliases (newaliases), sender_access and sender_login (postmap), and their
compiled files (`.db`, `.lmdb`, … in the host's map type). A compiled map older than its source is rebuilt.

/etc/aliases belongs to the distribution (CentOS's setup package ships some 70 system aliases; Debian's
Postfix writes `postmaster: root`): the site's aliases are a marked block in it. The distribution's
entries are kept, less those whose name the block defines (Postfix keeps the first of two entries, so a
distribution's `root:` would otherwise win); the removal shows in the diff.

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
ALIASES_BLOCK = ("# BEGIN mailprov aliases", "# END mailprov aliases")
# The first line an earlier mailprov wrote when it replaced /etc/aliases whole: all of it was mailprov's.
_OLD_HEADER = "# Managed by mailprov: edits here are overwritten on the next apply."
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
                ctx.dialect.paths.aliases,
                render_template("postfix/aliases.j2", **context),
                "aliases",
                block=ALIASES_BLOCK,
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

        merged = tuple(_merged_aliases(f, facts) if f.block == ALIASES_BLOCK else f for f in desired.files)
        out = list(files.changes(merged, facts, notify))
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


def alias_names(text: str) -> frozenset[str]:
    """The names an aliases(5) text defines (folded to lower case, as Postfix looks them up)."""
    return frozenset(name for name, _ in _entries(text.split("\n")) if name)


def _entries(lines: list[str]) -> list[tuple[str, list[str]]]:
    """aliases(5) lines grouped into entries: (name, its lines with continuations); ("", [line]) for
    comments, blank lines and anything that is not an entry."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out and out[-1][0]:
            out[-1][1].append(line)  # a continuation of the entry above
            continue
        name, sep, _ = line.partition(":")
        name = name.strip().strip('"').lower()
        entry = bool(sep) and bool(name) and not line.lstrip().startswith("#")
        out.append((name if entry else "", [line]))
    return out


def merge_aliases(current: str, block: str, markers: tuple[str, str] = ALIASES_BLOCK) -> str:
    """The distribution's /etc/aliases with the site's block: `current` without any previous block, without
    the entries the block defines, then the block. A file an earlier mailprov wrote whole is the block alone."""
    begin, end = markers
    lines = current.split("\n") if not current.startswith(_OLD_HEADER) else []
    if lines and lines[-1] == "":
        lines.pop()
    if begin in lines and end in lines[lines.index(begin) :]:
        start = lines.index(begin)
        lines = lines[:start] + lines[lines.index(end, start) + 1 :]
    ours = alias_names(block)
    kept = [line for name, group in _entries(lines) if not (name and name in ours) for line in group]
    while kept and not kept[-1].strip():
        kept.pop()
    base = "\n".join(kept) + "\n" if kept else ""
    return f"{base}{begin}\n{block}{end}\n"


def _merged_aliases(f: ManagedFile, facts: Facts) -> ManagedFile:
    current = files.state(facts, f.path)
    text = merge_aliases(current.content or "" if current.exists else "", f.text())
    return ManagedFile(f.path, text, f.role, f.owner, f.group, f.mode)


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
