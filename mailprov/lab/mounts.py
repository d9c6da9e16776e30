"""Mount bookkeeping in the runner's mount namespace: what is mounted under a lab folder, and safe removal."""

from __future__ import annotations

import re
from pathlib import Path

from mailprov.errors import LabError
from mailprov.lab.commands import run

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def parse_mount_points(mountinfo: str) -> list[str]:
    """Mount points from /proc/self/mountinfo text, in mount order (field 5, octal escapes decoded)."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def is_under(path: str, folder: Path) -> bool:
    return path == str(folder) or path.startswith(str(folder).rstrip("/") + "/")


def mount_points_under(folder: Path) -> list[str]:
    """Mount points at or below `folder`, innermost last (the order they were mounted)."""
    text = Path("/proc/self/mountinfo").read_text()
    return [point for point in parse_mount_points(text) if is_under(point, folder)]


def unmount_all_under(folder: Path) -> None:
    """Unmount everything at or below `folder`, newest first; a busy mount is detached lazily."""
    for point in reversed(mount_points_under(folder)):
        if run(["umount", point], what=f"unmount {point}", check=False).returncode != 0:
            run(["umount", "--lazy", point], what=f"unmount {point}")


def remove_tree(folder: Path) -> None:
    """Delete a lab folder, never following a mount out of it (a bind of /dev would take the runner's)."""
    if not folder.exists():
        return
    leftover = mount_points_under(folder)
    if leftover:
        raise LabError(f"refusing to delete {folder}: still mounted: {', '.join(leftover)}")
    run(["rm", "-rf", "--one-file-system", "--", str(folder)], what=f"delete {folder}", timeout=600)
