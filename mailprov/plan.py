"""build_plan(...) -> HostPlan: a value. `plan` prints it; `apply` executes the very same object.

Each resource of the registry compares its wish with the host's facts and yields Changes; an empty list
means the host already matches. The plan then gathers the handlers the changes owe (run by their owning
resource, in registry order), the gates that validate staged files, and the health probes. No dry-run
flag exists anywhere: the plan IS what apply will do. Nothing here names a resource.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailprov.config.secrets import Secret
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.facts.traits import TRAITS_READ
from mailprov.paths import GENERATION, JOURNAL
from mailprov.resources import REGISTRY
from mailprov.resources.base import (
    Change,
    Command,
    DnsRecord,
    Gate,
    Handler,
    HandlerStep,
    HostContext,
    ManagedFile,
    Phase,
    Resource,
)


@dataclass(frozen=True)
class HostPlan:
    host: str
    platform: str
    changes: tuple[Change, ...]
    owed: tuple[Handler, ...]  # what the changes notified, for the record
    handlers: tuple[HandlerStep, ...]  # what runs, in order, each once
    rollback: tuple[HandlerStep, ...]  # after restoring the previous files: the same owners, restarted
    gates: tuple[Gate, ...]
    health: tuple[Command, ...]
    shell: str  # the sh functions the commands call
    fingerprint: str
    notes: tuple[str, ...] = ()
    generation: str = ""  # the last apply's run on the host when this plan was made
    relabel: tuple[str, ...] = ()  # argv that relabels switched files (SELinux, the dialect's), before paths
    records: tuple[DnsRecord, ...] = ()  # what the host's resources need published (site resources' input)

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def files(self) -> tuple[ManagedFile, ...]:
        return tuple(c.file for c in self.changes if c.file is not None)

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret a command or file of the plan carries: masked in every output of the run."""
        out: list[Secret] = []
        for change in self.changes:
            for command in change.commands:
                out += command.secrets
                if isinstance(command.stdin, Secret):
                    out.append(command.stdin)
            if change.file is not None and isinstance(change.file.content, Secret):
                out.append(change.file.content)
        return tuple(out)


# The handlers an interrupted apply still owes (hostscript writes it before changing anything).
JOURNAL_READ = Read("journal", f"cat {JOURNAL}")
# Which apply ran last: an apply whose plan was made before another apply ran is refused on the host.
GENERATION_READ = Read("generation", f"cat {GENERATION}")


def reads(ctx: HostContext, registry: Sequence[Resource[Any]] = REGISTRY) -> tuple[Read, ...]:
    """Everything the site's resources need read on this host (the platform reads come on top)."""
    wanted = [JOURNAL_READ, GENERATION_READ, TRAITS_READ, *(r for resource in registry for r in resource.reads(ctx))]
    return tuple({r.key: r for r in wanted}.values())


def owed_by_a_cut_apply(facts: Facts) -> Change | None:
    """The handlers a cut apply left owed, as a change: `plan` shows them, `apply` runs them."""
    lines = lines_of(facts.sections.get(JOURNAL_READ.key, ""))
    since = next((ln.split(" ", 1)[1] for ln in lines if ln.startswith("since ")), "?")
    pairs = [ln.split(" ", 1) for ln in lines if not ln.startswith("since ") and " " in ln]
    handlers = frozenset(Handler(owner, action, because="an interrupted apply") for owner, action in pairs)
    if not handlers:
        return None
    names = ", ".join(h.name for h in sorted(handlers))
    return Change("journal", Phase.FINISH, "resume", f"interrupted apply at {since}: {names}", notifies=handlers)


def host_records(ctx: HostContext, facts: Facts, registry: Sequence[Resource[Any]] = REGISTRY) -> tuple[DnsRecord, ...]:
    """The DNS records this host's resources need published, from its facts (e.g. a DKIM key read there)."""
    return tuple(record for resource in registry for record in resource.records(ctx, facts))


def build_plan(ctx: HostContext, facts: Facts, registry: Sequence[Resource[Any]] = REGISTRY) -> HostPlan:
    changes: list[Change] = []
    notes: list[str] = []
    for resource in registry:
        desired = resource.desired(ctx)
        notes += desired.notes
        changes += resource.changes(ctx, desired, facts)
    resume = owed_by_a_cut_apply(facts)
    if resume is not None:
        changes.append(resume)
    changes.sort(key=lambda c: c.phase)  # stable: registry order within a phase
    owed: dict[str, set[str]] = defaultdict(set)
    for change in changes:
        for handler in change.notifies:
            owed[handler.owner].add(handler.action)
    handlers = [step for r in registry if r.name in owed for step in r.handle(ctx, frozenset(owed[r.name]))]
    # A restart, not a reload, brings the previous configuration back: it also clears what a daemon that
    # died on the new one left behind (Postfix's master throttles a service that keeps dying).
    rollback = [
        step for r in registry if r.name in owed for step in r.handle(ctx, frozenset({*owed[r.name], "restart"}))
    ]
    written = frozenset(c.file.path for c in changes if c.file is not None)
    gates = [gate for r in registry for gate in r.gates(ctx, written)] if written else []
    health = [command for r in registry for command in r.health(ctx)] if handlers else []
    return HostPlan(
        host=ctx.host.name,
        platform=facts.platform.describe(),
        changes=tuple(changes),
        owed=tuple(sorted(Handler(owner, action) for owner, actions in owed.items() for action in actions)),
        handlers=tuple(handlers),
        rollback=tuple(rollback),
        gates=tuple(gates),
        health=tuple(health),
        shell="".join(dict.fromkeys(text for r in registry for text in r.shell)),
        fingerprint=facts.fingerprint(reads(ctx, registry)),
        notes=tuple(notes),
        generation=facts.sections.get(GENERATION_READ.key, "").strip(),
        relabel=ctx.dialect.relabel,
        records=host_records(ctx, facts, registry),
    )


__all__ = ["Change", "Command", "Handler", "HostPlan", "build_plan", "host_records", "reads"]
