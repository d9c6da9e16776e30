"""Everything that differs by OS family and by Postfix/Dovecot version, decided once, from facts.

`Dialect.of(platform)` is the only place that compares versions or families; resources and templates
read the decided values (paths, package manager, service manager, firewall backend, settings syntax).
Sources for each gate: ../shared/reference/dialects.md (postconf(5) "available in Postfix X and later",
Dovecot release notes), confirmed on real binaries where the lab has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailprov.errors import FactsError
from mailprov.facts.platform import FirewallBackend, InitSystem, OsFamily, PackageManager, Platform, Version
from mailprov.facts.traits import HostTraits

MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".pag", "sdbm": ".pag"}
OLDEST_POSTFIX = "2.3"
TLS_ORDER = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# The OpenSSL each RHEL release ships (its last update), when the host did not say: dialects.md §5.1.
_RHEL_OPENSSL = {5: Version(0, 9, 8), 6: Version(1, 0, 1), 7: Version(1, 0, 2), 8: Version(1, 1, 1)}


class DovecotGen(StrEnum):
    V1_0 = "1.0"  # 1.0, 1.1: ssl_disable
    V1_2 = "1.2"  # ssl = yes|no|required
    V2_0 = "2.0"  # 2.0-2.2: service blocks, ssl_cert = <file, no ssl_min_protocol
    V2_3 = "2.3"  # ssl_min_protocol
    V2_4 = "2.4"  # dovecot_config_version, named passdb/userdb, mail_driver, ssl_server_*_file


@dataclass(frozen=True)
class Paths:
    postfix_dir: str
    main_cf: str
    master_cf: str
    aliases: str
    sender_access: str
    sender_login: str  # smtpd_sender_login_maps source: address -> the login that owns it
    dovecot_conf: str
    cert_dir: str
    key_dir: str
    cert_suffix: str  # ".pem" on Debian, ".cert" where RHEL keeps them
    postgrey_defaults: str
    firewall_v4: str
    firewall_v6: str
    firewalld_rules: str


@dataclass(frozen=True)
class Packages:
    """How this host installs and removes packages (argv values; apt is preseeded by debconf)."""

    manager: PackageManager

    def install(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        """Refresh the metadata (apt; yum and dnf refresh expired metadata themselves), install, and on
        rpm hosts check that every package really is installed: yum on EL5-7 skips a name no enabled
        repository has and still exits 0."""
        if self.manager is PackageManager.APT:
            return (
                ("apt-get", "-q", "update"),
                ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=300",
                 "-o", "Dpkg::Options::=--force-confold", "install", *names),
            )  # fmt: skip
        return ((self.manager.value, "-y", "install", *names), ("rpm", "-q", *names))

    @property
    def rpm(self) -> bool:
        """Installed state comes from rpm (EL), not dpkg-query, even where dpkg-query also exists."""
        return self.manager is not PackageManager.APT

    def query(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """argv printing `NAME STATUS VERSION` (dpkg) or `NAME VERSION-RELEASE` (rpm) per installed package;
        rpm says `package X is not installed` for the others."""
        if self.rpm:
            return ("rpm", "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n", *names)
        return ("dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev} ${Version}\\n", *names)

    def remove(self, names: tuple[str, ...]) -> tuple[str, ...]:
        if self.manager is PackageManager.APT:
            return ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "remove", *names)
        return (self.manager.value, "-y", "remove", *names)

    @property
    def preseeds(self) -> bool:
        """debconf answers go in before installing (Postfix's "General type of mail configuration")."""
        return self.manager is PackageManager.APT


@dataclass(frozen=True)
class Repos:
    """Where this EL release's packages come from: EPEL (postgrey, OpenDKIM), and the archives once the release
    is end-of-life and its stock mirrors are gone. Debian: `Repos()` (nothing to enable)."""

    epel_only: tuple[str, ...] = ()  # packages no enabled base repository of the release has
    epel_install: tuple[str, ...] = ()  # argv that installs epel-release the distribution's way
    epel_archive: str = ""  # EPEL's archived baseurl for this release ("" while EPEL serves it)
    os_archive: str = ""  # the vault base for this release's repositories ("" while supported)
    release: str = ""  # e.g. "CentOS 7.9.2009", for messages


# EOL CentOS releases: the last point release (its vault tree holds the final updates), and EPEL's.
_CENTOS_FINAL = {5: "5.11", 6: "6.10", 7: "7.9.2009"}
VAULT = "http://vault.centos.org"
EPEL_ARCHIVE = "https://archives.fedoraproject.org/pub/archive/epel"
# epel-release for EL5/6 (not in those releases' extras): the archived RPM.
_EPEL_RELEASE_RPM = {5: "epel-release-5-4.noarch.rpm", 6: "epel-release-6-8.noarch.rpm"}


def _repos(p: Platform) -> Repos:
    if p.os_family is OsFamily.DEBIAN:
        return Repos()
    major = p.os_major
    manager = p.package_manager.value
    if major in _EPEL_RELEASE_RPM:
        install: tuple[str, ...] = ("rpm", "-Uvh", f"{EPEL_ARCHIVE}/{major}/x86_64/{_EPEL_RELEASE_RPM[major]}")
    elif p.os_id == "rhel":  # RHEL has no extras repository with epel-release
        install = (
            manager,
            "-y",
            "install",
            f"https://dl.fedoraproject.org/pub/epel/epel-release-latest-{major}.noarch.rpm",
        )
    else:  # CentOS 7, Rocky, Alma, Oracle: epel-release is in extras
        install = (manager, "-y", "install", "epel-release")
    final = _CENTOS_FINAL.get(major, "") if p.os_id == "centos" else ""
    return Repos(
        epel_only=("postgrey", "opendkim", "opendkim-tools"),  # greylisting; DKIM signing
        epel_install=install,
        epel_archive=f"{EPEL_ARCHIVE}/{major}/$basearch/" if major in _CENTOS_FINAL else "",
        os_archive=f"{VAULT}/{final}" if final else "",
        release=f"{p.os_id} {final or p.os_version}",
    )


@dataclass(frozen=True)
class Services:
    """How this host starts, restarts and enables services at boot (argv values)."""

    init: InitSystem
    debian: bool

    def enable(self, service: str) -> tuple[str, ...]:
        if self.init is InitSystem.SYSTEMD:
            return ("systemctl", "enable", service)
        if self.debian:
            return ("update-rc.d", service, "defaults")
        return ("chkconfig", "--level", "345", service, "on")

    def disable(self, service: str) -> tuple[str, ...]:
        if self.init is InitSystem.SYSTEMD:
            return ("systemctl", "disable", service)
        if self.debian:
            return ("update-rc.d", service, "disable")
        return ("chkconfig", service, "off")

    def action(self, service: str, action: str) -> tuple[str, ...]:
        """start/stop/restart/reload/status."""
        if self.init is InitSystem.SYSTEMD:
            return ("systemctl", action, service)
        return ("service", service, action)

    def restart(self, service: str) -> tuple[str, ...]:
        """Restart a running service or start a stopped one: systemctl restart does both; some init.d
        scripts (Debian's postgrey) fail on `restart` when the service is not running."""
        if self.init is InitSystem.SYSTEMD:
            return ("systemctl", "restart", service)
        return ("sh", "-c", 'if service "$1" status >/dev/null 2>&1; then service "$1" restart;'
                ' else service "$1" start; fi', "sh", service)  # fmt: skip


@dataclass(frozen=True)
class Postgrey:
    defaults_path: str
    options: str  # the variable of the defaults file that holds the daemon's options
    listen: str  # postgrey's own --inet/--unix option ("" for the package default)
    policy: str  # check_policy_service argument for Postfix
    why: str = ""  # a comment for the defaults file, when the listen option needs explaining


@dataclass(frozen=True)
class OpenDkim:
    """OpenDKIM as this distribution ships it (Debian main; EPEL on EL, `opendkim-tools` split out on EL8+).

    The milter listens on loopback TCP on every family: Debian's default unix socket (/run/opendkim) is
    outside Postfix's chroot (smtpd, cleanup run chrooted in /var/spool/postfix there) and would need the
    postfix user in the opendkim group; EPEL's own default is inet:8891@localhost, the port SELinux labels
    milter_port_t, where a socket in Postfix's spool would need a policy change.
    """

    packages: tuple[str, ...]
    conf: str  # /etc/opendkim.conf on both families
    keys_dir: str  # <keys_dir>/<domain>/<selector>.private
    user: str  # owns the private keys (the daemon's UserID)
    pid_file: str
    socket: str  # opendkim's Socket value
    milter: str  # the same endpoint in Postfix's syntax (smtpd_milters)


@dataclass(frozen=True)
class DovecotSyntax:
    template: str  # dovecot/dovecot-<template>.conf.j2
    ssl_disable: bool  # 1.0/1.1: ssl_disable = yes|no instead of ssl =
    min_protocol: bool  # ssl_min_protocol (2.3+)
    ssl_protocols: bool  # ssl_protocols exclusion list (2.1, 2.2; RHEL 6's 2.0.9-11+ by backport)
    pop3_uidl_format: bool  # pop3_uidl_format must be set (before 2.3 it has no default)
    check_argv: tuple[str, ...]  # the config checker, before `-c FILE`: doveconf -n, or dovecot -n on 1.x
    first_valid_uid: int


@dataclass(frozen=True)
class Dialect:
    platform: Platform
    paths: Paths
    dovecot_gen: DovecotGen
    packages: Packages
    repos: Repos
    services: Services
    firewall: FirewallBackend
    postgrey: Postgrey
    opendkim: OpenDkim
    dovecot_syntax: DovecotSyntax
    # Postfix
    map_type: str  # for postmap/postalias: never hard-coded hash
    cache_type: str  # for TLS session caches
    compatibility_level: str | None
    has_relay_restrictions: bool  # smtpd_relay_restrictions, 2.10+
    pipelining_anywhere: bool  # reject_unauth_pipelining outside DATA, 2.6+
    has_tls_protocols: bool  # smtpd_tls_protocols, 2.6+
    tls_exclusion_syntax: bool  # "!SSLv2, !SSLv3", 2.5+
    tls_min_version_syntax: bool  # ">=TLSv1.2", 3.6+
    knows_tls11: bool  # TLSv1.1 / TLSv1.2 protocol names, 2.6+ (RHEL 6: 2.6.6-8), with OpenSSL 1.0.1
    has_data_directory: bool  # 2.5+
    has_maillog_file: bool  # maillog_file + postlog service, 3.4+
    sasl_dovecot: bool  # smtpd_sasl_type = dovecot, 2.3+
    chroot_smtpd: str  # master.cf chroot column for our services: Debian y, RHEL n
    submissions_service: str  # master.cf name of port 465: "submissions" (Postfix 3.5+ master.cf), else "smtps"
    # distribution glue
    packages_base: tuple[str, ...]
    packages_imap: tuple[str, ...]
    packages_pop3: tuple[str, ...]
    packages_firewall: tuple[str, ...]
    packages_postgrey: tuple[str, ...]
    other_mtas: tuple[str, ...]  # packages of MTAs that Postfix replaces
    mta_alternative: tuple[str, ...]  # argv that points `mta` at Postfix (RHEL alternatives), or ()
    # TLS and security stack (from HostTraits; a release's last update where the host did not say)
    openssl: Version  # the OpenSSL the daemons link
    tls_max: str  # the newest protocol that OpenSSL speaks: TLSv1 before 1.0.1, TLSv1.2 before 1.1.1
    selinux: bool  # SELinux enabled: files mailprov creates get their policy label (restorecon)

    @staticmethod
    def of(platform: Platform, traits: HostTraits | None = None) -> Dialect:
        return _decide(platform, traits or HostTraits())

    @property
    def relabel(self) -> tuple[str, ...]:
        """argv (before the paths) that gives files mailprov created their SELinux policy label: a rename
        keeps the label of the directory the file was made in (/etc/aliases would stay etc_t, not
        etc_aliases_t). Empty where SELinux is disabled."""
        return ("restorecon",) if self.selinux else ()

    def tls_reaches(self, minimum: str) -> bool:
        """The host's OpenSSL speaks `minimum` or newer (else no client could connect at that minimum)."""
        return TLS_ORDER.index(minimum) <= TLS_ORDER.index(self.tls_max)

    def firewall_save(self, tools: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        """argvs that persist the loaded iptables rules of `tools` (iptables, ip6tables) for the next boot.

        Debian: netfilter-persistent saves both. EL5/6: the init scripts' `save`. EL7+: the same scripts
        that iptables-services (EL9: iptables-nft-services) installs, called directly: `service` may be
        missing there (EL9's initscripts-service). firewalld keeps its own permanent configuration.
        """
        if self.firewall is FirewallBackend.FIREWALLD:
            return ()
        if self.debian:
            return (("netfilter-persistent", "save"),)
        if self.platform.os_major < 7:
            return tuple(("service", tool, "save") for tool in tools)
        return tuple((f"/usr/libexec/iptables/{tool}.init", "save") for tool in tools)

    def firewall_boot(self, tools: tuple[str, ...]) -> tuple[str, ...]:
        """Services that load the saved rules at boot and must be enabled (RHEL: iptables, ip6tables;
        Debian's netfilter-persistent is enabled by its package)."""
        if self.firewall is FirewallBackend.FIREWALLD or self.debian:
            return ()
        return tools

    @property
    def firewall_rivals(self) -> tuple[str, ...]:
        """Services that must not start at boot beside the iptables services: on EL7+ firewalld (stopped
        when this host was read, so the iptables path was chosen) conflicts with iptables.service and
        would replace the site's rules at the next boot."""
        if self.firewall is FirewallBackend.FIREWALLD or self.debian or self.platform.os_major < 7:
            return ()
        return ("firewalld",)

    @property
    def map_suffix(self) -> str:
        """The file postmap/postalias writes beside a source, e.g. `.db` for hash: aliases → aliases.db."""
        return MAP_SUFFIX.get(self.map_type, ".db")

    def compiled_map(self, source: str) -> str:
        return source + self.map_suffix

    @property
    def postfix(self) -> Version:
        return self.platform.postfix_version

    @property
    def dovecot(self) -> Version:
        return self.platform.dovecot_version

    @property
    def debian(self) -> bool:
        return self.platform.os_family is OsFamily.DEBIAN


def _dovecot_gen(v: Version) -> DovecotGen:
    if v.major < 2:
        return DovecotGen.V1_0 if v < Version(1, 2) else DovecotGen.V1_2
    if v < Version(2, 3):
        return DovecotGen.V2_0
    return DovecotGen.V2_3 if v < Version(2, 4) else DovecotGen.V2_4


def _map_type(platform: Platform) -> str:
    """The host's default database type when compiled in, else the first of hash, lmdb, cdb it has."""
    if platform.default_database_type in platform.map_types:
        return platform.default_database_type
    for kind in ("hash", "lmdb", "cdb"):
        if kind in platform.map_types:
            return kind
    return platform.default_database_type


def _compatibility_level(pf: Version) -> str | None:
    """The newest level this Postfix knows (never one above it): below it, Postfix 3.11 `postfix check`
    says "Postfix is using backwards-compatible default settings" on every run (seen on Debian 14)."""
    if pf.major < 3:
        return None
    if pf.at_least("3.11"):
        return "3.11"
    return "3.6" if pf.at_least("3.6") else "2"


def _cache_type(platform: Platform) -> str:
    """btree while the host's Postfix defaults to Berkeley DB; lmdb once it moved off it (Debian 14's
    Postfix 3.11 defaults to cdb and warns "hash/btree support is deprecated" for every BDB table)."""
    berkeley = platform.default_database_type in ("hash", "btree")
    return "btree" if berkeley and "btree" in platform.map_types else "lmdb"


def _postgrey(p: Platform) -> Postgrey:
    if p.os_family is OsFamily.DEBIAN:
        return Postgrey(
            "/etc/default/postgrey",
            "POSTGREY_OPTS",
            "--inet=127.0.0.1:10023",
            "inet:127.0.0.1:10023",
            'Listen on IPv4 loopback explicitly: "--inet=10023" alone may bind only ::1.',
        )
    if p.os_major < 7:
        return Postgrey(
            "/etc/sysconfig/postgrey", "OPTIONS", "--unix=/var/spool/postfix/postgrey/socket", "unix:postgrey/socket"
        )
    return Postgrey("/etc/sysconfig/postgrey", "POSTGREY_OPTS", "", "unix:postgrey/socket")


def _dovecot_ssl_protocols(p: Platform, gen: DovecotGen, traits: HostTraits) -> bool:
    """ssl_protocols: upstream 2.1/2.2; RHEL 6's 2.0.9 from release 11 on (the POODLE backport,
    dovecot-2.0.9-sslprot.patch). The host's own doveconf is asked first (`doveconf -d ssl_protocols`)."""
    if gen is not DovecotGen.V2_0:
        return False
    if p.dovecot_version >= Version(2, 1):
        return True
    if traits.dovecot_ssl_protocols is not None:
        return traits.dovecot_ssl_protocols
    if p.os_family is OsFamily.RHEL and p.dovecot_version == Version(2, 0, 9):
        return traits.dovecot_release is None or traits.dovecot_release >= 11
    return False


def _postfix_knows_tls11(p: Platform, traits: HostTraits, openssl: Version) -> bool:
    """TLSv1.1/TLSv1.2 protocol names: Postfix 2.10+, late 2.6-2.9 patch levels, RHEL 6's 2.6.6 from
    release 8 (RHEL 6.9, rhbz#1287192); and an OpenSSL that has them (1.0.1). Before the backport RHEL
    6's Postfix logs "Invalid TLS protocol list …: disabling TLS support" at run time."""
    pf = p.postfix_version
    if not pf.at_least("2.6") or openssl < Version(1, 0, 1):
        return False
    if p.os_family is OsFamily.RHEL and pf.major == 2 and pf.minor == 6:
        return traits.postfix_release is None or traits.postfix_release >= 8
    return True


def _openssl(p: Platform, traits: HostTraits) -> Version:
    if traits.openssl is not None:
        return traits.openssl
    if p.os_family is OsFamily.RHEL:
        return _RHEL_OPENSSL.get(p.os_major, Version(3, 0, 0))
    return Version(3, 0, 0)


def _tls_max(openssl: Version) -> str:
    if openssl < Version(1, 0, 1):
        return "TLSv1"
    return "TLSv1.2" if openssl < Version(1, 1, 1) else "TLSv1.3"


def _firewall_packages(p: Platform) -> tuple[str, ...]:
    """EL5/6: iptables, and iptables-ipv6 for ip6tables; EL7/8: iptables-services; EL9+: its new name
    iptables-nft-services (the rules are loaded at boot by the iptables/ip6tables services of both)."""
    if p.os_major < 7:
        return ("iptables", "iptables-ipv6") if p.has_ipv6 else ("iptables",)
    return ("iptables-services",) if p.os_major < 9 else ("iptables-nft-services",)


def _opendkim(p: Platform) -> OpenDkim:
    debian = p.os_family is OsFamily.DEBIAN
    # EPEL 7 and older: opendkim-genkey and the other tools are in the opendkim package itself.
    tools = debian or p.os_major >= 8
    return OpenDkim(
        packages=("opendkim", "opendkim-tools") if tools else ("opendkim",),
        conf="/etc/opendkim.conf",
        keys_dir="/etc/opendkim/keys",
        user="opendkim",
        pid_file="/run/opendkim/opendkim.pid" if debian or p.os_major >= 7 else "/var/run/opendkim/opendkim.pid",
        socket="inet:8891@127.0.0.1",
        milter="inet:127.0.0.1:8891",
    )


def _dovecot_syntax(p: Platform, gen: DovecotGen, traits: HostTraits) -> DovecotSyntax:
    old = gen in (DovecotGen.V1_0, DovecotGen.V1_2)
    return DovecotSyntax(
        template={"1.0": "1", "1.2": "1", "2.0": "2", "2.3": "2", "2.4": "2.4"}[gen.value],
        ssl_disable=gen is DovecotGen.V1_0,
        min_protocol=gen in (DovecotGen.V2_3, DovecotGen.V2_4),
        ssl_protocols=_dovecot_ssl_protocols(p, gen, traits),
        pop3_uidl_format=gen is not DovecotGen.V2_3,
        check_argv=("dovecot", "-n") if old else ("doveconf", "-n"),
        first_valid_uid=500 if (p.os_family is OsFamily.RHEL and p.os_major < 7) else 1000,
    )


def _decide(p: Platform, traits: HostTraits) -> Dialect:
    pf = p.postfix_version
    if not pf.at_least(OLDEST_POSTFIX):
        raise FactsError(f"Postfix {pf} is older than {OLDEST_POSTFIX}, not supported")
    debian = p.os_family is OsFamily.DEBIAN
    gen = _dovecot_gen(p.dovecot_version)
    paths = Paths(
        postfix_dir="/etc/postfix",
        main_cf="/etc/postfix/main.cf",
        master_cf="/etc/postfix/master.cf",
        aliases="/etc/aliases",
        sender_access="/etc/postfix/sender_access",
        sender_login="/etc/postfix/sender_login",
        dovecot_conf="/etc/dovecot.conf" if p.dovecot_version.major < 2 else "/etc/dovecot/dovecot.conf",
        cert_dir="/etc/ssl/certs" if debian else "/etc/pki/tls/certs",
        key_dir="/etc/ssl/private" if debian else "/etc/pki/tls/private",
        cert_suffix=".pem" if debian else ".cert",
        postgrey_defaults=_postgrey(p).defaults_path,
        firewall_v4="/etc/mailprov/firewall.v4",
        firewall_v6="/etc/mailprov/firewall.v6",
        firewalld_rules="/etc/mailprov/firewalld.rules",
    )
    if debian:
        base = ("postfix", "dovecot-core", "openssl")
        imap: tuple[str, ...] = ("dovecot-imapd",)
        pop3: tuple[str, ...] = ("dovecot-pop3d",)
        firewall_pkgs: tuple[str, ...] = ("iptables", "iptables-persistent")
        mtas: tuple[str, ...] = ("exim4-daemon-light", "exim4-daemon-heavy", "sendmail-bin")
        alternative: tuple[str, ...] = ()
    else:
        # EL10 builds Postfix without Berkeley DB: its lmdb maps come in postfix-lmdb [unverified: EL10's
        # package split follows Fedora's].
        lmdb = ("postfix-lmdb",) if _map_type(p) == "lmdb" else ()
        base = ("postfix", *lmdb, "dovecot", "openssl")
        imap = pop3 = ()
        firewall_pkgs = _firewall_packages(p)
        mtas = ("sendmail",)
        alternative = ("alternatives", "--set", "mta", "/usr/sbin/sendmail.postfix")
    if p.firewall is FirewallBackend.FIREWALLD:
        firewall_pkgs = ("firewalld",)
    openssl = _openssl(p, traits)
    return Dialect(
        platform=p,
        paths=paths,
        dovecot_gen=gen,
        packages=Packages(p.package_manager),
        repos=_repos(p),
        services=Services(p.init_system, debian),
        firewall=p.firewall,
        postgrey=_postgrey(p),
        opendkim=_opendkim(p),
        dovecot_syntax=_dovecot_syntax(p, gen, traits),
        map_type=_map_type(p),
        cache_type=_cache_type(p),
        compatibility_level=_compatibility_level(pf),
        has_relay_restrictions=pf.at_least("2.10"),
        pipelining_anywhere=pf.at_least("2.6"),
        has_tls_protocols=pf.at_least("2.6"),
        tls_exclusion_syntax=pf.at_least("2.5"),
        tls_min_version_syntax=pf.at_least("3.6"),
        knows_tls11=_postfix_knows_tls11(p, traits, openssl),
        has_data_directory=pf.at_least("2.5"),
        has_maillog_file=pf.at_least("3.4"),
        sasl_dovecot=pf.at_least("2.3"),
        chroot_smtpd="y" if debian else "n",
        # /etc/services knows "submissions" (RFC 8314) where Postfix 3.5+ ships: netbase 6.x, setup 2.12+.
        submissions_service="submissions" if pf.at_least("3.5") else "smtps",
        packages_base=base,
        packages_imap=imap,
        packages_pop3=pop3,
        packages_firewall=firewall_pkgs,
        packages_postgrey=("postgrey",),
        other_mtas=mtas,
        mta_alternative=alternative,
        openssl=openssl,
        tls_max=_tls_max(openssl),
        selinux=traits.selinux,
    )


__all__ = ["TLS_ORDER", "Dialect", "DovecotGen", "HostTraits", "InitSystem", "PackageManager", "Paths", "Repos"]
