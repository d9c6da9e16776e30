"""The openssh transport against real lab hosts: plan → apply → a second plan with no change → verify on a
bookworm and a trixie host, with the SSH master of one of them killed mid-apply (the apply goes on on the
host and mailprov reads how it ended over a new connection); and a host whose sshd is set up as an old one
(an RSA host key only, `HostKeyAlgorithms ssh-rsa`, `KexAlgorithms diffie-hellman-group14-sha1`): applied
with `legacy_algorithms: true`, refused clearly without it and by paramiko.

Hosts of this module only: bookworm-20, trixie-20, bookworm-21, started afresh (a first apply has work); the
old sshd's apply (the minimal site) runs while the first test's does, so the module takes about 3 minutes.
Every `ssh` mailprov starts goes through a logging wrapper first in PATH, so the test sees that the system ssh
did the work, one master per host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailprov.lab import LabHost

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
MAILPROV = [sys.executable, "-m", "mailprov.cli"]
PASSWORD = "Live-openssh-pw-20"
TEMPLATE = ROOT / "tests" / "live" / "data" / "verify-site.yaml"  # a LAN site verify passes on, from the LAN
INDEX = 20
LEGACY_INDEX = 21
LEGACY_DROP_IN = "/etc/ssh/sshd_config.d/00-mailprov-test-legacy.conf"
LEGACY_OPTIONS = ("-o", "HostKeyAlgorithms=+ssh-rsa", "-o", "KexAlgorithms=+diffie-hellman-group14-sha1")
LEGACY_SSHD = (
    "# an old sshd (CentOS 5/6): an RSA host key only, ssh-rsa signatures, SHA-1 key exchange\n"
    "HostKey /etc/ssh/ssh_host_rsa_key\nHostKeyAlgorithms ssh-rsa\nKexAlgorithms diffie-hellman-group14-sha1\n"
)


def own_hosts(wanted: list[tuple[str, int]]) -> list[LabHost]:
    """These hosts started afresh from their images, and no other host started (lab.up(d, n) would start
    1..n, hosts of other modules among them)."""
    from mailprov import lab

    up_at = getattr(lab, "up_at", None)
    if up_at is not None:
        return [up_at(distro, [index], fresh=True)[0] for distro, index in wanted]
    # Until lab.up_at is there: the steps lab.up takes, for just these indices (booted in parallel).
    from mailprov.lab import api, images
    from mailprov.lab.commands import exclusive_lock
    from mailprov.lab.network import ensure_lab_networks, host_network
    from mailprov.lab.paths import LabPaths
    from mailprov.lab.users import register_user

    paths = LabPaths.from_env()
    nets = [host_network(distro, index) for distro, index in wanted]
    for distro in {d for d, _ in wanted}:
        images.ensure_image(distro, None, paths)
    with exclusive_lock(paths.lock):
        register_user(paths)
        api._ensure_lab_key(paths)
        ensure_lab_networks()
        failures: list[str] = []
        for distro in sorted({d for d, _ in wanted}):  # start_host stops a host first: fresh
            image = images.ensure_image(distro, None, paths)
            failures += api._start_all(paths, [n for n in nets if n.distro == distro], image)
        api._write_inventory(paths)
    assert not failures, failures
    return [api._lab_host(paths, net) for net in nets]


@pytest.fixture(scope="module")
def hosts(lab_session: ModuleType) -> dict[str, LabHost]:
    bookworm, trixie, old = own_hosts([("bookworm", INDEX), ("trixie", INDEX), ("bookworm", LEGACY_INDEX)])
    return {"bookworm": bookworm, "trixie": trixie, "old": old}


@pytest.fixture(scope="module")
def ssh_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return logging_ssh(tmp_path_factory)


def logging_ssh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH directory whose `ssh` logs each argv (one line) and runs the real one; returns the log."""
    bindir = tmp_path_factory.mktemp("sshbin")
    log = bindir / "ssh.log"
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec /usr/bin/ssh "$@"\n')
    wrapper.chmod(0o755)
    log.write_text("")
    return log


def run_cli(*args: str, ssh_log: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILPROV, *args], capture_output=True, text=True, cwd=ROOT, env=env(ssh_log), timeout=timeout
    )


def env(ssh_log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MAILPROV_VERIFY_PASSWORD": PASSWORD,
        "MAILPROV_ALICE_PASSWORD": PASSWORD,
        "PATH": f"{ssh_log.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }


def host_entry(name: str, host: LabHost, user: str, extra: str = "") -> str:
    become = "      become: true\n" if user != "root" else ""
    return (
        f"  - name: {name}\n    ssh:\n      address: {host.address}\n      user: {user}\n{become}"
        f"      identity_file: {host.root_key}\n      known_hosts: {host.known_hosts}\n{extra}"
    )


def write_site(path: Path, entries: list[str]) -> Path:
    """The verify test's site with its hosts replaced by `entries`."""
    text = TEMPLATE.read_text()
    head, _, rest = text.partition("hosts:\n")
    _, _, tail = rest.partition("\nmyorigin:")
    path.write_text(f"{head}hosts:\n{''.join(entries)}\nmyorigin:{tail}")
    return path


def write_minimal_site(path: Path, entry: str) -> Path:
    """inventories/minimal.yaml (Postfix and Dovecot, fewer packages) for the host of `entry`."""
    text = (ROOT / "inventories" / "minimal.yaml").read_text()
    assert "  - name: mail.example.org\n" in text
    path.write_text(text.replace("  - name: mail.example.org\n", entry))
    return path


class Root:
    """A root shell on a lab host over the lab's own strict paramiko connection (not mailprov's)."""

    def __init__(self, lab_connect: Any, host: LabHost) -> None:
        self.lab_connect, self.host = lab_connect, host

    def run(self, command: str, timeout: float = 60) -> str:
        client = self.lab_connect(self.host)
        try:
            _, stdout, stderr = client.exec_command(command, timeout=timeout)
            return str(stdout.read().decode() + stderr.read().decode())
        finally:
            client.close()


def masters(address: str) -> list[int]:
    """PIDs of ssh master processes on this machine for `address` (ours: ControlMaster=yes, that address)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"ControlMaster=yes" in argv and address.encode() in argv and argv[0].endswith(b"ssh"):
            found.append(int(entry))
    return found


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_plan_apply_cut_plan_verify_over_openssh(
    hosts: dict[str, LabHost], ssh_log: Path, tmp_path: Path, lab_connect: Any, legacy_apply: LegacyApply
) -> None:
    # legacy_apply: the old sshd's apply runs meanwhile (the next test reads it), so the module stays short.
    bookworm, trixie = hosts["bookworm"], hosts["trixie"]
    # bookworm chooses openssh in the site; trixie's site says nothing and --transport openssh picks it.
    site = write_site(
        tmp_path / "site.yaml",
        [
            host_entry("mx20.example.test", bookworm, "admin", "      transport: openssh\n"),
            host_entry("mx20t.example.test", trixie, "root"),
        ],
    )
    plan = run_cli("plan", str(site), "--transport", "openssh", ssh_log=ssh_log)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    log = ssh_log.read_text()
    for host in (bookworm, trixie):  # the plan's reads went through one master per host
        assert sum("ControlMaster=yes" in ln and host.address in ln for ln in log.splitlines()) == 1, log

    # The apply; bookworm's SSH master is killed while the host installs packages.
    ssh_log.write_text("")
    root = Root(lab_connect, bookworm)
    proc = subprocess.Popen(
        [*MAILPROV, "apply", "--yes", str(site), "--transport", "openssh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env(ssh_log),
    )
    try:
        wait_for(lambda: "@@MP step packages " in root.run("cat /var/lib/mailprov/runs/*.out 2>/dev/null"), 120,
                 "the apply's packages step on bookworm")  # fmt: skip
        pids = masters(bookworm.address)
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    flat = " ".join(out.replace("│", " ").split())  # the summary table wraps its cells
    assert "mx20.example.test was lost during the apply; the host finished it" in flat, out
    assert PASSWORD not in out
    # Each new connection after the cut was a new master: one reads how the apply ended, one reads the host
    # again for the site's records (the DKIM keys the apply may have made).
    assert sum("ControlMaster=yes" in ln and bookworm.address in ln for ln in ssh_log.read_text().splitlines()) == 3

    again = run_cli("plan", str(site), "--transport", "openssh", ssh_log=ssh_log)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no changes" in again.stdout

    verify = run_cli("verify", str(site), "--transport", "openssh", "--no-dns", ssh_log=ssh_log)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not masters(bookworm.address) and not masters(trixie.address)  # every master closed at the end


@dataclass
class LegacyApply:
    host: LabHost
    plain: Path  # the site without legacy_algorithms
    legacy: Path  # with it
    log: Path  # what the apply's ssh was given
    proc: subprocess.Popen[str]  # `mailprov apply --yes legacy`, started by the fixture


@pytest.fixture(scope="module")
def legacy_apply(
    hosts: dict[str, LabHost], lab_connect: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LegacyApply]:
    """bookworm-21 with its sshd reconfigured as an old one (a drop-in, then SIGHUP: sshd is the host's PID 1
    and re-executes itself with the new configuration), and `apply` of the minimal site over openssh with
    legacy_algorithms started on it; the drop-in is removed afterwards."""
    host = hosts["old"]
    root = Root(lab_connect, host)
    rsa = root.run("cat /etc/ssh/ssh_host_rsa_key.pub").split()[:2]  # read over a checked connection
    # The lab records every key of the host, its ssh-rsa one among them: what an old sshd would show.
    assert f"{host.address} {rsa[0]} {rsa[1]}" in Path(host.known_hosts).read_text().splitlines()
    root.run(f"printf '%s' '{LEGACY_SSHD}' > {LEGACY_DROP_IN} && /usr/sbin/sshd -t && kill -HUP 1")
    wait_for(lambda: _offers_only_legacy(host), 20, "the old-style sshd")
    tmp = tmp_path_factory.mktemp("legacy")
    name = "mx21.example.org"
    plain = write_minimal_site(tmp / "plain.yaml", host_entry(name, host, "root", "      transport: openssh\n"))
    legacy_entry = "      transport: openssh\n      legacy_algorithms: true\n"
    legacy = write_minimal_site(tmp / "legacy.yaml", host_entry(name, host, "root", legacy_entry))
    log = logging_ssh(tmp_path_factory)
    argv = [*MAILPROV, "apply", "--yes", str(legacy)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env(log))
    try:
        yield LegacyApply(host, plain, legacy, log, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        # paramiko cannot reach it any more: the system ssh with the old algorithms puts the modern sshd back.
        subprocess.run(
            ["ssh", *LEGACY_OPTIONS, "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={host.known_hosts}",
             "-o", "StrictHostKeyChecking=yes", "-i", host.root_key, "-l", "root", host.address,
             f"rm -f {LEGACY_DROP_IN} && kill -HUP 1"],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip


def _offers_only_legacy(host: LabHost) -> bool:
    probe = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={host.known_hosts}", "-o",
         "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=3", "-l", "nobody", host.address, "true"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return "no matching host key type found" in probe.stderr or "no matching key exchange" in probe.stderr


def test_an_old_sshd_needs_legacy_algorithms(legacy_apply: LegacyApply, ssh_log: Path) -> None:
    run = legacy_apply
    refused = run_cli("plan", str(run.plain), ssh_log=ssh_log)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, said
    assert "ssh.legacy_algorithms: true" in said and "diffie-hellman-group14-sha1" in said, said
    assert "Nothing was run" in said, said

    # paramiko: refused before connecting with legacy_algorithms, and told what to set without it.
    by_paramiko = run_cli("plan", str(run.legacy), "--transport", "paramiko", ssh_log=ssh_log)
    said = by_paramiko.stdout + by_paramiko.stderr
    assert by_paramiko.returncode == 1 and "paramiko" in said and "ssh.transport: openssh" in said, said
    no_legacy = run_cli("plan", str(run.plain), "--transport", "paramiko", ssh_log=ssh_log)
    said = no_legacy.stdout + no_legacy.stderr
    assert no_legacy.returncode == 1 and "Incompatible ssh peer" in said, said
    assert "ssh.transport: openssh" in said and "ssh.legacy_algorithms: true" in said, said

    out, _ = run.proc.communicate(timeout=600)  # the apply the fixture started
    assert run.proc.returncode == 0, out
    assert "KexAlgorithms=+diffie-hellman-group14-sha1" in run.log.read_text()
    again = run_cli("plan", str(run.legacy), ssh_log=ssh_log)
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout + again.stderr
