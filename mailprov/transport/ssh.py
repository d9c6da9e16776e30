"""SshTransport: one paramiko connection per host, reused for every command of a run.

Host keys are checked by this module, not by paramiko's SSHClient: we drive a bare paramiko.Transport,
compare the server's key with known_hosts ourselves before any authentication (so a refused host runs
nothing), and can name the file and line of a changed key the way OpenSSH does. Unknown keys are
refused unless the target says accept_new_host_keys (OpenSSH's accept-new); changed keys always are.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import paramiko
from paramiko.pkey import UnknownKeyType

from mailprov.errors import HostKeyError, TransportError
from mailprov.transport import shell
from mailprov.transport.base import ShellTransport, SshTarget
from mailprov.transport.shell import Become

log = logging.getLogger(__name__)
# paramiko logs handshake failures at ERROR; under our name and with a NullHandler they reach the CLI's
# handlers when it sets some, and are never printed by logging's last-resort handler when it does not.
PARAMIKO_LOG: Final = f"{__name__}.paramiko"
logging.getLogger(PARAMIKO_LOG).addHandler(logging.NullHandler())

DEFAULT_PORT: Final = 22
DEFAULT_KEEPALIVE: Final = 15
DEAD_LINK_MS: Final = 45_000
DEFAULT_KEY_FILES: Final = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
USER_KNOWN_HOSTS: Final = ("~/.ssh/known_hosts",)
GLOBAL_KNOWN_HOSTS: Final = "/etc/ssh/ssh_known_hosts"
_CHUNK: Final = 65536


# ---------------------------------------------------------------------------------------------------
# Where to connect: the target, completed from ~/.ssh/config


@dataclass(frozen=True)
class _Endpoint:
    """One SSH server to connect to (the target, or a jump host on the way)."""

    who: str  # how messages name it: "mx1" or "mx1 (jump host bastion)"
    address: str
    port: int
    user: str
    key_files: tuple[str, ...]
    use_agent: bool
    host_key_name: str  # the name looked up in known_hosts: "addr", "[addr]:port" or HostKeyAlias
    known_hosts: tuple[str, ...]  # files read
    known_hosts_write: str  # file that accept-new appends to
    keepalive: int
    jumps: tuple[str, ...]  # ProxyJump hops, first hop first
    proxy_command: str | None

    @property
    def label(self) -> str:
        return f"{self.user}@{self.address} port {self.port}"


def _load_config(path: str) -> str:
    full = os.path.expanduser(path)
    if not os.path.isfile(full):
        return ""
    with open(full, encoding="utf-8") as f:
        return f.read()


def _lookup(config_text: str, name: str, port: int | None, user: str | None) -> paramiko.SSHConfigDict:
    """~/.ssh/config for `name`, with explicit port and user taking precedence the way `ssh -p -l`
    does: put first (first value wins), so that %p and %r in ProxyCommand and IdentityFile see them."""
    head = (f"  Port {port}\n" if port else "") + (f"  User {user}\n" if user and _plain(user) else "")
    if head and _plain(name) and not set(name) & set("*?!,"):
        config_text = f"Host {name}\n{head}" + config_text
    return paramiko.SSHConfig.from_text(config_text).lookup(name)


def _plain(word: str) -> bool:
    return bool(word) and not any(c.isspace() or c in "\"'#" for c in word)


def _resolve(
    config_text: str,
    name: str,
    who: str,
    *,
    target: SshTarget,
    port: int | None = None,
    user: str | None = None,
) -> _Endpoint:
    """Explicit values win over ~/.ssh/config, which wins over OpenSSH's defaults."""
    cfg = _lookup(config_text, name, port, user)
    address = str(cfg.get("hostname", name))
    port = port or int(cfg.get("port", DEFAULT_PORT))
    config_keys = [str(k) for k in cfg.get("identityfile", [])]
    explicit = [target.identity_file] if target.identity_file else []
    defaults = [] if explicit or config_keys else [k for k in DEFAULT_KEY_FILES if _exists(k)]
    user_files = str(cfg["userknownhostsfile"]).split() if "userknownhostsfile" in cfg else USER_KNOWN_HOSTS
    read = [*user_files, GLOBAL_KNOWN_HOSTS, *([target.known_hosts] if target.known_hosts else [])]
    alias = cfg.get("hostkeyalias")
    jumps = str(cfg.get("proxyjump", "none"))
    return _Endpoint(
        who=who,
        address=address,
        port=port,
        user=user or str(cfg.get("user", "")) or getpass.getuser(),
        key_files=tuple(os.path.expanduser(k) for k in [*explicit, *config_keys, *defaults]),
        use_agent=str(cfg.get("identitiesonly", "no")).lower() != "yes",
        host_key_name=str(alias) if alias else _known_hosts_name(address, port),
        known_hosts=tuple(os.path.expanduser(f) for f in read),
        known_hosts_write=os.path.expanduser(target.known_hosts or user_files[0]),
        keepalive=int(cfg.get("serveraliveinterval", DEFAULT_KEEPALIVE)),
        jumps=() if jumps.lower() == "none" else tuple(j.strip() for j in jumps.split(",")),
        proxy_command=_none_to_none(cfg.get("proxycommand")),
    )


def _exists(path: str) -> bool:
    return os.path.isfile(os.path.expanduser(path))


def _none_to_none(value: object) -> str | None:
    return None if value is None or str(value).lower() == "none" else str(value)


def _known_hosts_name(address: str, port: int) -> str:
    return address if port == DEFAULT_PORT else f"[{address}]:{port}"


def _parse_jump(spec: str) -> tuple[str, str | None, int | None]:
    """`[user@]host[:port]` or `ssh://[user@]host[:port]` -> (host, user, port)."""
    rest = spec.removeprefix("ssh://")
    user, _, hostport = rest.rpartition("@")
    match = re.fullmatch(r"\[(?P<h6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<h>[^:]+)(?::(?P<p>\d+))?", hostport)
    if not match:
        raise TransportError(f"cannot parse ProxyJump hop {spec!r}; expected [user@]host[:port]")
    host = match["h6"] or match["h"]
    port = match["p6"] or match["p"]
    return host, user or None, int(port) if port else None


# ---------------------------------------------------------------------------------------------------
# known_hosts


@dataclass(frozen=True)
class _KnownKey:
    path: str
    line: int
    marker: str | None  # None, "@revoked" or "@cert-authority"
    keytype: str
    blob: bytes


def _known_keys(files: Sequence[str], name: str) -> list[_KnownKey]:
    """Every known_hosts entry, in every file, whose host patterns match `name`."""
    found: list[_KnownKey] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")  # not splitlines(): line numbers must match OpenSSH's
        except FileNotFoundError:
            continue
        except OSError as e:
            raise HostKeyError(f"cannot read known_hosts file {path}: {e.strerror}") from None
        for number, line in enumerate(lines, start=1):
            entry = _parse_known_line(path, number, line)
            if entry is not None and _hosts_match(entry[0], name):
                found.append(entry[1])
    return found


def _parse_known_line(path: str, number: int, line: str) -> tuple[str, _KnownKey] | None:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = fields.pop(0) if fields[0].startswith("@") else None
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except ValueError:
        return None
    return fields[0], _KnownKey(path, number, marker, fields[1], blob)


def _hosts_match(patterns: str, name: str) -> bool:
    name = name.lower()
    if patterns.startswith("|1|"):
        return _hashed_match(patterns, name)
    matched = False
    for pattern in patterns.lower().split(","):
        negated = pattern.startswith("!")
        if _glob(pattern.removeprefix("!"), name):
            if negated:
                return False
            matched = True
    return matched


def _hashed_match(field: str, name: str) -> bool:
    try:
        _, _, salt, digest = field.split("|")
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except ValueError:
        return False


def _glob(pattern: str, name: str) -> bool:
    # OpenSSH patterns know only `*` and `?`; fnmatch would read the `[` of `[addr]:port` as a class.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name) is not None


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _prefer_known_types(transport: paramiko.Transport, known: Sequence[_KnownKey]) -> None:
    """Ask for the host key types we already know, as OpenSSH does, so a host with several keys shows
    the one we can check rather than looking unknown."""
    wanted: list[str] = []
    for k in known:
        if k.marker is None:
            wanted += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if k.keytype == "ssh-rsa" else [k.keytype]
    options = transport.get_security_options()
    available = list(options.key_types)
    first = [t for t in dict.fromkeys(wanted) if t in available]
    options.key_types = first + [t for t in available if t not in first]


def _check_host_key(ep: _Endpoint, key: paramiko.PKey, accept_new: bool) -> None:
    """Accept a known key; refuse a changed or revoked one; refuse or record (accept_new) a new one."""
    known = _known_keys(ep.known_hosts, ep.host_key_name)
    blob, keytype = key.asbytes(), key.get_name()
    if any(k.marker == "@revoked" and k.blob == blob for k in known):
        raise HostKeyError(f"{ep.who}: the host key {keytype} {_fingerprint(key)} is marked @revoked")
    plain = [k for k in known if k.marker is None]
    if any(k.blob == blob for k in plain):
        return
    same_type = [k for k in plain if k.keytype == keytype]
    if same_type:
        raise HostKeyError(_changed_message(ep, key, same_type))
    if not accept_new:
        raise HostKeyError(_unknown_message(ep, key, plain))
    if plain:  # stricter than OpenSSH's accept-new: a known name never gains a key of another type by itself
        raise HostKeyError(
            _unknown_message(ep, key, plain).replace(
                "or run again with --accept-new-host-keys",
                "(--accept-new-host-keys records keys only for names known_hosts does not know yet)\nthen run again",
            )
        )
    _append_known_host(ep.known_hosts_write, ep.host_key_name, key)
    log.debug("%s: recorded new host key %s %s", ep.who, keytype, _fingerprint(key))


def _changed_message(ep: _Endpoint, key: paramiko.PKey, old: Sequence[_KnownKey]) -> str:
    where = "; ".join(f"{k.path} line {k.line}" for k in old)
    first = old[0]
    return (
        f"{ep.who}: the SSH host key of {ep.host_key_name} has CHANGED: the server offers "
        f"{key.get_name()} {_fingerprint(key)}, known_hosts has a different one ({where}). "
        "Someone may be intercepting the connection, or the host was reinstalled. Nothing was run.\n"
        f"If the change is expected, remove the offending line(s) ({where}), e.g. "
        f"ssh-keygen -R {shell.quote(ep.host_key_name)} -f {shell.quote(first.path)}, then connect again."
    )


def _unknown_message(ep: _Endpoint, key: paramiko.PKey, others: Sequence[_KnownKey]) -> str:
    short_type = key.get_name().removeprefix("ssh-").split("-")[0]
    port = f"-p {ep.port} " if ep.port != DEFAULT_PORT else ""
    types = ", ".join(k.keytype for k in others)
    also = f" (known_hosts has only other key types: {types})" if others else ""
    return (
        f"{ep.who}: unknown SSH host key for {ep.host_key_name}: {key.get_name()} {_fingerprint(key)}"
        f"{also}. Nothing was run.\n"
        "Compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then either add it:\n"
        f"  ssh-keyscan {port}-t {short_type} {shell.quote(ep.address)} >> "
        f"{shell.quote(ep.known_hosts_write)}\n"
        f"or run again with --accept-new-host-keys to record it in {ep.known_hosts_write}."
    )


def _append_known_host(path: str, name: str, key: paramiko.PKey) -> None:
    try:
        _append_line(path, f"{name} {key.get_name()} {key.get_base64()}\n")
    except OSError as e:
        raise HostKeyError(f"cannot record the new host key of {name} in {path}: {e.strerror}") from None


def _append_line(path: str, line: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    needs_newline = False
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            needs_newline = f.read(1) != b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(("\n" if needs_newline else "") + line)


# ---------------------------------------------------------------------------------------------------
# Old sshd (CentOS 5/6): ssh-rsa host keys and signatures, SHA-1 key exchange


def paramiko_legacy_gaps() -> tuple[str, ...]:
    """What an old sshd needs that the installed paramiko cannot do (paramiko 4+ dropped them)."""
    kex = set(getattr(paramiko.Transport, "_kex_info", {}))
    keys = set(getattr(paramiko.Transport, "_key_info", {}))
    gaps: list[str] = []
    if "ssh-rsa" not in keys:
        gaps.append("ssh-rsa host keys and signatures")
    if not kex & {"diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"}:
        gaps.append("SHA-1 key exchange (diffie-hellman-group14-sha1, -group1-sha1)")
    return tuple(gaps)


def _legacy_hint() -> str:
    gaps = paramiko_legacy_gaps()
    lacks = f", and paramiko {paramiko.__version__} has no {' and no '.join(gaps)}" if gaps else ""
    return (
        f"The server may be an old sshd (CentOS 5/6) that offers only legacy algorithms{lacks}: set "
        "`ssh.transport: openssh` and `ssh.legacy_algorithms: true` for this host."
    )


def legacy_refusal(host: str) -> str | None:
    """Why this paramiko cannot honour `legacy_algorithms` (None: it can, with its defaults)."""
    gaps = paramiko_legacy_gaps()
    if not gaps:
        return None
    return (
        f"{host}: ssh.legacy_algorithms is set, but paramiko {paramiko.__version__} has no {' and no '.join(gaps)}, "
        "which an old sshd (CentOS 5/6) needs. Nothing was run. Set `ssh.transport: openssh` for this host "
        "(keeping `ssh.legacy_algorithms: true`), or run with --transport openssh."
    )


# ---------------------------------------------------------------------------------------------------
# Connecting: socket (direct, ProxyJump tunnel or ProxyCommand), handshake, host key, authentication


def _open_socket(ep: _Endpoint, via: paramiko.Transport | None, timeout: float) -> socket.socket | object:
    if via is not None:
        try:
            return via.open_channel("direct-tcpip", (ep.address, ep.port), ("127.0.0.1", 0), timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise TransportError(
                f"{ep.who}: the jump host could not open a tunnel to {ep.address} port {ep.port}: {e}"
            ) from None
    if ep.proxy_command:
        try:
            return paramiko.ProxyCommand(ep.proxy_command)
        except (paramiko.SSHException, OSError) as e:
            raise TransportError(f"{ep.who}: ProxyCommand failed to start: {e}") from None
    try:
        sock = socket.create_connection((ep.address, ep.port), timeout=timeout)
    except OSError as e:
        raise TransportError(
            f"{ep.who}: cannot connect to {ep.address} port {ep.port}: {_socket_reason(e, timeout)}"
        ) from None
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        # A link that goes dead is noticed after this long (with the keepalives sending), not after
        # Linux's ~15 minutes of retransmissions; an apply on the host goes on regardless.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_LINK_MS)
    return sock


def _socket_reason(e: OSError, timeout: float) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is sshd running, and on this port?)"
    if isinstance(e, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the address ({e.strerror})"
    return e.strerror or str(e)


def _handshake(sock: object, ep: _Endpoint, accept_new: bool, timeout: float) -> paramiko.Transport:
    transport = paramiko.Transport(sock)  # type: ignore[arg-type]  # a Channel or ProxyCommand works too
    transport.set_log_channel(PARAMIKO_LOG)
    transport.banner_timeout = timeout
    try:
        _prefer_known_types(transport, _known_keys(ep.known_hosts, ep.host_key_name))
        transport.start_client(timeout=timeout)
        _check_host_key(ep, transport.get_remote_server_key(), accept_new)
    except (paramiko.SSHException, OSError, EOFError) as e:
        transport.close()
        reason = str(e) or type(e).__name__
        hint = f"\n{_legacy_hint()}" if "Incompatible ssh peer" in reason else ""
        raise TransportError(f"{ep.who}: SSH handshake with {ep.label} failed: {reason}{hint}") from None
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(ep.keepalive)
    return transport


def _authenticate(transport: paramiko.Transport, ep: _Endpoint, agent: paramiko.Agent | None) -> None:
    """Explicit identity file, then ~/.ssh/config IdentityFile(s) (or the default id_* files), then
    ssh-agent. Only public keys: a password login would need a secret we do not keep."""
    tried: list[str] = []
    candidates: list[tuple[str, Callable[[], paramiko.PKey]]] = [(path, _key_loader(path)) for path in ep.key_files]
    if agent is not None and ep.use_agent:
        candidates += [("ssh-agent", _const(key)) for key in agent.get_keys()]
    for source, load in candidates:
        try:
            key = load()
        except _UnusableKey as e:
            tried.append(f"{source} ({e})")
            continue
        tried.append(f"{source} ({key.get_name()} {_fingerprint(key)})")
        if _offer_key(transport, ep, key):
            return
        if not transport.is_active():
            break  # e.g. "Too many authentication failures"
    raise TransportError(_auth_failure_message(ep, tried, agent))


class _UnusableKey(Exception):
    pass


def _key_loader(path: str) -> Callable[[], paramiko.PKey]:
    def load() -> paramiko.PKey:
        try:
            return paramiko.PKey.from_path(path)
        except FileNotFoundError:
            raise _UnusableKey("file not found") from None
        except (paramiko.PasswordRequiredException, TypeError):  # cryptography says TypeError
            raise _UnusableKey("encrypted: load it into ssh-agent") from None
        except UnknownKeyType:
            raise _UnusableKey("a key type paramiko does not support") from None
        except (paramiko.SSHException, ValueError, OSError) as e:
            raise _UnusableKey(f"unreadable: {e}") from None

    return load


def _const(key: paramiko.PKey) -> Callable[[], paramiko.PKey]:
    return lambda: key


def _offer_key(transport: paramiko.Transport, ep: _Endpoint, key: paramiko.PKey) -> bool:
    try:
        remaining = transport.auth_publickey(ep.user, key)
    except paramiko.BadAuthenticationType as e:
        raise TransportError(
            f"{ep.who}: {ep.label} does not accept public keys (it allows: {', '.join(e.allowed_types)})"
        ) from None
    except (paramiko.SSHException, OSError, EOFError):
        return False
    if transport.is_authenticated():
        return True
    raise TransportError(
        f"{ep.who}: {ep.label} wants a second authentication step ({', '.join(remaining)}); not supported"
    )


def _auth_failure_message(ep: _Endpoint, tried: Sequence[str], agent: paramiko.Agent | None) -> str:
    if not tried:
        agent_note = "ssh-agent has no keys" if agent is not None else "no ssh-agent (SSH_AUTH_SOCK unset)"
        return (
            f"{ep.who}: cannot log in to {ep.label}: no key to offer ({agent_note}; no identity file given, "
            f"none of {', '.join(DEFAULT_KEY_FILES)} exists)"
        )
    return f"{ep.who}: {ep.label} refused every key (authentication failed); tried: " + "; ".join(tried)


# ---------------------------------------------------------------------------------------------------
# Running one command on an open connection


def _pump(read: Callable[[int], bytes], sink: list[bytes]) -> None:
    try:
        while chunk := read(_CHUNK):
            sink.append(chunk)
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the channel was closed under us (timeout); what was read is kept


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    try:
        channel.sendall(data)
        channel.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the command exited without reading all of its stdin; its exit status tells the story


def _start(target: Callable[..., None], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _exchange(
    channel: paramiko.Channel, command: str, stdin: bytes | None, timeout: float | None
) -> tuple[int, bytes, bytes] | None:
    """Run `command` on a fresh channel; stdin, stdout and stderr flow at once (no pipe deadlock).
    Returns None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    channel.exec_command(command)
    out: list[bytes] = []
    err: list[bytes] = []
    threads = [_start(_pump, channel.recv, out), _start(_pump, channel.recv_stderr, err)]
    if stdin:
        threads.append(_start(_feed, channel, stdin))
    else:
        channel.shutdown_write()  # EOF at once: a command that reads stdin must not wait forever
    if not channel.status_event.wait(timeout):
        return None
    for thread in threads:  # output may still be in flight after the exit status
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            return None  # e.g. a daemon it started holds stdout open
    rc = channel.recv_exit_status()
    return (255 if rc < 0 else rc), b"".join(out), b"".join(err)


# ---------------------------------------------------------------------------------------------------


class SshTransport(ShellTransport):
    """A session on one host over SSH. Connects on first use (or connect() / `with`), reuses it."""

    def __init__(self, target: SshTarget, *, ssh_config: str = "~/.ssh/config") -> None:
        self._target = target
        self._ssh_config = ssh_config
        self._hops: list[paramiko.Transport] = []  # jump hosts first, the target last
        self._agent: paramiko.Agent | None = None
        self._become: Become = Become.NONE
        self._round_trips = 0

    @property
    def host(self) -> str:
        return self._target.host

    @property
    def round_trips(self) -> int:
        return self._round_trips

    def __enter__(self) -> SshTransport:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection (through any ProxyJump hosts), check host keys, log in, and when
        becoming, find out once how sudo works. Does nothing when already connected."""
        if self._hops:
            return
        target = self._target
        refusal = legacy_refusal(target.host) if target.legacy_algorithms else None
        if refusal:
            raise TransportError(refusal)
        config = _load_config(self._ssh_config)  # text: each hop is looked up with its own overrides
        ep = _resolve(
            config,
            target.address or target.host,
            target.host,
            target=target,
            port=target.port,
            user=target.user,
        )
        self._agent = paramiko.Agent() if os.environ.get("SSH_AUTH_SOCK") else None
        try:
            via: paramiko.Transport | None = None
            for spec in ep.jumps:  # each hop through the previous; a hop's own ProxyJump is not followed
                name, user, port = _parse_jump(spec)
                hop = _resolve(config, name, f"{target.host} (jump host {name})", target=target, port=port, user=user)
                via = self._open(hop, via)
            self._open(ep, via)
            self._become = self._decide_become(ep.user)
        except BaseException:
            self.close()
            raise

    def _open(self, ep: _Endpoint, via: paramiko.Transport | None) -> paramiko.Transport:
        timeout = self._target.connect_timeout
        transport = _handshake(_open_socket(ep, via, timeout), ep, self._target.accept_new_host_keys, timeout)
        self._hops.append(transport)
        _authenticate(transport, ep, self._agent)
        log.debug("%s: connected to %s", ep.who, ep.label)
        return transport

    def _decide_become(self, user: str) -> Become:
        if not self._target.become or user == "root":
            return Become.NONE
        return shell.resolve_become(self.host, user, self._target.sudo_password, self._probe)

    def _probe(self, command: str, stdin: bytes | None) -> tuple[int, str]:
        rc, _, err = self._execute(command, stdin, self._target.connect_timeout, "sudo probe")
        return rc, err

    def close(self) -> None:
        for transport in reversed(self._hops):
            transport.close()
        self._hops.clear()
        if self._agent is not None:
            self._agent.close()
            self._agent = None

    def _sudo_password(self) -> str | None:
        return self._target.sudo_password

    def _become_mode(self) -> Become:
        self.connect()
        return self._become

    def _execute(self, command: str, stdin: bytes | None, timeout: float | None, display: str) -> tuple[int, str, str]:
        transport = self._hops[-1]
        if not transport.is_active():
            raise TransportError(f"{self.host}: the SSH connection was lost; nothing more was run")
        self._round_trips += 1
        try:
            channel = transport.open_session(timeout=self._target.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise TransportError(f"{self.host}: cannot open an SSH session: {e}") from None
        with channel:
            try:
                outcome = _exchange(channel, command, stdin, timeout)
            except (paramiko.SSHException, OSError, EOFError) as e:
                reason = f"{self.host}: SSH session failed ({e}) while running: {display}"
                raise TransportError(reason) from None
        if outcome is None:
            raise TransportError(f"{self.host}: command timed out after {timeout:g}s: {display}")
        rc, out, err = outcome
        return rc, out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")
