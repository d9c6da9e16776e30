"""Packages: what every resource of the site needs installed (each says so in `packages`), installed in
one go, and a previous MTA (exim4, sendmail) replaced by Postfix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.resources.base import Change, Command, Desired, Handler, HostCheck, HostContext, Phase, Resource
from mailprov.resources.checks import verdict
from mailprov.transport.shell import join

NAME = "packages"
# Answers for Debian's install-time questions: Postfix configured by mailprov, not by debconf; the
# firewall rules are saved by mailprov's handler, not at install.
DEBCONF = (
    "postfix postfix/main_mailer_type select No configuration\n"
    "iptables-persistent iptables-persistent/autosave_v4 boolean false\n"
    "iptables-persistent iptables-persistent/autosave_v6 boolean false\n"
)


@dataclass(frozen=True)
class PackageSet(Desired):
    wanted: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()  # other MTAs: removed when present
    services: tuple[str, ...] = ()  # restarted after an installation


def wanted(ctx: HostContext) -> tuple[str, ...]:
    from mailprov.resources import REGISTRY

    return tuple(dict.fromkeys(p for r in REGISTRY for p in r.packages(ctx)))


def _read(ctx: HostContext, names: Sequence[str]) -> Read:
    """Installed state from the host's own package database: rpm on EL (even where dpkg-query exists
    too), dpkg-query on Debian. No package cache is needed, so a fresh host can be read."""
    packages = ctx.dialect.packages
    key = f"{'rpm' if packages.rpm else 'packages'} {' '.join(names)}"
    return Read(key, join(packages.query(tuple(names))))


_DPKG = re.compile(r"^(\S+) (i\S) +(\S+)$")
_RPM = re.compile(r"^(\S+) (\S+)$")


def parse_installed(body: str, *, rpm: bool = False) -> dict[str, str]:
    """installed package → version, from `dpkg-query -W` (status `i…`) or `rpm -q --qf` lines. rpm's
    "package X is not installed" lines (and anything else unexpected) name no package."""
    out = {}
    for line in lines_of(body):
        match = (_RPM if rpm else _DPKG).match(line.strip())
        if match:
            out[match.group(1)] = match.group(match.lastindex or 0)
    return out


def missing_packages(ctx: HostContext, facts: Facts) -> tuple[str, ...]:
    """The packages the site needs that the host does not have installed."""
    names = wanted(ctx)
    section = facts.section(_read(ctx, [*names, *ctx.dialect.other_mtas]).key)
    installed = parse_installed(section, rpm=ctx.dialect.packages.rpm)
    return tuple(p for p in names if p not in installed)


class Packages(Resource[PackageSet]):
    name = NAME

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        return (_read(ctx, [*wanted(ctx), *ctx.dialect.other_mtas]),)

    def desired(self, ctx: HostContext) -> PackageSet:
        from mailprov.resources import REGISTRY

        services = tuple(s.name for r in REGISTRY for s in r.services(ctx))
        return PackageSet(wanted=wanted(ctx), replaced=ctx.dialect.other_mtas, services=services)

    def changes(self, ctx: HostContext, desired: PackageSet, facts: Facts) -> Sequence[Change]:
        d = ctx.dialect
        section = facts.section(_read(ctx, [*desired.wanted, *desired.replaced]).key)
        installed = parse_installed(section, rpm=d.packages.rpm)
        out: list[Change] = []
        missing = tuple(p for p in desired.wanted if p not in installed)
        if missing:
            preseed = (Command(("debconf-set-selections",), stdin=DEBCONF),) if d.packages.preseeds else ()
            out.append(
                Change(
                    NAME,
                    Phase.PREPARE,
                    "install",
                    f"install {' '.join(missing)}",
                    commands=(*preseed, *(Command(argv) for argv in d.packages.install(missing))),
                    notifies=frozenset(Handler(s, "restart", because="installed") for s in desired.services),
                )
            )
        other = tuple(p for p in desired.replaced if p in installed)
        if other:
            alternative = (Command(d.mta_alternative),) if d.mta_alternative else ()
            out.append(
                Change(
                    "mta",
                    Phase.PREPARE,
                    "remove",
                    f"replace the previous MTA ({', '.join(other)})",
                    commands=(*alternative, Command(d.packages.remove(other))),
                )
            )
        return out

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        return tuple(HostCheck(f"host.package.{p}", partial(_installed, package=p)) for p in wanted(ctx))


def _installed(h: object, package: str) -> tuple[str, str]:
    pkg = h.package(package)  # type: ignore[attr-defined]
    if pkg.is_installed:
        return verdict(True, f"{package} {pkg.version} installed")
    return verdict(False, f"{package} is not installed")
