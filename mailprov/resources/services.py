"""Boot links: every service a resource of the site runs (each says so in `services`) starts at boot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.resources.base import Change, Command, Daemon, Desired, Handler, HostCheck, HostContext, Phase, Resource
from mailprov.resources.checks import verdict
from mailprov.transport.shell import quote

NAME = "services"
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "generated")


@dataclass(frozen=True)
class BootServices(Desired):
    daemons: tuple[Daemon, ...] = ()


def managed(ctx: HostContext) -> tuple[Daemon, ...]:
    from mailprov.resources import REGISTRY

    return tuple({s.name: s for r in REGISTRY for s in r.services(ctx)}.values())


PS_READ = Read("ps", "ps -eo pid=,args=", volatile=True)


def running(ps: str, daemons: Sequence[Daemon]) -> frozenset[str]:
    """Names of the daemons with a process in `ps -eo pid=,args=` output."""
    args = [parts[1] for line in lines_of(ps) if len(parts := line.strip().split(None, 1)) == 2]
    return frozenset(d.name for d in daemons if any(re.search(d.process, a) for a in args))


def _read(names: Sequence[str]) -> Read:
    names_q = " ".join(quote(n) for n in names)
    return Read(
        f"enabled {' '.join(names)}",
        f"if [ -d /run/systemd/system ]; then for s in {names_q}; do"
        ' echo "$s $(systemctl is-enabled $s)"; done;'
        f" elif command -v chkconfig >/dev/null; then for s in {names_q}; do"
        ' chkconfig --list $s | grep -q "3:on" && echo "$s enabled"; done;'
        f" else for s in {names_q}; do"
        ' for f in /etc/rc2.d/S*"$s"; do [ -e "$f" ] && echo "$s enabled"; break; done; done; fi',
    )


def enabled_read(names: Sequence[str]) -> Read:
    """Which of `names` start at boot (systemd, chkconfig or rc2.d links), for another resource's services."""
    return _read(names)


def parse_enabled(body: str) -> frozenset[str]:
    on = set()
    for line in lines_of(body):
        name, _, state = line.partition(" ")
        if state.strip() in ENABLED_STATES:
            on.add(name)
    return frozenset(on)


class Services(Resource[BootServices]):
    name = NAME

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        return (_read([d.name for d in managed(ctx)]), PS_READ)

    def desired(self, ctx: HostContext) -> BootServices:
        return BootServices(daemons=managed(ctx))

    def changes(self, ctx: HostContext, desired: BootServices, facts: Facts) -> Sequence[Change]:
        names = [d.name for d in desired.daemons]
        enabled = parse_enabled(facts.section(_read(names).key))
        up = running(facts.section(PS_READ.key), desired.daemons)
        out = [
            Change(
                f"enable:{name}",
                Phase.FINISH,
                "enable",
                f"{name}: start at boot",
                commands=(Command(ctx.dialect.services.enable(name)),),
            )
            for name in names
            if name not in enabled
        ]
        out += [
            Change(
                f"start:{name}",
                Phase.FINISH,
                "start",
                f"{name} is not running: start it",
                notifies=frozenset({Handler(name, "restart", because="not running")}),
            )
            for name in names
            if name not in up
        ]
        return out

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        out = []
        for name in (d.name for d in managed(ctx)):
            out.append(HostCheck(f"host.service_running.{name}", partial(_running, service=name)))
            out.append(HostCheck(f"host.service_enabled.{name}", partial(_enabled, service=name)))
        return out


def _running(h: object, service: str) -> tuple[str, str]:
    running = bool(h.service(service).is_running)  # type: ignore[attr-defined]
    return verdict(running, f"{service} is running" if running else f"{service} is not running")


def _enabled(h: object, service: str) -> tuple[str, str]:
    enabled = bool(h.service(service).is_enabled)  # type: ignore[attr-defined]
    return verdict(enabled, f"{service} starts at boot" if enabled else f"{service} is not enabled at boot")
