"""Write a rendered host to a directory, for review or for packaging (`mailprov render`).

`render` often runs as root, into a directory someone else may have prepared: nothing here follows a
symlink or writes outside `out`. Every directory below `out` is opened without following symlinks and
every file is written to a new temporary file (created with its final mode: a private key is never
readable by others, not even for a moment) and renamed over the old name, so a symlink or a hard link
planted at that name is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from pathlib import Path

from mailprov.errors import ConfigError
from mailprov.render import Rendered

MANIFEST = "manifest.json"


def write_tree(rendered: Rendered, out: Path) -> list[Path]:
    """Files at their host paths below `out` (a managed block as PATH.mailprov-block), plus a manifest."""
    root = _open_out(out)
    try:
        return _write_all(rendered, out, root)
    finally:
        os.close(root)


def _write_all(rendered: Rendered, out: Path, root: int) -> list[Path]:
    written: list[Path] = []
    manifest = []
    for f in rendered.files:
        if f.block and not f.text():
            continue  # an empty managed block: nothing to add to the distribution's file
        relative = f.path.lstrip("/") + (".mailprov-block" if f.block else "")
        _write(root, out, relative, f.text(), 0o600 if f.secret else 0o644)
        written.append(out / relative)
        manifest.append(
            {
                "path": f.path,
                "file": relative,
                "owner": f.owner,
                "group": f.group,
                "mode": f"{f.mode:04o}",
                "role": f.role,
                "managed_block": list(f.block) if f.block else None,
            }
        )
    if rendered.certificate:
        c = rendered.certificate
        manifest.append(
            {
                "path": c.key_path,
                "file": None,
                "owner": "root",
                "group": "root",
                "mode": "0600",
                "role": "cert",
                "managed_block": None,
            }
        )
    _write(
        root,
        out,
        MANIFEST,
        json.dumps(
            {
                "host": rendered.host.name,
                "platform": rendered.dialect.platform.to_json(),
                "files": manifest,
                "notes": list(rendered.notes),
            },
            indent=2,
        )
        + "\n",
        0o644,
    )
    return written


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open_out(out: Path) -> int:
    """The output directory, created if missing; refused when it is a symlink (give the real path)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.is_symlink():
            out.mkdir(exist_ok=True)
        return os.open(out, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) or out.is_symlink():
            raise ConfigError(f"--out {out} is a symlink or not a directory: give a real directory") from None
        raise ConfigError(f"--out {out}: cannot create or open it: {exc.strerror}") from None


def _write(root: int, out: Path, relative: str, content: str, mode: int) -> None:
    """content at out/relative, through directory descriptors only, created with mode, then renamed."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ConfigError(f"refusing to write {relative!r}: it would leave the output directory {out}")
    opened: list[int] = []
    parent = root
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=parent)
            try:
                parent = os.open(part, _DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ConfigError(
                        f"{out / relative}: {part} below {out} is a symlink or a file; mailprov never writes "
                        "through one: remove it, or give an empty --out directory"
                    ) from None
                raise
            opened.append(parent)
        name = parts[-1]
        temporary = f".{name}.mailprov-{secrets.token_hex(6)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temporary, flags, mode, dir_fd=parent)
        try:
            os.fchmod(fd, mode)  # exactly mode, whatever the umask
            with os.fdopen(fd, "wb") as handle:
                handle.write(content.encode("utf-8"))
            os.rename(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {out / relative}: {exc.strerror}") from None
    finally:
        for fd in reversed(opened):
            os.close(fd)
