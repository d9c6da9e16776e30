"""The lab's public face: bring throwaway Debian hosts up, list them, take them all down.

Everything here needs root on Linux. Operations hold a lock in the state directory, so two `lab` commands
at once wait for each other instead of racing on names and addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError, MailprovError
from mailprov.lab import dns as lab_dns
from mailprov.lab import images, known_hosts, services
from mailprov.lab import receiver as lab_receiver
from mailprov.lab.commands import exclusive_lock, require_root_on_linux, run, write_atomically
from mailprov.lab.hosts import (
    ADMIN_USER,
    SSH_PORT,
    host_names_on_disk,
    is_running,
    kill_and_wait,
    processes_rooted_under,
    start_host,
    stop_host,
)
from mailprov.lab.inventory import InventoryEntry, render_inventory
from mailprov.lab.mounts import unmount_all_under
from mailprov.lab.network import (
    MAX_HOSTS_PER_DISTRO,
    NETNS_PREFIX,
    OUTSIDE_NETNS,
    HostNetwork,
    ensure_lab_networks,
    host_network,
    lab_netns_names,
    netns_pids,
    parse_host_name,
    teardown_lab_networks,
)
from mailprov.lab.paths import LabPaths
from mailprov.lab.prereqs import require_prerequisites
from mailprov.lab.users import other_users, register_user, release

LabDns = lab_dns.LabDns
LabReceiver = lab_receiver.LabReceiver

Progress = Callable[[str], None] | None

_PARALLEL_BOOTS = 8


@dataclass(frozen=True)
class LabHost:
    name: str  # e.g. "bookworm-1"
    distro: str  # "bullseye" | "bookworm" | "trixie" | "forky"
    address: str  # LAN address, e.g. "10.231.1.1"
    outside_address: str  # address on the outside network, e.g. "10.232.1.1"
    ssh_port: int  # 22
    root_key: str  # path of the private key for root login
    user: str  # non-root sudo user, "admin" (NOPASSWD sudo)
    known_hosts: str  # path of the lab's known_hosts file
    running: bool


def ensure_image(distro: str, progress: Progress = None) -> Path:
    """Build or reuse the cached base image of `distro` (one of `images.DISTROS`)."""
    return images.ensure_image(distro, progress)


def outside_netns() -> str:
    """Name of the "outside" client namespace, for `ip netns exec` (source address 10.232.0.1)."""
    return OUTSIDE_NETNS


def up(distro: str = "bookworm", count: int = 1, progress: Progress = None) -> list[LabHost]:
    """Hosts `<distro>-1` .. `<distro>-<count>`, running; hosts already running are reused as they are."""
    if not 1 <= count <= MAX_HOSTS_PER_DISTRO:
        raise LabError(f"count must be 1..{MAX_HOSTS_PER_DISTRO}, not {count}")
    return up_at(distro, range(1, count + 1), progress)


def up_at(distro: str, indices: Iterable[int], progress: Progress = None, *, fresh: bool = False) -> list[LabHost]:
    """Hosts `<distro>-<index>` for just these indices, running (others are neither started nor touched).

    fresh=True starts them again from the image even when running (a suite that needs untouched hosts)."""
    images.check_distro(distro)
    nets = [host_network(distro, index) for index in indices]
    if not nets:
        raise LabError("no lab host index given")
    require_root_on_linux()
    paths = LabPaths.from_env()
    # All at once, before anything runs: the build's own tools only when the image is still to be built.
    require_prerequisites(building=not images.is_built(images.image_dir(paths, distro)))
    image = images.ensure_image(distro, progress, paths)
    services_image = services.ensure_services_image(paths, progress)
    with exclusive_lock(paths.lock):
        register_user(paths)
        _ensure_lab_key(paths)
        ensure_lab_networks()
        to_start = [net for net in nets if fresh or not is_running(paths, net)]
        if progress and to_start:
            progress(f"starting {', '.join(net.name for net in to_start)}")
        failures = _start_all(paths, to_start, image)
        _write_inventory(paths)
        # The hosts resolve through the lab DNS (their /etc/resolv.conf): it runs whenever hosts do.
        lab_dns.ensure_dns(paths, services_image, _running_hosts(paths))
        if failures:
            raise LabError("\n".join(failures))
        return [_lab_host(paths, net) for net in nets]


def dns_up(progress: Progress = None) -> LabDns:
    """The lab DNS server (Knot at 10.231.0.53 and 10.232.0.53), running, with every running host published."""
    require_root_on_linux()
    paths = LabPaths.from_env()
    services_image = services.ensure_services_image(paths, progress)
    with exclusive_lock(paths.lock):
        register_user(paths)
        ensure_lab_networks()
        return lab_dns.ensure_dns(paths, services_image, _running_hosts(paths))


def receiver_up(progress: Progress = None) -> LabReceiver:
    """The lab receiver (Postfix + rspamd at 10.232.0.25, mx.receiver.test), running; the DNS server too."""
    require_root_on_linux()
    paths = LabPaths.from_env()
    services_image = services.ensure_services_image(paths, progress)
    with exclusive_lock(paths.lock):
        register_user(paths)
        ensure_lab_networks()
        lab_dns.ensure_dns(paths, services_image, _running_hosts(paths))
        return lab_receiver.ensure_receiver(paths, services_image)


def in_use_by_others() -> list[int]:
    """PIDs of other live processes (test sessions, scripts) that brought lab hosts up and may still use them.

    Call before an automatic clean-up: `down()` stops every host, whoever started it.
    """
    return other_users()


def status() -> list[LabHost]:
    """Every host the lab knows of (running or left behind), by distro then index."""
    require_root_on_linux()
    paths = LabPaths.from_env()
    return [_lab_host(paths, net) for net in _known_hosts(paths)]


def down(progress: Progress = None) -> None:
    """Stop every lab host and remove the lab's namespaces, links and host folders. Safe to repeat."""
    require_root_on_linux()
    paths = LabPaths.from_env()
    with exclusive_lock(paths.lock):
        if progress:
            progress("stopping the lab receiver and DNS server")
        lab_receiver.stop(paths)
        lab_dns.stop(paths)
        nets = _known_hosts(paths)
        for net in nets:
            if progress:
                progress(f"stopping {net.name}")
            stop_host(paths, net)
        # Pieces no host folder accounts for: namespaces of unknown names, strays chrooted under the lab.
        strays = [pid for ns in lab_netns_names() for pid in netns_pids(ns)]
        strays += processes_rooted_under(paths.hosts)
        survivors = kill_and_wait(strays)
        if survivors:
            raise LabError(f"lab processes {survivors} did not die after SIGKILL")
        unmount_all_under(paths.hosts)
        teardown_lab_networks()
        known_hosts.forget(paths.known_hosts, [net.lan_address for net in nets])
        release(paths)
        if paths.state.is_dir():
            _write_inventory(paths)


# --- helpers ---------------------------------------------------------------------------------------------


def _known_hosts(paths: LabPaths) -> list[HostNetwork]:
    """Hosts with a folder or a namespace, whatever state they are in."""
    names = set(host_names_on_disk(paths))
    names |= {ns.removeprefix(NETNS_PREFIX) for ns in lab_netns_names() if ns != OUTSIDE_NETNS}
    nets = []
    for name in names:
        try:
            nets.append(parse_host_name(name))
        except LabError:
            continue  # not ours to interpret; down() still deletes its namespace
    return sorted(nets, key=lambda net: (net.distro_number, net.index))


def _running_hosts(paths: LabPaths) -> list[HostNetwork]:
    return [net for net in _known_hosts(paths) if is_running(paths, net)]


def _start_all(paths: LabPaths, nets: list[HostNetwork], image: Path) -> list[str]:
    """Boot hosts in parallel (sshd start-up dominates); return one message per host that failed."""

    if not nets:
        return []
    with ThreadPoolExecutor(max_workers=min(_PARALLEL_BOOTS, len(nets))) as pool:
        results = list(pool.map(_boot_only(paths, image), nets))
    failures = []
    # known_hosts is written here, after the threads, so its updates never interleave.
    for net, result in zip(nets, results, strict=True):
        if isinstance(result, str):
            failures.append(result)
        else:
            known_hosts.update_file(paths.known_hosts, net.lan_address, known_hosts.key_lines(net.lan_address, result))
    return failures


def _boot_only(paths: LabPaths, image: Path) -> Callable[[HostNetwork], list[str] | str]:
    def boot(net: HostNetwork) -> list[str] | str:
        try:
            return start_host(paths, net, image)
        except MailprovError as exc:
            return str(exc)

    return boot


def _ensure_lab_key(paths: LabPaths) -> None:
    """One ed25519 key for root, admin and pwadmin on every lab host; made once per state directory."""
    paths.state.mkdir(parents=True, exist_ok=True)
    if paths.private_key.exists() and paths.public_key.exists():
        return
    paths.private_key.unlink(missing_ok=True)
    paths.public_key.unlink(missing_ok=True)
    run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mailprov-lab", "-f", str(paths.private_key)],
        what="generate the lab login key",
    )


def _lab_host(paths: LabPaths, net: HostNetwork) -> LabHost:
    return LabHost(
        name=net.name,
        distro=net.distro,
        address=net.lan_address,
        outside_address=net.outside_address,
        ssh_port=SSH_PORT,
        root_key=str(paths.private_key),
        user=ADMIN_USER,
        known_hosts=str(paths.known_hosts),
        running=is_running(paths, net),
    )


def _write_inventory(paths: LabPaths) -> None:
    entries = [
        InventoryEntry(host.name, host.distro, host.address, host.outside_address, host.ssh_port, host.user)
        for host in (_lab_host(paths, net) for net in _known_hosts(paths))
        if host.running
    ]
    text = render_inventory(
        entries,
        root_key=str(paths.private_key),
        known_hosts=str(paths.known_hosts),
        outside_netns=OUTSIDE_NETNS,
    )
    write_atomically(paths.inventory, text)
