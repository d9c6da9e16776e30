"""Lab hosts: an overlay on a cached image, booted into its own namespaces with sshd as the only daemon.

A running host is a process tree on the runner:

    unshare (root PID namespace, waits)                 <- started detached, outlives `lab up`
      └─ /usr/sbin/sshd -D  = PID 1 of the host        <- in mplab-<name> (net), and its own mount, PID,
           └─ sessions, postfix, dovecot ...               UTS (hostname) and IPC namespaces, chrooted

The host's mount namespace is private: its overlay, /proc, /sys, /dev and /run live there only, and vanish
with its last process. The runner mounts the overlay only while preparing the host, then unmounts it.
Because sshd is PID 1 of the host's PID namespace, killing it ends every process of the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError
from mailprov.lab.commands import run, tail, write_atomically
from mailprov.lab.mounts import is_under, remove_tree, unmount_all_under
from mailprov.lab.network import (
    LAB_DNS_ADDRESS,
    HostNetwork,
    create_host_network,
    delete_host_network,
    netns_pids,
)
from mailprov.lab.paths import LabPaths

SSH_PORT = 22
ADMIN_USER = "admin"
LOGIN_USERS = ("root", ADMIN_USER, "pwadmin")  # all log in with the lab key
BOOT_TIMEOUT = 15.0

# Run by the runner inside the host's fresh namespaces, as PID 1 of its PID namespace.
# $1 = the host's root (overlay), $2 = host name. Ends by becoming sshd.
_BOOT_SCRIPT = """\
set -eu
root=$1
hostname "$2"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
# A small /dev of its own: the host must not see (or write) the runner's disks.
mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/full" c 1 7
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
mknod -m 666 "$root/dev/tty" c 5 0
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir -m 755 "$root/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mkdir -m 1777 "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mkdir -m 1777 "$root/run/lock"
mkdir -m 755 "$root/run/sshd"
exec chroot "$root" /usr/sbin/sshd -D -e
"""

_HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class HostDirs:
    """One host's folder under the lab state directory."""

    root: Path

    @classmethod
    def of(cls, paths: LabPaths, name: str) -> HostDirs:
        return cls(paths.hosts / name)

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
    def record(self) -> Path:
        return self.root / "host.json"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def boot_script(self) -> Path:
        return self.root / "boot.sh"

    @property
    def pid_file(self) -> Path:
        return self.root / "init.pid"


@dataclass(frozen=True)
class HostRecord:
    """What the lab remembers about a started host (host.json)."""

    name: str
    distro: str
    image: str
    init_pid: int  # sshd, PID 1 of the host, as the runner sees it
    launcher_pid: int  # the unshare process that waits for it

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> HostRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                name=str(data["name"]),
                distro=str(data["distro"]),
                image=str(data["image"]),
                init_pid=int(data["init_pid"]),
                launcher_pid=int(data["launcher_pid"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


# --- processes -------------------------------------------------------------------------------------------


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid: int) -> bool:
    """Running or sleeping: a zombie is dead (it only waits for its parent to collect its status)."""
    state = process_state(pid)
    return state is not None and state not in ("Z", "X")


def parse_nspid(status: str) -> list[int]:
    """The NSpid line of /proc/PID/status: the process's PID in each nested PID namespace, outermost first."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return [int(word) for word in line.split()[1:]]
    return []


def _root_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/root")
    except OSError:
        return None


def processes_rooted_under(folder: Path) -> list[int]:
    """Live processes whose root directory is inside `folder` (chrooted into a host)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            root = _root_of(int(entry.name))
            if root is not None and is_under(root, folder) and is_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def host_processes(net: HostNetwork, dirs: HostDirs) -> list[int]:
    """Every live process of the host: in its network namespace or chrooted into its folder."""
    pids = set(netns_pids(net.netns)) | set(processes_rooted_under(dirs.root))
    return sorted(pid for pid in pids if is_alive(pid))


def _find_init(netns_members: list[int]) -> int | None:
    """The host's PID 1: the member of its netns that is PID 1 in a nested PID namespace."""
    for pid in netns_members:
        try:
            nspid = parse_nspid(Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        if len(nspid) == 2 and nspid[1] == 1:
            return pid
    return None


def _find_launcher(init_pid: int) -> int:
    try:
        stat = Path(f"/proc/{init_pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL the processes; return those still alive after `timeout` (normally none)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


# --- state -----------------------------------------------------------------------------------------------


def is_running(paths: LabPaths, net: HostNetwork) -> bool:
    """The host's sshd (its PID 1) is alive, chrooted into this host's folder, in this host's netns."""
    dirs = HostDirs.of(paths, net.name)
    record = HostRecord.load(dirs.record)
    if record is None or not is_alive(record.init_pid):
        return False
    root = _root_of(record.init_pid)
    return root == str(dirs.merged) and record.init_pid in netns_pids(net.netns)


def host_names_on_disk(paths: LabPaths) -> list[str]:
    if not paths.hosts.is_dir():
        return []
    return sorted(entry.name for entry in paths.hosts.iterdir() if entry.is_dir())


# --- start and stop --------------------------------------------------------------------------------------


def start_host(paths: LabPaths, net: HostNetwork, image: Path) -> list[str]:
    """Build the host's overlay and network, boot it and wait for sshd; return its public host keys."""
    dirs = HostDirs.of(paths, net.name)
    stop_host(paths, net)
    for folder in (dirs.upper, dirs.work, dirs.merged):
        folder.mkdir(parents=True)
    dirs.root.chmod(0o700)  # the upper layer holds the host's private keys
    try:
        run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={image},upperdir={dirs.upper},workdir={dirs.work}", str(dirs.merged)],
            what=f"mount the overlay of {net.name}",
        )  # fmt: skip
        host_keys = _personalize(dirs.merged, net, paths.public_key.read_text())
        create_host_network(net)
        init_pid = _boot(net, dirs)
        _wait_for_sshd(net, dirs, init_pid)
    except BaseException:
        stop_host(paths, net)
        raise
    # The host keeps its own copy of the overlay mount; the runner's namespace stays clean.
    unmount_all_under(dirs.root)
    record = HostRecord(net.name, net.distro, str(image), init_pid, _find_launcher(init_pid))
    write_atomically(dirs.record, record.to_json())
    write_atomically(dirs.pid_file, f"{init_pid}\n")
    return host_keys


def stop_host(paths: LabPaths, net: HostNetwork) -> None:
    """Kill the host's processes, unmount, delete its network and folder. Any part may already be gone."""
    dirs = HostDirs.of(paths, net.name)
    record = HostRecord.load(dirs.record)
    pids = host_processes(net, dirs)
    if record is not None and is_alive(record.launcher_pid) and _is_launcher_of(record, dirs):
        pids.append(record.launcher_pid)
    survivors = kill_and_wait(pids)
    if survivors:
        raise LabError(f"{net.name}: processes {survivors} did not die after SIGKILL")
    unmount_all_under(dirs.root)
    delete_host_network(net)
    remove_tree(dirs.root)


def _is_launcher_of(record: HostRecord, dirs: HostDirs) -> bool:
    """Guard against PID reuse: the recorded launcher must still be our unshare, for this host."""
    try:
        cmdline = Path(f"/proc/{record.launcher_pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"unshare" in cmdline[0] and str(dirs.merged).encode() in cmdline


def _personalize(merged: Path, net: HostNetwork, lab_public_key: str) -> list[str]:
    """Identity of this host written into its overlay: name, machine id, SSH host keys, login keys."""
    etc = merged / "etc"
    (etc / "hostname").write_text(f"{net.name}\n")
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n{net.lan_address}\t{net.name}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
    resolv = etc / "resolv.conf"
    resolv.unlink(missing_ok=True)  # never write through a symlink into the image
    resolv.write_text(f"# mailprov lab: the lab DNS server (mailprov.lab.dns)\nnameserver {LAB_DNS_ADDRESS}\n")
    run(["ssh-keygen", "-A", "-f", str(merged)], what=f"generate SSH host keys for {net.name}")
    passwd = (etc / "passwd").read_text()
    for user in LOGIN_USERS:
        uid, gid, home = passwd_entry(passwd, user)
        ssh_dir = merged / home.lstrip("/") / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(lab_public_key)
        for path, mode in ((ssh_dir, 0o700), (ssh_dir / "authorized_keys", 0o600)):
            os.chown(path, uid, gid)
            path.chmod(mode)
    return [key.read_text() for key in sorted((etc / "ssh").glob("ssh_host_*_key.pub"))]


def passwd_entry(passwd: str, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) of `user` from /etc/passwd text."""
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise LabError(f"the lab image has no user {user!r} (rebuild the image)")


def _boot(net: HostNetwork, dirs: HostDirs) -> int:
    """Start the host detached from this process; return its PID 1 as the runner sees it."""
    # A file rather than `sh -c`, so `ps` on the runner shows a readable launcher line.
    write_atomically(dirs.boot_script, _BOOT_SCRIPT, mode=0o755)
    with dirs.console.open("a") as console:
        # setsid --fork returns at once; the host's processes are no children of ours.
        launched = subprocess.run(
            ["setsid", "--fork",
             "ip", "netns", "exec", net.netns,
             "unshare", "--mount", "--propagation", "private", "--uts", "--ipc", "--pid", "--fork", "--",
             "sh", str(dirs.boot_script), str(dirs.merged), net.name],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=_HOST_ENV, check=False,
        )  # fmt: skip
    if launched.returncode != 0:
        raise LabError(f"{net.name}: could not launch (exit {launched.returncode}); see {dirs.console}")
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        init_pid = _find_init(netns_pids(net.netns))
        if init_pid is not None:
            return init_pid
        time.sleep(0.02)
    raise LabError(f"{net.name}: the host did not start\n{tail(dirs.console.read_text(errors='replace'))}")


def _wait_for_sshd(net: HostNetwork, dirs: HostDirs, init_pid: int) -> None:
    """Until sshd answers with its banner on the host's LAN address (or its PID 1 dies)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if not is_alive(init_pid):
            break
        if ssh_banner(net.lan_address, timeout=0.5).startswith("SSH-"):
            return
        time.sleep(0.05)
    console = tail(dirs.console.read_text(errors="replace"))
    raise LabError(f"{net.name}: sshd did not come up on {net.lan_address}:{SSH_PORT}\n{console}")


def ssh_banner(address: str, timeout: float) -> str:
    try:
        with socket.create_connection((address, SSH_PORT), timeout=timeout) as connection:
            return connection.recv(64).decode(errors="replace")
    except OSError:
        return ""
