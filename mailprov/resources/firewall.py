"""The mail firewall policy: SSH always accepted first, the site's open and LAN-only services, every
other mail port refused. Two backends, decided by the dialect: an iptables chain MAILPROV that INPUT
jumps to (loaded with -restore --noflush, persisted and loaded at boot the distribution's way), or
firewalld: the zones bound to the host's interfaces (and the default zone) read back and made to match,
ports and rich rules that left the site removed."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.config.mailservices import PORTS
from mailprov.facts.platform import FirewallBackend
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.render import render_template
from mailprov.resources import files, firewalld
from mailprov.resources.base import (
    Change,
    Command,
    Desired,
    Handler,
    HandlerStep,
    HostCheck,
    HostContext,
    ManagedFile,
    Phase,
    Resource,
)
from mailprov.resources.checks import verdict
from mailprov.resources.services import enabled_read, parse_enabled

NAME = "firewall"
LOAD = Handler(NAME, "load")
CHAIN = "MAILPROV"
TOOLS = {4: "iptables", 6: "ip6tables"}

# Loading is idempotent on every iptables (1.3.5 of EL5 has neither -C nor -S): restore --noflush
# replaces the MAILPROV chain's rules; INPUT's unconditional jumps to it are counted in `iptables-save`
# (old versions end each rule with a space: awk's fields ignore it); none: one is inserted first;
# more than one (an older mailprov, or a hand): all but the first are deleted, highest number first.
SHELL = r"""
mp_iptables_load() {
  "$1-restore" --noflush < "$2" || return 1
  jumps=$("$1-save" -t filter |
    awk '$1 == "-A" && $2 == "INPUT" { n++; if (NF == 4 && $3 == "-j" && $4 == "MAILPROV") print n }')
  [ -n "$jumps" ] || { "$1" -I INPUT 1 -j MAILPROV; return; }
  for n in $(echo "$jumps" | sed 1d | sort -rn); do "$1" -D INPUT "$n" || return 1; done
}
mp_if_present() { command -v "$1" >/dev/null || return 0; "$@"; }
"""

# One `TOOL-save -t filter` per tool, read by the shell: the chain's rule count (-1: no chain) and how many
# unconditional jumps INPUT has to it (iptables-save: every iptables version has it, unlike -S and -C).
_STATE_READ = Read(
    "firewall",
    "for t in iptables ip6tables; do command -v $t >/dev/null || continue; n=-1; hooked=0\n"
    'while read -r a b c d; do case "$a $b" in\n'
    f'  ":{CHAIN} "*) n=0;; "-A {CHAIN}") n=$((n+1));;\n'
    f'  "-A INPUT") [ "$c $d" = "-j {CHAIN}" ] && hooked=$((hooked+1));;\n'
    "esac; done <<EOF\n$($t-save -t filter 2>/dev/null)\nEOF\n"
    'echo "$t rules $n"; [ $hooked = 0 ] || echo "$t hooked $hooked"; done',
)


@dataclass(frozen=True)
class Rule:
    port: int
    service: str
    source: str | None  # None: from anywhere
    action: str  # ACCEPT or REJECT
    version: int  # IP version of the source network (4 or 6)


@dataclass(frozen=True)
class Chain:
    version: int  # 4 or 6
    path: str
    rules: tuple[Rule, ...]

    @property
    def tool(self) -> str:
        return TOOLS[self.version]

    @property
    def length(self) -> int:
        """Rules the chain holds once loaded: loopback accept, ours, the final RETURN."""
        return len(self.rules) + 2


@dataclass(frozen=True)
class Policy(Desired):
    chains: tuple[Chain, ...] = ()
    boot: tuple[str, ...] = ()  # services that load the saved rules at boot (RHEL's iptables, ip6tables)
    rivals: tuple[str, ...] = ()  # services that must not start at boot beside them (EL7+: firewalld)
    zones: firewalld.ZonePolicy | None = None  # firewalld: what every managed zone must allow


@dataclass(frozen=True)
class ChainState:
    rules: int  # -1: the chain does not exist
    jumps: int  # INPUT's unconditional jumps to the chain

    @property
    def hooked(self) -> bool:
        return self.jumps > 0


def parse_state(body: str) -> dict[str, ChainState]:
    """tool → its MAILPROV chain's rule count and how many times INPUT jumps to it."""
    counts: dict[str, int] = {}
    jumps: dict[str, int] = {}
    for line in lines_of(body):
        parts = line.split()
        if len(parts) == 3 and parts[1] == "rules":
            counts[parts[0]] = int(parts[2])
        elif len(parts) == 3 and parts[1] == "hooked":
            jumps[parts[0]] = int(parts[2])
    return {tool: ChainState(n, jumps.get(tool, 0)) for tool, n in counts.items()}


def rules(ctx: HostContext, version: int) -> tuple[Rule, ...]:
    """The MAILPROV chain: SSH first (never closed), open services, LAN-only services, then rejects."""
    fw = ctx.site.firewall
    out: list[Rule] = []
    ssh_port = ctx.host.ssh.port or PORTS["ssh"]
    ssh_sources: list[str | None] = [None]
    if fw.ssh_from:
        # Only from the listed networks of this version; SSH of the other version is left alone.
        ssh_sources = [n for n in fw.ssh_from if ipaddress.ip_network(n).version == version] or [None]
    out += [Rule(ssh_port, "ssh", source, "ACCEPT", version) for source in ssh_sources]
    out += [Rule(PORTS[service], service, None, "ACCEPT", version) for service in fw.open]
    for service in fw.lan_only:
        out += [Rule(PORTS[service], service, str(net), "ACCEPT", version) for net in ctx.lan(version)]
        out.append(Rule(PORTS[service], service, None, "REJECT", version))
    listed = {*fw.open, *fw.lan_only, "ssh"}
    out += [Rule(port, name, None, "REJECT", version) for name, port in PORTS.items() if name not in listed]
    return tuple(out)


class Firewall(Resource[Policy]):
    name = NAME
    shell = (SHELL, firewalld.SHELL)

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        return ctx.dialect.packages_firewall if ctx.site.firewall.enabled else ()

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        if not ctx.site.firewall.enabled:
            return ()
        if ctx.dialect.firewall is FirewallBackend.FIREWALLD:
            return [*files.reads([ctx.dialect.paths.firewalld_rules]), firewalld.STATE_READ]
        boot = _boot(ctx)
        return [*files.reads([c.path for c in _chains(ctx)]), _STATE_READ, *([_boot_read(boot)] if boot else [])]

    def desired(self, ctx: HostContext) -> Policy:
        if not ctx.site.firewall.enabled:
            return Policy()
        if ctx.dialect.firewall is FirewallBackend.FIREWALLD:
            # A rule without a source stands in both versions' lists: firewalld gets it once.
            unique = {(r.port, r.service, r.source, r.action): r for v in (4, 6) for r in rules(ctx, v)}
            wanted = firewalld.policy(list(unique.values()))
            text = render_template("firewall/firewalld.j2", rules=list(unique.values()))
            return Policy(files=(ManagedFile(ctx.dialect.paths.firewalld_rules, text, NAME, mode=0o600),), zones=wanted)
        chains = _chains(ctx)
        return Policy(
            files=tuple(
                ManagedFile(
                    c.path,
                    render_template("firewall/iptables.rules.j2", family=f"ipv{c.version}", rules=c.rules),
                    NAME,
                    mode=0o600,
                )
                for c in chains
            ),
            chains=chains,
            boot=_boot(ctx),
            rivals=ctx.dialect.firewall_rivals,
        )

    def changes(self, ctx: HostContext, desired: Policy, facts: Facts) -> Sequence[Change]:
        out = list(files.changes(desired.files, facts, files.notifying(LOAD)))
        if desired.zones is not None:
            return out + firewalld.changes(desired.zones, facts.section(firewalld.STATE_READ.key), LOAD)
        if not desired.chains:
            return out
        live = parse_state(facts.section(_STATE_READ.key))
        for chain in desired.chains:
            now = live.get(chain.tool, ChainState(-1, 0))
            if now.rules != chain.length or now.jumps != 1:
                why = (
                    f"INPUT jumps to {CHAIN} {now.jumps} times: keep one"
                    if now.jumps > 1 and now.rules == chain.length
                    else f"load the {CHAIN} chain and hook it into INPUT"
                )
                out.append(
                    Change(
                        f"firewall:ipv{chain.version}",
                        Phase.FILES,
                        "load",
                        f"firewall (ipv{chain.version}): {why}",
                        notifies=frozenset({LOAD}),
                    )
                )
        if desired.boot:
            s = ctx.dialect.services
            enabled = parse_enabled(facts.section(_boot_read(desired.boot).key))
            off = [name for name in desired.boot if name not in enabled]
            rivals = [name for name in desired.rivals if name in enabled]
            if off or rivals:
                reasons = [f"load the saved rules at boot ({', '.join(off)})"] if off else []
                reasons += [f"{name} is stopped but starts at boot, where it would replace these rules: disable it"
                            for name in rivals]  # fmt: skip
                out.append(
                    Change(
                        "firewall:boot",
                        Phase.FINISH,
                        "enable",
                        "firewall: " + "; ".join(reasons),
                        commands=(*(Command(s.disable(n)) for n in rivals), *(Command(s.enable(n)) for n in off)),
                    )
                )
        return out

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        d = ctx.dialect
        if d.firewall is FirewallBackend.FIREWALLD:
            # A rollback ("restart") first puts back the zones this apply changed.
            restore = (Command(("mp_firewalld_restore", firewalld.ZONES_DIR)),) if "restart" in actions else ()
            return (HandlerStep("firewall load", (*restore, Command(firewalld.RELOAD))),)
        chains = _chains(ctx)
        commands = [Command(("mp_iptables_load", c.tool, c.path)) for c in chains]
        save = d.firewall_save(tuple(c.tool for c in chains))
        # Debian: iptables-persistent may be missing on a host that never installed it (a site without
        # packages); EL's save commands come with the firewall packages this resource installs.
        commands += [Command(("mp_if_present", *argv) if d.debian else argv) for argv in save]
        return (HandlerStep("firewall load", tuple(commands)),)

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        if not ctx.site.firewall.enabled:
            return ()
        if ctx.dialect.firewall is FirewallBackend.FIREWALLD:
            wanted = self.desired(ctx).zones
            return (HostCheck("host.firewalld", partial(firewalld.check, policy=wanted)),) if wanted else ()
        hooked = [
            HostCheck(f"host.firewall_hooked.ipv{c.version}", partial(_hooked, tool=c.tool)) for c in _chains(ctx)
        ]
        boot = [HostCheck(f"host.firewall_boot.{name}", partial(_boots, service=name)) for name in _boot(ctx)]
        return (*hooked, *boot)


def _chains(ctx: HostContext) -> tuple[Chain, ...]:
    p = ctx.dialect.paths
    versions = (4, 6) if ctx.dialect.platform.has_ipv6 else (4,)
    return tuple(Chain(v, p.firewall_v4 if v == 4 else p.firewall_v6, rules(ctx, v)) for v in versions)


def _boot(ctx: HostContext) -> tuple[str, ...]:
    return ctx.dialect.firewall_boot(tuple(c.tool for c in _chains(ctx)))


def _boot_read(boot: tuple[str, ...]) -> Read:
    """Boot links of the iptables services, and of firewalld (a rival on EL7+; read on every EL release so
    the first, speculative round trip covers them all)."""
    return enabled_read((*boot, "firewalld"))


def _boots(h: object, service: str) -> tuple[str, str]:
    enabled = bool(h.service(service).is_enabled)  # type: ignore[attr-defined]
    if enabled:
        return verdict(True, f"{service} loads the saved rules at boot")
    return verdict(False, f"{service} is not enabled: the mail firewall policy is gone after a reboot")


def _hooked(h: object, tool: str) -> tuple[str, str]:
    """Exactly one unconditional INPUT jump, read in `iptables-save` (no -C before iptables 1.4.11)."""
    out = h.run(f"{tool}-save -t filter")  # type: ignore[attr-defined]
    jumps = sum(1 for line in out.stdout.split("\n") if line.split() == ["-A", "INPUT", "-j", CHAIN])
    if out.rc == 0 and jumps == 1:
        return verdict(True, f"INPUT jumps to the {CHAIN} chain ({tool})")
    if jumps > 1:
        return verdict(False, f"INPUT jumps to {CHAIN} {jumps} times ({tool}): apply again to keep one")
    return verdict(False, f"INPUT does not jump to {CHAIN} ({tool}): the mail firewall policy is not in force")
