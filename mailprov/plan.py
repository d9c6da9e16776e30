"""build_plan(...) -> HostPlan: a value. `plan` prints it; `apply` executes the very same object.

Resources compare the rendered site with the host's facts and yield Changes; an empty list means the
host already matches. No dry-run flag exists anywhere: the plan IS what apply will do.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from mailprov.config.model import Site, User
from mailprov.config.secrets import Secret, new_salt, resolve, sha512_crypt, verify_sha512_crypt
from mailprov.dialects import Dialect, DovecotGen
from mailprov.facts.platform import OsFamily, PackageManager
from mailprov.facts.probe import APPLIED_STATE, CertState, HostState, ProbeRequest, file_md5
from mailprov.render import Rendered, RenderedFile, Role
from mailprov.transport.shell import join, mask


class Phase(IntEnum):
    PACKAGES = 1
    USERS = 2
    CERTS = 3
    FILES = 4
    SERVICES = 5


class Handler(IntEnum):
    """Run once each, after all changes, in this order."""

    NEWALIASES = 1
    POSTMAP = 2
    FIREWALL = 3
    POSTGREY = 4
    POSTFIX = 5  # before Dovecot: Postfix creates /var/spool/postfix/private, where Dovecot's auth socket goes
    POSTFIX_RESTART = 6  # instead of a reload: listening addresses only change on a restart
    DOVECOT = 7


# main.cf parameters that `postfix reload` does not apply (postconf(5): "stop and start Postfix").
RESTART_PARAMETERS = ("inet_interfaces", "inet_protocols")


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    secrets: tuple[str, ...] = field(default=(), repr=False)
    stdin: str | None = field(default=None, repr=False)  # fed through a quoted here-document

    def display(self) -> str:
        text = join(self.argv) + (" <<(stdin redacted)" if self.stdin is not None else "")
        return mask(text, self.secrets)


@dataclass(frozen=True)
class Change:
    key: str  # "file:/etc/postfix/main.cf", "package:postfix", "user:john" …
    phase: Phase
    action: str  # create, update, install, remove, set, generate, enable, start
    summary: str
    diff: tuple[str, ...] = ()
    commands: tuple[Command, ...] = ()
    file: RenderedFile | None = None
    notifies: frozenset[Handler] = frozenset()
    drift: bool = False  # the host's file was edited since mailprov last wrote it


@dataclass(frozen=True)
class HostPlan:
    host: str
    platform: str
    changes: tuple[Change, ...]
    handlers: tuple[Handler, ...]
    rendered: Rendered
    fingerprint: str
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes


# --- what to probe -------------------------------------------------------------------------------------


def probe_request(site: Site, rendered: Rendered) -> ProbeRequest:
    d = rendered.dialect
    plain = [f.path for f in rendered.files if not f.secret]
    plain.append(d.paths.master_cf)  # read for the managed block
    secret = [f.path for f in rendered.files if f.secret]
    maps = [d.compiled_map(d.paths.aliases)]
    if site.sender_access:
        maps.append(d.compiled_map(d.paths.sender_access))
    cert = rendered.certificate
    if cert:
        secret.append(cert.key_path)
    return ProbeRequest(
        files=tuple(dict.fromkeys(plain)),
        secret_files=tuple(dict.fromkeys(secret)),
        map_files=tuple(maps),
        logins=tuple(u.login for u in site.users),
        cert_paths=(cert.cert_path,) if cert else (),
        cert_renew_seconds=(cert.renew_before_days * 86400) if cert else 0,
        packages=required_packages(site, d) + d.other_mtas,
    )


def required_packages(site: Site, d: Dialect) -> tuple[str, ...]:
    """The packages the site needs on this host (verify checks the same list)."""
    pkgs = list(d.packages_base)
    if "imap" in site.dovecot.protocols:
        pkgs += d.packages_imap
    if "pop3" in site.dovecot.protocols:
        pkgs += d.packages_pop3
    if site.greylisting.enabled:
        pkgs += d.packages_postgrey
    if site.firewall.enabled:
        pkgs += d.packages_firewall
    return tuple(dict.fromkeys(pkgs))


# --- the plan ------------------------------------------------------------------------------------------


def build_plan(site: Site, rendered: Rendered, state: HostState, base_dir: Path) -> HostPlan:
    d = rendered.dialect
    changes: list[Change] = []
    changes += _packages(site, d, state)
    changes += _users(site, state, base_dir)
    changes += _certificate(rendered, state)
    changes += _files(rendered, state)
    changes += _firewall(site, rendered, state)
    changes += _services(site, d, state)
    handlers: set[Handler] = set()
    for change in changes:
        handlers |= change.notifies
    if Handler.POSTFIX_RESTART in handlers:
        handlers.discard(Handler.POSTFIX)  # the restart does the reload's work
    return HostPlan(
        host=rendered.host.name,
        platform=state.platform.describe(),
        changes=tuple(sorted(changes, key=lambda c: c.phase)),
        handlers=tuple(sorted(handlers)),
        rendered=rendered,
        fingerprint=state.fingerprint,
        notes=rendered.notes,
    )


def _packages(site: Site, d: Dialect, state: HostState) -> list[Change]:
    wanted = required_packages(site, d)
    missing = [p for p in wanted if p not in state.packages]
    changes: list[Change] = []
    if missing:
        commands: list[Command] = []
        if d.platform.package_manager is PackageManager.APT:
            preseed = (
                "postfix postfix/main_mailer_type select No configuration\n"
                "iptables-persistent iptables-persistent/autosave_v4 boolean false\n"
                "iptables-persistent iptables-persistent/autosave_v6 boolean false\n"
            )
            commands.append(Command(("debconf-set-selections",), stdin=preseed))
            commands.append(Command(("apt-get", "-q", "update")))
            commands.append(
                Command(
                    (
                        "env",
                        "DEBIAN_FRONTEND=noninteractive",
                        "apt-get",
                        "-q",
                        "-y",
                        "-o",
                        "Dpkg::Options::=--force-confold",
                        "install",
                        *missing,
                    )
                )
            )
        else:
            commands.append(Command((d.platform.package_manager.value, "-y", "install", *missing)))
        notifies = {Handler.POSTFIX, Handler.DOVECOT} | ({Handler.POSTGREY} if site.greylisting.enabled else set())
        changes.append(
            Change(
                "packages",
                Phase.PACKAGES,
                "install",
                f"install {' '.join(missing)}",
                commands=tuple(commands),
                notifies=frozenset(notifies),
            )
        )
    other = [p for p in d.other_mtas if p in state.packages]
    if other:
        if d.platform.os_family is OsFamily.RHEL:
            cmds: tuple[Command, ...] = (
                Command(("alternatives", "--set", "mta", "/usr/sbin/sendmail.postfix")),
                Command((d.platform.package_manager.value, "-y", "remove", *other)),
            )
        else:
            cmds = (Command(("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "remove", *other)),)
        changes.append(
            Change("mta", Phase.PACKAGES, "remove", f"replace the previous MTA ({', '.join(other)})", commands=cmds)
        )
    return changes


def _users(site: Site, state: HostState, base_dir: Path) -> list[Change]:
    changes: list[Change] = []
    for user in site.users:
        current = state.users.get(user.login)
        commands: list[Command] = []
        parts: list[str] = []
        if current is None:
            argv = ["useradd", "-m", "-c", user.full_name]
            if user.uid is not None:
                argv += ["-u", str(user.uid)]
            commands.append(Command((*argv, user.login)))
            parts.append("create")
        elif current.full_name != user.full_name:
            commands.append(Command(("usermod", "-c", user.full_name, user.login)))
            parts.append(f"full name {current.full_name!r} → {user.full_name!r}")
        home = current.home if current else f"/home/{user.login}"
        new_hash = _password_hash(user, current.shadow_hash if current else "", base_dir)
        if new_hash is not None:
            commands.append(Command(("chpasswd", "-e"), secrets=(new_hash,), stdin=f"{user.login}:{new_hash}\n"))
            parts.append("password changed (redacted)" if current else "password set (redacted)")
        maildir = [f"{home}/Maildir", *(f"{home}/Maildir/{sub}" for sub in ("cur", "new", "tmp"))]
        if site.mailbox.value == "maildir" and any(
            (s := state.dirs.get(p)) is None or s.owner != user.login or s.mode != 0o700 for p in maildir
        ):
            commands.append(Command(("mkdir", "-p", *maildir)))
            commands.append(Command(("chown", f"{user.login}:", *maildir)))
            commands.append(Command(("chmod", "0700", *maildir)))
            parts.append("Maildir 0700")
        if commands:
            changes.append(
                Change(
                    f"user:{user.login}",
                    Phase.USERS,
                    "create" if current is None else "update",
                    f"user {user.login}: {', '.join(parts)}",
                    commands=tuple(commands),
                )
            )
    return changes


def _password_hash(user: User, current_hash: str, base_dir: Path) -> str | None:
    """The hash to set, or None when the host already has the right password."""
    if user.password_hash is not None:
        return None if current_hash == user.password_hash else user.password_hash
    if user.password is None:
        return None
    secret: Secret = resolve(user.password, base_dir)
    if current_hash and verify_sha512_crypt(secret.reveal(), current_hash):
        return None
    return sha512_crypt(secret.reveal(), new_salt())


def _certificate(rendered: Rendered, state: HostState) -> list[Change]:
    cert = rendered.certificate
    if cert is None or cert.generate_days is None:
        return []
    key = state.files.get(cert.key_path)
    current = state.certs.get(cert.cert_path, CertState(exists=False))
    if current.exists and not current.expiring and key is not None and key.exists:
        return []
    reason = "missing" if not current.exists else ("key missing" if not (key and key.exists) else "expiring")
    commands = (
        Command(("mkdir", "-p", str(Path(cert.cert_path).parent), str(Path(cert.key_path).parent))),
        Command(
            (
                "sh",
                "-c",
                'umask 077 && exec "$@"',
                "openssl",
                "openssl",
                "req",
                "-x509",
                "-newkey",
                f"rsa:{cert.key_bits}",
                "-nodes",
                "-sha256",
                "-days",
                str(cert.generate_days),
                "-subj",
                cert.subject,
                "-keyout",
                cert.key_path,
                "-out",
                cert.cert_path,
            )
        ),
        Command(("chown", "root:root", cert.key_path)),
        Command(("chmod", "0600", cert.key_path)),
        Command(("chmod", "0644", cert.cert_path)),
    )
    return [
        Change(
            f"cert:{cert.cert_path}",
            Phase.CERTS,
            "generate",
            f"self-signed certificate {cert.subject}, {cert.generate_days} days ({reason})",
            commands=commands,
            notifies=frozenset({Handler.POSTFIX, Handler.DOVECOT}),
        )
    ]


_NOTIFY = {
    Role.POSTFIX: {Handler.POSTFIX},
    Role.ALIASES: {Handler.NEWALIASES},
    Role.MAP: {Handler.POSTMAP, Handler.POSTFIX},
    Role.DOVECOT: {Handler.DOVECOT},
    Role.POSTGREY: {Handler.POSTGREY},
    Role.FIREWALL: {Handler.FIREWALL},
    Role.CERT: {Handler.POSTFIX, Handler.DOVECOT},
}


def desired_content(f: RenderedFile, state: HostState) -> str:
    """What the file will contain: the whole rendering, or the host's file with our block replaced."""
    if f.block is None:
        return f.content
    begin, end = f.block
    current = state.files.get(f.path)
    base = current.content if current and current.content is not None else ""
    lines = base.split("\n")
    if begin in lines and end in lines[lines.index(begin) :]:
        start = lines.index(begin)
        stop = lines.index(end, start)
        lines = lines[:start] + lines[stop + 1 :]
        base = "\n".join(lines)
    if base and not base.endswith("\n"):
        base += "\n"
    if not f.content:
        return base
    return f"{base}{begin}\n{f.content}{end}\n"


def _files(rendered: Rendered, state: HostState) -> list[Change]:
    changes: list[Change] = []
    for f in rendered.files:
        current = state.files.get(f.path)
        exists = current is not None and current.exists
        if f.block is not None and not exists:
            # The distribution's file (master.cf) comes with the package, later in this run: the block is
            # merged into it on the host, after installation.
            if f.content:
                changes.append(
                    Change(
                        f"file:{f.path}",
                        Phase.FILES,
                        "update",
                        f"{f.path}: add the mailprov block",
                        diff=_diff(f.path, "", f"{f.block[0]}\n{f.content}{f.block[1]}\n", secret=False, exists=True),
                        file=f,
                        notifies=frozenset(_NOTIFY[f.role]),
                    )
                )
            continue
        content = desired_content(f, state)
        same_content = exists and current is not None and current.md5 == file_md5(content)
        same_meta = (
            exists
            and current is not None
            and (current.owner, current.group, current.mode) == (f.owner, f.group, f.mode)
        )
        if same_content and same_meta:
            continue
        final = RenderedFile(f.path, content, f.role, f.owner, f.group, f.mode, f.secret, None)
        drift = bool(exists and current and f.path in state.applied and state.applied[f.path] != current.md5)
        if same_content:
            summary = f"{f.path}: owner/mode → {f.owner}:{f.group} {f.mode:04o}"
            diff: tuple[str, ...] = ()
        else:
            old = (current.content if current and current.content is not None else "") if exists else ""
            diff = _diff(f.path, old, content, secret=f.secret, exists=exists)
            summary = f"{f.path}: {'update' if exists else 'create'}" + (
                " (edited on the host since the last apply: drift)" if drift else ""
            )
        notifies = set(_NOTIFY[f.role]) if not same_content else set()
        if exists and f.path == rendered.dialect.paths.main_cf and _needs_restart(diff):
            notifies = (notifies - {Handler.POSTFIX}) | {Handler.POSTFIX_RESTART}
        changes.append(
            Change(
                f"file:{f.path}",
                Phase.FILES,
                "update" if exists else "create",
                summary,
                diff=diff,
                file=final,
                notifies=frozenset(notifies),
                drift=drift,
            )
        )
    d = rendered.dialect
    for path in (d.paths.aliases, d.paths.sender_access):
        source = next((x for x in rendered.files if x.path == path), None)
        db = state.files.get(d.compiled_map(path))
        src = state.files.get(path)
        if source is None or any(c.key == f"file:{path}" for c in changes):
            continue
        if db is None or not db.exists or (src is not None and src.mtime > db.mtime):
            handler = Handler.NEWALIASES if path == d.paths.aliases else Handler.POSTMAP
            changes.append(
                Change(
                    f"map:{path}",
                    Phase.FILES,
                    "rebuild",
                    f"{path}: compiled map missing or stale",
                    notifies=frozenset({handler}),
                )
            )
    return changes


def _needs_restart(diff: tuple[str, ...]) -> bool:
    return any(
        line[:1] in "+-" and line[1:].split("=")[0].strip() in RESTART_PARAMETERS
        for line in diff
        if not line.startswith(("+++", "---"))
    )


def _diff(path: str, old: str, new: str, *, secret: bool, exists: bool) -> tuple[str, ...]:
    if secret:
        return (f"--- {path}", f"+++ {path}", "@@ content redacted (secret) @@")
    return tuple(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=path if exists else "/dev/null",
            tofile=path,
            n=2,
        )
    )


def _firewall(site: Site, rendered: Rendered, state: HostState) -> list[Change]:
    d = rendered.dialect
    if not site.firewall.enabled or d.platform.firewall.value != "iptables":
        return []
    out: list[Change] = []
    for family, path in (("ipv4", d.paths.firewall_v4), ("ipv6", d.paths.firewall_v6)):
        f = next((x for x in rendered.files if x.path == path), None)
        if f is None:
            continue
        expected = sum(1 for line in f.content.splitlines() if line.startswith("-A "))
        if state.firewall_rules.get(family, -1) != expected or not state.firewall_hooked.get(family, False):
            out.append(
                Change(
                    f"firewall:{family}",
                    Phase.FILES,
                    "load",
                    f"firewall ({family}): load the MAILPROV chain and hook it into INPUT",
                    notifies=frozenset({Handler.FIREWALL}),
                )
            )
    return out


def managed_services(site: Site) -> tuple[str, ...]:
    """The services the site runs (enabled at boot, checked by verify)."""
    return ("postfix", "dovecot", *(("postgrey",) if site.greylisting.enabled else ()))


def _services(site: Site, d: Dialect, state: HostState) -> list[Change]:
    changes: list[Change] = []
    for name in managed_services(site):
        s = state.services.get(name)
        if s is None or not s.enabled:
            changes.append(
                Change(
                    f"enable:{name}",
                    Phase.SERVICES,
                    "enable",
                    f"{name}: start at boot",
                    commands=(Command(tuple(d.enable_service_argv(name))),),
                )
            )
    return changes


def dovecot_check_argv(d: Dialect, conf: str) -> list[str]:
    if d.dovecot_gen in (DovecotGen.V1_0, DovecotGen.V1_2):
        return ["dovecot", "-n", "-c", conf]
    return ["doveconf", "-n", "-c", conf]


def now_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


__all__ = [
    "APPLIED_STATE",
    "Change",
    "Command",
    "Handler",
    "HostPlan",
    "Phase",
    "build_plan",
    "desired_content",
    "probe_request",
]
