"""OpenSshTransport: the ssh argv built for each setting (pure), what ssh's refusals become, and the transport
against real sshds on 127.0.0.1: a modern one, and one set up as an old sshd would be (an RSA host key only,
`HostKeyAlgorithms ssh-rsa`, `KexAlgorithms diffie-hellman-group14-sha1`).

The sshd tests are skipped unless root and /usr/sbin/sshd and the ssh client are installed. They pass `-F` a
file of the test's own, so the machine's ~/.ssh/config (which ssh finds through the password database, not
$HOME) never reaches them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from test_ssh_transport import SSHD, Sshd, _free_port, _keygen, _wait_listening

from mailprov.config.model import Host
from mailprov.errors import CommandError, HostKeyError, TransportError
from mailprov.orchestrate import RunOptions, target_for
from mailprov.transport import OpenSshTransport, SshTarget, SshTransport, make, openssh
from mailprov.transport import ssh as paramiko_ssh
from mailprov.transport.openssh import (
    command_argv,
    connect_error,
    control_argv,
    legacy_options,
    master_argv,
    parse_master_pid,
    parse_user,
)

CONTROL = "/tmp/mailprov-ssh-x/master"
BASE = SshTarget(host="mx1.example.com", kind="openssh")

MODERN_SSH = {
    "key-sig": frozenset({"ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"}),
    "kex": frozenset({"curve25519-sha256", "diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"}),
    "cipher": frozenset({"aes128-ctr", "aes128-cbc", "aes256-cbc"}),
    "mac": frozenset({"hmac-sha2-256", "hmac-sha1"}),
}


def _options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-o"]


# --- argv, setting by setting ---------------------------------------------------------------------------


def test_defaults_are_strict_batch_and_multiplexed() -> None:
    master = master_argv(BASE, CONTROL)
    client = command_argv(BASE, CONTROL, "sh -s")
    for argv in (master, client):
        assert argv[0] == "ssh"
        opts = _options(argv)
        assert "BatchMode=yes" in opts and "StrictHostKeyChecking=yes" in opts
        assert f"ControlPath={CONTROL}" in opts
        assert "ServerAliveInterval=15" in opts and "ServerAliveCountMax=3" in opts
        assert "ConnectTimeout=15" in opts
        loose = ("StrictHostKeyChecking=no", "UserKnownHostsFile")
        assert not any("accept-new" in a or a.startswith(loose) for a in argv)
        assert "-p" not in argv and "-l" not in argv and "-F" not in argv  # left to ~/.ssh/config
    assert master[-4:] == ["-f", "-N", "--", "mx1.example.com"]
    assert "ControlMaster=yes" in _options(master) and "ControlPersist=1800" in _options(master)
    assert client[-5:] == ["ControlMaster=no", "-T", "--", "mx1.example.com", "sh -s"]


def test_site_settings_map_to_options() -> None:
    target = replace(
        BASE,
        address="192.0.2.10",
        port=2222,
        user="admin",
        identity_file="/home/a/.ssh/id_ed25519",
        known_hosts="/srv/site/known_hosts",
        connect_timeout=7.5,
    )
    argv = command_argv(target, CONTROL, "true", config_file="/srv/site/ssh_config")
    assert argv[1:3] == ["-F", "/srv/site/ssh_config"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "admin"
    opts = _options(argv)
    assert "IdentityFile=/home/a/.ssh/id_ed25519" in opts
    assert "UserKnownHostsFile=/srv/site/known_hosts ~/.ssh/known_hosts" in opts  # the site's file first
    assert "ConnectTimeout=8" in opts
    assert argv[-2:] == ["192.0.2.10", "true"]


def test_paths_are_written_in_ssh_config_syntax_not_shell() -> None:
    target = replace(BASE, identity_file="/keys/my key%h", known_hosts="/k/100%")
    opts = _options(master_argv(target, "/tmp/a b/master"))
    assert 'IdentityFile="/keys/my key%%h"' in opts  # %h would be expanded by ssh
    assert "UserKnownHostsFile=/k/100%% ~/.ssh/known_hosts" in opts
    assert 'ControlPath="/tmp/a b/master"' in opts
    with pytest.raises(TransportError, match="cannot be given to ssh"):
        master_argv(replace(BASE, identity_file='/keys/"x'), CONTROL)


def test_control_commands_reach_the_same_master() -> None:
    argv = control_argv(BASE, CONTROL, "check")
    assert argv[-4:] == ["-O", "check", "--", "mx1.example.com"]
    assert f"ControlPath={CONTROL}" in _options(argv)


def test_legacy_algorithms_add_only_what_this_ssh_knows() -> None:
    opts = legacy_options(MODERN_SSH)
    assert list(opts) == [
        "-o",
        "HostKeyAlgorithms=+ssh-rsa",
        "-o",
        "PubkeyAcceptedAlgorithms=+ssh-rsa",
        "-o",
        "KexAlgorithms=+diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
        "-o",
        "Ciphers=+aes128-cbc,aes256-cbc",
        "-o",
        "MACs=+hmac-sha1",
    ]
    argv = command_argv(BASE, CONTROL, "true", opts)
    assert argv.index("KexAlgorithms=+diffie-hellman-group14-sha1,diffie-hellman-group1-sha1") < argv.index("--")
    assert not any("ssh-rsa" in a for a in command_argv(BASE, CONTROL, "true"))  # only where asked


def test_legacy_algorithms_refused_by_an_ssh_without_ssh_rsa() -> None:
    without = {**MODERN_SSH, "key-sig": frozenset({"ssh-ed25519", "rsa-sha2-256"})}
    with pytest.raises(TransportError, match=r"OpenSSH_11\.0 no longer supports ssh-rsa"):
        legacy_options(without, "OpenSSH_11.0")


def test_the_installed_ssh_still_speaks_what_an_old_sshd_needs() -> None:
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    opts = legacy_options(openssh.supported_algorithms())
    assert "HostKeyAlgorithms=+ssh-rsa" in opts
    assert any(o.startswith("KexAlgorithms=+diffie-hellman-group14-sha1") for o in opts)


def test_parsers() -> None:
    assert parse_master_pid("Master running (pid=4242)\r\n") == 4242
    assert parse_master_pid("Control socket connect(/x): No such file or directory\n") is None
    assert parse_user("hostname 192.0.2.1\nuser admin\nport 22\n") == "admin"
    assert parse_user("hostname x\n") is None


# --- what ssh's refusals become -------------------------------------------------------------------------


def test_an_old_sshd_without_legacy_algorithms_names_the_setting() -> None:
    said = "Unable to negotiate with 192.0.2.5 port 22: no matching host key type found. Their offer: ssh-rsa\r\n"
    err = connect_error("mx1", "root@192.0.2.5", said, legacy=False)
    assert type(err) is TransportError
    assert "ssh.legacy_algorithms: true" in str(err) and "ssh-rsa" in str(err) and "Nothing was run" in str(err)
    kex = (
        "Unable to negotiate with 192.0.2.5 port 22: no matching key exchange method found. "
        "Their offer: diffie-hellman-group14-sha1"
    )
    assert "ssh.legacy_algorithms: true" in str(connect_error("mx1", "x", kex, legacy=False))
    # already set, or nothing old on offer: no advice to set it
    assert "legacy_algorithms: true" not in str(connect_error("mx1", "x", kex, legacy=True))
    modern = "Unable to negotiate with h port 22: no matching cipher found. Their offer: chacha20-poly1305@openssh.com"
    assert "legacy_algorithms: true" not in str(connect_error("mx1", "x", modern, legacy=False))


def test_host_key_refusals_are_host_key_errors() -> None:
    unknown = (
        "No ED25519 host key is known for 192.0.2.5 and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    err = connect_error("mx1", "192.0.2.5", unknown, legacy=False)
    assert isinstance(err, HostKeyError) and "not in known_hosts" in str(err) and "never accept-new" in str(err)
    changed = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Offending ED25519 key in /root/.ssh/known_hosts:3\nHost key verification failed.\n"
    )
    err = connect_error("mx1", "192.0.2.5", changed, legacy=False)
    assert isinstance(err, HostKeyError) and "CHANGED" in str(err) and "known_hosts:3" in str(err)


def test_a_refused_login_says_batch_mode() -> None:
    err = connect_error("mx1", "admin@h", "admin@h: Permission denied (publickey).\n", legacy=False)
    assert "refused every key" in str(err) and "ssh-agent" in str(err)


# --- choosing the transport -----------------------------------------------------------------------------


def test_the_site_chooses_and_the_cli_overrides(tmp_path: Path) -> None:
    host = Host.model_validate({"name": "mx1.example.com", "ssh": {"transport": "openssh", "legacy_algorithms": True}})
    target = target_for(host, RunOptions(), tmp_path)
    assert (target.kind, target.legacy_algorithms) == ("openssh", True)
    assert isinstance(make(target), OpenSshTransport)
    overridden = target_for(host, RunOptions(transport="paramiko"), tmp_path)
    assert overridden.kind == "paramiko" and isinstance(make(overridden), SshTransport)
    plain = target_for(Host.model_validate({"name": "mx1.example.com"}), RunOptions(), tmp_path)
    assert (plain.kind, plain.legacy_algorithms) == ("paramiko", False)


def test_paramiko_refuses_legacy_algorithms_it_cannot_do(monkeypatch: pytest.MonkeyPatch) -> None:
    if not paramiko_ssh.paramiko_legacy_gaps():
        pytest.skip("this paramiko still has ssh-rsa and SHA-1 key exchange")
    monkeypatch.setattr(paramiko_ssh, "_open_socket", _must_not_connect)
    with pytest.raises(TransportError) as caught:
        SshTransport(replace(BASE, kind="paramiko", legacy_algorithms=True)).connect()
    message = str(caught.value)
    assert "paramiko 5" in message or "paramiko " in message
    assert "ssh.transport: openssh" in message and "ssh.legacy_algorithms: true" in message
    assert "ssh-rsa" in message and "Nothing was run" in message


def test_accept_new_is_never_asked_of_openssh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", _must_not_connect)
    with pytest.raises(HostKeyError, match="not offered over the openssh transport"):
        OpenSshTransport(replace(BASE, accept_new_host_keys=True)).connect()


def test_a_secret_never_reaches_the_ssh_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", _must_not_connect)
    monkeypatch.setattr(subprocess, "Popen", _must_not_connect)
    t = OpenSshTransport(replace(BASE, sudo_password="s3cret-pw"))
    for argv, secrets in ((["echo", "hunter2"], ["hunter2"]), (["echo", "s3cret-pw"], [])):
        with pytest.raises(TransportError, match="goes on stdin") as caught:
            t.run(argv, secrets=secrets)
        assert "hunter2" not in str(caught.value) and "s3cret-pw" not in str(caught.value)


def _must_not_connect(*args: object, **kwargs: object) -> Any:
    raise AssertionError("connected although it had to refuse first")


# --- against real sshds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    sshd: Sshd
    dir: Path
    rsa_key_line: str = ""

    def known(self, line: str) -> str:
        return f"[127.0.0.1]:{self.sshd.port} {line}\n"


def _start_sshd(d: Path, extra: str, host_key: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = _free_port()
    log = d / "sshd.log"
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nUsePAM no\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nLogLevel VERBOSE\n{extra}"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-E", str(log)])
    _wait_listening(port, proc)
    return proc, port, log


def _needs_sshd() -> None:
    if os.geteuid() != 0 or not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.skip("needs root, /usr/sbin/sshd (Debian: openssh-server) and the ssh client")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """A modern sshd (ed25519 host key) and an old-style one (RSA host key, ssh-rsa, group14-sha1 only)."""
    _needs_sshd()
    d = tmp_path_factory.mktemp("osshd")
    for name in ("host_ed25519", "client_ed25519", "other_ed25519"):
        _keygen(d / name)
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(d / "host_rsa")], check=True)
    (d / "authorized_keys").write_text((d / "client_ed25519.pub").read_text())
    old_dir = d / "old"
    old_dir.mkdir()
    (old_dir / "authorized_keys").write_text((d / "client_ed25519.pub").read_text())
    modern, port, log = _start_sshd(d, "", d / "host_ed25519")
    old, old_port, old_log = _start_sshd(
        old_dir, "HostKeyAlgorithms ssh-rsa\nKexAlgorithms diffie-hellman-group14-sha1\n", d / "host_rsa"
    )
    try:
        ed = " ".join((d / "host_ed25519.pub").read_text().split()[:2])
        rsa = " ".join((d / "host_rsa.pub").read_text().split()[:2])
        fp = ""
        yield (
            Server(Sshd(port, ed, fp, d / "client_ed25519", d / "other_ed25519", log), d),
            Server(Sshd(old_port, rsa, fp, d / "client_ed25519", d / "other_ed25519", old_log), old_dir, rsa),
        )
    finally:
        for proc in (modern, old):
            proc.terminate()
            proc.wait(timeout=5)


def _osh(server: Server, tmp: Path, *, known: str | None = None, **kw: Any) -> OpenSshTransport:
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(server.known(server.sshd.host_key_line) if known is None else known)
    config = tmp / "ssh_config"
    config.write_text("")
    target = SshTarget(
        host="mx1",
        address="127.0.0.1",
        port=server.sshd.port,
        user="root",
        identity_file=str(server.sshd.client_key),
        known_hosts=str(known_hosts),
        connect_timeout=5.0,
        kind="openssh",
    )
    return OpenSshTransport(replace(target, **kw), ssh_config=str(config))


def test_commands_share_one_connection(servers: tuple[Server, Server], tmp_path: Path) -> None:
    server = servers[0]
    before = server.sshd.logins()
    with _osh(server, tmp_path) as t:
        hostile = "it's $(id) `x` ; \n ✉"
        assert t.run(["printf", "%s", hostile]).stdout == hostile
        assert t.run(["id", "-u"]).stdout == "0\n"
        assert t.run_script('x=$(echo hi)\necho "$x"\nprintf \'%s\' "$LC_ALL"\n').stdout == "hi\nC"
        data = "héllo\n".encode() + bytes(range(1, 128)) * 2000
        assert t.run(["cat"], stdin=data).stdout == data.decode()
        assert t.run(["cat"]).stdout == ""
        assert t.round_trips == 5
        control_dir = Path(t._control).parent
        assert control_dir.stat().st_mode & 0o777 == 0o700
        pid = t.master_pid
    assert server.sshd.logins() - before == 1
    assert not control_dir.exists()
    assert pid is not None and not openssh._alive(pid)


def test_secrets_go_on_stdin_never_in_argv(
    servers: tuple[Server, Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    real = subprocess.Popen

    def spy(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        seen.append(list(argv))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    with _osh(servers[0], tmp_path) as t:
        argv = ["sh", "-c", 'read -r p; echo "login failed for $p" >&2; exit 3']
        with pytest.raises(CommandError) as caught:
            t.run(argv, stdin=b"hunter2\n", secrets=["hunter2"])
        result = t.run(argv, stdin=b"hunter2\n", check=False, secrets=["hunter2"])
    assert "hunter2" not in str(caught.value) and "login failed for ***" in str(caught.value)
    assert result.rc == 3 and "hunter2" not in result.command
    assert seen and not any("hunter2" in a for argv in seen for a in argv)


def test_unknown_host_key_is_refused_and_nothing_runs(servers: tuple[Server, Server], tmp_path: Path) -> None:
    server = servers[0]
    before = server.sshd.logins()
    t = _osh(server, tmp_path, known="")
    with pytest.raises(HostKeyError, match="not in known_hosts") as caught:
        t.run(["touch", str(tmp_path / "ran")])
    assert "ED25519" in str(caught.value)
    assert server.sshd.logins() == before and t.round_trips == 0 and not (tmp_path / "ran").exists()


def test_changed_host_key_is_refused(servers: tuple[Server, Server], tmp_path: Path) -> None:
    server = servers[0]
    other = (server.dir / "other_ed25519.pub").read_text().split()
    t = _osh(server, tmp_path, known=server.known(f"{other[0]} {other[1]}"))
    with pytest.raises(HostKeyError, match="CHANGED"):
        t.connect()


def test_refused_key_names_batch_mode(servers: tuple[Server, Server], tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="refused every key"):
        _osh(servers[0], tmp_path, identity_file=str(servers[0].sshd.other_key)).connect()


def test_timeout_keeps_the_connection(servers: tuple[Server, Server], tmp_path: Path) -> None:
    with _osh(servers[0], tmp_path) as t:
        start = time.monotonic()
        with pytest.raises(TransportError, match=r"mx1: command timed out after 0\.3s: sleep 2"):
            t.run(["sleep", "2"], timeout=0.3)
        assert time.monotonic() - start < 1.5
        assert t.run(["echo", "still"]).stdout == "still\n"


def test_a_dead_master_is_a_lost_connection(servers: tuple[Server, Server], tmp_path: Path) -> None:
    with _osh(servers[0], tmp_path) as t:
        assert t.master_pid is not None
        killer = threading.Timer(0.5, os.kill, (t.master_pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(TransportError, match="connection was lost while running: sleep 5"):
            t.run(["sleep", "5"])
        killer.join()
        with pytest.raises(TransportError, match="connection was lost; nothing more was run"):
            t.run(["true"])


def test_an_old_sshd_is_refused_without_legacy_algorithms(servers: tuple[Server, Server], tmp_path: Path) -> None:
    old = servers[1]
    with pytest.raises(TransportError) as caught:
        _osh(old, tmp_path).connect()
    message = str(caught.value)
    assert "ssh.legacy_algorithms: true" in message and "Nothing was run" in message


def test_an_old_sshd_is_reached_with_legacy_algorithms(servers: tuple[Server, Server], tmp_path: Path) -> None:
    old = servers[1]
    with _osh(old, tmp_path, legacy_algorithms=True) as t:
        assert t.run(["echo", "old"]).stdout == "old\n"
    # strict all the same: an unknown RSA key is refused
    with pytest.raises(HostKeyError):
        _osh(old, tmp_path, known="", legacy_algorithms=True).connect()


def test_paramiko_says_what_to_set_for_an_old_sshd(servers: tuple[Server, Server], tmp_path: Path) -> None:
    if not paramiko_ssh.paramiko_legacy_gaps():
        pytest.skip("this paramiko still has ssh-rsa and SHA-1 key exchange")
    old = servers[1]
    known = tmp_path / "kh"
    known.write_text(old.known(old.rsa_key_line))
    target = SshTarget(
        host="mx1",
        address="127.0.0.1",
        port=old.sshd.port,
        user="root",
        identity_file=str(old.sshd.client_key),
        known_hosts=str(known),
        connect_timeout=5.0,
    )
    with pytest.raises(TransportError) as caught:
        SshTransport(target).connect()
    message = str(caught.value)
    assert "Incompatible ssh peer" in message
    assert "ssh.transport: openssh" in message and "ssh.legacy_algorithms: true" in message


@pytest.mark.parametrize("command", ["plan", "apply", "verify"])
def test_the_cli_offers_transport_on(command: str) -> None:
    from click.testing import CliRunner

    from mailprov.cli import main

    runner = CliRunner()
    assert "--transport [paramiko|openssh]" in runner.invoke(main, [command, "--help"]).output
    refused = runner.invoke(main, [command, "site.yaml", "--transport", "libssh"])
    assert refused.exit_code == 2 and "'libssh' is not one of" in refused.output


def test_the_cli_flag_reaches_every_host_target(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mailprov import orchestrate
    from mailprov.cli import main

    seen: list[SshTarget] = []

    def fake_plan_site(site: Any, hosts: Any, options: RunOptions, base_dir: Path) -> list[Any]:
        seen.extend(target_for(h, options, base_dir) for h in hosts)
        return []

    monkeypatch.setattr(orchestrate, "plan_site", fake_plan_site)
    monkeypatch.setenv("MAILPROV_ALICE_PASSWORD", "Pw-for-the-test-1")
    site = str(Path(__file__).parents[2] / "inventories" / "minimal.yaml")
    result = CliRunner().invoke(main, ["plan", site, "--transport", "openssh"])
    assert result.exit_code == 0, result.output
    assert [t.kind for t in seen] == ["openssh"]


def test_ssh_config_and_proxy_jump_work_as_in_a_terminal(servers: tuple[Server, Server], tmp_path: Path) -> None:
    """Everything from the admin's ssh_config: the name, the jump host, the key; the system ssh does it."""
    sshd = servers[0].sshd
    known = tmp_path / "known_hosts"
    known.write_text(servers[0].known(sshd.host_key_line))
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion inner\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {known}\n"
        "Host inner\n  ProxyJump bastion\n"
    )
    before = (sshd.connections(), sshd.logins())
    target = SshTarget(host="inner", kind="openssh", connect_timeout=5.0)
    with OpenSshTransport(target, ssh_config=str(config)) as t:
        assert t.run(["echo", "through"]).stdout == "through\n"
        assert t.run(["true"]).ok
    # bastion and inner both logged in, once each: the inner connection went through the jump host
    assert (sshd.connections() - before[0], sshd.logins() - before[1]) == (2, 2)


def test_keys_in_ssh_agent_are_used(
    servers: tuple[Server, Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("needs ssh-agent and ssh-add")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        wait_until = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < wait_until:
            time.sleep(0.02)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(servers[0].sshd.client_key)], check=True, capture_output=True)
        with _osh(servers[0], tmp_path, identity_file=None) as t:  # no key file: only the agent has it
            assert t.run(["echo", "agent"]).stdout == "agent\n"
    finally:
        agent.terminate()
        agent.wait(timeout=5)
