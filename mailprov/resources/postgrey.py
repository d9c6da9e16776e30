"""Greylisting with postgrey: the package, its options file (listen endpoint and delay in this
distribution's variable), restarted after a change. Postfix asks it through check_policy_service at the
endpoint the dialect decided (inet on Debian, a unix socket on RHEL)."""

from __future__ import annotations

from collections.abc import Sequence

from mailprov.facts.probe import Facts, Read
from mailprov.render import render_template
from mailprov.resources import files
from mailprov.resources.base import (
    Change,
    Command,
    Daemon,
    Desired,
    Handler,
    HandlerStep,
    HostContext,
    ManagedFile,
    Resource,
)

NAME = "postgrey"
RESTART = Handler(NAME, "restart")

# A policy request as Postfix sends it; any `action=` answer means postgrey serves (perl comes with it).
SHELL = r"""
mp_policy_answers() {
  perl -MIO::Socket::INET -MIO::Socket::UNIX -e '
    my $e = shift; my $s;
    if ($e =~ /^inet:(.+):(\d+)$/) { $s = IO::Socket::INET->new(PeerAddr => $1, PeerPort => $2, Timeout => 5) }
    elsif ($e =~ /^unix:(.+)$/) { $s = IO::Socket::UNIX->new(Peer => "/var/spool/postfix/$1") }
    $s or exit 1;
    print $s "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n",
      "client_address=127.0.0.1\nclient_name=localhost\nsender=health\@mailprov.invalid\n",
      "recipient=postmaster\@localhost\n\n";
    my $line = <$s>; exit(defined $line && $line =~ /^action=/ ? 0 : 1)' "$1"
}
"""


class Postgrey(Resource[Desired]):
    name = NAME
    shell = (SHELL,)

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        return ctx.dialect.packages_postgrey if ctx.site.greylisting.enabled else ()

    def services(self, ctx: HostContext) -> tuple[Daemon, ...]:
        return (Daemon(NAME, r"postgrey"),) if ctx.site.greylisting.enabled else ()

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        return files.reads([ctx.dialect.postgrey.defaults_path]) if ctx.site.greylisting.enabled else ()

    def desired(self, ctx: HostContext) -> Desired:
        if not ctx.site.greylisting.enabled:
            return Desired()
        pg = ctx.dialect.postgrey
        text = render_template("postgrey/postgrey.j2", site=ctx.site, pg=pg)
        return Desired(files=(ManagedFile(pg.defaults_path, text, NAME),))

    def changes(self, ctx: HostContext, desired: Desired, facts: Facts) -> Sequence[Change]:
        return files.changes(desired.files, facts, files.notifying(RESTART))

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        return (HandlerStep("postgrey restart", (Command(ctx.dialect.services.restart(NAME)),)),)

    def health(self, ctx: HostContext) -> Sequence[Command]:
        if not ctx.site.greylisting.enabled:
            return ()
        policy = ctx.dialect.postgrey.policy
        return (Command(("mp_wait", f"postgrey does not answer policy requests at {policy}", "mp_policy_answers",
                         policy)),)  # fmt: skip
