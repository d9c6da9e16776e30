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
    Desired,
    Handler,
    HandlerStep,
    HostContext,
    ManagedFile,
    Resource,
)

NAME = "postgrey"
RESTART = Handler(NAME, "restart")


class Postgrey(Resource[Desired]):
    name = NAME

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        return ctx.dialect.packages_postgrey if ctx.site.greylisting.enabled else ()

    def services(self, ctx: HostContext) -> tuple[str, ...]:
        return (NAME,) if ctx.site.greylisting.enabled else ()

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
