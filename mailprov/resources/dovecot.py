"""Dovecot: one complete configuration file in the dialect of the Dovecot on the host (1.x, 2.0-2.2,
2.3, 2.4), validated staged with the host's own checker, and restarted (not reloaded: listeners and
TLS settings change only on a restart)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailprov.config.mailservices import listening
from mailprov.config.model import Mailbox
from mailprov.facts.probe import Facts, Read
from mailprov.paths import STAGED_SUFFIX
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
from mailprov.resources.postfix import inet_protocols
from mailprov.resources.tlsprobe import SHELL as TLS_SHELL
from mailprov.resources.tlsprobe import serves

NAME = "dovecot"
# Dovecot's auth socket inside Postfix's queue directory, so that a chrooted smtpd reaches it too.
SASL_SOCKET = "/var/spool/postfix/private/auth"
RESTART = Handler(NAME, "restart")

# The checker prints warnings on stderr but exits 0: any warning or error fails the gate.
SHELL = r"""
mp_dovecot_check() {
  out=$("$@" 2>&1 >/dev/null) || { echo "doveconf: $out"; return 1; }
  case "$out" in *arning*|*rror*) echo "doveconf: $out"; return 1;; esac
}
"""


@dataclass(frozen=True)
class DovecotConfig(Desired):
    conf: str = ""


class Dovecot(Resource[DovecotConfig]):
    name = NAME
    shell = (SHELL, TLS_SHELL)

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        d, protocols = ctx.dialect, ctx.site.dovecot.protocols
        return (*(d.packages_imap if "imap" in protocols else ()), *(d.packages_pop3 if "pop3" in protocols else ()))

    def services(self, ctx: HostContext) -> tuple[Daemon, ...]:
        return (Daemon(NAME, r"^(/usr/s?bin/)?dovecot(\s|$)"),)

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        return files.reads([ctx.dialect.paths.dovecot_conf])

    def desired(self, ctx: HostContext) -> DovecotConfig:
        d = ctx.dialect
        notes: list[str] = []
        syntax = d.dovecot_syntax
        cert = locate_certificate(ctx)
        reach = tlsmin.dovecot(ctx.site, d)
        if cert is not None:
            notes += tlsmin.note(f"Dovecot {d.dovecot}", ctx.site, reach)
        context = {
            "site": ctx.site,
            "d": d,
            "syntax": syntax,
            "cert": cert,
            "maildir": ctx.site.mailbox is Mailbox.MAILDIR,
            "ssl_min_protocol": reach.value if syntax.min_protocol else None,
            "dovecot_ssl_protocols": reach.value if syntax.ssl_protocols else None,
            "inet_protocols": inet_protocols(ctx),
            "dovecot_log": None if d.platform.has_syslog else "/var/log/dovecot.log",
            "sasl_socket": SASL_SOCKET,
        }
        text = render_template(f"dovecot/dovecot-{syntax.template}.conf.j2", **context)
        conf = ManagedFile(d.paths.dovecot_conf, text, NAME)
        return DovecotConfig(files=(conf,), notes=tuple(notes), conf=conf.path)

    def changes(self, ctx: HostContext, desired: DovecotConfig, facts: Facts) -> Sequence[Change]:
        if locate_certificate(ctx) is not None:
            refused = tlsmin.refusal(f"Dovecot {ctx.dialect.dovecot}", ctx.site, tlsmin.dovecot(ctx.site, ctx.dialect))
            if refused is not None:
                raise refused
        return files.changes(desired.files, facts, files.notifying(RESTART))

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        return (HandlerStep("dovecot restart", (Command(ctx.dialect.services.restart(NAME)),)),)

    def gates(self, ctx: HostContext, changed: frozenset[str]) -> Sequence[Gate]:
        conf = ctx.dialect.paths.dovecot_conf
        cert = locate_certificate(ctx)
        if conf not in changed and not (cert and {cert.cert_path, cert.key_path} & changed):
            return ()
        target = conf + STAGED_SUFFIX if conf in changed else conf
        argv = (*ctx.dialect.dovecot_syntax.check_argv, "-c", target)
        return (Gate("validate-dovecot", Command(("mp_dovecot_check", *argv))),)

    def health(self, ctx: HostContext) -> Sequence[Command]:
        ports = [serves(ctx, s, "Dovecot") for s in listening(ctx.site) if s.daemon == NAME]
        # Postfix's smtpd dies on AUTH while the socket is missing: wait for it too.
        sasl = (
            [Command(("mp_wait", f"Dovecot's SASL socket {SASL_SOCKET} is missing", "test", "-S", SASL_SOCKET))]
            if ctx.site.sasl.enabled
            else []
        )
        return (*ports, *sasl)

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        argv = " ".join(ctx.dialect.dovecot_syntax.check_argv)
        return (HostCheck("host.doveconf", lambda h: quiet_command(h, argv, stdout_counts=False)),)
