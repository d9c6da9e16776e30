"""Running the lab's own commands on the runner: argv lists, errors that show the stderr tail."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from mailprov.errors import LabError

_TAIL_LINES = 15


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    """The last lines of a command's output, which is where tools say what went wrong."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    what: str,
    check: bool = True,
    timeout: float | None = 120.0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one runner-side command; with check=True a failure raises LabError naming `what` failed."""
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {argv[0]} is not installed (run scripts/lab-prereqs.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: `{' '.join(argv)}` did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        detail = tail(result.stderr or result.stdout)
        raise LabError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}" + (f"\n{detail}" if detail else "")
        )
    return result


def require_root_on_linux() -> None:
    """The lab creates namespaces, mounts and bridges: that takes root on Linux."""
    if not sys.platform.startswith("linux"):
        raise LabError(f"the lab needs Linux (network namespaces, overlayfs); this is {sys.platform}")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, bridges): run it with sudo")


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Serialize lab operations across processes (two `lab up` at once would race on names)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers never see a half-written file: write a sibling, then rename over."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.chmod(mode)
    temporary.replace(path)
