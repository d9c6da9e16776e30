"""Leases: a test session can tell whether another live process still uses the lab before taking it down."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mailprov.lab.paths import LabPaths
from mailprov.lab.users import _start_time, other_users, register_user, release


def test_live_other_processes_count_and_finished_ones_are_dropped(tmp_path: Path) -> None:
    paths = LabPaths(state=tmp_path, images=tmp_path / "images")
    register_user(paths)  # this process: never counted as "other"
    other = subprocess.Popen(["sleep", "30"])
    finished = subprocess.Popen(["true"])
    finished.wait()
    users = tmp_path / "users"
    (users / str(other.pid)).write_text(f"{_start_time(other.pid)}\n")
    (users / str(finished.pid)).write_text("12345\n")
    (users / "1").write_text("0\n")  # PID 1 lives, but started at another time: a reused PID
    try:
        assert other_users(paths) == [other.pid]
        assert sorted(p.name for p in users.iterdir()) == sorted([str(other.pid), str(os.getpid())])
    finally:
        other.kill()
        other.wait()
    assert other_users(paths) == []
    release(paths)
    assert list(users.iterdir()) == []
