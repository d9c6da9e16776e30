"""Which processes are using the lab, so a test session's clean-up does not pull hosts from under another.

Several people and test sessions share one machine's lab. Every process that calls `up()` leaves a lease
(state dir `users/<pid>`, holding the process's start time so a reused PID is not mistaken for it). A
lease counts while that process lives. `down()` itself is unconditional: an explicit `lab down` is meant.
"""

from __future__ import annotations

import os
from pathlib import Path

from mailprov.lab.paths import LabPaths


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the PID, names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 and fields[0] not in ("Z", "X") else None


def register_user(paths: LabPaths) -> None:
    """Record that this process uses the lab (until it exits)."""
    folder = paths.state / "users"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).write_text(f"{_start_time(os.getpid())}\n")


def other_users(paths: LabPaths | None = None) -> list[int]:
    """PIDs of other live processes that brought lab hosts up; leases of finished processes are dropped."""
    folder = (paths or LabPaths.from_env()).state / "users"
    if not folder.is_dir():
        return []
    users = []
    for lease in folder.iterdir():
        pid = int(lease.name) if lease.name.isdigit() else 0
        if pid == os.getpid():
            continue
        try:
            recorded = lease.read_text().strip()
        except OSError:
            continue
        if pid and recorded == _start_time(pid):
            users.append(pid)
        else:
            lease.unlink(missing_ok=True)
    return sorted(users)


def release(paths: LabPaths | None = None) -> None:
    """This process no longer uses the lab."""
    ((paths or LabPaths.from_env()).state / "users" / str(os.getpid())).unlink(missing_ok=True)
