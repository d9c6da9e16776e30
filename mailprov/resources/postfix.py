"""Postfix's own configuration: main.cf (identity, delivery, restrictions in this Postfix's dialect,
SASL, TLS, the site's extra parameters) and the mailprov block in master.cf (submission, smtps).

Validated as a whole staged tree with `postfix check` and `postconf -n`; reloaded once, or restarted
when a parameter changed that a reload does not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailprov.config.mailservices import listening
from mailprov.config.model import Mailbox, Site
from mailprov.config.restrictions import Restriction
from mailprov.dialects import Dialect
from mailprov.errors import ConfigError
from mailprov.facts.files import FileState
from mailprov.facts.probe import Facts, Read
from mailprov.render import render_template
from mailprov.resources import files, tlsmin
from mailprov.resources.base import (
    Change,
    Command,
    Daemon,
    Desired,
    Gate,
    Handler,
    HandlerStep,
    HostCheck,
    HostContext,
    ManagedFile,
    Resource,
)
from mailprov.resources.certificate import locate as locate_certificate
from mailprov.resources.checks import quiet_command
from mailprov.resources.tlsprobe import SHELL as TLS_SHELL
from mailprov.resources.tlsprobe import serves

MASTER_BEGIN = "# BEGIN mailprov managed services"
MASTER_END = "# END mailprov managed services"
NAME = "postfix"
MASTER_PROCESS = r"(^|/)postfix/(sbin/)?master\b|/usr/libexec/postfix/master|^/usr/lib/postfix/sbin/master"
RELOAD = Handler(NAME, "reload")
# main.cf parameters that `postfix reload` does not apply (postconf(5): "stop and start Postfix").
RESTART_PARAMETERS = ("inet_interfaces", "inet_protocols")

# Validate a staged copy of the whole Postfix tree: every file of the live directory, the staged .cf
# files over them. Postfix re-reads a config file younger than a second until it settles (~2 s), so the
# copies are backdated. Debian's postfix-script reports copying chroot files ("updating /etc/hosts"):
# those are not problems; warnings, errors and fatals are. With -Z (SELinux hosts) the stage under
# /var/lib (var_lib_t) gets the live directory's label, so postfix reads it as it reads /etc/postfix.
SHELL = r"""
mp_postfix_check() {
  label=; [ "$1" = -Z ] && { label=1; shift; }
  stage=$1; live=$2; shift 2
  rm -rf "$stage" && mkdir -p "$stage" || return 1
  for f in "$live"/*; do [ -f "$f" ] && cp -p "$f" "$stage"/; done
  for f in "$@"; do cp -p "$f" "$stage/$(basename "$f" .mailprov-new)" || return 1; done
  [ -z "$label" ] || chcon -R --reference="$live" "$stage" || return 1
  touch -t 200001010000 "$stage"/* 2>/dev/null
  out=$(postfix -c "$stage" check 2>&1) || { echo "postfix check: $out"; return 1; }
  case "$out" in *arning*|*atal*|*rror*) echo "postfix check: $out"; return 1;; esac
  out=$(postconf -c "$stage" -n 2>&1 >/dev/null)
  [ -z "$out" ] || { echo "postconf: $out"; return 1; }
}
mp_postfix_running() {
  pid=$(sed -n 1p /var/spool/postfix/pid/master.pid 2>/dev/null | tr -d ' ')
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
"""


@dataclass(frozen=True)
class PostfixConfig(Desired):
    main_cf: str = ""


class Postfix(Resource[PostfixConfig]):
    name = NAME
    shell = (SHELL, TLS_SHELL)

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        return ctx.dialect.packages_base

    def services(self, ctx: HostContext) -> tuple[Daemon, ...]:
        return (
            Daemon(NAME, r"(^|/)postfix/(sbin/)?master\b|/usr/libexec/postfix/master|^/usr/lib/postfix/sbin/master"),
        )

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        p = ctx.dialect.paths
        return files.reads([p.main_cf, p.master_cf])

    def desired(self, ctx: HostContext) -> PostfixConfig:
        d = ctx.dialect
        notes: list[str] = []
        context = {
            "site": ctx.site,
            "host": ctx.host,
            "d": d,
            "p": d.paths,
            "cert": locate_certificate(ctx),
            "maildir": ctx.site.mailbox is Mailbox.MAILDIR,
            "restrictions": restriction_lists(ctx.site, d, notes),
            "tls_protocols": _tls_protocols(ctx, notes),
            "inet_protocols": inet_protocols(ctx, notes),
            "mynetworks": tuple(_postfix_network(str(n)) for n in ctx.networks),
            "maillog_file": _maillog_file(ctx, notes),
        }
        main = ManagedFile(d.paths.main_cf, render_template("postfix/main.cf.j2", **context), NAME)
        # Always rendered, empty when the site has no extra services: an empty block removes one left by an
        # earlier apply, so a service taken out of the site is really gone from master.cf.
        master = ManagedFile(
            d.paths.master_cf,
            render_template("postfix/master.cf.j2", **context),
            NAME,
            block=(MASTER_BEGIN, MASTER_END),
        )
        return PostfixConfig(files=(main, master), notes=tuple(notes), main_cf=d.paths.main_cf)

    def changes(self, ctx: HostContext, desired: PostfixConfig, facts: Facts) -> Sequence[Change]:
        refused = tlsmin.refusal(f"Postfix {ctx.dialect.postfix}", ctx.site, tlsmin.postfix(ctx.site, ctx.dialect))
        if refused is not None:
            raise refused

        def notify(f: ManagedFile, current: FileState, content: str) -> frozenset[Handler]:
            if f.path == desired.main_cf and current.exists and _needs_restart(current.content or "", content):
                return frozenset({Handler(NAME, "restart", because=f"{f.path}: listening addresses changed")})
            return frozenset({RELOAD})

        return files.changes(desired.files, facts, notify)

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        s = ctx.dialect.services
        if "restart" in actions:  # a restart does the reload's work
            return (HandlerStep("postfix restart", (Command(s.restart(NAME)),)),)
        # `postfix reload` fails when Postfix is stopped: start it then.
        return (HandlerStep("postfix reload", (Command(("sh", "-c", 'postfix reload 2>/dev/null || exec "$@"', "sh",
                                                        *s.action(NAME, "start"))),)),)  # fmt: skip

    def gates(self, ctx: HostContext, changed: frozenset[str]) -> Sequence[Gate]:
        p = ctx.dialect.paths
        cert = locate_certificate(ctx)
        watched = {p.aliases, *((cert.cert_path, cert.key_path) if cert else ())}
        if not any(path.startswith(p.postfix_dir + "/") or path in watched for path in changed):
            return ()
        from mailprov.paths import STAGE_DIR, STAGED_SUFFIX

        staged_cf = sorted(
            path + STAGED_SUFFIX for path in changed if path.startswith(p.postfix_dir + "/") and path.endswith(".cf")
        )
        label = ("-Z",) if ctx.dialect.selinux else ()
        return (Gate("validate-postfix", Command(("mp_postfix_check", *label, f"{STAGE_DIR}/postfix", p.postfix_dir,
                                                  *staged_cf))),)  # fmt: skip

    def health(self, ctx: HostContext) -> Sequence[Command]:
        master = Command(("mp_wait", "the Postfix master process is not running", "mp_postfix_running"))
        return (master, *(serves(ctx, s, "Postfix") for s in listening(ctx.site) if s.daemon == NAME))

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        return (
            HostCheck("host.postfix_check", lambda h: quiet_command(h, "postfix check", stdout_counts=True)),
            HostCheck("host.postconf_warnings", lambda h: quiet_command(h, "postconf -n", stdout_counts=False)),
        )


def main_cf_parameters(text: str) -> dict[str, str]:
    """name → value as Postfix reads main.cf: continuation lines start with white space."""
    params: dict[str, str] = {}
    name = None
    for line in text.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and name is not None:
            params[name] += " " + line.strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            name = key.strip()
            params[name] = value.strip()
    return params


def _needs_restart(old: str, new: str) -> bool:
    before, after = main_cf_parameters(old), main_cf_parameters(new)
    return any(before.get(p) != after.get(p) for p in RESTART_PARAMETERS)


# --- restrictions --------------------------------------------------------------------------------------


def _restriction_text(item: Restriction, d: Dialect) -> str:
    if item.name == "check_sender_access":
        return f"check_sender_access {d.map_type}:{d.paths.sender_access}"
    if item.name == "check_policy_service" and item.argument == "postgrey":
        return f"check_policy_service {d.postgrey.policy}"
    return item.name if item.argument is None else f"{item.name} {item.argument}"


def restriction_lists(site: Site, d: Dialect, notes: list[str]) -> dict[str, tuple[str, ...]]:
    """main.cf restriction parameters in this Postfix's dialect, in the site's order."""
    r = site.restrictions
    lists: dict[str, list[Restriction]] = {
        "smtpd_client_restrictions": list(r.client),
        "smtpd_helo_restrictions": list(r.helo),
        "smtpd_sender_restrictions": list(r.sender),
        "smtpd_recipient_restrictions": list(r.recipient),
        "smtpd_data_restrictions": list(r.data),
    }
    relay = list(r.relay) if r.relay is not None else None
    if d.has_relay_restrictions:
        if relay is None:
            relay = [Restriction("permit_mynetworks")]
            if site.sasl.enabled:
                relay.append(Restriction("permit_sasl_authenticated"))
            relay.append(Restriction("reject_unauth_destination"))
        lists = {"smtpd_relay_restrictions": relay, **lists}
    elif relay is not None:
        # Before 2.10 relay control lives in smtpd_recipient_restrictions: the relay list goes first.
        rest = [x for x in lists["smtpd_recipient_restrictions"] if x not in relay]
        lists["smtpd_recipient_restrictions"] = relay + rest
        _refuse_merged_open_relay(site, d, relay + rest)
    elif not lists["smtpd_recipient_restrictions"]:
        lists["smtpd_recipient_restrictions"] = (
            [Restriction("permit_mynetworks")]
            + ([Restriction("permit_sasl_authenticated")] if site.sasl.enabled else [])
            + [Restriction("reject_unauth_destination")]
        )
    if not d.pipelining_anywhere:
        moved = False
        for name, items in lists.items():
            if name != "smtpd_data_restrictions" and Restriction("reject_unauth_pipelining") in items:
                items.remove(Restriction("reject_unauth_pipelining"))
                moved = True
        if moved:
            if Restriction("reject_unauth_pipelining") not in lists["smtpd_data_restrictions"]:
                lists["smtpd_data_restrictions"].insert(0, Restriction("reject_unauth_pipelining"))
            notes.append(
                f"Postfix {d.postfix} honours reject_unauth_pipelining only in smtpd_data_restrictions: moved there"
            )
    return {name: tuple(_restriction_text(x, d) for x in items) for name, items in lists.items() if items}


def _refuse_merged_open_relay(site: Site, d: Dialect, merged: list[Restriction]) -> None:
    """On 2.10+ a permit in the relay list only ends that list; merged into one list it ends all checks."""
    guards = ("reject_unauth_destination", "defer_unauth_destination")
    guard = next((i for i, x in enumerate(merged) if x.name in guards), len(merged))
    whitelist = any(e.action == "OK" for e in site.sender_access)
    for item in merged[:guard]:
        permits = item.name in ("permit", "permit_auth_destination")
        if permits or (item.name == "check_sender_access" and whitelist):
            raise ConfigError(
                f"restrictions.relay: Postfix {d.postfix} has no smtpd_relay_restrictions, so the relay "
                f"list goes first in smtpd_recipient_restrictions, where {item.name} before "
                "reject_unauth_destination would make an open relay: end the relay list with "
                "reject_unauth_destination"
            )


# --- TLS, addresses, logging ---------------------------------------------------------------------------


def _tls_protocols(ctx: HostContext, notes: list[str]) -> str | None:
    """smtpd_tls_(mandatory_)protocols for the site's minimum, as far as this host can (tlsmin)."""
    reach = tlsmin.postfix(ctx.site, ctx.dialect)
    notes += tlsmin.note(f"Postfix {ctx.dialect.postfix}", ctx.site, reach)
    return reach.value


def _postfix_network(net: str) -> str:
    """mynetworks wants IPv6 as `[2001:db8::]/32`: a bare `:` reads as a `type:table` lookup (postconf(5))."""
    if ":" not in net:
        return net
    address, _, prefix = net.partition("/")
    return f"[{address}]/{prefix}"


def inet_protocols(ctx: HostContext, notes: list[str] | None = None) -> str:
    wanted = ctx.site.postfix.inet_protocols
    if wanted != "ipv4" and not ctx.dialect.platform.has_ipv6:
        if notes is not None:
            notes.append("the host has no IPv6: Postfix and Dovecot listen on IPv4 only")
        return "ipv4"
    return wanted


def _maillog_file(ctx: HostContext, notes: list[str]) -> str | None:
    site, d = ctx.site, ctx.dialect
    if site.postfix.maillog_file:
        if not d.has_maillog_file:
            raise ConfigError(f"postfix.maillog_file needs Postfix 3.4 or later; this host has {d.postfix}")
        return site.postfix.maillog_file
    if not d.platform.has_syslog:
        if d.has_maillog_file:
            notes.append("no syslog on the host: Postfix logs to /var/log/postfix.log (maillog_file)")
            return "/var/log/postfix.log"
        notes.append("no syslog on the host and Postfix < 3.4: install a syslog daemon to see mail logs")
    return None
