"""Managed files, shared by every resource that writes some: what to read, and the diff of desired
against the host (content, owner/mode, drift since mailprov last wrote it, blocks inside a
distribution's file). Staging, validation and the switch are the host script's (mailprov/hostscript.py)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

from mailprov.facts.files import FileState, file_md5, parse_file, parse_stat, read_file, stat_file
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.paths import APPLIED_STATE
from mailprov.resources.base import Change, Handler, ManagedFile, Phase

APPLIED_READ = Read("applied", f"cat {APPLIED_STATE}")


def reads(paths: Iterable[str], secret_paths: Iterable[str] = ()) -> list[Read]:
    """Plain files are read whole; secret files only stat'ed and checksummed. Plus mailprov's record."""
    return [*(read_file(p) for p in paths), *(stat_file(p) for p in secret_paths), APPLIED_READ]


def state(facts: Facts, path: str, *, secret: bool = False) -> FileState:
    if secret:
        return parse_stat(path, facts.section(f"stat {path}"))
    return parse_file(path, facts.section(f"file {path}"))


def applied(facts: Facts) -> dict[str, str]:
    """path → md5 of what mailprov last wrote there."""
    out = {}
    for line in lines_of(facts.sections.get("applied", "")):
        md5, _, path = line.partition(" ")
        if path:
            out[path] = md5
    return out


def desired_content(f: ManagedFile, current: FileState) -> str:
    """What the file will contain: the whole rendering, or the host's file with our block replaced."""
    if f.block is None:
        return f.text()
    begin, end = f.block
    base = current.content if current.exists and current.content is not None else ""
    lines = base.split("\n")
    if begin in lines and end in lines[lines.index(begin) :]:
        start = lines.index(begin)
        stop = lines.index(end, start)
        base = "\n".join(lines[:start] + lines[stop + 1 :])
    if base and not base.endswith("\n"):
        base += "\n"
    body = f.text()
    if not body:
        return base
    return f"{base}{begin}\n{body}{end}\n"


Notify = Callable[[ManagedFile, FileState, str], frozenset[Handler]]


def changes(files: Sequence[ManagedFile], facts: Facts, notify: Notify) -> list[Change]:
    """One change per file that differs from the host. `notify(file, current, new_content)` says which
    handlers a content change owes (owner or mode alone owes none)."""
    record = applied(facts)
    out: list[Change] = []
    for f in files:
        current = state(facts, f.path, secret=f.secret)
        if f.block is not None and not current.exists:
            # The distribution's file (master.cf) comes with the package, later in this run: the block is
            # merged into it on the host, after installation.
            if f.text():
                block = f"{f.block[0]}\n{f.text()}{f.block[1]}\n"
                out.append(
                    Change(
                        f"file:{f.path}",
                        Phase.FILES,
                        "update",
                        f"{f.path}: add the mailprov block",
                        diff=_diff(f.path, "", block, secret=False, exists=True),
                        file=f,
                        notifies=notify(f, current, block),
                    )
                )
            continue
        content = desired_content(f, current)
        same_content = current.exists and current.md5 == file_md5(content)
        same_meta = current.exists and (current.owner, current.group, current.mode) == (f.owner, f.group, f.mode)
        if same_content and same_meta:
            continue
        drift = current.exists and f.path in record and record[f.path] != current.md5
        if same_content:
            summary = f"{f.path}: owner/mode → {f.owner}:{f.group} {f.mode:04o}"
            diff: tuple[str, ...] = ()
        else:
            old = (current.content or "") if current.exists else ""
            diff = _diff(f.path, old, content, secret=f.secret, exists=current.exists)
            summary = f"{f.path}: {'update' if current.exists else 'create'}" + (
                " (edited on the host since the last apply: drift)" if drift else ""
            )
        # A block merged here is written whole; only a file that does not exist yet is merged on the host.
        final = f if f.block is None else ManagedFile(f.path, content, f.role, f.owner, f.group, f.mode)
        out.append(
            Change(
                f"file:{f.path}",
                Phase.FILES,
                "update" if current.exists else "create",
                summary,
                diff=diff,
                file=final,
                notifies=frozenset() if same_content else notify(f, current, content),
                drift=drift,
            )
        )
    return out


def _diff(path: str, old: str, new: str, *, secret: bool, exists: bool) -> tuple[str, ...]:
    if secret:
        return (f"--- {path}", f"+++ {path}", "@@ content redacted (secret) @@")
    return tuple(
        difflib.unified_diff(
            _lines(old),
            _lines(new),
            fromfile=path if exists else "/dev/null",
            tofile=path,
            n=2,
        )
    )


def _lines(text: str) -> list[str]:
    """Lines as the daemons read them: split at \n only (U+2028 or \r inside a line is not a break)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def notifying(*handlers: Handler) -> Notify:
    """A notify function that owes the same handlers for every file."""
    owed = frozenset(handlers)
    return lambda _f, _current, _content: owed
