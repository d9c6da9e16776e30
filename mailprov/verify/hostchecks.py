"""Checks on the host itself, with pytest-testinfra's modules over mailprov's own SSH transport.

testinfra's paramiko backend accepts unknown host keys (paramiko's WarningPolicy, and it never reads
known_hosts), so it is not used: `TransportBackend` runs testinfra's commands through the `Transport`
that verify was given, whose host key checking is strict (unknown or changed keys are refused), with
the same user, key, known_hosts and sudo settings as `plan` and `apply`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import testinfra.backend.base
import testinfra.host

from mailprov.config.model import Mailbox, Site
from mailprov.dialects import MAP_SUFFIX
from mailprov.errors import MailprovError
from mailprov.plan import managed_services, required_packages
from mailprov.render import Rendered
from mailprov.transport.base import Transport
from mailprov.transport.shell import quote
from mailprov.verify.results import CheckResult

COMMAND_TIMEOUT = 60.0

# Compiled-map file suffix per Postfix database type (postmap/postalias output next to the source).


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
    return path + suffix if suffix else None  # None: a map type with no file beside its source


HostCheck = tuple[bool, str]  # passed?, what was seen


def host_checks(site: Site, rendered: Rendered, transport: Transport) -> list[CheckResult]:
    """Packages, services, file modes, configuration checks and map freshness, one result each.

    Each check runs on its own: testinfra's assertion on an unexpected exit status, or a dropped SSH
    session, fails that check by name and the others still run.
    """
    h = testinfra_host(transport)
    host = rendered.host.name
    d = rendered.dialect
    out: list[CheckResult] = []

    def check(name: str, probe: Callable[[], HostCheck | CheckResult]) -> None:
        try:
            result = probe()
        except (AssertionError, RuntimeError, MailprovError) as exc:
            out.append(CheckResult(host, name, "fail", f"could not check: {_tail(str(exc))}"))
            return
        if isinstance(result, CheckResult):
            out.append(result)
        else:
            out.append(CheckResult(host, name, "pass" if result[0] else "fail", result[1]))

    for package in required_packages(site, rendered.dialect):
        check(f"host.package.{package}", functools.partial(_package, h, package))
    for service in managed_services(site):
        check(f"host.service_running.{service}", functools.partial(_running, h, service))
        check(f"host.service_enabled.{service}", functools.partial(_enabled, h, service))
    if rendered.certificate is not None:
        check("host.tls_key_private", functools.partial(_private_key, h, rendered.certificate.key_path))
    if site.mailbox is Mailbox.MAILDIR:
        for user in site.users:
            check(f"host.maildir.{user.login}", functools.partial(_maildir, h, host, user.login))
    check("host.postfix_check", functools.partial(_quiet_command, h, "postfix check", stdout_counts=True))
    check("host.postconf_warnings", functools.partial(_quiet_command, h, "postconf -n", stdout_counts=False))
    check("host.doveconf", functools.partial(_quiet_command, h, "doveconf -n", stdout_counts=False))
    maps = [("aliases", d.paths.aliases)]
    if site.sender_access:
        maps.append(("sender_access", d.paths.sender_access))
    for label, source in maps:
        check(f"host.map_fresh.{label}", functools.partial(_map_fresh, h, host, label, source, d.map_type))
    for family, path in (("ipv4", d.paths.firewall_v4), ("ipv6", d.paths.firewall_v6)):
        if any(f.path == path for f in rendered.files):
            tool = "iptables" if family == "ipv4" else "ip6tables"
            check(f"host.firewall_hooked.{family}", functools.partial(_firewall_hooked, h, tool))
    return out


def _package(h: Any, package: str) -> HostCheck:
    pkg = h.package(package)
    if pkg.is_installed:
        return True, f"{package} {pkg.version} installed"
    return False, f"{package} is not installed"


def _running(h: Any, service: str) -> HostCheck:
    running = bool(h.service(service).is_running)
    return running, f"{service} is running" if running else f"{service} is not running"


def _enabled(h: Any, service: str) -> HostCheck:
    enabled = bool(h.service(service).is_enabled)
    return enabled, f"{service} starts at boot" if enabled else f"{service} is not enabled at boot"


def _private_key(h: Any, path: str) -> HostCheck:
    key = h.file(path)
    if not key.exists:
        return False, f"{path} does not exist"
    ok = key.user == "root" and key.mode & 0o077 == 0
    hint = "" if ok else " (must be owned by root, readable by root only: 0600)"
    return ok, f"{path}: {key.user}:{key.group} {key.mode:04o}{hint}"


def _quiet_command(h: Any, command: str, *, stdout_counts: bool) -> HostCheck:
    """Exit 0 and nothing on stderr (nor on stdout, for `postfix check`): warnings are findings."""
    cmd = h.run(command)
    noise = ((cmd.stdout if stdout_counts else "") + cmd.stderr).strip()
    if cmd.rc == 0 and not noise:
        return True, f"{command}: clean"
    return False, f"{command} (exit {cmd.rc}): {_tail(noise)}"


def _firewall_hooked(h: Any, tool: str) -> HostCheck:
    if h.run(f"{tool} -C INPUT -j MAILPROV").rc == 0:
        return True, f"INPUT jumps to the MAILPROV chain ({tool})"
    return False, f"INPUT does not jump to MAILPROV ({tool}): the mail firewall policy is not in force"


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
    return " | ".join(text.strip().split("\n")[-lines:]) or "(no output)"  # host output: "\n" only


def find_in_maildir(transport: Transport, login: str, token: str) -> list[str]:
    """Files in the user's Maildir (new/ and cur/) that contain `token`."""
    script = (
        f"h=$(getent passwd {quote(login)} | cut -d: -f6) && "
        f'grep -rlF -- {quote(token)} "$h/Maildir/new" "$h/Maildir/cur" 2>/dev/null; true'
    )
    result = transport.run_script(script, check=False, timeout=COMMAND_TIMEOUT)
    # "\n" only, never splitlines(): a file name holding U+2028 or U+0085 is one name, not two.
    return [line for line in result.stdout.split("\n") if line.strip()]


def remove_files(transport: Transport, paths: list[str]) -> None:
    """Remove verify's own test messages (paths find_in_maildir returned) so no mailbox keeps them."""
    transport.run(["rm", "-f", "--", *paths], check=False, timeout=COMMAND_TIMEOUT)
