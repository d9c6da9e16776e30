"""The firewall resource's firewalld backend: the zones that matter, read back and made to match.

Zones that matter: every zone bound to an interface at run time, and the default zone (where an
interface bound to none lands). In each, the site's policy must hold in the permanent configuration and
in the running one: SSH, the open mail ports, the LAN-only ones as rich rules from `mynetworks`; a mail
port, a firewalld mail service or an accepting rich rule for a mail port that the site does not list is
removed (so a service moved from `open` to `lan_only` is closed to the world). Other ports and services
are the admin's and left alone. A fact (one read of the whole state) and pure functions over it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailprov.config.mailservices import PORTS
from mailprov.errors import FactsError
from mailprov.facts.probe import Read
from mailprov.resources.base import Change, Command, Handler, Phase

RELOAD = ("firewall-cmd", "--reload")
ZONES_DIR = "/etc/firewalld/zones"  # a zone's permanent configuration, once changed from the shipped one

# The permanent configuration of a zone is kept in this apply's backup before it is changed (or marked
# absent: firewalld then still used the shipped zone), and put back by a rollback before the reload.
SHELL = r"""
mp_firewalld_keep() {
  mkdir -p "$BACKUP/firewalld" || return 1
  if [ -f "$1/$2.xml" ]; then cp -p "$1/$2.xml" "$BACKUP/firewalld/"; else : > "$BACKUP/firewalld/$2.absent"; fi
}
mp_firewalld_restore() {
  for f in "$BACKUP"/firewalld/*.xml; do [ -f "$f" ] && cp -p "$f" "$1"/; done
  for f in "$BACKUP"/firewalld/*.absent; do [ -f "$f" ] && rm -f "$1/$(basename "$f" .absent).xml"; done
  return 0
}
"""
# firewalld's own service definitions that open a mail port (/usr/lib/firewalld/services/*.xml).
MAIL_SERVICES = {"smtp": 25, "smtps": 465, "smtp-submission": 587, "imap": 143, "imaps": 993, "pop3": 110,
                 "pop3s": 995}  # fmt: skip
MAIL_PORTS = frozenset(port for name, port in PORTS.items() if name != "ssh")

STATE_READ = Read(
    "firewalld",
    "if command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1; then\n"
    'echo "default $(firewall-cmd --get-default-zone)"\n'
    "echo @runtime; firewall-cmd --list-all-zones\n"
    "echo @permanent; firewall-cmd --permanent --list-all-zones\nfi",
)


@dataclass(frozen=True)
class Zone:
    interfaces: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # "25/tcp"
    rich: tuple[str, ...] = ()  # as firewalld prints them


@dataclass(frozen=True)
class State:
    default: str
    runtime: dict[str, Zone] = field(default_factory=dict)
    permanent: dict[str, Zone] = field(default_factory=dict)

    def managed(self) -> tuple[str, ...]:
        """Zones bound to an interface at run time, and the default zone."""
        bound = [name for name, zone in self.runtime.items() if zone.interfaces]
        return tuple(dict.fromkeys([*bound, self.default]))


@dataclass(frozen=True)
class ZonePolicy:
    services: tuple[str, ...]  # ssh
    ports: tuple[str, ...]  # open to anyone: "25/tcp"
    rich: tuple[str, ...]  # LAN-only: accepted from mynetworks


def rich_rule(version: int, source: str, port: int) -> str:
    """A LAN-only accept, in the form firewalld prints it back (`--list-rich-rules`)."""
    return f'rule family="ipv{version}" source address="{source}" port port="{port}" protocol="tcp" accept'


def policy(rules: Sequence[Any]) -> ZonePolicy:
    """The zone policy from the firewall resource's rules (port, service, source, action, version)."""
    accepted = [r for r in rules if r.action == "ACCEPT"]
    ssh_ports = {r.port for r in accepted if r.service == "ssh"}
    services = ("ssh",) if PORTS["ssh"] in ssh_ports else ()
    ports = [f"{p}/tcp" for p in sorted(ssh_ports - {PORTS["ssh"]})]
    ports += [f"{r.port}/tcp" for r in accepted if r.service != "ssh" and r.source is None]
    rich = [rich_rule(r.version, r.source, r.port) for r in accepted if r.service != "ssh" and r.source]
    return ZonePolicy(services, tuple(dict.fromkeys(ports)), tuple(dict.fromkeys(rich)))


def parse_zones(text: str) -> dict[str, Zone]:
    """`firewall-cmd [--permanent] --list-all-zones`: a header line per zone (`public (active)`), then
    indented `key: value` lines; rich rules follow `rich rules:`, one a line, indented with a tab."""
    zones: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line[0] not in " \t":
            current = zones.setdefault(line.split()[0], {"rich": []})
            continue
        if current is None:
            continue
        item = line.strip()
        if item.startswith("rule "):
            current["rich"].append(item)
            continue
        key, sep, value = item.partition(":")
        if sep and key in ("interfaces", "services", "ports"):
            current[key] = tuple(value.split())
    return {
        name: Zone(z.get("interfaces", ()), z.get("services", ()), z.get("ports", ()), tuple(z["rich"]))
        for name, z in zones.items()
    }


def parse_state(body: str) -> State:
    """The read's answer: `default ZONE`, then the running listing after `@runtime`, the permanent one
    after `@permanent`."""
    default, part = "", ""
    parts: dict[str, list[str]] = {"@runtime": [], "@permanent": []}
    for line in body.split("\n"):
        if not part and line.startswith("default "):
            default = line.split(" ", 1)[1].strip()
        elif line.strip() in parts:
            part = line.strip()
        elif part:
            parts[part].append(line)
    if not default:
        raise FactsError("firewalld is running but did not name its default zone (firewall-cmd --get-default-zone)")
    return State(default, parse_zones("\n".join(parts["@runtime"])), parse_zones("\n".join(parts["@permanent"])))


@dataclass(frozen=True)
class ZoneDiff:
    add_services: tuple[str, ...] = ()
    add_ports: tuple[str, ...] = ()
    add_rich: tuple[str, ...] = ()
    remove_services: tuple[str, ...] = ()
    remove_ports: tuple[str, ...] = ()
    remove_rich: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any((self.add_services, self.add_ports, self.add_rich, self.remove_services, self.remove_ports,
                    self.remove_rich))  # fmt: skip

    def describe(self) -> str:
        parts = []
        if self.add_services or self.add_ports:
            parts.append("open " + ", ".join((*self.add_services, *self.add_ports)))
        if self.add_rich:
            parts.append("allow from the LAN " + ", ".join(_rich_label(r) for r in self.add_rich))
        if self.remove_services or self.remove_ports:
            parts.append("close " + ", ".join((*self.remove_services, *self.remove_ports)) + " (not open in the site)")
        if self.remove_rich:
            parts.append("remove " + ", ".join(_rich_label(r) for r in self.remove_rich) + " (not in the site)")
        return "; ".join(parts)


def _rich_label(rule: str) -> str:
    source = re.search(r'source address="([^"]+)"', rule)
    port = re.search(r'port port="(\d+)"', rule)
    return f"{port.group(1) if port else '?'}/tcp from {source.group(1) if source else 'anywhere'}"


def _mail_port(entry: str) -> bool:
    number, _, proto = entry.partition("/")
    return proto == "tcp" and number.isdigit() and int(number) in MAIL_PORTS


def _mail_rich(rule: str) -> bool:
    """An accepting rich rule for a mail port (ours, or one that would open a port the site closes)."""
    port = re.search(r'port port="(\d+)"', rule)
    return port is not None and int(port.group(1)) in MAIL_PORTS and rule.rstrip().endswith(" accept")


def diff(wanted: ZonePolicy, zone: Zone) -> ZoneDiff:
    open_ports = set(wanted.ports)
    return ZoneDiff(
        add_services=tuple(s for s in wanted.services if s not in zone.services),
        add_ports=tuple(p for p in wanted.ports if p not in zone.ports),
        add_rich=tuple(r for r in wanted.rich if r not in zone.rich),
        remove_services=tuple(
            s for s in zone.services if s in MAIL_SERVICES and f"{MAIL_SERVICES[s]}/tcp" not in open_ports
        ),
        remove_ports=tuple(p for p in zone.ports if _mail_port(p) and p not in open_ports),
        remove_rich=tuple(r for r in zone.rich if _mail_rich(r) and r not in wanted.rich),
    )


def commands(zone: str, d: ZoneDiff) -> tuple[Command, ...]:
    """The zone kept for a rollback, then one firewall-cmd per item (old firewalld takes one option of a
    kind per call), removals first."""
    base = ("firewall-cmd", "--permanent", f"--zone={zone}")
    out = [Command(("mp_firewalld_keep", ZONES_DIR, zone))]
    out += [Command((*base, f"--remove-service={s}")) for s in d.remove_services]
    out += [Command((*base, f"--remove-port={p}")) for p in d.remove_ports]
    out += [Command((*base, f"--remove-rich-rule={r}")) for r in d.remove_rich]
    out += [Command((*base, f"--add-service={s}")) for s in d.add_services]
    out += [Command((*base, f"--add-port={p}")) for p in d.add_ports]
    out += [Command((*base, f"--add-rich-rule={r}")) for r in d.add_rich]
    return tuple(out)


def changes(wanted: ZonePolicy, body: str, reload: Handler) -> list[Change]:
    """Per managed zone: the permanent configuration made to match (then a reload), or only a reload when
    the running rules drifted from a permanent configuration that matches."""
    state = parse_state(body)
    out: list[Change] = []
    for name in state.managed():
        permanent = diff(wanted, state.permanent.get(name, Zone()))
        running = diff(wanted, state.runtime.get(name, Zone()))
        if permanent:
            out.append(
                Change(
                    f"firewalld:{name}",
                    Phase.FINISH,
                    "update",
                    f"firewalld zone {name}: {permanent.describe()}",
                    commands=commands(name, permanent),
                    notifies=frozenset({reload}),
                )
            )
        elif running:
            out.append(
                Change(
                    f"firewalld:{name}",
                    Phase.FINISH,
                    "reload",
                    f"firewalld zone {name}: the running rules differ ({running.describe()}): reload",
                    notifies=frozenset({reload}),
                )
            )
    return out


def check(h: Any, policy: ZonePolicy) -> tuple[str, str]:
    """verify: every zone that matters allows what the site opens, and no more mail ports (running rules)."""
    out = h.run(STATE_READ.script)
    try:
        state = parse_state(out.stdout)
    except FactsError:
        return "fail", "firewalld is not running (or did not answer): the mail firewall policy is not in force"
    diffs = {name: diff(policy, state.runtime.get(name, Zone())) for name in state.managed()}
    wrong = [f"{name}: {d.describe()}" for name, d in diffs.items() if d]
    if wrong:
        return "fail", "firewalld zones differ from the site: " + " | ".join(wrong)
    return "pass", f"firewalld zones {', '.join(state.managed())} match the site's policy"
