"""Read everything a plan needs from a host in ONE round trip: a POSIX sh script plus a pure parser.

The script prints sections `@@MP <kind> <arg>`; file contents are framed so they come back
byte-exact. Nothing here runs anything itself: `probe_script` builds text, `parse_probe` reads text.
Works with dash/bash and old coreutils (CentOS 5); needs no Python on the host.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailprov.errors import FactsError
from mailprov.facts.platform import (
    FirewallBackend,
    InitSystem,
    OsFamily,
    PackageManager,
    Platform,
    Version,
)
from mailprov.transport.shell import quote

MARK = "@@MP"
APPLIED_STATE = "/var/lib/mailprov/applied"  # "md5  path" of every file mailprov last wrote
SERVICES = ("postfix", "dovecot", "postgrey", "exim4", "sendmail")


@dataclass(frozen=True)
class FileState:
    path: str
    exists: bool
    owner: str = ""
    group: str = ""
    mode: int = 0
    content: str | None = None  # None for secret files (only md5 is read)
    md5: str = ""
    mtime: int = 0


@dataclass(frozen=True)
class UserState:
    login: str
    uid: int
    home: str
    full_name: str = ""
    shadow_hash: str = field(default="", repr=False)


@dataclass(frozen=True)
class DirState:
    path: str
    owner: str
    group: str
    mode: int


@dataclass(frozen=True)
class ServiceState:
    running: bool
    enabled: bool
    pid: int | None = None


@dataclass(frozen=True)
class CertState:
    exists: bool
    subject: str = ""
    not_after: str = ""
    expiring: bool = True


@dataclass(frozen=True)
class HostState:
    """A host's facts: its platform plus the current state of everything mailprov manages."""

    platform: Platform
    postfix_installed: bool
    dovecot_installed: bool
    packages: dict[str, str]  # installed package → version
    files: dict[str, FileState]
    users: dict[str, UserState]
    dirs: dict[str, DirState]
    services: dict[str, ServiceState]
    certs: dict[str, CertState]  # certificate path → what openssl says of it
    firewall_rules: dict[str, int]  # family → rule count in MAILPROV (-1: chain missing)
    firewall_hooked: dict[str, bool]
    applied: dict[str, str]  # path → md5 mailprov last wrote
    fingerprint: str  # digest of the probe output, less volatile parts (for saved plans)


@dataclass(frozen=True)
class ProbeRequest:
    """What to read besides the platform: files (content or just checksum), users, certificate."""

    files: tuple[str, ...] = ()
    secret_files: tuple[str, ...] = ()
    map_files: tuple[str, ...] = ()  # compiled maps: only mtime
    logins: tuple[str, ...] = ()
    cert_paths: tuple[str, ...] = ()
    cert_renew_seconds: int = 0
    packages: tuple[str, ...] = ()


def probe_script(req: ProbeRequest, *, platform: bool = True) -> str:
    """The probe's text. platform=False leaves out the platform sections (already read this run)."""
    lines = [
        "exec 2>/dev/null",
        f'sec() {{ echo "{MARK} $1 $2"; }}',
    ]
    if platform:
        lines += _PLATFORM_LINES
    lines += _state_lines(req)
    return "\n".join(lines) + "\n"


_PLATFORM_LINES = [
    "sec os -; cat /etc/os-release; echo",
    "sec redhat -; cat /etc/redhat-release; echo",
    "sec kv -",
    "echo arch=$(uname -m)",
    "if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=sysv; fi",
    "for t in apt-get dnf yum firewall-cmd iptables ip6tables postconf dovecot doveconf openssl; do"
    " command -v $t >/dev/null && echo has_$t=1; done",
    "[ -S /dev/log ] && echo syslog=1",
    "[ -f /proc/net/if_inet6 ] && echo ipv6=1",
    "command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null && echo firewalld_running=1",
    "command -v postconf >/dev/null && {"
    " echo postfix_version=$(postconf -dh mail_version);"
    " echo default_database_type=$(postconf -dh default_database_type);"
    " echo map_types=$(postconf -m | tr '\\n' ' '); }",
    "command -v dovecot >/dev/null && echo dovecot_version=$(dovecot --version)",
    "sec candidates -",
    # What would be installed matters only before installation (and apt-cache is slow).
    "if ! command -v postconf >/dev/null || ! command -v dovecot >/dev/null; then"
    " if command -v apt-cache >/dev/null; then apt-cache policy postfix dovecot-core;"
    " elif command -v yum >/dev/null; then yum -C -q list postfix dovecot; fi; fi",
]


def _state_lines(req: ProbeRequest) -> list[str]:
    q = quote
    lines = ["sec packages -"]
    if req.packages:
        pkgs = " ".join(q(p) for p in req.packages)
        lines.append(
            f"if command -v dpkg-query >/dev/null; then dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}} "
            f"${{Version}}\\n' {pkgs}; else rpm -q --qf '%{{NAME}} ii %{{VERSION}}\\n' {pkgs}; fi"
        )
    lines += [
        "sec ps -",
        "ps -eo pid=,args=",
        "sec enabled -",
        "if [ -d /run/systemd/system ]; then for s in " + " ".join(SERVICES) + "; do"
        ' echo "$s $(systemctl is-enabled $s)"; done;'
        " elif command -v chkconfig >/dev/null; then for s in " + " ".join(SERVICES) + "; do"
        ' chkconfig --list $s | grep -q "3:on" && echo "$s enabled"; done;'
        " else for s in " + " ".join(SERVICES) + "; do"
        ' ls /etc/rc2.d/S*"$s" >/dev/null 2>&1 && echo "$s enabled"; done; fi',
        "sec pidfiles -",
        "for f in /var/spool/postfix/pid/master.pid /run/dovecot/master.pid /var/run/dovecot/master.pid; do"
        ' [ -f "$f" ] && echo "$f $(sed -n 1p $f | tr -d " ")"; done',
        "sec firewall -",
        "for t in iptables ip6tables; do command -v $t >/dev/null || continue;"
        ' if $t -S MAILPROV >/dev/null; then echo "$t rules $($t -S MAILPROV | grep -c "^-A")";'
        ' else echo "$t rules -1"; fi;'
        ' $t -C INPUT -j MAILPROV && echo "$t hooked 1"; done',
    ]
    for path in req.files:
        lines.append(f"sec file {q(path)}")
        lines.append(
            f"if [ -f {q(path)} ]; then stat -c '%U %G %a %Y' {q(path)}; md5sum < {q(path)}; cat {q(path)};"
            f" printf '\\n{MARK}-eof\\n'; fi"
        )
    for path in (*req.secret_files, *req.map_files):
        lines.append(f"sec stat {q(path)}")
        lines.append(f"[ -f {q(path)} ] && stat -c '%U %G %a %Y' {q(path)} && md5sum < {q(path)}")
    lines.append(f"sec applied -; cat {APPLIED_STATE}")
    for login in req.logins:
        lines.append(f"sec user {q(login)}")
        lines.append(
            f"getent passwd {q(login)} && getent shadow {q(login)} && "
            f'h=$(getent passwd {q(login)} | cut -d: -f6) && for d in "$h/Maildir" "$h/Maildir/cur" '
            f'"$h/Maildir/new" "$h/Maildir/tmp"; do [ -d "$d" ] && stat -c "dir %U %G %a %n" "$d"; done'
        )
    for path in req.cert_paths:
        c = q(path)
        lines.append(f"sec cert {c}")
        lines.append(
            f"[ -f {c} ] && openssl x509 -in {c} -noout -subject -enddate && "
            f"(openssl x509 -in {c} -noout -checkend {int(req.cert_renew_seconds)} >/dev/null"
            " && echo fresh=1 || echo fresh=0)"
        )
    lines.append("sec end -")
    lines.append("exit 0")
    return lines


# --- parsing -------------------------------------------------------------------------------------------


def _sections(output: str) -> list[tuple[str, str, str]]:
    """Split the probe output into (kind, arg, body) in order."""
    result: list[tuple[str, str, str]] = []
    current: tuple[str, str] | None = None
    body: list[str] = []
    for line in output.split("\n"):
        if line.startswith(MARK + " "):
            if current:
                result.append((current[0], current[1], "\n".join(body)))
            _, kind, arg = [*line.split(" ", 2), "", ""][:3]
            current, body = (kind, arg), []
        else:
            body.append(line)
    if current:
        result.append((current[0], current[1], "\n".join(body)))
    if not result or result[-1][0] != "end":
        raise FactsError("the fact probe did not finish (no end marker): is the remote shell POSIX sh?")
    return result


def _kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def _stat_line(line: str) -> tuple[str, str, int, int]:
    owner, group, mode, mtime = line.split()[:4]
    return owner, group, int(mode, 8), int(mtime)


def parse_probe(output: str, host: str, platform: Platform | None = None) -> HostState:
    """Parse probe output. `platform`: the one read earlier, when this probe left those sections out."""
    sections = _sections(output)
    by_kind: dict[str, str] = {}
    files: dict[str, FileState] = {}
    certs: dict[str, CertState] = {}
    users: dict[str, UserState] = {}
    dirs: dict[str, DirState] = {}
    for kind, arg, body in sections:
        if kind == "file":
            files[arg] = _parse_file(arg, body)
        elif kind == "stat":
            files[arg] = _parse_stat(arg, body)
        elif kind == "cert":
            certs[arg] = _cert(body)
        elif kind == "user":
            _parse_user(arg, body, users, dirs)
        else:
            by_kind[kind] = body
    kv = _kv(by_kind.get("kv", ""))
    if platform is None:
        platform = _platform(
            host, _kv(by_kind.get("os", "")), by_kind.get("redhat", ""), kv, by_kind.get("candidates", "")
        )
    packages = {}
    for line in by_kind.get("packages", "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("i"):
            packages[parts[0]] = parts[2]
    fingerprint = hashlib.sha256(
        "\n".join(f"{k}\0{a}\0{b}" for k, a, b in sections if k not in ("ps", "pidfiles")).encode()
    ).hexdigest()
    return HostState(
        platform=platform,
        postfix_installed="postfix" in packages,
        dovecot_installed=any(name in packages for name in ("dovecot", "dovecot-core")),
        packages=packages,
        files=files,
        users=users,
        dirs=dirs,
        services=_services(by_kind.get("ps", ""), by_kind.get("enabled", "")),
        certs=certs,
        firewall_rules={
            ("ipv6" if t == "ip6tables" else "ipv4"): int(n)
            for t, what, n in (line.split() for line in by_kind.get("firewall", "").splitlines() if line.strip())
            if what == "rules"
        },
        firewall_hooked={
            ("ipv6" if t == "ip6tables" else "ipv4"): True
            for t, what, _ in (line.split() for line in by_kind.get("firewall", "").splitlines() if line.strip())
            if what == "hooked"
        },
        applied={
            parts[1]: parts[0]
            for parts in (line.split(None, 1) for line in by_kind.get("applied", "").splitlines())
            if len(parts) == 2
        },
        fingerprint=fingerprint,
    )


def _parse_file(path: str, body: str) -> FileState:
    if not body.strip():
        return FileState(path, exists=False)
    stat_line, md5_line, rest = body.split("\n", 2)
    end = rest.rfind(f"\n{MARK}-eof")
    if end < 0:
        raise FactsError(f"{path}: file content was cut short in the probe output")
    owner, group, mode, mtime = _stat_line(stat_line)
    content = rest[:end]
    return FileState(path, True, owner, group, mode, content, md5_line.split()[0], mtime)


def _parse_stat(path: str, body: str) -> FileState:
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) < 2:
        return FileState(path, exists=False)
    owner, group, mode, mtime = _stat_line(lines[0])
    return FileState(path, True, owner, group, mode, None, lines[1].split()[0], mtime)


def _parse_user(login: str, body: str, users: dict[str, UserState], dirs: dict[str, DirState]) -> None:
    for line in body.splitlines():
        if line.startswith("dir "):
            _, owner, group, mode, path = line.split(" ", 4)
            dirs[path] = DirState(path, owner, group, int(mode, 8))
            continue
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == login and login not in users:
            users[login] = UserState(login, int(fields[2]), fields[5], fields[4].split(",")[0])
        elif len(fields) >= 2 and fields[0] == login and login in users:
            u = users[login]
            users[login] = UserState(u.login, u.uid, u.home, u.full_name, fields[1])


def _services(ps: str, enabled: str) -> dict[str, ServiceState]:
    procs: list[tuple[int, str]] = []
    for line in ps.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            procs.append((int(parts[0]), parts[1]))
    patterns = {
        "postfix": re.compile(
            r"(^|/)postfix/(sbin/)?master\b|/usr/libexec/postfix/master|^/usr/lib/postfix/sbin/master"
        ),
        "dovecot": re.compile(r"^(/usr/s?bin/)?dovecot(\s|$)"),
        "postgrey": re.compile(r"postgrey"),
        "exim4": re.compile(r"^/usr/sbin/exim4\b"),
        "sendmail": re.compile(r"^sendmail: accepting"),
    }
    on = set()
    for line in enabled.splitlines():
        name, _, state = line.partition(" ")
        if state.strip() in ("enabled", "enabled-runtime", "static", "alias", "generated"):
            on.add(name)
    out = {}
    for name, pattern in patterns.items():
        pid = next((p for p, args in procs if pattern.search(args)), None)
        out[name] = ServiceState(running=pid is not None, enabled=name in on, pid=pid)
    return out


def _cert(body: str | None) -> CertState:
    if not body or "subject" not in body:
        return CertState(exists=False)
    subject = next((line.split("=", 1)[1].strip() for line in body.splitlines() if line.startswith("subject")), "")
    not_after = next((line.split("=", 1)[1] for line in body.splitlines() if line.startswith("notAfter")), "")
    return CertState(True, subject, not_after, expiring="fresh=1" not in body)


def _platform(host: str, os_release: dict[str, str], redhat: str, kv: dict[str, str], candidates: str) -> Platform:
    os_id = os_release.get("ID", "")
    version = os_release.get("VERSION_ID", "")
    if not os_id and redhat.strip():
        match = re.search(r"(CentOS|Red Hat|Rocky|AlmaLinux)\D*(\d+(\.\d+)?)", redhat)
        os_id = {"CentOS": "centos", "Red Hat": "rhel", "Rocky": "rocky", "AlmaLinux": "almalinux"}.get(
            match.group(1) if match else "", "rhel"
        )
        version = match.group(2) if match else ""
    like = os_release.get("ID_LIKE", "")
    if os_id in ("debian", "ubuntu") or "debian" in like:
        family = OsFamily.DEBIAN
    elif os_id in ("centos", "rhel", "rocky", "almalinux", "fedora") or "rhel" in like or redhat.strip():
        family = OsFamily.RHEL
    else:
        raise FactsError(f"{host}: unsupported operating system {os_id or 'unknown'!r} (Debian or RHEL family)")
    if "has_apt-get" in kv:
        pm = PackageManager.APT
    elif "has_dnf" in kv:
        pm = PackageManager.DNF
    elif "has_yum" in kv:
        pm = PackageManager.YUM
    else:
        raise FactsError(f"{host}: no package manager found (apt-get, dnf or yum)")
    postfix = kv.get("postfix_version") or _candidate(candidates, "postfix")
    dovecot = kv.get("dovecot_version") or _candidate(candidates, "dovecot")
    if not postfix or not dovecot:
        raise FactsError(
            f"{host}: cannot tell which Postfix/Dovecot version would be installed "
            "(no package candidate: refresh the package lists, e.g. apt-get update)"
        )
    map_types = frozenset(kv.get("map_types", "").split()) or frozenset({"hash", "btree"})
    return Platform(
        os_family=family,
        os_id=os_id,
        os_version=version,
        package_manager=pm,
        init_system=InitSystem.SYSTEMD if kv.get("init") == "systemd" else InitSystem.SYSV,
        firewall=FirewallBackend.FIREWALLD if "firewalld_running" in kv else FirewallBackend.IPTABLES,
        postfix_version=Version.parse(postfix),
        dovecot_version=Version.parse(dovecot),
        default_database_type=kv.get("default_database_type") or "hash",
        map_types=map_types,
        has_syslog="syslog" in kv,
        has_ipv6="ipv6" in kv,
    )


def _candidate(text: str, package: str) -> str | None:
    """Candidate version from `apt-cache policy` or `yum list` output."""
    match = re.search(rf"^{package}(-core)?:\s*\n(?:.*\n)*?\s+Candidate:\s*(\S+)", text, re.M)
    if match and match.group(2) != "(none)":
        return match.group(2)
    match = re.search(rf"^{package}\.\S+\s+(\S+)", text, re.M)
    return match.group(1).split(":")[-1] if match else None


def file_md5(content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.md5(data).hexdigest()  # change detection only, as md5sum on the host


def paths_for(files: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(files))


def merge(requests: Sequence[ProbeRequest]) -> ProbeRequest:
    """One request that reads everything any of `requests` reads."""

    def union(field_name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(x for r in requests for x in getattr(r, field_name)))

    return ProbeRequest(
        files=union("files"),
        secret_files=union("secret_files"),
        map_files=union("map_files"),
        logins=union("logins"),
        cert_paths=union("cert_paths"),
        cert_renew_seconds=max((r.cert_renew_seconds for r in requests), default=0),
        packages=union("packages"),
    )


def covers(done: ProbeRequest, needed: ProbeRequest) -> bool:
    """True when a probe made with `done` read everything `needed` asks for."""
    return (
        all(
            set(getattr(needed, name)) <= set(getattr(done, name))
            for name in ("files", "secret_files", "map_files", "logins", "cert_paths", "packages")
        )
        and done.cert_renew_seconds == needed.cert_renew_seconds
    )
