"""Run the pipeline for each host of a site: connect → facts → render → plan (→ apply), hosts in parallel.

This is the only module that ties the transport to the core; each host gets its own connection, reused
for all of its round trips, and one host's failure never stops the others.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailprov.apply import ApplyResult, execute
from mailprov.config.model import Host, Site
from mailprov.config.secrets import resolve
from mailprov.errors import ConfigError, MailprovError, TransportError
from mailprov.facts.platform import PRESETS, OsFamily, Platform
from mailprov.facts.probe import Facts, Read, parse_probe, probe_script, unique
from mailprov.facts.traits import HostTraits, parse_traits
from mailprov.plan import HostPlan, build_plan, host_records, reads
from mailprov.resources import SITE_REGISTRY
from mailprov.resources.base import DnsRecord, HostContext, SiteContext, SitePlan, SiteResource
from mailprov.transport import connect, make
from mailprov.transport.base import SshTarget, Transport, TransportKind

if TYPE_CHECKING:
    from mailprov.transport.openssh import OpenSshTransport
    from mailprov.transport.ssh import SshTransport

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    accept_new_host_keys: bool = False
    workers: int = 10
    known_hosts: str | None = None  # extra known_hosts file for every host (CLI), besides the site's
    site_file: Path | None = None  # to place a refusal found while planning at its file:line
    transport: TransportKind | None = None  # the CLI's --transport, over every host's ssh.transport


@dataclass(frozen=True)
class HostOutcome:
    host: str
    plan: HostPlan | None = None
    result: ApplyResult | None = None
    error: str | None = None
    round_trips: int = 0
    secrets: tuple[str, ...] = field(default=(), repr=False)
    records: tuple[DnsRecord, ...] | None = None  # read again after an apply that changed the host

    def published(self) -> tuple[DnsRecord, ...]:
        """The records this host's resources need published: as read after the apply, else at plan time."""
        if self.records is not None:
            return self.records
        return self.plan.records if self.plan is not None else ()


@dataclass(frozen=True)
class SiteOutcome:
    """A site resource's plan, and what its apply did (or why it did not run)."""

    resource: str
    plan: SitePlan[Any] | None = None
    applied: str | None = None
    error: str | None = None


def select_hosts(site: Site, names: Sequence[str]) -> tuple[Host, ...]:
    if not names:
        return site.hosts
    unknown = [n for n in names if n not in {h.name for h in site.hosts}]
    if unknown:
        raise ConfigError(
            f"no host named {', '.join(unknown)} in the site (hosts: {', '.join(h.name for h in site.hosts)})"
        )
    return tuple(h for h in site.hosts if h.name in names)


def target_for(host: Host, options: RunOptions, base_dir: Path) -> SshTarget:
    ssh = host.ssh
    password = resolve(ssh.sudo_password, base_dir).reveal() if ssh.sudo_password else None
    known = ssh.known_hosts or options.known_hosts
    return SshTarget(
        host=host.name,
        address=ssh.address or host.name,
        port=ssh.port,
        user=ssh.user,
        identity_file=_local_path(ssh.identity_file, base_dir),
        known_hosts=_local_path(known, base_dir),
        become=ssh.become,
        sudo_password=password,
        accept_new_host_keys=options.accept_new_host_keys,
        kind=options.transport or ssh.transport,
        legacy_algorithms=ssh.legacy_algorithms,
    )


def _local_path(value: str | None, base_dir: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


# One platform of each kind whose paths differ: RHEL/Debian, Dovecot 1.x/2.x, hash/lmdb maps (EL10).
_PATH_KINDS = ("centos5", "rocky9", "rocky10", "debian12", "debian13")


def host_context(
    site: Site, host: Host, platform: Platform, base_dir: Path, traits: HostTraits | None = None
) -> HostContext:
    return HostContext.of(site, host, platform, base_dir, traits)


# Told apart on the host itself, so a Debian host runs no read only a RHEL host needs (and back).
_FAMILY_TEST = {OsFamily.DEBIAN: "[ -f /etc/debian_version ]", OsFamily.RHEL: "[ ! -f /etc/debian_version ]"}


def speculative_reads(site: Site, host: Host, base_dir: Path) -> tuple[Read, ...]:
    """What to read before knowing the platform: everything the site would read on any kind of host,
    each read guarded by the OS family that needs it. Reads depend on paths only: nothing is rendered."""
    families: dict[str, set[OsFamily]] = {}
    out: list[Read] = []
    for name in _PATH_KINDS:
        platform = PRESETS[name]
        try:
            wanted = reads(host_context(site, host, platform, base_dir))
        except MailprovError:
            continue  # the site cannot be planned for that kind (e.g. a setting it lacks): skip it
        for read in wanted:
            families.setdefault(read.key, set()).add(platform.os_family)
            out.append(read)
    return tuple(
        dataclasses.replace(r, only_if=_FAMILY_TEST[next(iter(families[r.key]))]) if len(families[r.key]) == 1 else r
        for r in unique(out)
    )


def read_facts(site: Site, host: Host, transport: Transport, base_dir: Path) -> tuple[HostContext, Facts]:
    """One round trip reads the platform and every path the site could manage there; a second runs
    only if the host's real dialect needs a read that was not made."""
    script = probe_script(speculative_reads(site, host, base_dir))
    facts = parse_probe(transport.run_script(script, check=True, timeout=120).stdout, host.name)
    ctx = host_context(site, host, facts.platform, base_dir, parse_traits(facts.sections))
    missing = [r for r in reads(ctx) if not facts.has(r.key)]
    if missing:
        output = transport.run_script(probe_script(missing, platform=False), check=True, timeout=120).stdout
        facts = facts.merged(parse_probe(output, host.name, facts.platform))
    return ctx, facts


def plan_host(site: Site, host: Host, transport: Transport, base_dir: Path) -> HostPlan:
    return build_plan(*read_facts(site, host, transport, base_dir))


def run_hosts(
    site: Site,
    hosts: Sequence[Host],
    options: RunOptions,
    base_dir: Path,
    work: Callable[[Host, Transport], HostOutcome],
) -> list[HostOutcome]:
    def one(host: Host) -> HostOutcome:
        try:
            with make(target_for(host, options, base_dir)) as transport:
                outcome = work(host, transport)
                return dataclasses.replace(outcome, round_trips=transport.round_trips)
        except MailprovError as exc:
            return HostOutcome(host.name, error=_placed(exc, options))

    return _parallel(one, hosts, options.workers)


def plan_site(site: Site, hosts: Sequence[Host], options: RunOptions, base_dir: Path) -> list[HostOutcome]:
    return run_hosts(
        site, hosts, options, base_dir, lambda host, t: HostOutcome(host.name, plan=plan_host(site, host, t, base_dir))
    )


def apply_site(
    site: Site,
    hosts: Sequence[Host],
    options: RunOptions,
    base_dir: Path,
    approve: Callable[[list[HostOutcome]], bool],
    expected: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[HostOutcome]:
    """Plan every host, ask once (approve), then execute exactly those plans over the same connections.

    expected: facts fingerprints from a saved plan; a host whose facts differ is refused, not applied.
    """
    say = progress or (lambda _line: None)
    transports: dict[str, SshTransport | OpenSshTransport] = {}
    try:

        def plan_one(host: Host) -> HostOutcome:
            try:
                transport = make(target_for(host, options, base_dir))
                transport.connect()
                transports[host.name] = transport
                return HostOutcome(host.name, plan=plan_host(site, host, transport, base_dir))
            except MailprovError as exc:
                return HostOutcome(host.name, error=_placed(exc, options))

        planned = _parallel(plan_one, hosts, options.workers)
        if expected is not None:
            planned = [_check_unchanged(o, expected) for o in planned]
        if not approve(planned):
            return planned
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())

        def apply_one(outcome: HostOutcome) -> HostOutcome:
            if outcome.plan is None:
                return outcome
            transport = transports[outcome.host]
            if outcome.plan.changes:
                say(f"{outcome.host}: applying {len(outcome.plan.changes)} change(s)…")
            try:
                target = target_for(next(h for h in hosts if h.name == outcome.host), options, base_dir)
                result = execute(outcome.plan, transport, stamp, reconnect=functools.partial(_connected, target))
                if outcome.plan.changes:
                    say(f"{outcome.host}: {'done' if result.ok else 'FAILED at ' + str(result.failed_step)}")
                records = None
                if result.ok and outcome.plan.changes:
                    # What the apply made (a DKIM key generated just now) is read back for the site resources.
                    host = next(h for h in hosts if h.name == outcome.host)
                    records = host_records(*_read_after_apply(site, host, transport, target, base_dir))
            except MailprovError as exc:
                return HostOutcome(outcome.host, outcome.plan, error=str(exc), round_trips=transport.round_trips)
            return HostOutcome(outcome.host, outcome.plan, result, round_trips=transport.round_trips, records=records)

        return _parallel(apply_one, planned, options.workers)
    finally:
        for transport in transports.values():
            transport.close()


def plan_site_resources(
    site: Site,
    outcomes: Sequence[HostOutcome],
    base_dir: Path,
    registry: Sequence[SiteResource[Any]] = SITE_REGISTRY,
) -> list[SiteOutcome]:
    """Plan what the whole site shares (its DNS zone) from the records every planned host publishes."""
    ctx = SiteContext(site, base_dir, tuple(r for o in outcomes for r in o.published()))
    out = []
    for resource in registry:
        try:
            out.append(SiteOutcome(resource.name, plan=resource.plan(ctx)))
        except MailprovError as exc:
            out.append(SiteOutcome(resource.name, error=str(exc)))
    return out


def apply_site_resources(
    site: Site,
    outcomes: Sequence[HostOutcome],
    base_dir: Path,
    registry: Sequence[SiteResource[Any]] = SITE_REGISTRY,
) -> list[SiteOutcome]:
    """After every host's apply: plan the site resources again (from what the hosts publish now) and
    apply them. Nothing runs when a host failed: its records may describe a state it did not reach."""
    failed = [o.host for o in outcomes if o.error or (o.result is not None and not o.result.ok)]
    if failed:
        why = f"not applied: {', '.join(failed)} failed; apply again once every host converges"
        return [SiteOutcome(r.name, error=why) for r in registry]
    ctx = SiteContext(site, base_dir, tuple(r for o in outcomes for r in o.published()))
    out = []
    for resource in registry:
        try:
            plan = resource.plan(ctx)
            done = resource.apply(ctx, plan) if plan.changes else None
            out.append(SiteOutcome(resource.name, plan=plan, applied=done))
        except MailprovError as exc:
            out.append(SiteOutcome(resource.name, error=str(exc)))
    return out


def _placed(exc: MailprovError, options: RunOptions) -> str:
    """A refusal of the site found while planning, at its file:line where the site file is known."""
    if isinstance(exc, ConfigError) and options.site_file is not None:
        from mailprov.config.loader import locate

        return str(locate(exc, options.site_file))
    return str(exc)


def _connected(target: SshTarget) -> Transport:
    return connect(target)


def _read_after_apply(
    site: Site, host: Host, transport: Transport, target: SshTarget, base_dir: Path
) -> tuple[HostContext, Facts]:
    """The host read again after its apply; over a new connection when the apply's own was cut (execute
    reached the host again on a connection of its own, closed since)."""
    try:
        return read_facts(site, host, transport, base_dir)
    except TransportError:
        with connect(target) as again:
            return read_facts(site, host, again, base_dir)


def _check_unchanged(outcome: HostOutcome, expected: Mapping[str, str]) -> HostOutcome:
    if outcome.plan is None:
        return outcome
    if outcome.host not in expected:
        return HostOutcome(outcome.host, error="not in the saved plan: run `mailprov plan --out` again")
    if expected[outcome.host] != outcome.plan.fingerprint:
        return HostOutcome(
            outcome.host,
            error="the host changed since the saved plan was made: nothing was "
            "applied; run `mailprov plan --out` again and review",
        )
    return outcome


def _parallel(func: Callable[[T], HostOutcome], items: Sequence[T], workers: int) -> list[HostOutcome]:
    if len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(func, items))
