"""OpenSshTransport: the system `ssh`, one multiplexed connection per host for the whole run.

The admin's own ssh does the connecting, so ~/.ssh/config, ssh-agent, FIDO (sk-) keys, ProxyJump and
ProxyCommand and certificates work as in their terminal. connect() starts one master connection
(ControlMaster, its socket in a private 0700 directory; ControlPersist only as a safety net should mailprov
die), every command runs as a client of it, and close() ends it and removes the directory.

Same policy as the paramiko transport: StrictHostKeyChecking=yes against known_hosts (the site's file first,
then the user's), never accept-new; BatchMode=yes, so ssh never prompts; secrets go on stdin only, never in
argv, and ssh runs without -v. `legacy_algorithms` adds, for this host only, what a CentOS 5/6 sshd needs
(ssh-rsa host keys and signatures, SHA-1 key exchange, CBC ciphers), limited to what this ssh still knows.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Final

from mailprov.errors import HostKeyError, TransportError
from mailprov.transport import shell
from mailprov.transport.base import CommandResult, ShellTransport, SshTarget
from mailprov.transport.shell import Become, ssh_option_path

log = logging.getLogger(__name__)

SSH: Final = "ssh"
PERSIST_SECONDS: Final = 1800  # a master left behind by a mailprov that died exits after this long idle
ALIVE_INTERVAL: Final = 15  # keepalives: a dead link is noticed after 15 s x 3, as with paramiko
ALIVE_COUNT_MAX: Final = 3
LEGACY_SETTING: Final = "ssh.legacy_algorithms: true"

# (ssh_config option, `ssh -Q` list it draws from, names added for an old sshd, in order of preference)
LEGACY: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("HostKeyAlgorithms", "key-sig", ("ssh-rsa",)),
    ("PubkeyAcceptedAlgorithms", "key-sig", ("ssh-rsa",)),
    (
        "KexAlgorithms",
        "kex",
        ("diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1", "diffie-hellman-group1-sha1"),
    ),
    ("Ciphers", "cipher", ("aes128-cbc", "aes256-cbc", "3des-cbc")),
    ("MACs", "mac", ("hmac-sha1", "hmac-md5")),
)
# Without these two, this ssh cannot reach a CentOS 5/6 sshd at all.
LEGACY_REQUIRED: Final = (("key-sig", "ssh-rsa"), ("kex", "diffie-hellman-group14-sha1"))


# ---------------------------------------------------------------------------------------------------
# argv: pure functions of the target (unit-tested setting by setting)


def destination(target: SshTarget) -> str:
    return target.address or target.host


def connection_options(
    target: SshTarget, control_path: str, legacy: Sequence[str] = (), config_file: str | None = None
) -> list[str]:
    """The options every ssh of this transport gets: the site's settings as -o, the strict policy, the master."""
    opts = ["-F", config_file] if config_file else []
    opts += [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ControlPath={ssh_option_path(control_path)}",
        "-o",
        f"ConnectTimeout={max(1, math.ceil(target.connect_timeout))}",
        "-o",
        f"ServerAliveInterval={ALIVE_INTERVAL}",
        "-o",
        f"ServerAliveCountMax={ALIVE_COUNT_MAX}",
    ]
    if target.port is not None:
        opts += ["-p", str(target.port)]
    if target.user:
        opts += ["-l", target.user]
    if target.identity_file:
        opts += ["-o", f"IdentityFile={ssh_option_path(target.identity_file)}"]
    if target.known_hosts:  # the site's file first: it is the one that names the host
        opts += ["-o", f"UserKnownHostsFile={ssh_option_path(target.known_hosts)} ~/.ssh/known_hosts"]
    return [*opts, *legacy]


def master_argv(
    target: SshTarget, control_path: str, legacy: Sequence[str] = (), config_file: str | None = None, ssh: str = SSH
) -> list[str]:
    """The master connection: logs in, then goes to the background (-f) holding the control socket."""
    return [
        ssh,
        *connection_options(target, control_path, legacy, config_file),
        "-o",
        "ControlMaster=yes",
        "-o",
        f"ControlPersist={PERSIST_SECONDS}",
        "-f",
        "-N",
        "--",
        destination(target),
    ]


def command_argv(
    target: SshTarget,
    control_path: str,
    command: str,
    legacy: Sequence[str] = (),
    config_file: str | None = None,
    ssh: str = SSH,
) -> list[str]:
    """One command through the master. `command` is the line shell.py built; it holds no secret."""
    return [
        ssh,
        *connection_options(target, control_path, legacy, config_file),
        "-o",
        "ControlMaster=no",
        "-T",
        "--",
        destination(target),
        command,
    ]


def control_argv(
    target: SshTarget, control_path: str, operation: str, config_file: str | None = None, ssh: str = SSH
) -> list[str]:
    """`ssh -O check|exit` on the master."""
    return [ssh, *connection_options(target, control_path, (), config_file), "-O", operation, "--", destination(target)]


def legacy_options(supported: Mapping[str, frozenset[str]], ssh_version: str = "this ssh") -> tuple[str, ...]:
    """The -o options that let this ssh reach an old sshd, limited to the names it knows (`ssh -Q`).
    Appended with `+`: a modern algorithm is still preferred wherever the server has one."""
    missing = [name for query, name in LEGACY_REQUIRED if name not in supported.get(query, frozenset())]
    if missing:
        raise TransportError(
            f"{ssh_version} no longer supports {' and '.join(missing)}, which an old sshd (CentOS 5/6) needs: "
            "legacy_algorithms cannot work with it; use an OpenSSH client that still has them"
        )
    out: list[str] = []
    for option, query, names in LEGACY:
        have = [n for n in names if n in supported.get(query, frozenset())]
        if have:
            out += ["-o", f"{option}=+{','.join(have)}"]
    return tuple(out)


@functools.cache
def supported_algorithms(ssh: str = SSH) -> Mapping[str, frozenset[str]]:
    """What the local ssh knows, by `ssh -Q` list (read once per process)."""
    found: dict[str, frozenset[str]] = {}
    for query in sorted({q for _, q, _ in LEGACY}):
        done = _local([ssh, "-Q", query], 10.0)
        found[query] = frozenset(done.stdout.split()) if done.returncode == 0 else frozenset()
    return found


@functools.cache
def ssh_version(ssh: str = SSH) -> str:
    done = _local([ssh, "-V"], 10.0)
    return (done.stderr or done.stdout).strip() or ssh


def parse_master_pid(text: str) -> int | None:
    """The master's PID from `ssh -O check` ("Master running (pid=1234)")."""
    match = re.search(r"Master running \(pid=(\d+)\)", text)
    return int(match.group(1)) if match else None


def parse_user(ssh_g_output: str) -> str | None:
    """The login user from `ssh -G` (the effective configuration)."""
    for line in ssh_g_output.splitlines():
        key, _, value = line.partition(" ")
        if key == "user" and value.strip():
            return value.strip()
    return None


# ---------------------------------------------------------------------------------------------------
# What ssh said when it could not connect, as a message for the admin


_NEGOTIATE: Final = re.compile(
    r"Unable to negotiate with (?P<who>.+?) port \d+: no matching (?P<what>host key type|key exchange method|"
    r"cipher|MAC) found\. Their offer: (?P<offer>\S+)"
)
_LEGACY_NAMES: Final = ("ssh-rsa", "ssh-dss", "-sha1", "-cbc", "hmac-md5", "hmac-sha1")


def connect_error(host: str, where: str, ssh_said: str, legacy: bool) -> TransportError:
    """Why the master connection failed, said for the admin: what ssh reported and what to do."""
    lines = [ln.strip() for ln in ssh_said.replace("\r", "").splitlines() if ln.strip() and not ln.startswith("@")]
    said = "\n".join(f"  ssh: {ln}" for ln in lines[-8:]) or "  (ssh said nothing)"
    text = "\n".join(lines)
    negotiate = _NEGOTIATE.search(text)
    if negotiate:
        what, offer = negotiate["what"], negotiate["offer"]
        if not legacy and any(n in offer for n in _LEGACY_NAMES):
            return TransportError(
                f"{host}: {where} offers only legacy SSH algorithms ({what}: {offer}), as an old sshd such as "
                f"CentOS 5/6's does. Nothing was run. To allow them for this host alone, set `{LEGACY_SETTING}` "
                "(with `ssh.transport: openssh`) in its ssh settings.\n" + said
            )
        return TransportError(
            f"{host}: {where} and this ssh share no {what} (the server offers {offer}"
            f"{', even with legacy_algorithms' if legacy else ''}). Nothing was run.\n" + said
        )
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in ssh_said or "Host key verification failed" in ssh_said:
        changed = "REMOTE HOST IDENTIFICATION HAS CHANGED" in ssh_said
        state = (
            "has CHANGED: someone may be intercepting the connection, or the host was reinstalled"
            if changed
            else "is not in known_hosts (StrictHostKeyChecking=yes, never accept-new)"
        )
        todo = (
            "If the change is expected, remove the offending line that ssh names (ssh-keygen -R), then connect again."
            if changed
            else "Compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it to the "
            "site's known_hosts file or ~/.ssh/known_hosts (e.g. with ssh-keyscan)."
        )
        return HostKeyError(f"{host}: the SSH host key of {where} {state}. Nothing was run.\n{todo}\n" + said)
    if "Permission denied" in ssh_said:
        return TransportError(
            f"{host}: {where} refused every key (ssh runs with BatchMode=yes: an encrypted key must be in "
            "ssh-agent, a password login is never tried).\n" + said
        )
    return TransportError(f"{host}: ssh could not connect to {where}. Nothing was run.\n" + said)


# ---------------------------------------------------------------------------------------------------
# Local processes


def _local(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise TransportError(
            f"the openssh transport needs the `{argv[0]}` program (the OpenSSH client): install it "
            "(apt-get install openssh-client / dnf install openssh-clients), or use `ssh.transport: paramiko`"
        ) from None
    except subprocess.TimeoutExpired:
        raise TransportError(f"`{' '.join(argv[:1])} {' '.join(argv[-2:])}` did not answer in {timeout:g}s") from None


def _alive(pid: int) -> bool:
    """Whether the master process still runs (a zombie nobody reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc here: kill(0) is all we know


class OpenSshTransport(ShellTransport):
    """A session on one host through the system ssh. Connects on first use (or connect() / `with`)."""

    def __init__(self, target: SshTarget, *, ssh_config: str | None = None, ssh: str = SSH) -> None:
        self._target = target
        self._config_file = ssh_config  # None: ssh reads ~/.ssh/config itself
        self._ssh = ssh
        self._dir: str | None = None
        self._control = ""
        self._legacy: tuple[str, ...] = ()
        self._master_pid: int | None = None
        self._become: Become = Become.NONE
        self._round_trips = 0

    @property
    def host(self) -> str:
        return self._target.host

    @property
    def round_trips(self) -> int:
        return self._round_trips

    @property
    def master_pid(self) -> int | None:
        """The master connection's process (tests cut the link by killing it)."""
        return self._master_pid

    def __enter__(self) -> OpenSshTransport:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _where(self) -> str:
        t = self._target
        user = f"{t.user}@" if t.user else ""
        port = f" port {t.port}" if t.port else ""
        return f"{user}{destination(t)}{port}"

    def connect(self) -> None:
        """Start the master connection (host key checked by ssh, logged in), and when becoming, find out
        once how sudo works. Does nothing when already connected."""
        if self._master_pid is not None:
            return
        target = self._target
        if target.accept_new_host_keys:
            raise HostKeyError(
                f"{target.host}: --accept-new-host-keys is not offered over the openssh transport (OpenSSH's "
                "accept-new would also record a key of a new type for a known name, which mailprov refuses). "
                f"Nothing was run. Check and record the key with `ssh {self._where()}` in a terminal, or use "
                "--transport paramiko for this run."
            )
        if target.legacy_algorithms:
            self._legacy = legacy_options(supported_algorithms(self._ssh), ssh_version(self._ssh))
        self._dir = tempfile.mkdtemp(prefix="mailprov-ssh-")  # mode 0700: the socket is a login
        self._control = os.path.join(self._dir, "master")
        try:
            self._start_master()
            self._become = self._decide_become()
        except BaseException:
            self.close()
            raise

    def _start_master(self) -> None:
        assert self._dir is not None
        argv = master_argv(self._target, self._control, self._legacy, self._config_file, self._ssh)
        log.debug("%s: starting the ssh master: %s", self.host, shell.join(argv))
        log_path = os.path.join(self._dir, "master.log")
        # The master keeps this file as its stderr once in the background: a pipe would never reach EOF.
        with open(log_path, "wb") as err:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=2 * self._target.connect_timeout + 15,
                    check=False,
                )
            except FileNotFoundError:
                _local([self._ssh, "-V"], 10.0)  # raises the "install ssh" message
                raise
            except subprocess.TimeoutExpired:
                raise TransportError(
                    f"{self.host}: ssh to {self._where()} did not log in within "
                    f"{2 * self._target.connect_timeout + 15:g}s. Nothing was run."
                ) from None
        if done.returncode != 0:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                raise connect_error(self.host, self._where(), f.read(), bool(self._legacy))
        check = _local(control_argv(self._target, self._control, "check", self._config_file, self._ssh), 15.0)
        self._master_pid = parse_master_pid(check.stderr + check.stdout)
        if self._master_pid is None:
            raise TransportError(f"{self.host}: the ssh master did not start: {check.stderr.strip()}")
        log.debug("%s: connected to %s (ssh master pid %d)", self.host, self._where(), self._master_pid)

    def _decide_become(self) -> Become:
        if not self._target.become:
            return Become.NONE
        user = self._target.user or self._effective_user()
        if user == "root":
            return Become.NONE
        return shell.resolve_become(self.host, user, self._target.sudo_password, self._probe)

    def _effective_user(self) -> str:
        argv = [self._ssh, *connection_options(self._target, self._control, (), self._config_file), "-G"]
        done = _local([*argv, "--", destination(self._target)], 15.0)
        return parse_user(done.stdout) or "?"

    def _probe(self, command: str, stdin: bytes | None) -> tuple[int, str]:
        rc, _, err = self._execute(command, stdin, self._target.connect_timeout, "sudo probe")
        return rc, err

    def close(self) -> None:
        pid, self._master_pid = self._master_pid, None
        if pid is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # the master removes its socket and says goodbye to sshd
            deadline = time.monotonic() + 2.0
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _sudo_password(self) -> str | None:
        return self._target.sudo_password

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = 300.0,
        secrets: Sequence[str] = (),
    ) -> CommandResult:
        """As every transport's, but a command line holding a secret is refused: here it would be an argv of
        the local ssh, which `ps` shows to every user of this machine."""
        line = shell.join(argv)
        if any(secret and secret in line for secret in self._all_secrets(secrets)):
            raise TransportError(
                f"{self.host}: a secret would be on the ssh command line (shown by ps): it goes on stdin. "
                "Nothing was run."
            )
        return super().run(argv, stdin=stdin, check=check, timeout=timeout, secrets=secrets)

    def _become_mode(self) -> Become:
        self.connect()
        return self._become

    def _execute(self, command: str, stdin: bytes | None, timeout: float | None, display: str) -> tuple[int, str, str]:
        pid = self._master_pid
        if pid is None or not _alive(pid):
            raise TransportError(f"{self.host}: the SSH connection was lost; nothing more was run")
        self._round_trips += 1
        argv = command_argv(self._target, self._control, command, self._legacy, self._config_file, self._ssh)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a timeout kills this client only, and a Ctrl-C reaches mailprov first
        )
        try:
            out, err = proc.communicate(stdin or b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            # The client passed its stdio to the master (fd passing), which holds the pipes until the remote
            # command ends: reap the client, never wait for EOF.
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            raise TransportError(f"{self.host}: command timed out after {timeout:g}s: {display}") from None
        text_err = err.decode("utf-8", errors="replace")
        if proc.returncode == 255 and (not _alive(pid) or _mux_failed(text_err)):
            raise TransportError(
                f"{self.host}: the SSH connection was lost while running: {display}"
                + (f"\n  ssh: {text_err.strip().splitlines()[-1]}" if text_err.strip() else "")
            )
        return proc.returncode, out.decode("utf-8", errors="replace"), text_err


def _mux_failed(stderr: str) -> bool:
    """Whether ssh itself failed (not the remote command): the client lost its master or the link."""
    markers = ("mux_client", "Control socket", "Connection to ", "Broken pipe", "Timeout, server", "closed by remote")
    return any(m in stderr for m in markers)
