"""site + host + dialect → the exact files the host needs. Pure: no I/O besides reading templates
(and, for pushed certificates, the admin's local files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import jinja2

from mailprov.config.model import Host, Mailbox, Site
from mailprov.config.restrictions import Restriction
from mailprov.dialects import Dialect, DovecotGen
from mailprov.errors import ConfigError, FactsError
from mailprov.facts.platform import Platform, Version

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
MASTER_BEGIN = "# BEGIN mailprov managed services"
MASTER_END = "# END mailprov managed services"


class Role(StrEnum):
    """What a file belongs to; decides validation and which service a change notifies."""

    POSTFIX = "postfix"  # main.cf, master.cf block: validated with postfix check, then reload
    ALIASES = "aliases"  # newaliases
    MAP = "map"  # postmap
    DOVECOT = "dovecot"  # doveconf -n, then restart
    POSTGREY = "postgrey"
    FIREWALL = "firewall"
    CERT = "cert"  # pushed certificate/key: restarts both daemons


@dataclass(frozen=True)
class RenderedFile:
    path: str
    content: str
    role: Role
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    secret: bool = False  # content never shown in diffs
    block: tuple[str, str] | None = None  # managed block markers inside a file the distribution owns


@dataclass(frozen=True)
class Certificate:
    """Where the TLS certificate and key live on the host, and how they get there."""

    cert_path: str
    key_path: str
    ca_path: str | None
    generate_days: int | None  # generated with openssl on the host when set
    renew_before_days: int
    subject: str
    key_bits: int


@dataclass(frozen=True)
class Rendered:
    host: Host
    dialect: Dialect
    files: tuple[RenderedFile, ...]
    certificate: Certificate | None
    notes: tuple[str, ...] = field(default=())

    def file(self, path: str) -> RenderedFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


PORTS = {
    "ssh": 22,
    "smtp": 25,
    "submission": 587,
    "smtps": 465,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # config files, not HTML; values are validated by the model instead
    )


_ENV = _environment()


def render_host(site: Site, host: Host, platform: Platform, base_dir: Path | None = None) -> Rendered:
    """Render every file `host` needs. base_dir resolves pushed certificate paths (the site's folder)."""
    if not platform.postfix_version.at_least("2.3"):
        raise FactsError(f"{host.name}: Postfix {platform.postfix_version} is older than 2.3, not supported")
    dialect = Dialect.of(platform)
    notes: list[str] = []
    cert = _certificate(site, host, dialect)
    context = {
        "site": site,
        "host": host,
        "d": dialect,
        "p": dialect.paths,
        "gen": dialect.dovecot_gen.value,
        "cert": cert,
        "maildir": site.mailbox is Mailbox.MAILDIR,
        "restrictions": _restriction_lines(site, dialect, notes),
        "tls_protocols": _postfix_tls_protocols(site, dialect, notes),
        "dovecot_ssl_protocols": _dovecot_ssl_protocols(site, dialect, notes),
        "inet_protocols": _inet_protocols(site, platform, notes),
        "mynetworks": tuple(_postfix_network(net) for net in site.mynetworks),
        "maillog_file": _maillog_file(site, dialect, notes),
        "dovecot_log": None if platform.has_syslog else "/var/log/dovecot.log",
    }
    files: list[RenderedFile] = [
        RenderedFile(dialect.paths.main_cf, _ENV.get_template("postfix/main.cf.j2").render(context), Role.POSTFIX),
        RenderedFile(dialect.paths.aliases, _ENV.get_template("postfix/aliases.j2").render(context), Role.ALIASES),
        RenderedFile(
            dialect.paths.dovecot_conf,
            _ENV.get_template(f"dovecot/dovecot-{_dovecot_template(dialect.dovecot_gen)}.conf.j2").render(context),
            Role.DOVECOT,
        ),
    ]
    if site.sender_access:
        files.append(
            RenderedFile(
                dialect.paths.sender_access,
                _ENV.get_template("postfix/sender_access.j2").render(context),
                Role.MAP,
            )
        )
    # Always rendered, empty when the site has no extra services: an empty block removes one left by an
    # earlier apply, so a service taken out of the site is really gone from master.cf.
    files.append(
        RenderedFile(
            dialect.paths.master_cf,
            _ENV.get_template("postfix/master.cf.j2").render(context),
            Role.POSTFIX,
            block=(MASTER_BEGIN, MASTER_END),
        )
    )
    if site.greylisting.enabled:
        files.append(
            RenderedFile(
                dialect.paths.postgrey_defaults,
                _ENV.get_template("postgrey/postgrey.j2").render(context),
                Role.POSTGREY,
            )
        )
    if site.firewall.enabled and dialect.platform.firewall.value == "iptables":
        for family, path in (("ipv4", dialect.paths.firewall_v4), ("ipv6", dialect.paths.firewall_v6)):
            if family == "ipv6" and not platform.has_ipv6:
                continue
            rules = _firewall_rules(site, host, family)
            files.append(
                RenderedFile(
                    path,
                    _ENV.get_template("firewall/iptables.rules.j2").render(context, family=family, rules=rules),
                    Role.FIREWALL,
                    mode=0o600,
                )
            )
    if site.firewall.enabled and dialect.platform.firewall.value == "firewalld":
        both = [r for fam in ("ipv4", "ipv6") for r in _firewall_rules(site, host, fam)]
        rules = list(dict.fromkeys(both))  # the same port rule appears once per family
        files.append(
            RenderedFile(
                "/etc/mailprov/firewalld.rules",
                _ENV.get_template("firewall/firewalld.j2").render(context, family="ipv4", rules=rules),
                Role.FIREWALL,
                mode=0o600,
            )
        )
    if site.tls.enabled and site.tls.files is not None and cert is not None:
        files.extend(_pushed_certificate(site, cert, base_dir or Path.cwd()))
    return Rendered(host, dialect, tuple(files), cert, tuple(notes))


def _dovecot_template(gen: DovecotGen) -> str:
    return {"1.0": "1", "1.2": "1", "2.0": "2", "2.3": "2", "2.4": "2.4"}[gen.value]


# --- Postfix restrictions ------------------------------------------------------------------------------


def _restriction_text(item: Restriction, site: Site, d: Dialect) -> str:
    if item.name == "check_sender_access":
        return f"check_sender_access {d.map_type}:{d.paths.sender_access}"
    if item.name == "check_policy_service" and item.argument == "postgrey":
        return f"check_policy_service {d.postgrey_policy}"
    return item.name if item.argument is None else f"{item.name} {item.argument}"


def _restriction_lines(site: Site, d: Dialect, notes: list[str]) -> dict[str, tuple[str, ...]]:
    """main.cf restriction parameters in this Postfix's dialect, in the site's order."""
    r = site.restrictions
    lists: dict[str, list[Restriction]] = {
        "smtpd_client_restrictions": list(r.client),
        "smtpd_helo_restrictions": list(r.helo),
        "smtpd_sender_restrictions": list(r.sender),
        "smtpd_recipient_restrictions": list(r.recipient),
        "smtpd_data_restrictions": list(r.data),
    }
    relay = list(r.relay) if r.relay is not None else None
    if d.has_relay_restrictions:
        if relay is None:
            relay = [Restriction("permit_mynetworks")]
            if site.sasl.enabled:
                relay.append(Restriction("permit_sasl_authenticated"))
            relay.append(Restriction("reject_unauth_destination"))
        lists = {"smtpd_relay_restrictions": relay, **lists}
    elif relay is not None:
        # Before 2.10 relay control lives in smtpd_recipient_restrictions: the relay list goes first.
        rest = [x for x in lists["smtpd_recipient_restrictions"] if x not in relay]
        lists["smtpd_recipient_restrictions"] = relay + rest
        _refuse_merged_open_relay(site, d, relay + rest)
    elif not lists["smtpd_recipient_restrictions"]:
        lists["smtpd_recipient_restrictions"] = (
            [Restriction("permit_mynetworks")]
            + ([Restriction("permit_sasl_authenticated")] if site.sasl.enabled else [])
            + [Restriction("reject_unauth_destination")]
        )
    if not d.pipelining_anywhere:
        moved = False
        for name, items in lists.items():
            if name != "smtpd_data_restrictions" and Restriction("reject_unauth_pipelining") in items:
                items.remove(Restriction("reject_unauth_pipelining"))
                moved = True
        if moved:
            if Restriction("reject_unauth_pipelining") not in lists["smtpd_data_restrictions"]:
                lists["smtpd_data_restrictions"].insert(0, Restriction("reject_unauth_pipelining"))
            notes.append(
                f"Postfix {d.postfix} honours reject_unauth_pipelining only in smtpd_data_restrictions: moved there"
            )
    return {name: tuple(_restriction_text(x, site, d) for x in items) for name, items in lists.items() if items}


def _refuse_merged_open_relay(site: Site, d: Dialect, merged: list[Restriction]) -> None:
    """On 2.10+ a permit in the relay list only ends that list; merged into one list it ends all checks."""
    guards = ("reject_unauth_destination", "defer_unauth_destination")
    guard = next((i for i, x in enumerate(merged) if x.name in guards), len(merged))
    whitelist = any(e.action == "OK" for e in site.sender_access)
    for item in merged[:guard]:
        permits = item.name in ("permit", "permit_auth_destination")
        if permits or (item.name == "check_sender_access" and whitelist):
            raise ConfigError(
                f"restrictions.relay: Postfix {d.postfix} has no smtpd_relay_restrictions, so the relay "
                f"list goes first in smtpd_recipient_restrictions, where {item.name} before "
                "reject_unauth_destination would make an open relay: end the relay list with "
                "reject_unauth_destination"
            )


# --- TLS -----------------------------------------------------------------------------------------------

_ORDER = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]


def _postfix_tls_protocols(site: Site, d: Dialect, notes: list[str]) -> str | None:
    """smtpd_tls_(mandatory_)protocols value for the site's minimum version, in this Postfix's syntax."""
    minimum = site.tls.min_protocol
    if d.tls_min_version_syntax:
        return f">={minimum}"
    known = _ORDER[: _ORDER.index("TLSv1.2") + 1] if d.knows_tls11 else _ORDER[:3]
    excluded = [p for p in known if _ORDER.index(p) < _ORDER.index(minimum)]
    if not d.knows_tls11 and minimum not in ("TLSv1",):
        notes.append(f"Postfix {d.postfix} cannot refuse TLSv1 on SMTP: the minimum there is TLSv1")
        excluded = ["SSLv2", "SSLv3"]
    if d.tls_exclusion_syntax:
        return ", ".join(f"!{p}" for p in excluded)
    # 2.3/2.4 list what is allowed
    return ", ".join(p for p in known if p not in excluded)


def _dovecot_ssl_protocols(site: Site, d: Dialect, notes: list[str]) -> str | None:
    """ssl_protocols for Dovecot 2.1/2.2; 2.3+ uses ssl_min_protocol; 1.x and 2.0 have neither."""
    if d.dovecot_gen in (DovecotGen.V2_3, DovecotGen.V2_4):
        return None
    if d.dovecot_gen is DovecotGen.V2_0 and d.dovecot >= Version(2, 1):
        minimum = site.tls.min_protocol
        return " ".join(f"!{p}" for p in _ORDER[:5] if _ORDER.index(p) < _ORDER.index(minimum))
    notes.append(f"Dovecot {d.dovecot} has no setting for a minimum TLS version")
    return None


def _postfix_network(net: str) -> str:
    """mynetworks wants IPv6 as `[2001:db8::]/32`: a bare `:` reads as a `type:table` lookup (postconf(5))."""
    if ":" not in net:
        return net
    address, _, prefix = net.partition("/")
    return f"[{address}]/{prefix}"


def _inet_protocols(site: Site, platform: Platform, notes: list[str]) -> str:
    wanted = site.postfix.inet_protocols
    if wanted != "ipv4" and not platform.has_ipv6:
        notes.append("the host has no IPv6: Postfix and Dovecot listen on IPv4 only")
        return "ipv4"
    return wanted


def _maillog_file(site: Site, d: Dialect, notes: list[str]) -> str | None:
    if site.postfix.maillog_file:
        if not d.has_maillog_file:
            raise ConfigError(f"postfix.maillog_file needs Postfix 3.4 or later; this host has {d.postfix}")
        return site.postfix.maillog_file
    if not d.platform.has_syslog:
        if d.has_maillog_file:
            notes.append("no syslog on the host: Postfix logs to /var/log/postfix.log (maillog_file)")
            return "/var/log/postfix.log"
        notes.append("no syslog on the host and Postfix < 3.4: install a syslog daemon to see mail logs")
    return None


def _certificate(site: Site, host: Host, d: Dialect) -> Certificate | None:
    tls = site.tls
    if not tls.enabled:
        return None
    ext = ".pem" if d.debian else ".cert"
    cert_path = tls.cert_path or f"{d.paths.cert_dir}/{host.name}{ext}"
    key_path = tls.key_path or f"{d.paths.key_dir}/{host.name}.key"
    ca_path = f"{d.paths.cert_dir}/{host.name}-ca.pem" if tls.files and tls.files.ca else None
    generate = tls.generate
    return Certificate(
        cert_path=cert_path,
        key_path=key_path,
        ca_path=ca_path,
        generate_days=generate.days if generate else None,
        renew_before_days=generate.renew_before_days if generate else 0,
        subject=(generate.subject if generate and generate.subject else f"/CN={host.name}"),
        key_bits=generate.key_bits if generate else 2048,
    )


def _pushed_certificate(site: Site, cert: Certificate, base_dir: Path) -> list[RenderedFile]:
    assert site.tls.files is not None
    sources = [(site.tls.files.cert, cert.cert_path, False), (site.tls.files.key, cert.key_path, True)]
    if site.tls.files.ca and cert.ca_path:
        sources.append((site.tls.files.ca, cert.ca_path, False))
    out = []
    for source, target, secret in sources:
        path = Path(source).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            content = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"tls.files: cannot read {path}: {exc}") from None
        if "-----BEGIN" not in content:
            raise ConfigError(f"tls.files: {path} is not a PEM file")
        out.append(RenderedFile(target, content, Role.CERT, mode=0o600 if secret else 0o644, secret=secret))
    return out


# --- firewall ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirewallRule:
    port: int
    service: str
    source: str | None  # None: from anywhere
    action: str  # ACCEPT or REJECT


def _firewall_rules(site: Site, host: Host, family: str) -> Sequence[FirewallRule]:
    """The MAILPROV chain: SSH first (never closed), open services, LAN-only services, then rejects."""
    v6 = family == "ipv6"
    lan = [n for n in site.mynetworks if (":" in n) == v6]
    ssh_port = host.ssh.port or PORTS["ssh"]
    rules: list[FirewallRule] = []
    ssh_sources: list[str | None] = [None]
    if site.firewall.ssh_from:
        # Only from the listed networks of this family; SSH of the other family is left alone.
        ssh_sources = [n for n in site.firewall.ssh_from if (":" in n) == v6] or [None]
    for source in ssh_sources:
        rules.append(FirewallRule(ssh_port, "ssh", source, "ACCEPT"))
    for service in site.firewall.open:
        rules.append(FirewallRule(PORTS[service], service, None, "ACCEPT"))
    for service in site.firewall.lan_only:
        rules.extend(FirewallRule(PORTS[service], service, net, "ACCEPT") for net in lan)
        rules.append(FirewallRule(PORTS[service], service, None, "REJECT"))
    listed: set[str] = {*site.firewall.open, *site.firewall.lan_only, "ssh"}
    for name, port in PORTS.items():
        if name not in listed:
            rules.append(FirewallRule(port, name, None, "REJECT"))
    return rules
