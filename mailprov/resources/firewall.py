"""The mail firewall policy: SSH always accepted first, the site's open and LAN-only services, every
other mail port refused. Two backends, decided by the dialect: an iptables chain MAILPROV that INPUT
jumps to (loaded with -restore --noflush, persisted the distribution's way), or firewalld rules."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.config.mailservices import PORTS
from mailprov.facts.platform import FirewallBackend
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.render import render_template
from mailprov.resources import files
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

NAME = "firewall"
LOAD = Handler(NAME, "load")
CHAIN = "MAILPROV"
TOOLS = {4: "iptables", 6: "ip6tables"}

SHELL = r"""
mp_iptables_load() {
  "$1-restore" --noflush < "$2" || return 1
  "$1" -C INPUT -j MAILPROV 2>/dev/null || "$1" -I INPUT 1 -j MAILPROV
}
mp_firewalld_load() {
  grep -v -e "^#" -e "^$" "$1" | while read -r rule; do
    firewall-cmd --permanent --zone=public "$rule" || exit 1
  done && firewall-cmd --reload
}
mp_if_present() { command -v "$1" >/dev/null || return 0; "$@"; }
"""

# One `-S` per tool, read by the shell: the chain's rule count (-1: no chain) and whether INPUT jumps to it.
_STATE_READ = Read(
    "firewall",
    "for t in iptables ip6tables; do command -v $t >/dev/null || continue; n=-1; hooked=0\n"
    'while read -r a b c d; do case "$a $b" in\n'
    f'  "-N {CHAIN}") n=0;; "-A {CHAIN}") n=$((n+1));;\n'
    f'  "-A INPUT") [ "$c $d" = "-j {CHAIN}" ] && hooked=1;;\n'
    "esac; done <<EOF\n$($t -S 2>/dev/null)\nEOF\n"
    'echo "$t rules $n"; [ $hooked = 1 ] && echo "$t hooked 1"; done',
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
        """Rules `iptables -S MAILPROV` lists once loaded: loopback accept, ours, the final RETURN."""
        return len(self.rules) + 2


@dataclass(frozen=True)
class Policy(Desired):
    chains: tuple[Chain, ...] = ()


@dataclass(frozen=True)
class ChainState:
    rules: int  # -1: the chain does not exist
    hooked: bool


def parse_state(body: str) -> dict[str, ChainState]:
    """tool → its MAILPROV chain's rule count and whether INPUT jumps to it."""
    counts: dict[str, int] = {}
    hooked: set[str] = set()
    for line in lines_of(body):
        parts = line.split()
        if len(parts) == 3 and parts[1] == "rules":
            counts[parts[0]] = int(parts[2])
        elif len(parts) == 3 and parts[1] == "hooked":
            hooked.add(parts[0])
    return {tool: ChainState(n, tool in hooked) for tool, n in counts.items()}


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
    shell = (SHELL,)

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        return ctx.dialect.packages_firewall if ctx.site.firewall.enabled else ()

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        if not ctx.site.firewall.enabled:
            return ()
        if ctx.dialect.firewall is FirewallBackend.FIREWALLD:
            return files.reads([ctx.dialect.paths.firewalld_rules])
        return [*files.reads([c.path for c in _chains(ctx)]), _STATE_READ]

    def desired(self, ctx: HostContext) -> Policy:
        if not ctx.site.firewall.enabled:
            return Policy()
        if ctx.dialect.firewall is FirewallBackend.FIREWALLD:
            # A rule without a source stands in both versions' lists: firewalld gets it once.
            unique = {(r.port, r.service, r.source, r.action): r for v in (4, 6) for r in rules(ctx, v)}
            text = render_template("firewall/firewalld.j2", rules=list(unique.values()))
            return Policy(files=(ManagedFile(ctx.dialect.paths.firewalld_rules, text, NAME, mode=0o600),))
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
        )

    def changes(self, ctx: HostContext, desired: Policy, facts: Facts) -> Sequence[Change]:
        out = list(files.changes(desired.files, facts, files.notifying(LOAD)))
        if not desired.chains:
            return out
        live = parse_state(facts.section(_STATE_READ.key))
        for chain in desired.chains:
            now = live.get(chain.tool, ChainState(-1, False))
            if now.rules != chain.length or not now.hooked:
                out.append(
                    Change(
                        f"firewall:ipv{chain.version}",
                        Phase.FILES,
                        "load",
                        f"firewall (ipv{chain.version}): load the {CHAIN} chain and hook it into INPUT",
                        notifies=frozenset({LOAD}),
                    )
                )
        return out

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        d = ctx.dialect
        if d.firewall is FirewallBackend.FIREWALLD:
            return (HandlerStep("firewall load", (Command(("mp_firewalld_load", d.paths.firewalld_rules)),)),)
        commands = [Command(("mp_iptables_load", c.tool, c.path)) for c in _chains(ctx)]
        if d.firewall_save:
            commands.append(Command(("mp_if_present", *d.firewall_save)))
        return (HandlerStep("firewall load", tuple(commands)),)

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        if not ctx.site.firewall.enabled or ctx.dialect.firewall is not FirewallBackend.IPTABLES:
            return ()
        return tuple(
            HostCheck(f"host.firewall_hooked.ipv{c.version}", partial(_hooked, tool=c.tool)) for c in _chains(ctx)
        )


def _chains(ctx: HostContext) -> tuple[Chain, ...]:
    p = ctx.dialect.paths
    versions = (4, 6) if ctx.dialect.platform.has_ipv6 else (4,)
    return tuple(Chain(v, p.firewall_v4 if v == 4 else p.firewall_v6, rules(ctx, v)) for v in versions)


def _hooked(h: object, tool: str) -> tuple[str, str]:
    if h.run(f"{tool} -C INPUT -j {CHAIN}").rc == 0:  # type: ignore[attr-defined]
        return verdict(True, f"INPUT jumps to the {CHAIN} chain ({tool})")
    return verdict(False, f"INPUT does not jump to {CHAIN} ({tool}): the mail firewall policy is not in force")
