"""`down()` leaves nothing behind, even after a half-finished run. conftest runs this module last: it
takes the whole lab down, shared hosts included."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mailprov import lab
from mailprov.lab import LabHost
from mailprov.lab.paths import LabPaths

pytestmark = pytest.mark.live


def _lab_netns() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith("mplab")]


def _lab_links() -> list[str]:
    listing = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in listing.splitlines()]
    return [name for name in names if name.startswith("mpl")]


def _mounts_under(*folders: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if any(point.startswith(str(folder)) for folder in folders)]


def _live_lab_processes(state: Path) -> list[str]:
    """Processes (not zombies) chrooted under the lab, or the lab's launchers (an unshare naming its folder).

    Clients on the runner that merely use the lab's key (someone's `ssh -i .../id_ed25519`) do not count."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state_letter = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            root = os.readlink(entry / "root")
        except OSError:
            continue
        is_launcher = cmdline.startswith("unshare ") and str(state) in cmdline
        if state_letter != "Z" and (is_launcher or root.startswith(str(state))):
            found.append(f"{entry.name}: {cmdline[:100]}")
    return found


@pytest.mark.skipif(os.environ.get("MAILPROV_LAB_KEEP") == "1", reason="MAILPROV_LAB_KEEP=1 keeps the lab up")
def test_down_leaves_nothing_even_after_a_half_finished_run(
    lab_host_at: Callable[[str, int], LabHost],
) -> None:
    paths = LabPaths.from_env()
    host = lab_host_at("trixie", 1)
    receiver = lab.receiver_up()  # the DNS server runs with the hosts; down() stops both boxes too
    assert host.running and _lab_netns() and _lab_links()

    # Pieces a crashed `up` could leave: a namespace with a process and no host folder, a host folder
    # with a mount and no record, a root-namespace veth pair with no namespace.
    subprocess.run(["ip", "netns", "add", "mplab-bookworm-98"], check=True)
    stray = subprocess.Popen(["ip", "netns", "exec", "mplab-bookworm-98", "sleep", "600"])
    half_built = paths.hosts / "bookworm-97" / "merged"
    half_built.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(half_built)], check=True)
    subprocess.run(["ip", "link", "add", "mpl1-96", "type", "veth", "peer", "name", "mpo1-96"], check=True)

    try:
        lab.down()
        lab.down()  # idempotent
        assert stray.wait(timeout=5) == -9  # down() killed the process in the stray namespace
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait(timeout=10)

    assert _lab_netns() == []
    assert _lab_links() == []
    assert _mounts_under(paths.state, paths.images) == []
    assert _live_lab_processes(paths.state) == []
    assert list(paths.hosts.iterdir()) == []
    assert not (paths.state / "services").exists() or list((paths.state / "services").iterdir()) == []
    assert not receiver.maildir.exists()
    assert "10.231." not in paths.known_hosts.read_text()
    assert "hosts: []" in paths.inventory.read_text()
    assert lab.status() == []
    # The route guard stays: lab addresses fail locally instead of leaving through the default route.
    for address in ("10.231.1.1", "10.232.1.1"):
        probe = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=False)
        assert probe.returncode != 0 and "No route to host" in probe.stderr, probe
