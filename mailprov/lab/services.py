"""Lab service boxes: the DNS server and the receiver, each a chroot of the "services" image in its own netns.

A box is smaller than a lab host: no sshd, no login. It is a process tree on the runner:

    unshare (root PID namespace, waits)                  <- started detached, outlives `lab up`
      └─ sh: mounts the overlay, /proc, /dev, /run        <- in mplab-<box> (net), own mount/PID/UTS/IPC
           └─ chroot: /srv/mailprov-lab/init.sh          <- PID 1 of the box: starts the daemons, then sleeps
                └─ knotd | postfix + rspamd

The overlay (the services image below, the box's folder above) is mounted only inside the box's private
mount namespace, so the runner's namespace never holds a box mount; a runner folder the box shares (the
receiver's Maildir) is bind-mounted there too. The box's configuration is written by the runner into its
upper layer under /srv/mailprov-lab before boot; init.sh installs it with the owners the packages expect.
Killing PID 1 ends every process of the box.

The services image is built like the host images (debootstrap in the root namespace, which reaches the
Debian mirror), but the packages are installed at build time: a box needs no offline repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError
from mailprov.lab.commands import exclusive_lock, run, tail, write_atomically
from mailprov.lab.hosts import is_alive, kill_and_wait, parse_nspid
from mailprov.lab.images import DEBIAN_MIRROR, _in_chroot, _logged
from mailprov.lab.mounts import remove_tree
from mailprov.lab.network import netns_pids
from mailprov.lab.paths import LabPaths

SERVICES_SUITE = "bookworm"
SERVICES_BUILD_VERSION = 1
SERVICES_INCLUDES = ("iproute2", "ca-certificates", "procps")
SERVICES_PACKAGES = ("knot", "knot-dnsutils", "postfix", "rspamd", "ssl-cert")
STAMP_IN_IMAGE = "etc/mailprov-lab-image"
CONFIG_DIR_IN_BOX = "/srv/mailprov-lab"
BOOT_TIMEOUT = 30.0

_INSTALL_SCRIPT = """\
set -eu
apt-get -q update
# Postfix asks how to configure itself: not at all, the lab writes main.cf.
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get -q -y install --no-install-recommends "$@"
apt-get clean
rm -rf /var/lib/apt/lists/*
"""

# $1 = box root, $2 = lower (image), $3 = upper, $4 = work, $5 = hostname; then pairs "runner-dir box-dir".
_BOOT_SCRIPT = """\
set -eu
root=$1
mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$root"
hostname "$5"
shift 5
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs "$root/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9; do
    IFS=: read -r name major minor <<EOF
$node
EOF
    mknod -m 666 "$root/dev/$name" c "$major" "$minor"
done
ln -s /proc/self/fd "$root/dev/fd"
mkdir -m 1777 "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mkdir -m 1777 "$root/run/lock"
while [ $# -ge 2 ]; do
    mkdir -p "$root$2"
    mount --bind "$1" "$root$2"
    shift 2
done
exec chroot "$root" /bin/sh /srv/mailprov-lab/init.sh
"""

_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class ServicesRecipe:
    """Everything that decides the services image; its hash names the cache folder."""

    suite: str = SERVICES_SUITE
    mirror: str = DEBIAN_MIRROR
    includes: tuple[str, ...] = SERVICES_INCLUDES
    packages: tuple[str, ...] = SERVICES_PACKAGES
    build_version: int = SERVICES_BUILD_VERSION
    scripts: tuple[str, ...] = (_INSTALL_SCRIPT,)

    def key(self) -> str:
        canonical = json.dumps(
            {
                "suite": self.suite,
                "mirror": self.mirror,
                "includes": sorted(self.includes),
                "packages": sorted(self.packages),
                "build_version": self.build_version,
                "scripts": list(self.scripts),
            },
            sort_keys=True,
        )
        return f"services-{self.suite}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def ensure_services_image(paths: LabPaths, progress: Progress = None) -> Path:
    """The cached services image (Knot, Postfix, rspamd), built first if missing (a few minutes)."""
    recipe = ServicesRecipe()
    final = paths.images / recipe.key()
    if (final / STAMP_IN_IMAGE).is_file():
        return final
    # A lock of its own: host image builds (other folders) need not wait for this one, nor it for them.
    with exclusive_lock(paths.images / ".services.lock"):
        if (final / STAMP_IN_IMAGE).is_file():
            return final
        for leftover in paths.images.glob(f".build-{recipe.key()}-*"):
            remove_tree(leftover)
        building = paths.images / f".build-{recipe.key()}-{os.getpid()}"
        log = paths.images / f"{recipe.key()}.build.log"
        try:
            _build(recipe, building, log, progress)
        except BaseException:
            remove_tree(building)
            raise
        if final.exists():
            remove_tree(final)
        building.rename(final)
    return final


def _build(recipe: ServicesRecipe, root: Path, log: Path, progress: Progress) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    say = progress or (lambda _line: None)
    say(f"services image: debootstrap {recipe.suite} (minbase) from {recipe.mirror}")
    _logged(
        ["unshare", "--mount", "--propagation", "private", "--",
         "debootstrap", "--variant=minbase", f"--include={','.join(recipe.includes)}",
         recipe.suite, str(root), recipe.mirror],
        log=log, what=f"debootstrap {recipe.suite} (services image)", timeout=1800,
        extra_log=root / "debootstrap" / "debootstrap.log",
    )  # fmt: skip
    say(f"services image: installing {' '.join(recipe.packages)}")
    _in_chroot(root, _INSTALL_SCRIPT, recipe.packages, log=log, what="install the lab services")
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / STAMP_IN_IMAGE).write_text(f"{recipe.key()}\n")


# --- boxes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """One service box: its name (folder), network namespace and host name."""

    name: str  # "dns" | "receiver"
    netns: str  # "mplab-dns"
    hostname: str

    def dirs(self, paths: LabPaths) -> BoxDirs:
        return BoxDirs(paths.state / "services" / self.name)


@dataclass(frozen=True)
class BoxDirs:
    root: Path

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def config(self) -> Path:
        """The box's /srv/mailprov-lab, seen from the runner (written before boot)."""
        return self.upper / CONFIG_DIR_IN_BOX.lstrip("/")

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def boot_script(self) -> Path:
        return self.root / "boot.sh"


def box_init_pid(box: Box) -> int | None:
    """The box's PID 1 as the runner sees it: the member of its netns that is PID 1 of a nested PID ns."""
    for pid in netns_pids(box.netns):
        try:
            nspid = parse_nspid(Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        if len(nspid) == 2 and nspid[1] == 1 and is_alive(pid):
            return pid
    return None


def box_is_running(box: Box) -> bool:
    return box_init_pid(box) is not None


def boot_box(paths: LabPaths, box: Box, image: Path, files: dict[str, str], binds: Sequence[tuple[Path, str]]) -> int:
    """Fresh upper layer with `files` (relative to /srv/mailprov-lab), boot the box; return its PID 1.

    The caller has created the box's network namespace. `binds` are (runner folder, folder in the box).
    """
    dirs = box.dirs(paths)
    _clear_box(paths, box)
    for folder in (dirs.upper, dirs.work, dirs.merged):
        folder.mkdir(parents=True)
    dirs.root.chmod(0o700)  # the upper layer holds the TSIG secret
    for relative, text in files.items():
        target = dirs.config / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o600 if relative.endswith(".key") or relative.endswith(".conf") else 0o644)
    write_atomically(dirs.boot_script, _BOOT_SCRIPT, mode=0o755)
    bind_args = [arg for source, inside in binds for arg in (str(source), inside)]
    with dirs.console.open("a") as console:
        launched = subprocess.run(
            ["setsid", "--fork", "ip", "netns", "exec", box.netns,
             "unshare", "--mount", "--propagation", "private", "--uts", "--ipc", "--pid", "--fork", "--",
             "sh", str(dirs.boot_script), str(dirs.merged), str(image), str(dirs.upper), str(dirs.work),
             box.hostname, *bind_args],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=_CHROOT_ENV, check=False,
        )  # fmt: skip
    if launched.returncode != 0:
        raise LabError(f"lab {box.name}: could not launch (exit {launched.returncode}); see {dirs.console}")
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        pid = box_init_pid(box)
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise LabError(f"lab {box.name}: did not start\n{console_tail(paths, box)}")


def console_tail(paths: LabPaths, box: Box) -> str:
    console = box.dirs(paths).console
    return tail(console.read_text(errors="replace")) if console.is_file() else "(no console log)"


def box_exec(box: Box, argv: Sequence[str], *, what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command inside the running box (its namespaces and root), as root."""
    pid = box_init_pid(box)
    if pid is None:
        raise LabError(f"lab {box.name} is not running: {what}")
    return run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv],
        what=what,
        check=check,
        env=_CHROOT_ENV,
    )


def stop_box(paths: LabPaths, box: Box) -> None:
    """Kill every process of the box, delete its namespace and folder. Safe when already gone."""
    _clear_box(paths, box)
    if Path("/run/netns", box.netns).exists():
        run(["ip", "netns", "delete", box.netns], what=f"delete {box.netns}")


def _clear_box(paths: LabPaths, box: Box) -> None:
    """No process of the box left and no folder (its network namespace stays)."""
    survivors = kill_and_wait(netns_pids(box.netns))
    if survivors:
        raise LabError(f"lab {box.name}: processes {survivors} did not die after SIGKILL")
    remove_tree(box.dirs(paths).root)
