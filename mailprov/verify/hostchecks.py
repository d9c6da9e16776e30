"""Checks on the host itself, with pytest-testinfra's modules over mailprov's own SSH transport.

testinfra's paramiko backend accepts unknown host keys (paramiko's WarningPolicy, and it never reads
known_hosts), so it is not used: `TransportBackend` runs testinfra's commands through the `Transport`
that verify was given, whose host key checking is strict (unknown or changed keys are refused), with
the same user, key, known_hosts and sudo settings as `plan` and `apply`.
"""

from __future__ import annotations

from typing import Any

import testinfra.backend.base
import testinfra.host

from mailprov.config.model import Mailbox, Site
from mailprov.render import Rendered
from mailprov.transport.base import Transport
from mailprov.transport.shell import quote
from mailprov.verify.results import CheckResult, Status

COMMAND_TIMEOUT = 60.0

# Compiled-map file suffix per Postfix database type (postmap/postalias output next to the source).
MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".pag", "sdbm": ".pag"}


class TransportBackend(testinfra.backend.base.BaseBackend):  # type: ignore[misc]
    """A testinfra backend whose commands go through a mailprov Transport (already logged in)."""

    NAME = "mailprov"

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport.host)
        self._transport = transport
        self._encoding = "utf-8"  # testinfra would ask the host's Python, which a minimal host lacks

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        cmd = self.get_command(command, *args)
        result = self._transport.run_script(cmd, check=False, timeout=COMMAND_TIMEOUT)
        return self.result(result.rc, self.encode(cmd), result.stdout, result.stderr)


def testinfra_host(transport: Transport) -> Any:
    """A `testinfra.host.Host` over `transport` (fresh: testinfra's own host cache is not used)."""
    backend = TransportBackend(transport)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def map_file(path: str, map_type: str) -> str | None:
    suffix = MAP_SUFFIX.get(map_type)
    return path + suffix if suffix else None


def expected_packages(site: Site, rendered: Rendered) -> tuple[str, ...]:
    d = rendered.dialect
    packages = list(d.packages_base)
    if "imap" in site.dovecot.protocols:
        packages += d.packages_imap
    if "pop3" in site.dovecot.protocols:
        packages += d.packages_pop3
    if site.greylisting.enabled:
        packages += d.packages_postgrey
    if site.firewall.enabled:
        packages += d.packages_firewall
    return tuple(dict.fromkeys(packages))


def expected_services(site: Site) -> tuple[str, ...]:
    return ("postfix", "dovecot", *(("postgrey",) if site.greylisting.enabled else ()))


def host_checks(site: Site, rendered: Rendered, transport: Transport) -> list[CheckResult]:
    """Packages, services, file modes, configuration checks and map freshness, one result each."""
    h = testinfra_host(transport)
    name = rendered.host.name
    d = rendered.dialect
    out: list[CheckResult] = []

    def add(check: str, status: Status, detail: str) -> None:
        out.append(CheckResult(name, check, status, detail))

    for package in expected_packages(site, rendered):
        pkg = h.package(package)
        installed = bool(pkg.is_installed)
        add(
            f"host.package.{package}",
            "pass" if installed else "fail",
            f"{package} {pkg.version} installed" if installed else f"{package} is not installed",
        )

    for service in expected_services(site):
        svc = h.service(service)
        running = bool(svc.is_running)
        add(
            f"host.service_running.{service}",
            "pass" if running else "fail",
            f"{service} is running" if running else f"{service} is not running",
        )
        enabled = bool(svc.is_enabled)
        add(
            f"host.service_enabled.{service}",
            "pass" if enabled else "fail",
            f"{service} starts at boot" if enabled else f"{service} is not enabled at boot",
        )

    if rendered.certificate is not None:
        key = h.file(rendered.certificate.key_path)
        if not key.exists:
            add("host.tls_key_private", "fail", f"{rendered.certificate.key_path} does not exist")
        else:
            ok = key.user == "root" and key.mode & 0o077 == 0
            add(
                "host.tls_key_private",
                "pass" if ok else "fail",
                f"{key.path}: {key.user}:{key.group} {key.mode:04o}"
                + ("" if ok else " (must be owned by root, readable by root only: 0600)"),
            )

    if site.mailbox is Mailbox.MAILDIR:
        for user in site.users:
            out.append(_maildir(h, name, user.login))

    cmd = h.run("postfix check")
    noise = (cmd.stdout + cmd.stderr).strip()
    add(
        "host.postfix_check",
        "pass" if cmd.rc == 0 and not noise else "fail",
        "postfix check: clean" if cmd.rc == 0 and not noise else f"postfix check (exit {cmd.rc}): {_tail(noise)}",
    )
    cmd = h.run("postconf -n")
    add(
        "host.postconf_warnings",
        "pass" if cmd.rc == 0 and not cmd.stderr.strip() else "fail",
        "postconf -n: no warnings"
        if cmd.rc == 0 and not cmd.stderr.strip()
        else f"postconf -n (exit {cmd.rc}): {_tail(cmd.stderr)}",
    )
    cmd = h.run("doveconf -n")
    add(
        "host.doveconf",
        "pass" if cmd.rc == 0 and not cmd.stderr.strip() else "fail",
        "doveconf -n: clean"
        if cmd.rc == 0 and not cmd.stderr.strip()
        else f"doveconf -n (exit {cmd.rc}): {_tail(cmd.stderr)}",
    )

    maps = [("aliases", d.paths.aliases)]
    if site.sender_access:
        maps.append(("sender_access", d.paths.sender_access))
    for label, source in maps:
        out.append(_map_fresh(h, name, label, source, d.map_type))

    for family, path in (("ipv4", d.paths.firewall_v4), ("ipv6", d.paths.firewall_v6)):
        if any(f.path == path for f in rendered.files):
            tool = "iptables" if family == "ipv4" else "ip6tables"
            hooked = h.run(f"{tool} -C INPUT -j MAILPROV").rc == 0
            add(
                f"host.firewall_hooked.{family}",
                "pass" if hooked else "fail",
                f"INPUT jumps to the MAILPROV chain ({tool})"
                if hooked
                else f"INPUT does not jump to MAILPROV ({tool}): the mail firewall policy is not in force",
            )
    return out


def _maildir(h: Any, host: str, login: str) -> CheckResult:
    check = f"host.maildir.{login}"
    user = h.user(login)
    if not user.exists:
        return CheckResult(host, check, "fail", f"user {login} does not exist")
    path = f"{user.home}/Maildir"
    top = h.file(path)
    if not top.is_directory:
        return CheckResult(host, check, "fail", f"{path} is not a directory")
    problems = []
    if top.user != login:
        problems.append(f"owned by {top.user}, not {login}")
    if top.mode != 0o700:
        problems.append(f"mode {top.mode:04o}, not 0700")
    for sub in ("cur", "new", "tmp"):
        f = h.file(f"{path}/{sub}")
        if f.exists and f.user != login:
            problems.append(f"{sub}/ owned by {f.user}")
    if problems:
        return CheckResult(host, check, "fail", f"{path}: " + ", ".join(problems))
    return CheckResult(host, check, "pass", f"{path}: {top.user}:{top.group} 0700")


def _map_fresh(h: Any, host: str, label: str, source: str, map_type: str) -> CheckResult:
    check = f"host.map_fresh.{label}"
    compiled = map_file(source, map_type)
    if compiled is None:
        return CheckResult(host, check, "skip", f"no known file name for {map_type}: maps")
    src, db = h.file(source), h.file(compiled)
    if not src.exists:
        return CheckResult(host, check, "fail", f"{source} does not exist")
    if not db.exists:
        return CheckResult(host, check, "fail", f"{compiled} does not exist: run {_rebuild(label, source, map_type)}")
    if db.mtime < src.mtime:
        return CheckResult(
            host, check, "fail", f"{compiled} is older than {source}: run {_rebuild(label, source, map_type)}"
        )
    return CheckResult(host, check, "pass", f"{compiled} is up to date with {source}")


def _rebuild(label: str, source: str, map_type: str) -> str:
    return "newaliases" if label == "aliases" else f"postmap {map_type}:{source}"


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def find_in_maildir(transport: Transport, login: str, token: str) -> list[str]:
    """Files in the user's Maildir (new/ and cur/) that contain `token`."""
    script = (
        f"h=$(getent passwd {quote(login)} | cut -d: -f6) && "
        f'grep -rlF -- {quote(token)} "$h/Maildir/new" "$h/Maildir/cur" 2>/dev/null; true'
    )
    result = transport.run_script(script, check=False, timeout=COMMAND_TIMEOUT)
    return [line for line in result.stdout.splitlines() if line.strip()]
