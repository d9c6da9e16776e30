"""What every resource is made of, and the values the engine passes around: reads, desired files,
changes with their commands, typed handlers, validation gates, health probes and on-host checks.

A resource module owns one capability end to end; the engine (facts round trip, plan, host script,
orchestration, report) only calls the methods of `Resource` and never names a resource.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from mailprov.config.model import Host, Site
from mailprov.config.secrets import Secret
from mailprov.dialects import Dialect
from mailprov.errors import FactsError
from mailprov.facts.platform import Platform
from mailprov.facts.probe import Facts, Read
from mailprov.facts.traits import HostTraits
from mailprov.transport.shell import join, mask

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HostContext:
    """Everything a resource may base its wish on: the site, this host, its dialect (decided once)."""

    site: Site
    host: Host
    dialect: Dialect
    base_dir: Path  # the site file's folder: relative local paths (pushed certificates, secrets)
    networks: tuple[Network, ...]  # mynetworks, parsed once

    @staticmethod
    def of(site: Site, host: Host, platform: Platform, base_dir: Path, traits: HostTraits | None = None) -> HostContext:
        """Decide the dialect of `platform` (and the host's `traits`, when read) once for this host."""
        try:
            dialect = Dialect.of(platform, traits)
        except FactsError as exc:
            raise FactsError(f"{host.name}: {exc}") from None
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in site.mynetworks)
        return HostContext(site, host, dialect, base_dir, nets)

    def lan(self, version: int) -> tuple[Network, ...]:
        """mynetworks of one IP version (4 or 6)."""
        return tuple(n for n in self.networks if n.version == version)


class Phase(IntEnum):
    """When a change's commands run: before the files (packages, accounts, keys), as part of the one
    staged switch of every file, or after it (boot links)."""

    PREPARE = 1
    FILES = 2
    FINISH = 3


@dataclass(frozen=True)
class Command:
    """One argv, optionally fed on stdin. Secrets (a hash on stdin) are masked wherever it is shown."""

    argv: tuple[str, ...]
    stdin: str | Secret | None = field(default=None, repr=False)
    secrets: tuple[Secret, ...] = field(default=(), repr=False)

    def display(self) -> str:
        text = join(self.argv) + (" <<(stdin redacted)" if self.stdin is not None else "")
        return mask(text, [s.reveal() for s in self.secrets])

    def stdin_text(self) -> str | None:
        """The stdin to write into the host script (only the script builder calls this)."""
        return self.stdin.reveal() if isinstance(self.stdin, Secret) else self.stdin


@dataclass(frozen=True, order=True)
class Handler:
    """Something to do once after the changes: `owner` is the resource that knows how (its `handle`)."""

    owner: str
    action: str  # the owner's word: reload, restart, newaliases, postmap, load …
    because: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"{self.owner} {self.action}"


@dataclass(frozen=True)
class HandlerStep:
    name: str  # shown in plans and progress: "postfix reload"
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class ManagedFile:
    path: str
    content: str | Secret = field(repr=False)
    role: str  # what it is, for the manifest of `mailprov render`: postfix, aliases, map, dovecot …
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    block: tuple[str, str] | None = None  # managed block markers inside a file the distribution owns

    @property
    def secret(self) -> bool:
        return isinstance(self.content, Secret)

    def text(self) -> str:
        """The content to write (only the script builder and `render --out` reveal secrets)."""
        return self.content.reveal() if isinstance(self.content, Secret) else self.content


@dataclass(frozen=True)
class Change:
    key: str  # "file:/etc/postfix/main.cf", "packages", "user:john" …
    phase: Phase
    action: str  # create, update, install, remove, set, generate, enable, start, rebuild, load
    summary: str
    diff: tuple[str, ...] = ()
    commands: tuple[Command, ...] = ()
    file: ManagedFile | None = None
    notifies: frozenset[Handler] = frozenset()
    drift: bool = False  # the host's file was edited since mailprov last wrote it


@dataclass(frozen=True)
class Gate:
    """A check of the staged files with the host's own programs, before anything is switched."""

    step: str  # validate-postfix
    command: Command


@dataclass(frozen=True)
class HostCheck:
    """One on-host check for `verify`: `probe` gets a testinfra Host."""

    name: str
    probe: Callable[[Any], tuple[str, str]]  # -> (pass | fail | skip, what was seen)


@dataclass(frozen=True)
class Daemon:
    """A service a resource runs: its init name and a regular expression for its process in `ps`."""

    name: str
    process: str


@dataclass(frozen=True)
class DnsRecord:
    """One record the site needs published, as a resource sees it from its host's facts.

    `value` is the record's data in presentation form, except TXT: the unquoted full text (the DNS module
    splits it into 255-byte strings). `name` is absolute, without the trailing dot.
    """

    name: str  # "mail._domainkey.example.test"
    rtype: str  # "MX" | "A" | "AAAA" | "TXT" | "PTR"
    value: str  # "10 mx1.example.test." | "192.0.2.10" | "v=DKIM1; k=rsa; p=MIIB..."
    ttl: int = 3600
    why: str = ""  # "DKIM key of selector mail, read on mx1.example.test"


@dataclass(frozen=True)
class Desired:
    """A resource's wish for one host. Resources add their own typed fields in subclasses."""

    files: tuple[ManagedFile, ...] = ()
    notes: tuple[str, ...] = ()


D = TypeVar("D", bound=Desired)


class Resource(Generic[D]):
    """One capability. Subclasses override what they need; the defaults do nothing."""

    name: ClassVar[str]
    shell: ClassVar[tuple[str, ...]] = ()  # sh functions its commands call, each text defined once in the script

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        """Packages this resource needs installed (the packages resource installs them all at once)."""
        return ()

    def services(self, ctx: HostContext) -> tuple[Daemon, ...]:
        """Services this resource runs: enabled at boot, running, restarted after their packages are
        installed. Each is restarted (or started) by this resource's handler `restart`."""
        return ()

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        """What to read on the host. Depends on the site and dialect only, never on rendered content,
        so the engine can ask for several candidate dialects in one speculative round trip."""
        return ()

    def desired(self, ctx: HostContext) -> D:
        raise NotImplementedError

    def changes(self, ctx: HostContext, desired: D, facts: Facts) -> Sequence[Change]:
        return ()

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        """The commands for this resource's handlers that the plan owes (each action once)."""
        return ()

    def gates(self, ctx: HostContext, changed: frozenset[str]) -> Sequence[Gate]:
        """Validations of the staged files; `changed` holds the path of every file the plan writes."""
        return ()

    def health(self, ctx: HostContext) -> Sequence[Command]:
        """Proof after the handlers that what this resource runs is serving."""
        return ()

    def records(self, ctx: HostContext, facts: Facts) -> Sequence[DnsRecord]:
        """DNS records this resource needs published, from the host's facts (e.g. a DKIM key read there)."""
        return ()

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        return ()


# --- site resources: one state for the whole site (a DNS zone), read and changed from the admin's machine ---


@dataclass(frozen=True)
class SiteContext:
    """What a site resource bases its wish on: the site, and the records every host's resources need
    published (their `records()`, read from the hosts' facts: after an apply, read again)."""

    site: Site
    base_dir: Path
    records: tuple[DnsRecord, ...] = ()


@dataclass(frozen=True)
class SiteChange:
    key: str  # "dns:example.test/MX"
    action: str  # create, update, delete
    summary: str
    diff: tuple[str, ...] = ()  # "-old", "+new": data, formatted by report.py


P = TypeVar("P")


@dataclass(frozen=True)
class SitePlan(Generic[P]):
    """A site resource's plan: changes to show, notes (what must be done by hand), and `detail`, the
    resource's own typed value that its `apply` executes (the same object that was shown)."""

    resource: str
    changes: tuple[SiteChange, ...]
    detail: P
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes


class SiteResource(Generic[P]):
    """A capability of the whole site, kept outside the hosts (a DNS zone): it reads and changes its state
    from the admin's machine, after every host's apply. The engine calls `plan` and `apply` only."""

    name: ClassVar[str]

    def plan(self, ctx: SiteContext) -> SitePlan[P]:
        """Read the current state (from this machine) and compare it with the site's wish."""
        raise NotImplementedError

    def apply(self, ctx: SiteContext, plan: SitePlan[P]) -> str:
        """Make the changes of `plan`; return one line saying what was done, or raise a MailprovError."""
        raise NotImplementedError
