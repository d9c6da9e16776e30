"""SshTransport against a real sshd on 127.0.0.1 (a random high port, keys in a temp dir).

The sshd tests are skipped unless root (sshd must switch users) and /usr/sbin/sshd is installed
(Debian: openssh-server). The known_hosts, ProxyJump and ssh_config parsing tests always run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailprov.errors import CommandError, HostKeyError, TransportError
from mailprov.transport import Script, SshTarget, SshTransport, connect, ssh

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    host_key_line: str  # "ssh-ed25519 AAAA..." as in known_hosts
    host_fingerprint: str  # "SHA256:..." as ssh-keygen prints it
    client_key: Path
    other_key: Path  # a key sshd does not accept
    log: Path

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key_line}\n"

    def logins(self) -> int:
        """Successful logins so far (one per TCP connection that authenticated)."""
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def connections(self) -> int:
        """TCP connections sshd has accepted so far, authenticated or not."""
        return self.log.read_text(errors="replace").count("Connection from 127.0.0.1")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("sshd did not start listening")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0 or not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("needs root, /usr/sbin/sshd (Debian: openssh-server) and ssh-keygen")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_ed25519", "client_ed25519", "other_ed25519"):
        _keygen(d / name)
    (d / "authorized_keys").write_text((d / "client_ed25519.pub").read_text())
    port = _free_port()
    log = d / "sshd.log"
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_ed25519'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nAllowTcpForwarding yes\nLogLevel VERBOSE\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-E", str(log)])
    try:
        _wait_listening(port, proc)
        pub = (d / "host_ed25519.pub").read_text().split()
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", str(d / "host_ed25519.pub")], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        yield Sshd(port, f"{pub[0]} {pub[1]}", fingerprint, d / "client_ed25519", d / "other_ed25519", log)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME: no ~/.ssh/config, known_hosts or keys of the machine's user leak into a test."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return tmp_path


def _target(sshd: Sshd, home: Path, *, known: str | None = None, **kw: object) -> SshTarget:
    known_hosts = home / "project_known_hosts"
    known_hosts.write_text(sshd.known_hosts_line if known is None else known)
    base = SshTarget(
        host="mx1",
        address="127.0.0.1",
        port=sshd.port,
        user="root",
        identity_file=str(sshd.client_key),
        known_hosts=str(known_hosts),
        connect_timeout=5.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_commands_share_one_connection(sshd: Sshd, home: Path) -> None:
    before = sshd.logins()
    with SshTransport(_target(sshd, home)) as t:
        hostile = "it's $(id) `x` ; \n ✉"
        assert t.run(["printf", "%s", hostile]).stdout == hostile
        assert t.run(["id", "-u"]).stdout == "0\n"
        script = t.run_script('set -e\nx=$(echo hi)\necho "$x"\nprintf \'%s\' "$LC_ALL"\n')
        assert script.stdout == "hi\nC"
        assert t.round_trips == 3
    assert sshd.logins() - before == 1


def test_stdin_reaches_the_command(sshd: Sshd, home: Path) -> None:
    data = "héllo\n".encode() + bytes(range(1, 128)) * 2000  # 254 KB: more than one SSH window chunk
    with SshTransport(_target(sshd, home)) as t:
        assert t.run(["cat"], stdin=data).stdout == data.decode()
        assert t.run(["cat"]).stdout == ""  # no stdin: EOF at once, no hang
        assert t.run(["true"], stdin=b"x" * 3_000_000, timeout=5).ok  # unread stdin: no hang either


def test_unknown_host_key_is_refused_and_nothing_runs(sshd: Sshd, home: Path) -> None:
    before = sshd.logins()
    t = SshTransport(_target(sshd, home, known=""))
    with pytest.raises(HostKeyError) as caught:
        t.run(["touch", str(home / "ran")])
    message = str(caught.value)
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert f"ssh-ed25519 {sshd.host_fingerprint}" in message
    assert "ssh-keyscan" in message and "--accept-new-host-keys" in message
    assert sshd.logins() == before  # refused before authentication
    assert t.round_trips == 0
    assert not (home / "ran").exists()


def test_accept_new_records_the_key(sshd: Sshd, home: Path) -> None:
    target = _target(sshd, home, known="", accept_new_host_keys=True)
    with SshTransport(target) as t:
        t.run(["true"])
    assert target.known_hosts is not None
    assert Path(target.known_hosts).read_text() == sshd.known_hosts_line
    with SshTransport(replace(target, accept_new_host_keys=False)) as t:  # now known
        assert t.run(["echo", "ok"]).stdout == "ok\n"


def test_accept_new_without_extra_file_writes_user_known_hosts(sshd: Sshd, home: Path) -> None:
    target = replace(_target(sshd, home), known_hosts=None, accept_new_host_keys=True)
    connect(target).close()
    assert (home / ".ssh" / "known_hosts").read_text() == sshd.known_hosts_line


def test_changed_key_is_refused_even_with_accept_new(sshd: Sshd, home: Path) -> None:
    other = (sshd.other_key.with_suffix(".pub")).read_text().split()
    known = f"# comment\n[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n"
    target = _target(sshd, home, known=known, accept_new_host_keys=True)
    with pytest.raises(HostKeyError) as caught:
        connect(target)
    message = str(caught.value)
    assert "CHANGED" in message
    assert f"{target.known_hosts} line 2" in message
    assert sshd.host_fingerprint in message


def test_revoked_key_is_refused(sshd: Sshd, home: Path) -> None:
    known = sshd.known_hosts_line + f"@revoked [127.0.0.1]:{sshd.port} {sshd.host_key_line}\n"
    with pytest.raises(HostKeyError, match="revoked"):
        connect(_target(sshd, home, known=known))


def test_script_writes_files_byte_exactly(sshd: Sshd, home: Path) -> None:
    contents = ["no newline", "MAILPROV_EOF\n$HOME `id` \\ 'q'\n.\n", "", "✉ unicode\r\n"]
    script = Script()
    for n, content in enumerate(contents):
        script.write_file(str(home / f"file {n}"), content)
    with SshTransport(_target(sshd, home)) as t:
        t.run_script(script.render())
        assert t.round_trips == 1
    assert [(home / f"file {n}").read_bytes() for n in range(len(contents))] == [c.encode() for c in contents]


def test_hashed_known_hosts_entry_is_honoured(sshd: Sshd, home: Path) -> None:
    target = _target(sshd, home)
    assert target.known_hosts is not None
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", target.known_hosts], check=True, capture_output=True)
    assert Path(target.known_hosts).read_text().startswith("|1|")
    with SshTransport(target) as t:
        assert t.run(["true"]).ok


def test_failed_command_raises_with_secrets_masked(sshd: Sshd, home: Path) -> None:
    argv = ["sh", "-c", 'echo "login failed for $1" >&2; exit 3', "sh", "hunter2"]
    with SshTransport(_target(sshd, home)) as t:
        with pytest.raises(CommandError) as caught:
            t.run(argv, secrets=["hunter2"])
        result = t.run(argv, check=False, secrets=["hunter2"])
    err = caught.value
    assert (err.host, err.rc) == ("mx1", 3)
    assert "hunter2" not in str(err) and "login failed for ***" in str(err)
    assert "hunter2" not in result.command and "***" in result.command
    assert (result.rc, result.ok) == (3, False)


def test_timeout_names_host_and_command_and_keeps_the_connection(sshd: Sshd, home: Path) -> None:
    with SshTransport(_target(sshd, home)) as t:
        start = time.monotonic()
        with pytest.raises(TransportError, match=r"mx1: command timed out after 0\.3s: sleep 1"):
            t.run(["sleep", "1"], timeout=0.3)
        assert time.monotonic() - start < 1
        assert t.run(["echo", "still"]).stdout == "still\n"


def test_connection_refused_names_address_and_port(home: Path) -> None:
    port = _free_port()
    target = SshTarget(host="mx1", address="127.0.0.1", port=port, user="root", connect_timeout=2.0)
    with pytest.raises(TransportError, match=rf"mx1: cannot connect to 127.0.0.1 port {port}: connection refused"):
        connect(target)


def test_authentication_failure_lists_the_keys_tried(sshd: Sshd, home: Path) -> None:
    target = _target(sshd, home, identity_file=str(sshd.other_key))
    with pytest.raises(TransportError) as caught:
        connect(target)
    message = str(caught.value)
    assert "refused every key" in message
    assert str(sshd.other_key) in message and "ssh-ed25519 SHA256:" in message


def test_encrypted_key_is_reported_not_fatal(sshd: Sshd, home: Path) -> None:
    encrypted = home / "encrypted_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(encrypted)], check=True)
    with pytest.raises(TransportError, match=r"encrypted_ed25519 \(encrypted: load it into ssh-agent\)"):
        connect(_target(sshd, home, identity_file=str(encrypted)))


def test_ssh_agent_keys_are_offered(sshd: Sshd, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("needs ssh-agent and ssh-add")
    sock = home / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 3
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(sshd.client_key)], check=True, env=env, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with SshTransport(_target(sshd, home, identity_file=None)) as t:  # no key file anywhere
            assert t.run(["true"]).ok
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def _write_ssh_config(home: Path, sshd: Sshd, inner_alias: str) -> None:
    (home / ".ssh").mkdir(exist_ok=True)
    common = f"  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  IdentityFile {sshd.client_key}\n"
    (home / ".ssh" / "config").write_text(
        f"Host bastion\n{common}Host inner\n{common}  ProxyJump bastion\n  HostKeyAlias {inner_alias}\n"
    )


def test_ssh_config_and_proxy_jump(sshd: Sshd, home: Path) -> None:
    _write_ssh_config(home, sshd, "inner.example")
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line + f"inner.example {sshd.host_key_line}\n")
    before = (sshd.connections(), sshd.logins())
    with SshTransport(SshTarget(host="inner", connect_timeout=5.0)) as t:  # everything from ~/.ssh/config
        assert t.run(["echo", "through"]).stdout == "through\n"
        assert t.run(["true"]).ok
    # bastion and inner both logged in; the inner TCP connection came from sshd's own tunnel
    assert (sshd.connections() - before[0], sshd.logins() - before[1]) == (2, 2)


def test_proxy_command_from_ssh_config(sshd: Sshd, home: Path) -> None:
    relay = (  # a stand-in for `nc %h %p`: stdin to the socket, the socket to stdout
        "import socket, sys, threading\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "def up():\n"
        "    while data := sys.stdin.buffer.read1(65536):\n"
        "        s.sendall(data)\n"
        "threading.Thread(target=up, daemon=True).start()\n"
        "while data := s.recv(65536):\n"
        "    sys.stdout.buffer.write(data)\n"
        "    sys.stdout.buffer.flush()\n"
    )
    (home / "relay.py").write_text(relay)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text(
        f"Host relayed\n  HostName 127.0.0.1\n  ProxyCommand {sys.executable} {home / 'relay.py'} %h %p\n"
    )
    before = sshd.logins()
    with SshTransport(_target(sshd, home, host="relayed", address=None)) as t:
        assert t.run(["echo", "relayed"]).stdout == "relayed\n"
    assert sshd.logins() - before == 1


def test_jump_host_key_is_checked_too(sshd: Sshd, home: Path) -> None:
    _write_ssh_config(home, sshd, "inner.example")
    (home / ".ssh" / "known_hosts").write_text(f"inner.example {sshd.host_key_line}\n")  # bastion unknown
    with pytest.raises(HostKeyError, match=r"inner \(jump host bastion\): unknown SSH host key"):
        connect(SshTarget(host="inner", connect_timeout=5.0))


# --- pure parts: no sshd needed --------------------------------------------------------------------


def _hashed(name: str) -> str:
    salt = b"0123456789abcdef0123"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        ("mx1.example.org", "mx1.example.org", True),
        ("MX1.Example.org", "mx1.example.org", True),
        ("other,mx1.example.org", "mx1.example.org", True),
        ("[127.0.0.1]:2222", "[127.0.0.1]:2222", True),  # brackets are literal, not a glob class
        ("[127.0.0.1]:2222", "127.0.0.1", False),
        ("127.0.0.1", "[127.0.0.1]:2222", False),
        ("*.example.org", "mx1.example.org", True),
        ("mx?.example.org", "mx1.example.org", True),
        ("*.example.org,!mx1.example.org", "mx1.example.org", False),
        (_hashed("mx1.example.org"), "mx1.example.org", True),
        (_hashed("mx1.example.org"), "mx2.example.org", False),
        ("|1|garbage", "mx1.example.org", False),
    ],
)
def test_known_hosts_patterns(patterns: str, name: str, expected: bool) -> None:
    assert ssh._hosts_match(patterns, name) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bastion", ("bastion", None, None)),
        ("alice@bastion:2222", ("bastion", "alice", 2222)),
        ("ssh://alice@bastion:2222", ("bastion", "alice", 2222)),
        ("[2001:db8::1]:22", ("2001:db8::1", None, 22)),
    ],
)
def test_proxy_jump_hops(spec: str, expected: tuple[str, str | None, int | None]) -> None:
    assert ssh._parse_jump(spec) == expected


def test_explicit_port_and_user_win_over_ssh_config_and_reach_its_tokens() -> None:
    config = "Host mx1\n  HostName 192.0.2.1\n  Port 2200\n  User bob\n  ProxyCommand nc %h %p %r\n"
    target = SshTarget(host="mx1")
    from_config = ssh._resolve(config, "mx1", "mx1", target=target)
    assert (from_config.address, from_config.port, from_config.user) == ("192.0.2.1", 2200, "bob")
    assert from_config.host_key_name == "[192.0.2.1]:2200"
    explicit = ssh._resolve(config, "mx1", "mx1", target=target, port=22, user="alice")
    assert (explicit.port, explicit.user, explicit.host_key_name) == (22, "alice", "192.0.2.1")
    assert explicit.proxy_command == "nc 192.0.2.1 22 alice"


def test_known_keys_report_file_and_line_and_markers(tmp_path: Path) -> None:
    blob = base64.b64encode(b"\0\0\0\x0bssh-ed25519key").decode()
    path = tmp_path / "known_hosts"
    path.write_text(
        f"# comment\n\nmx1 ssh-ed25519 {blob}\n@revoked mx1 ssh-ed25519 {blob}\n"
        f"@cert-authority *.example.org ssh-ed25519 {blob}\nmx2 ssh-ed25519 {blob}\nbroken line\n"
    )
    found = ssh._known_keys([str(path), str(tmp_path / "missing")], "mx1")
    assert [(k.line, k.marker) for k in found] == [(3, None), (4, "@revoked")]
