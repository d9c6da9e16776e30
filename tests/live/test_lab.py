"""The lab gives real Debian hosts: reachable over SSH, with an offline apt repository, services that
answer from the runner, a firewall of their own, and the sudo users other tests rely on."""

from __future__ import annotations

import imaplib
import shlex
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from mailprov import lab
from mailprov.lab import LabHost

pytestmark = pytest.mark.live

# This module changes its hosts (installs mail packages, adds firewall rules): it uses index 2, never the
# shared `<distro>-1` hosts.
MAIL_HOST_INDEX = 2

SshRun = Callable[..., tuple[int, str, str]]

_INSTALL_MAIL = """\
set -e
echo "postfix postfix/main_mailer_type select Internet Site" | debconf-set-selections
echo "postfix postfix/mailname string $MAILNAME" | debconf-set-selections
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix dovecot-imapd dovecot-pop3d iptables
postconf -e inet_protocols=ipv4
# Daemons started by init scripts keep the session's stdio open (no systemd): detach them from it.
service postfix status >/dev/null 2>&1 || service postfix start </dev/null >/var/log/postfix-start.log 2>&1
service dovecot status >/dev/null 2>&1 || service dovecot start </dev/null >/var/log/dovecot-start.log 2>&1
"""

_DROP_IMAP_FROM_OUTSIDE = "INPUT -p tcp -s 10.232.0.0/16 --dport 143 -j DROP"


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def mail_host(
    request: pytest.FixtureRequest,
    lab_host_at: Callable[[str, int], LabHost],
    lab_connect: Callable[..., paramiko.SSHClient],
    ssh_run: SshRun,
) -> Iterator[tuple[LabHost, paramiko.SSHClient]]:
    """A host with Postfix and Dovecot installed from the image's local repository, both started."""
    host = lab_host_at(request.param, MAIL_HOST_INDEX)
    client = lab_connect(host)
    script = f"MAILNAME={shlex.quote(host.name + '.lab.test')}\n{_INSTALL_MAIL}"
    rc, out, err = ssh_run(client, f"sh -c {shlex.quote(script)}")
    assert rc == 0, f"install on {host.name} failed:\n{out[-3000:]}\n{err[-3000:]}"
    yield host, client
    client.close()


def test_smtp_answers_ehlo_from_the_runner(mail_host: tuple[LabHost, paramiko.SSHClient]) -> None:
    host, _ = mail_host
    with smtplib.SMTP(host.address, 25, timeout=10) as smtp:
        code, features = smtp.ehlo("runner.lab.test")
    assert code == 250
    assert features.decode().splitlines()[0] == host.name  # Postfix names itself after the host


def test_imap_answers_capability_from_the_runner(mail_host: tuple[LabHost, paramiko.SSHClient]) -> None:
    host, _ = mail_host
    imap = imaplib.IMAP4(host.address, 143, timeout=10)
    try:
        status, capabilities = imap.capability()
    finally:
        imap.logout()
    assert status == "OK"
    assert b"IMAP4rev1" in capabilities[0]


def test_host_firewall_drops_imap_from_outside_only(
    mail_host: tuple[LabHost, paramiko.SSHClient],
    ssh_run: SshRun,
    outside_tcp_open: Callable[..., bool],
) -> None:
    host, client = mail_host
    runner_rules_before = _runner_iptables()
    rc, out, err = ssh_run(client, f"iptables -A {_DROP_IMAP_FROM_OUTSIDE} && iptables -V && iptables -S INPUT")
    assert rc == 0, err
    try:
        assert "nf_tables" in out  # Debian's default iptables (nft) works inside a host's namespace
        assert "--dport 143 -j DROP" in out
        assert not outside_tcp_open(host.address, 143, timeout=2.0)
        assert outside_tcp_open(host.address, 25, timeout=5.0)
        imap = imaplib.IMAP4(host.address, 143, timeout=10)  # the runner is on the trusted LAN
        imap.logout()
        assert _runner_iptables() == runner_rules_before
    finally:
        ssh_run(client, f"iptables -D {_DROP_IMAP_FROM_OUTSIDE}")
    assert outside_tcp_open(host.address, 143, timeout=5.0)


def _runner_iptables() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(params=["bookworm", "trixie"])
def shared_host(request: pytest.FixtureRequest) -> LabHost:
    host: LabHost = request.getfixturevalue(f"lab_{request.param}")
    return host


def test_admin_has_passwordless_sudo(
    shared_host: LabHost, lab_ssh: Callable[..., paramiko.SSHClient], ssh_run: SshRun
) -> None:
    rc, out, err = ssh_run(lab_ssh(shared_host, "admin"), "id -un && sudo -n id -u", timeout=30)
    assert (rc, out.split()) == (0, ["admin", "0"]), err


def test_sudo_that_wants_a_password_fails_fast(
    shared_host: LabHost, lab_ssh: Callable[..., paramiko.SSHClient], ssh_run: SshRun
) -> None:
    rc, _out, err = ssh_run(lab_ssh(shared_host, "pwadmin"), "sudo -n true", timeout=10)
    assert rc != 0
    assert "password is required" in err


def test_testinfra_fixture_reaches_host_as_root_and_through_sudo(
    shared_host: LabHost, lab_testinfra: Callable[..., object]
) -> None:
    as_root = lab_testinfra(shared_host)
    through_sudo = lab_testinfra(shared_host, "admin", sudo=True)
    assert as_root.check_output("hostname") == shared_host.name  # type: ignore[attr-defined]
    assert through_sudo.check_output("id -u") == "0"  # type: ignore[attr-defined]
    assert as_root.file("/etc/apt/sources.list.d/mailprov-lab.list").contains("file:/srv/repo")  # type: ignore[attr-defined]


def test_each_host_has_its_own_identity(
    lab_bookworm: LabHost, lab_trixie: LabHost, lab_ssh: Callable[..., paramiko.SSHClient], ssh_run: SshRun
) -> None:
    seen = {}
    for host in (lab_bookworm, lab_trixie):
        rc, out, _ = ssh_run(
            lab_ssh(host),
            "hostname; cat /etc/hostname; . /etc/os-release; echo $VERSION_CODENAME; cat /etc/machine-id",
            timeout=30,
        )
        hostname, hostname_file, codename, machine_id = out.split()
        assert (rc, hostname, hostname_file, codename) == (0, host.name, host.name, host.distro)
        seen[host.name] = machine_id
    assert len(set(seen.values())) == 2
    host_keys = {
        host.name: {
            line.split()[2]
            for line in Path(host.known_hosts).read_text().splitlines()
            if line.startswith(host.address + " ")
        }
        for host in (lab_bookworm, lab_trixie)
    }
    assert host_keys[lab_bookworm.name] and host_keys[lab_trixie.name]
    assert not host_keys[lab_bookworm.name] & host_keys[lab_trixie.name]


def test_a_wrong_host_key_is_refused(lab_bookworm: LabHost, tmp_path: Path) -> None:
    other = lab.up("trixie", 1)[0]
    impostor = tmp_path / "known_hosts"
    impostor.write_text(  # trixie-1's keys filed under bookworm-1's address
        "".join(
            line.replace(other.address + " ", lab_bookworm.address + " ", 1) + "\n"
            for line in Path(other.known_hosts).read_text().splitlines()
            if line.startswith(other.address + " ")
        )
    )
    client = paramiko.SSHClient()
    client.load_host_keys(str(impostor))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(
            lab_bookworm.address, username="root", key_filename=lab_bookworm.root_key,
            look_for_keys=False, allow_agent=False, timeout=10,
        )  # fmt: skip
    client.close()


def test_up_reuses_running_hosts(lab_bookworm: LabHost) -> None:
    keys_before = Path(lab_bookworm.known_hosts).read_text()
    again = lab.up("bookworm", 1)
    assert again == [lab_bookworm]
    assert again[0].running
    assert Path(lab_bookworm.known_hosts).read_text() == keys_before  # not rebooted: same host keys
    assert lab_bookworm in lab.status()
