"""Fixtures for live tests against lab hosts (real Debian hosts in network namespaces on this machine).

Live tests need root on Linux; without them every test here is skipped with the reason. Mark live tests
`@pytest.mark.live`.

Hosts
    lab_bookworm, lab_trixie   LabHost `bookworm-1` / `trixie-1`, up for the whole session and SHARED by
                               every module. Do not leave them changed in ways other modules would trip on.
    lab_host_at(distro, index) a LabHost of your own: `<distro>-<index>`, started on first use and kept for
                               the session. Index 1 is the shared host; test_lab.py uses 2; pick another
                               index per module that changes its host (3..99).
    lab_session                the `mailprov.lab` module; brings the lab down at the end of the session
                               unless MAILPROV_LAB_KEEP=1 (then the hosts stay up for a look) or another
                               live process on this machine brought lab hosts up and still runs
                               (`lab.in_use_by_others()`: every process that calls up() holds a lease
                               until it exits; the last session out takes the lab down).
    other_lab_sessions()       those other processes' PIDs.

Reaching hosts
    lab_ssh(host, user="root") a connected paramiko.SSHClient, closed after the test. Host keys are checked
                               against the lab's known_hosts with RejectPolicy (never AutoAddPolicy).
                               Users: root, admin (NOPASSWD sudo), pwadmin (sudo wants the password
                               "pwadmin-lab-pw"); all log in with the lab key (host.root_key).
    lab_connect(host, user="root")
                               the same, session-scoped: for module/session fixtures; close it yourself.
    lab_testinfra(host, user="root", sudo=False)
                               a testinfra Host over the same strict paramiko connection (testinfra's own
                               paramiko backend accepts any host key, so it is not used as is);
                               sudo=True with user="admin" runs every command through sudo.
    outside_netns              "mplab-outside": `ip netns exec` it to be a client from 10.232.0.1, outside
                               the trusted LAN 10.231.0.0/16.
    outside_tcp_open(address, port, timeout=2.0) -> bool
                               whether a TCP connect from mplab-outside succeeds.
    ssh_run(client, command, timeout=300.0) -> (rc, stdout, stderr)

Traps on lab hosts (no systemd): a daemon started with `service X start` inherits the SSH session's
stdout/stderr (Dovecot keeps stderr open), so the channel never reaches EOF. Start services with
`</dev/null >/dev/null 2>&1` (or to a log file).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import paramiko
import pytest

from mailprov import lab
from mailprov.lab import LabHost
from mailprov.lab.users import release as release_lab_lease

LAB_MODULE_THAT_STOPS_THE_LAB = "test_zz_lab_down.py"


def _why_no_lab() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"live lab tests need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "live lab tests need root (namespaces, mounts, bridges)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip live tests without root/Linux; run the module that takes the lab down after all others."""
    reason = _why_no_lab()
    if reason is not None:
        for item in items:
            if "live" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
    items.sort(key=lambda item: item.path.name == LAB_MODULE_THAT_STOPS_THE_LAB)


@pytest.fixture(scope="session")
def lab_session() -> Iterator[ModuleType]:
    reason = _why_no_lab()
    if reason is not None:
        pytest.skip(reason)
    yield lab
    release_lab_lease()
    if os.environ.get("MAILPROV_LAB_KEEP") != "1" and not lab.in_use_by_others():
        lab.down()


@pytest.fixture(scope="session")
def lab_host_at(lab_session: ModuleType) -> Callable[[str, int], LabHost]:
    def host_at(distro: str, index: int) -> LabHost:
        return lab.up_at(distro, [index])[0]

    return host_at


@pytest.fixture(scope="session")
def lab_bookworm(lab_host_at: Callable[[str, int], LabHost]) -> LabHost:
    return lab_host_at("bookworm", 1)


@pytest.fixture(scope="session")
def lab_trixie(lab_host_at: Callable[[str, int], LabHost]) -> LabHost:
    return lab_host_at("trixie", 1)


@pytest.fixture(scope="session")
def outside_netns(lab_session: ModuleType) -> str:
    return lab.outside_netns()


def connect(host: LabHost, user: str = "root", timeout: float = 15.0) -> paramiko.SSHClient:
    """A paramiko client logged in to `host` as `user` with the lab key; unknown host keys are refused."""
    client = paramiko.SSHClient()
    client.load_host_keys(host.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=host.ssh_port,
        username=user,
        key_filename=host.root_key,
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def run_ssh(client: paramiko.SSHClient, command: str, timeout: float = 300.0) -> tuple[int, str, str]:
    """Run a shell command; return (exit status, stdout, stderr)."""
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err


@pytest.fixture(scope="session")
def lab_connect(lab_session: ModuleType) -> Callable[..., paramiko.SSHClient]:
    return connect


@pytest.fixture(scope="session")
def ssh_run() -> Callable[..., tuple[int, str, str]]:
    return run_ssh


@pytest.fixture
def lab_ssh(lab_session: ModuleType) -> Iterator[Callable[..., paramiko.SSHClient]]:
    clients: list[paramiko.SSHClient] = []

    def open_client(host: LabHost, user: str = "root") -> paramiko.SSHClient:
        client = connect(host, user)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def _strict_testinfra_host(host: LabHost, user: str, sudo: bool) -> Any:
    import testinfra.host
    from testinfra.backend.paramiko import ParamikoBackend

    class StrictParamikoBackend(ParamikoBackend):  # type: ignore[misc]
        """testinfra's paramiko backend with the lab's known_hosts and RejectPolicy."""

        @functools.cached_property
        def client(self) -> paramiko.SSHClient:
            return connect(host, user)

    backend = StrictParamikoBackend(f"paramiko://{user}@{host.address}:{host.ssh_port}", sudo=sudo)
    testinfra_host = testinfra.host.Host(backend)
    backend.set_host(testinfra_host)
    return testinfra_host


@pytest.fixture
def lab_testinfra(lab_session: ModuleType) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(host: LabHost, user: str = "root", sudo: bool = False) -> Any:
        testinfra_host = _strict_testinfra_host(host, user, sudo)
        made.append(testinfra_host)
        return testinfra_host

    yield make
    for testinfra_host in made:
        if "client" in testinfra_host.backend.__dict__:
            testinfra_host.backend.client.close()


_TCP_PROBE = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError:
    sys.exit(1)
"""


@pytest.fixture(scope="session")
def outside_tcp_open(outside_netns: str) -> Callable[..., bool]:
    def probe(address: str, port: int, timeout: float = 2.0) -> bool:
        result = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                outside_netns,
                sys.executable,
                "-c",
                _TCP_PROBE,
                address,
                str(port),
                str(timeout),
            ],
            capture_output=True,
            timeout=timeout + 10,
            check=False,
        )
        return result.returncode == 0

    return probe


@pytest.fixture(scope="session")
def other_lab_sessions() -> Callable[[], list[int]]:
    return lab.in_use_by_others
