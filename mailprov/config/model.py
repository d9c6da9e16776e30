"""The site model: one validated, immutable description of a mail site.

Every model is frozen and refuses unknown keys. Field names follow the guide and postconf(5) where an
admin would look them up. Cross-field rules (open relay, aliases to nobody, SASL without TLS …) live in
`Site`'s validators so that a bad site never reaches a host.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from mailprov.config import extra as extra_policy
from mailprov.config.restrictions import Restriction, parse_restriction
from mailprov.config.text import safe_text
from mailprov.config.types import (
    AbsPath,
    Address,
    Cidr,
    ConfigValue,
    CryptHash,
    Destination,
    DkimSelector,
    DovecotValue,
    Email,
    EnvName,
    Fqdn,
    Gecos,
    Hostname,
    InetInterfaces,
    LocalPart,
    LocalPath,
    Login,
    ParamName,
    RepoUrl,
    Text,
    X509Subject,
    _email,
    _fqdn,
)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)


# --- secrets -------------------------------------------------------------------------------------------


class SecretRef(Model):
    """Where a secret lives: an environment variable or a file on the admin's machine. Never inline."""

    env: EnvName | None = None
    file: LocalPath | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, data: object) -> object:
        if isinstance(data, str | int | float):  # the message never repeats the value: it may be a password
            raise ValueError(
                "a secret is never written in the site file: use `{env: VARIABLE}` or `{file: PATH}` "
                "(for a user, or give password_hash)"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env: VARIABLE` or `file: PATH`")
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


# --- hosts ---------------------------------------------------------------------------------------------


class SshSettings(Model):
    address: Address | None = None  # default: the host name (or ~/.ssh/config's HostName)
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    user: Login | None = None
    identity_file: LocalPath | None = None
    known_hosts: LocalPath | None = None
    become: bool = False  # run as root through sudo
    sudo_password: SecretRef | None = None
    # paramiko (in-process, the default) or the system `ssh` (the admin's ~/.ssh/config, agent, FIDO keys,
    # ProxyJump, certificates); the CLI's --transport overrides it for a run.
    transport: Literal["paramiko", "openssh"] = "paramiko"
    # ssh-rsa host keys and signatures, SHA-1 key exchange and old ciphers/MACs, for this host only
    # (CentOS 5/6 sshd). Only the openssh transport can use them.
    legacy_algorithms: bool = False


def check_public_address(value: str) -> str:
    """An IP address clients reach the host at: no host name (an A/PTR record needs an address), no zone."""
    safe_text(value)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address: write the address clients reach the host at, such as 203.0.113.10 "
            "or 2001:db8::10"
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"{value!r}: a public address has no `%zone` part (that is a link-local address)")
    return str(address)


PublicAddress = Annotated[str, AfterValidator(check_public_address)]


class Host(Model):
    name: Fqdn  # becomes myhostname
    # Where clients reach the host: what verify probes and the A/PTR records it prints. The SSH address may
    # be a private or VPN one. Default: ssh.address, else the host name.
    public_address: PublicAddress | None = None
    ssh: SshSettings = SshSettings()
    mx_priority: Annotated[int, Field(ge=0, le=65535)] = 10  # its MX record for the site's domain

    def public(self) -> str:
        """The address clients reach this host at (public_address, else ssh.address, else the name)."""
        return self.public_address or self.ssh.address or self.name


# --- users and aliases ---------------------------------------------------------------------------------


# Accounts every Linux distribution (or the mail stack itself) owns. A site user with one of these names
# would get a password, a Maildir and mail — on an account the system runs as (plan refuses, besides, any
# existing account that is a system account on the host: uid below the host's UID_MIN).
SYSTEM_ACCOUNTS = frozenset(
    {
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "adm", "halt", "shutdown",
        "operator", "ftp", "messagebus", "sshd", "syslog", "uuidd", "tcpdump", "dbus", "polkitd", "chrony",
        "ntp", "tss", "rpc", "rpcuser", "nfsnobody", "avahi", "dnsmasq", "postfix", "postdrop", "dovecot",
        "dovenull", "postgrey", "vmail", "mysql", "postgres", "nginx", "apache", "httpd", "named", "bind",
        "unbound", "opendkim", "opendmarc", "clamav", "amavis", "spamd", "debian-spamd", "saslauth", "sasl",
        "landscape", "pollinate", "lxd", "usbmux", "nscd", "sssd", "systemd", "input", "kmem", "tty", "disk",
        "wheel", "sudo", "shadow", "utmp", "video", "audio", "staff", "users", "abrt", "rtkit", "gdm",
    }
)  # fmt: skip


def _not_system_account(login: str) -> str:
    if login in SYSTEM_ACCOUNTS or login.startswith(("systemd-", "_")):
        raise ValueError(
            f"{login} is a system account: a mail user must be a person's own login (e.g. `alice`); "
            f"to deliver {login}'s mail to a person, write `aliases: {{{login}: [alice]}}`"
        )
    return login


def _alias_targets(value: object) -> object:
    if isinstance(value, str):
        shown = value if re.fullmatch(r"[A-Za-z0-9._+@-]{1,80}", value) else "TARGET"
        raise ValueError(f"an alias lists its targets: write `[{shown}]` (a list, even for one target)")
    return value


AliasTarget = Annotated[str, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]
AliasTargets = Annotated[tuple[AliasTarget, ...], BeforeValidator(_alias_targets)]


class User(Model):
    login: Annotated[Login, AfterValidator(_not_system_account)]
    full_name: Gecos = ""
    password_hash: CryptHash | None = None
    password: SecretRef | None = None  # a plain password kept outside the site file; hashed by mailprov
    uid: Annotated[int, Field(ge=500, le=60000)] | None = None
    aliases: tuple[LocalPart, ...] = ()

    @model_validator(mode="after")
    def _password_source(self) -> Self:
        if self.password_hash is not None and self.password is not None:
            raise ValueError("give either password_hash or password (a secret reference), not both")
        return self


class Mailbox(StrEnum):
    MAILDIR = "maildir"
    MBOX = "mbox"


# --- restrictions --------------------------------------------------------------------------------------

RestrictionList = tuple[Annotated[Restriction, BeforeValidator(parse_restriction)], ...]


class Restrictions(Model):
    delay_reject: bool = True
    helo_required: bool = True
    client: RestrictionList = ()
    helo: RestrictionList = ()
    sender: RestrictionList = ()
    relay: RestrictionList | None = None  # None: derived (Postfix 2.10+) from mynetworks/SASL
    recipient: RestrictionList = ()
    data: RestrictionList = ()


class AccessAction(StrEnum):
    OK = "OK"
    REJECT = "REJECT"
    DUNNO = "DUNNO"
    DISCARD = "DISCARD"
    HOLD = "HOLD"


_ACCESS_PATTERN = re.compile(r"([a-z0-9][a-z0-9._+-]*@([a-z0-9-]+(\.[a-z0-9-]+)*)?|[a-z0-9-]+(\.[a-z0-9-]+)+)")


def _access_pattern(value: object) -> object:
    if not isinstance(value, str):
        return value
    value = value.lower()
    if _ACCESS_PATTERN.fullmatch(value):
        return value
    if value.startswith(".") and _ACCESS_PATTERN.fullmatch(value.lstrip(".")):
        raise ValueError(
            f"no leading dot: write `{value.lstrip('.')}`, which matches the domain and its subdomains "
            "(Postfix's parent_domain_matches_subdomains includes smtpd_access_maps)"
        )
    raise ValueError(
        "a pattern is an address (`user@example.com`), a local part (`user@`) or a domain (`example.com`, "
        "which also matches its subdomains): letters, digits, `.`, `_`, `+`, `-`"
    )


def _access_action(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        if value.upper() in AccessAction.__members__:
            return AccessAction(value.upper())
        if re.fullmatch(r"[45]\d\d", value):
            return value
    raise ValueError(
        "action is OK, REJECT, DUNNO, DISCARD, HOLD or a reply code such as 550 (the message goes in `text`)"
    )


class SenderAccessEntry(Model):
    pattern: Annotated[str, BeforeValidator(_access_pattern)]
    action: Annotated[AccessAction | str, BeforeValidator(_access_action)]
    text: Text = ""

    def line(self) -> str:
        return " ".join(part for part in (self.pattern, str(self.action), self.text) if part)


class Greylisting(Model):
    enabled: bool = False
    delay: Annotated[int, Field(ge=1, le=3600)] = 300


class Repositories(Model):
    """Where an EL host's packages come from. Debian needs none of this (postgrey is in main)."""

    # Enable EPEL, installed the distribution's way (epel-release from extras, or the archived
    # epel-release RPM on EL5/6): postgrey is in EPEL only. Without it a site that needs postgrey is
    # refused at plan time on EL.
    epel: bool = False
    # On an end-of-life CentOS (5, 6, 7) whose stock mirrors are gone: point the CentOS repositories (and
    # EPEL) at the archives (vault.centos.org, archives.fedoraproject.org). Without it such a host is
    # refused at plan time, saying so.
    archived: bool = False
    # A mirror of EPEL for this release (a yum baseurl): written as /etc/yum.repos.d/epel.repo instead
    # of installing epel-release.
    epel_baseurl: RepoUrl | None = None
    # A mirror of the CentOS vault for this release (replaces http://vault.centos.org/<release>).
    archive_baseurl: RepoUrl | None = None


# --- SASL and TLS --------------------------------------------------------------------------------------


class Sasl(Model):
    enabled: bool = False
    mechanisms: tuple[Literal["plain", "login"], ...] = ("plain", "login")
    broken_clients: bool = False  # broken_sasl_auth_clients: only for Outlook Express 4 / Exchange 5
    # Offer AUTH on port 25 too. false: users authenticate only on submission (587) / submissions (465),
    # and port 25 is for other servers' mail alone.
    on_port_25: bool = True


class GeneratedCert(Model):
    days: Annotated[int, Field(ge=1, le=3650)] = 365
    renew_before_days: Annotated[int, Field(ge=0, le=365)] = 30
    subject: X509Subject | None = None
    key_bits: Literal[2048, 3072, 4096] = 2048

    @model_validator(mode="after")
    def _outlives_its_renewal(self) -> GeneratedCert:
        # A certificate inside its renewal window from the start is made again at every apply: no plan is
        # ever empty and every apply restarts Postfix and Dovecot.
        if self.renew_before_days >= self.days:
            raise ValueError(
                f"renew_before_days ({self.renew_before_days}) must be less than days ({self.days}): the "
                f"certificate would be renewed at every apply; write e.g. days: {max(self.days, 365)} or "
                f"renew_before_days: {self.days // 3}"
            )
        return self


class CertFiles(Model):
    """Certificate, key and optional CA chain on the admin's machine, pushed to the host."""

    cert: LocalPath
    key: LocalPath
    ca: LocalPath | None = None


class Tls(Model):
    enabled: bool = True
    generate: GeneratedCert | None = GeneratedCert()
    files: CertFiles | None = None
    cert_path: AbsPath | None = None  # where the host keeps them; default per OS family
    key_path: AbsPath | None = None
    security_level: Literal["none", "may", "encrypt"] = "may"
    auth_only: bool = True
    loglevel: Annotated[int, Field(ge=0, le=4)] = 1
    session_cache: bool = True
    session_cache_timeout: Annotated[int, Field(ge=0, le=86400)] = 3600
    min_protocol: Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = "TLSv1.2"

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.files is not None and "generate" not in self.model_fields_set:
            return self.model_copy(update={"generate": None})
        if self.files is not None and self.generate is not None:
            raise ValueError("give either `generate` or `files`, not both")
        return self


# --- DKIM ----------------------------------------------------------------------------------------------


class Dkim(Model):
    """DKIM signing of the site's mail with OpenDKIM; the key is generated on the host and stays there.

    Changing `selector` rotates: a new key is made, mail is signed with it, and the old key stays on the
    host (and published) until its selector is listed in `retire`.
    """

    selector: DkimSelector = "mail"
    bits: Literal[2048, 3072, 4096] = 2048
    retire: tuple[DkimSelector, ...] = ()

    @model_validator(mode="after")
    def _not_retiring_the_signer(self) -> Self:
        if self.selector in self.retire:
            raise ValueError(f"selector {self.selector} signs the mail: retire it only after choosing another")
        return self


# --- Dovecot and services ------------------------------------------------------------------------------


# Parameters mailprov renders itself. An `extra` line with one of these names would come later in the
# file and win: `postfix.extra: {smtpd_relay_restrictions: permit}` would be an open relay that no rule of
# the site ever saw. Refused, with the field to use instead.
POSTFIX_MANAGED = frozenset(
    {
        "alias_database", "alias_maps", "biff", "broken_sasl_auth_clients", "compatibility_level",
        "home_mailbox", "inet_interfaces", "inet_protocols", "maillog_file", "message_size_limit",
        "mydestination", "mydomain", "myhostname", "myorigin", "relay_domains", "permit_mx_backup_networks",
        "smtp_tls_security_level", "smtpd_delay_reject", "smtpd_helo_required", "smtpd_sasl_auth_enable",
        "smtpd_sasl_path", "smtpd_sasl_security_options", "smtpd_sasl_type", "smtpd_tls_auth_only",
        "smtpd_tls_cert_file", "smtpd_tls_key_file", "smtpd_tls_loglevel", "smtpd_tls_mandatory_protocols",
        "smtpd_tls_protocols", "smtpd_tls_security_level", "smtpd_tls_session_cache_database",
        "smtpd_tls_session_cache_timeout", "smtpd_restriction_classes", "smtpd_milters", "non_smtpd_milters",
        "milter_default_action", "smtpd_sender_login_maps",
    }
)  # fmt: skip
DOVECOT_MANAGED = frozenset(
    {
        "auth_allow_cleartext", "auth_mechanisms", "disable_plaintext_auth", "dovecot_config_version",
        "dovecot_storage_version", "first_valid_uid", "listen", "log_path", "login_process_size",
        "mail_driver", "mail_inbox_path", "mail_location", "mail_path", "mail_privileged_group",
        "pop3_uidl_format", "protocols", "passdb", "userdb", "service", "protocol", "namespace",
    }
)  # fmt: skip


def _extra_scalar(value: object) -> object:
    """`50` and `true` written unquoted in YAML are the words Postfix and Dovecot read (`50`, `yes`)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return value


def _postfix_extra_name(name: str) -> str:
    if name in POSTFIX_MANAGED or name.endswith("_restrictions") or name.startswith("mynetworks"):
        raise ValueError(
            f"mailprov writes {name} itself; a second line in main.cf would override it, unseen by the site's "
            "checks: use the site's own field (restrictions, mynetworks, relay_domains, tls, sasl, postfix)"
            + extra_policy.managed_field(name)
        )
    weakening = extra_policy.postfix_weakening(name)
    if weakening is not None:
        raise ValueError(weakening)
    return name


def _dovecot_extra_name(name: str) -> str:
    if name in DOVECOT_MANAGED or name.startswith("ssl"):
        raise ValueError(
            f"mailprov writes {name} itself; a second line in dovecot.conf would override it: use the site's "
            "own field (tls, sasl, dovecot.protocols, mailbox)" + extra_policy.managed_field(name)
        )
    weakening = extra_policy.dovecot_weakening(name)
    if weakening is not None:
        raise ValueError(weakening)
    return name


class Dovecot(Model):
    protocols: tuple[Literal["imap", "pop3"], ...] = ("imap", "pop3")
    plaintext_ports: bool = True  # 143/110 with STARTTLS, besides 993/995
    extra: dict[
        Annotated[ParamName, AfterValidator(_dovecot_extra_name)],
        Annotated[DovecotValue, BeforeValidator(_extra_scalar)],
    ] = {}

    @model_validator(mode="after")
    def _extra_values(self) -> Self:
        for name, value in self.extra.items():
            problem = extra_policy.dovecot_weakening(name, value)
            if problem is not None:
                raise SiteRuleError(f"dovecot.extra.{name}", problem)
        return self


POSTFIX_MESSAGE_SIZE_LIMIT = 10240000  # Postfix's defaults (postconf(5))
POSTFIX_MAILBOX_SIZE_LIMIT = 51200000


class Postfix(Model):
    inet_interfaces: InetInterfaces = "all"
    inet_protocols: Literal["all", "ipv4", "ipv6"] = "all"
    submission: bool = False  # port 587 with TLS and SASL required
    smtps: bool = False  # port 465, TLS on connect
    maillog_file: AbsPath | None = None  # default: a file when the host has no syslog and Postfix >= 3.4
    message_size_limit: Annotated[int, Field(ge=1024)] | None = None
    extra: dict[
        Annotated[ParamName, AfterValidator(_postfix_extra_name)],
        Annotated[ConfigValue, BeforeValidator(_extra_scalar)],
    ] = {}

    @model_validator(mode="after")
    def _extra_values(self) -> Self:
        for name, value in self.extra.items():
            problem = extra_policy.postfix_value_problem(name, value) or extra_policy.postfix_weakening(name, value)
            if problem is not None:
                raise SiteRuleError(f"postfix.extra.{name}", problem)
        # local(8) refuses to deliver at all when a mailbox may hold less than one message: `postfix check`
        # passes, and every local delivery is deferred (postconf(5), mailbox_size_limit).
        message = self.message_size_limit or POSTFIX_MESSAGE_SIZE_LIMIT
        given = str(self.extra.get("mailbox_size_limit", POSTFIX_MAILBOX_SIZE_LIMIT))
        mailbox = int(given) if given.isdigit() else 0
        if mailbox != 0 and mailbox < message:
            where = "message_size_limit" if self.message_size_limit else "extra.mailbox_size_limit"
            raise SiteRuleError(
                f"postfix.{where}",
                f"a mailbox may hold {mailbox} bytes, less than one message of message_size_limit {message}: "
                "Postfix would defer every local delivery; write postfix.extra.mailbox_size_limit at least "
                f"{message} (or 0: no limit), or a smaller postfix.message_size_limit",
            )
        return self


Service = Literal["smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s"]


class Firewall(Model):
    enabled: bool = True
    open: tuple[Service, ...] = ("smtp", "imaps", "pop3s")
    lan_only: tuple[Service, ...] = ("imap", "pop3")
    ssh_from: tuple[Cidr, ...] = ()  # empty: SSH from anywhere. mailprov never closes SSH


# --- SPF, DMARC and the DNS server --------------------------------------------------------------------

_SPF_DOMAIN = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+"


def _spf_mechanism(value: str) -> str:
    """One SPF mechanism (RFC 7208 5): `mx`, `a`, `mx:DOMAIN`, `a:DOMAIN`, `include:DOMAIN`, `ip4:NET`,
    `ip6:NET`, optionally prefixed with `+`, `~`, `?` or `-`. Nothing else: no macros, no spaces, so no value
    can add a term (or a second record) to the TXT record. `all` is the separate `all` field."""
    safe_text(value)
    text = value.strip().lower()
    qualifier = text[0] if text[:1] in ("+", "-", "~", "?") else ""
    body = text[len(qualifier) :]
    kind, _, arg = body.partition(":")
    if kind in ("mx", "a") and (not arg or re.fullmatch(_SPF_DOMAIN, arg)):
        return qualifier + body
    if kind == "include" and re.fullmatch(_SPF_DOMAIN, arg):
        return qualifier + body
    if kind in ("ip4", "ip6") and arg:
        try:
            net = ipaddress.ip_network(arg, strict=True)
        except ValueError:
            raise ValueError(f"{value!r}: {arg!r} is not an IPv{kind[2]} address or network") from None
        if net.version != int(kind[2]) or "%" in arg:
            raise ValueError(f"{value!r}: {arg!r} is not an IPv{kind[2]} address or network")
        shown = str(net.network_address) if net.num_addresses == 1 else str(net)
        return f"{qualifier}{kind}:{shown}"
    if kind == "all":
        raise ValueError("`all` is not a mechanism here: set `spf.all` (-all, ~all or ?all)")
    raise ValueError(
        f"{value!r} is not an SPF mechanism mailprov writes: mx, a, mx:DOMAIN, a:DOMAIN, include:DOMAIN, "
        "ip4:ADDRESS[/LEN] or ip6:ADDRESS[/LEN] (optionally prefixed with -, ~ or ?)"
    )


SpfMechanism = Annotated[str, AfterValidator(_spf_mechanism)]


class Spf(Model):
    """The SPF TXT record of the domain (`v=spf1 MECHANISMS ALL`). Default mechanisms: the public address
    of every host (ip4:/ip6:), or `mx` when a host has no IP address in the site."""

    enabled: bool = True
    mechanisms: tuple[SpfMechanism, ...] | None = None
    all: Literal["-all", "~all", "?all"] = "-all"  # `+all` would let anyone send as the domain

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.mechanisms is not None and not self.mechanisms and self.all == "-all" and self.enabled:
            raise ValueError("spf.mechanisms: an empty list with -all says no server may send mail for the domain")
        return self


class Dmarc(Model):
    """The DMARC TXT record at `_dmarc.DOMAIN` (RFC 7489)."""

    enabled: bool = True
    policy: Literal["none", "quarantine", "reject"] = "none"
    subdomain_policy: Literal["none", "quarantine", "reject"] | None = None  # sp=; default: the policy
    rua: tuple[Email, ...] = ()  # aggregate reports to these addresses (mailto:)
    pct: Annotated[int, Field(ge=0, le=100)] = 100
    adkim: Literal["r", "s"] = "r"  # relaxed or strict DKIM alignment
    aspf: Literal["r", "s"] = "r"


class Later(Model):
    """A stub for a feature planned for later (MTA-STS, TLS-RPT): accepted disabled, refused enabled."""

    enabled: bool = False


def _dns_server(value: str) -> str:
    safe_text(value)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r}: give the DNS server's IP address (the primary that takes updates)") from None
    if "%" in value:
        raise ValueError(f"{value!r}: the server's address has no `%zone` part")
    return str(address)


def _reverse_zone(value: str) -> str:
    value = _fqdn(value)
    if not value.endswith((".in-addr.arpa", ".ip6.arpa")):
        raise ValueError(f"{value!r} is not a reverse zone (NAME.in-addr.arpa or NAME.ip6.arpa)")
    return value


class DnsServer(Model):
    """The authoritative primary that takes RFC 2136 updates signed with the TSIG key for `zone` (and for
    `reverse_zones`, where the PTR records of the hosts' public addresses are then kept too)."""

    server: Annotated[str, AfterValidator(_dns_server)]
    port: Annotated[int, Field(ge=1, le=65535)] = 53
    zone: Fqdn
    reverse_zones: tuple[Annotated[str, AfterValidator(_reverse_zone)], ...] = ()
    tsig_key: SecretRef  # one line `hmac-sha256:NAME:BASE64SECRET`
    ttl: Annotated[int, Field(ge=60, le=86400)] = 3600


# --- the site ------------------------------------------------------------------------------------------


class Site(Model):
    domain: Fqdn
    hosts: tuple[Host, ...]  # at least one: checked in _check_hosts, so a bad host is not also "too few"
    myorigin: Literal["$mydomain", "$myhostname"] = "$mydomain"
    mydestination: tuple[Destination, ...] = ("$myhostname", "localhost.$mydomain", "localhost", "$mydomain")
    mynetworks: tuple[Cidr, ...] = ("127.0.0.0/8",)
    relay_domains: tuple[Hostname, ...] = ()
    mailbox: Mailbox = Mailbox.MAILDIR
    users: tuple[User, ...] = ()
    aliases: dict[LocalPart, AliasTargets] = {}
    restrictions: Restrictions = Restrictions()
    sender_access: tuple[SenderAccessEntry, ...] = ()
    greylisting: Greylisting = Greylisting()
    sasl: Sasl = Sasl()
    tls: Tls = Tls()
    dovecot: Dovecot = Dovecot()
    postfix: Postfix = Postfix()
    firewall: Firewall = Firewall()
    repositories: Repositories = Repositories()
    dkim: Dkim | None = None  # absent: no DKIM signing
    spf: Spf = Spf()
    dmarc: Dmarc = Dmarc()
    mta_sts: Later = Later()
    tls_rpt: Later = Later()
    dns: DnsServer | None = None

    # -- cross-field rules; each raises ValueError naming the field, which the loader maps to a line --

    @model_validator(mode="after")
    def _check_site(self) -> Self:
        self._check_hosts()
        self._check_users_and_aliases()
        self._check_networks()
        self._check_restrictions()
        self._check_tls_and_sasl()
        self._check_firewall()
        self._check_dkim()
        self._check_extra()
        self._check_dns()
        return self

    def _check_dns(self) -> None:
        for name in ("mta_sts", "tls_rpt"):
            if getattr(self, name).enabled:
                raise SiteRuleError(
                    f"{name}.enabled",
                    f"{name} is not supported yet (planned for later): remove `{name}` or set `enabled: false`",
                )
        if self.dns is None:
            return
        zone = self.dns.zone
        if self.domain != zone and not self.domain.endswith("." + zone):
            raise SiteRuleError(
                "dns.zone", f"the site's domain {self.domain} is not in the zone {zone}: give the domain's zone"
            )

    def _check_hosts(self) -> None:
        if not self.hosts:
            raise SiteRuleError("hosts", "a site needs at least one host")
        names = [h.name for h in self.hosts]
        for name in names:
            if names.count(name) > 1:
                raise SiteRuleError("hosts", f"host {name} is listed twice")

    def _check_users_and_aliases(self) -> None:
        logins: set[str] = set()
        uids: set[int] = set()
        for i, user in enumerate(self.users):
            if user.login in logins:
                raise SiteRuleError(f"users.{i}.login", f"user {user.login} is listed twice")
            logins.add(user.login)
            if user.uid is not None:
                if user.uid in uids:
                    raise SiteRuleError(f"users.{i}.uid", f"uid {user.uid} is used twice")
                uids.add(user.uid)
        names: dict[str, str] = {}
        for i, user in enumerate(self.users):
            for j, alias in enumerate(user.aliases):
                where = f"users.{i}.aliases.{j}"
                if alias in logins or alias in names:
                    raise SiteRuleError(where, f"alias {alias} is defined twice (or is a user's login)")
                names[alias] = where
        for alias in self.aliases:
            if alias in names:
                raise SiteRuleError(f"aliases.{alias}", f"alias {alias} is also defined at {names[alias]}")
            if alias in logins:
                raise SiteRuleError(f"aliases.{alias}", f"alias {alias} would shadow the user {alias}")
        known = logins | set(self.aliases) | set(names)
        for alias, targets in self.aliases.items():
            if not targets:
                raise SiteRuleError(f"aliases.{alias}", "an alias needs at least one target")
            for j, target in enumerate(targets):
                where = f"aliases.{alias}.{j}"
                if "@" in target:
                    try:
                        _email(target)
                    except ValueError as exc:
                        raise SiteRuleError(where, str(exc)) from None
                elif target not in known:
                    raise SiteRuleError(
                        where, f"{target!r} is neither a site user nor an alias: mail to {alias} would bounce"
                    )
                if target == alias:
                    raise SiteRuleError(where, f"alias {alias} points at itself")

    def _check_networks(self) -> None:
        for i, net in enumerate(self.mynetworks):
            prefix = int(net.split("/")[1])
            if (":" in net and prefix < 16) or (":" not in net and prefix < 8):
                raise SiteRuleError(
                    f"mynetworks.{i}", f"{net} trusts far too many clients: every one of them may relay mail"
                )

    def _check_restrictions(self) -> None:
        r = self.restrictions
        lists: dict[str, tuple[Restriction, ...]] = {
            "client": r.client,
            "helo": r.helo,
            "sender": r.sender,
            "relay": r.relay or (),
            "recipient": r.recipient,
            "data": r.data,
        }
        for list_name, items in lists.items():
            for i, item in enumerate(items):
                where = f"restrictions.{list_name}.{i}"
                if item.name == "permit_sasl_authenticated" and not self.sasl.enabled:
                    raise SiteRuleError(where, "permit_sasl_authenticated needs `sasl: {enabled: true}`")
                if item.name == "check_policy_service" and item.argument == "postgrey" and not self.greylisting.enabled:
                    raise SiteRuleError(where, "check_policy_service postgrey needs greylisting enabled")
                if item.name == "check_sender_access" and not self.sender_access:
                    raise SiteRuleError(where, "check_sender_access is used but sender_access is empty")
                if item.name == "permit" and i != len(items) - 1:
                    raise SiteRuleError(where, "`permit` ends a list; the restrictions after it never run")
        if self.greylisting.enabled and not any(
            x.name == "check_policy_service" and x.argument == "postgrey" for items in lists.values() for x in items
        ):
            raise SiteRuleError(
                "greylisting.enabled",
                "greylisting is enabled but no restriction list has `check_policy_service: postgrey`",
            )
        self._check_not_open_relay()

    def _check_not_open_relay(self) -> None:
        guard = {"reject_unauth_destination", "defer_unauth_destination"}
        for list_name in ("relay", "recipient"):
            items = getattr(self.restrictions, list_name) or ()
            names = [x.name for x in items]
            hit = next((i for i, n in enumerate(names) if n in guard), None)
            if hit is None:
                continue
            for i, item in enumerate(items[:hit]):
                if item.name in {"permit", "permit_auth_destination"} or (
                    item.name == "check_sender_access" and any(e.action == AccessAction.OK for e in self.sender_access)
                ):
                    raise SiteRuleError(
                        f"restrictions.{list_name}.{i}",
                        f"{item.name} before reject_unauth_destination lets anyone relay "
                        "(sender addresses are easily forged): move it after reject_unauth_destination",
                    )
            return
        if self.restrictions.relay is None and not self.restrictions.recipient:
            return  # nothing given: mailprov renders permit_mynetworks, [SASL,] reject_unauth_destination
        raise SiteRuleError(
            "restrictions.recipient",
            "neither the relay nor the recipient restrictions contain reject_unauth_destination: "
            "the server would be an open relay",
        )

    def _check_tls_and_sasl(self) -> None:
        if self.sasl.enabled and not self.tls.enabled:
            raise SiteRuleError("sasl.enabled", "SASL without TLS sends passwords in clear text: enable tls")
        if (self.postfix.submission or self.postfix.smtps) and not (self.sasl.enabled and self.tls.enabled):
            raise SiteRuleError("postfix.submission", "submission/smtps need both sasl and tls enabled")
        if self.sasl.enabled and not self.sasl.on_port_25 and not (self.postfix.submission or self.postfix.smtps):
            raise SiteRuleError(
                "sasl.on_port_25",
                "with AUTH off on port 25 users could not log in anywhere: enable postfix.submission or postfix.smtps",
            )

    def _check_firewall(self) -> None:
        both = set(self.firewall.open) & set(self.firewall.lan_only)
        if both:
            raise SiteRuleError("firewall.lan_only", f"{', '.join(sorted(both))} listed as open and LAN-only")

    def _check_dkim(self) -> None:
        """Each host signs with `<selector>-<first label>` in a site of several: those must differ."""
        if self.dkim is None or len(self.hosts) < 2:
            return
        seen: dict[str, str] = {}
        for i, host in enumerate(self.hosts):
            label = host.name.split(".")[0]
            if label in seen:
                raise SiteRuleError(
                    f"hosts.{i}.name",
                    f"{host.name} and {seen[label]} would sign with the same DKIM selector "
                    f"({self.dkim.selector}-{label}): their first labels must differ",
                )
            seen[label] = host.name

    def _check_extra(self) -> None:
        trusted = self.dovecot.extra.get("login_trusted_networks")
        if trusted is not None:
            problem = extra_policy.login_trusted_networks_problem(trusted, self.mynetworks)
            if problem is not None:
                raise SiteRuleError("dovecot.extra.login_trusted_networks", problem)

    # -- derived values ---------------------------------------------------------------------------------

    def local_names(self) -> frozenset[str]:
        """Every name that receives mail here: user logins, site aliases and users' aliases."""
        return frozenset({u.login for u in self.users} | set(self.aliases) | {a for u in self.users for a in u.aliases})

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


class SiteRuleError(ValueError):
    """A cross-field rule failed; `loc` is the dotted path of the offending field."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


__all__ = [
    "AccessAction",
    "AliasTarget",
    "CertFiles",
    "Dkim",
    "Dmarc",
    "DnsServer",
    "Dovecot",
    "Firewall",
    "GeneratedCert",
    "Greylisting",
    "Host",
    "Later",
    "Mailbox",
    "Postfix",
    "Repositories",
    "Restrictions",
    "Sasl",
    "SecretRef",
    "SenderAccessEntry",
    "Site",
    "SiteRuleError",
    "Spf",
    "SshSettings",
    "Tls",
    "User",
]
