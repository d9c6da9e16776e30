"""The state of a file on a host: a read (shell) and a pure parser. Secret files and compiled maps are
only stat'ed and checksummed, never read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailprov.errors import FactsError
from mailprov.facts.probe import EOF_MARK, Read
from mailprov.transport.shell import quote


@dataclass(frozen=True)
class FileState:
    path: str
    exists: bool
    owner: str = ""
    group: str = ""
    mode: int = 0
    content: str | None = None  # None for secret files and maps (only md5 is read)
    md5: str = ""
    mtime: int = 0


def read_file(path: str) -> Read:
    """Owner, group, mode, mtime, md5 and the whole content, byte-exact."""
    p = quote(path)
    return Read(
        f"file {path}",
        f"if [ -f {p} ]; then stat -c '%U %G %a %Y' {p}; md5sum < {p}; cat {p}; printf '\\n%s\\n' \"{EOF_MARK}\"; fi",
    )


def stat_file(path: str) -> Read:
    """Owner, group, mode, mtime and md5 only: for secrets (never read back) and compiled maps."""
    p = quote(path)
    return Read(f"stat {path}", f"[ -f {p} ] && stat -c '%U %G %a %Y' {p} && md5sum < {p}")


def parse_file(path: str, body: str) -> FileState:
    if not body.strip():
        return FileState(path, exists=False)
    stat_line, md5_line, rest = [*body.split("\n", 2), "", ""][:3]
    end = rest.rfind(f"\n{EOF_MARK}")
    if end < 0:
        raise FactsError(f"{path}: file content was cut short in the probe output")
    owner, group, mode, mtime = _stat_line(stat_line)
    return FileState(path, True, owner, group, mode, rest[:end], md5_line.split()[0], mtime)


def parse_stat(path: str, body: str) -> FileState:
    lines = [line for line in body.split("\n") if line.strip()]
    if len(lines) < 2:
        return FileState(path, exists=False)
    owner, group, mode, mtime = _stat_line(lines[0])
    return FileState(path, True, owner, group, mode, None, lines[1].split()[0], mtime)


def _stat_line(line: str) -> tuple[str, str, int, int]:
    try:
        owner, group, mode, mtime = line.split()[:4]
        return owner, group, int(mode, 8), int(mtime)
    except ValueError:
        raise FactsError(f"unexpected stat output {line[:80]!r}") from None


def file_md5(content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.md5(data).hexdigest()  # change detection only, as md5sum on the host
