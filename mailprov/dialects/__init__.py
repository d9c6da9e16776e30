"""Everything that differs by OS family and by Postfix/Dovecot version, decided once, from facts.

`Dialect.of(platform)` is the only place that compares versions or families; templates and resources
read its fields. Sources for each gate: ../shared/reference/dialects.md (postconf(5) "available in
Postfix X and later", Dovecot release notes), confirmed on real binaries where the lab has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailprov.facts.platform import InitSystem, OsFamily, PackageManager, Platform, Version

MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".pag", "sdbm": ".pag"}


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
    dovecot_conf: str
    cert_dir: str
    key_dir: str
    postgrey_defaults: str
    firewall_v4: str
    firewall_v6: str
    state_dir: str  # mailprov's own files on the host (backups, lock, firewall chain)


@dataclass(frozen=True)
class Dialect:
    platform: Platform
    paths: Paths
    dovecot_gen: DovecotGen
    # Postfix
    map_type: str  # for postmap/postalias: never hard-coded hash
    cache_type: str  # for TLS session caches
    compatibility_level: str | None
    has_relay_restrictions: bool  # smtpd_relay_restrictions, 2.10+
    pipelining_anywhere: bool  # reject_unauth_pipelining outside DATA, 2.6+
    has_tls_protocols: bool  # smtpd_tls_protocols, 2.6+
    tls_exclusion_syntax: bool  # "!SSLv2, !SSLv3", 2.5+
    tls_min_version_syntax: bool  # ">=TLSv1.2", 3.6+
    knows_tls11: bool  # TLSv1.1 / TLSv1.2 protocol names, 2.6+ (with OpenSSL 1.0.1)
    has_data_directory: bool  # 2.5+
    has_maillog_file: bool  # maillog_file + postlog service, 3.4+
    sasl_dovecot: bool  # smtpd_sasl_type = dovecot, 2.3+
    chroot_smtpd: str  # master.cf chroot column for our services: Debian y, RHEL n
    # Dovecot
    dovecot_first_valid_uid: int
    # distribution glue
    packages_base: tuple[str, ...]
    packages_imap: tuple[str, ...]
    packages_pop3: tuple[str, ...]
    packages_firewall: tuple[str, ...]
    packages_postgrey: tuple[str, ...]
    other_mtas: tuple[str, ...]  # packages of MTAs that Postfix replaces
    postgrey_policy: str  # check_policy_service argument
    firewall_save: tuple[str, ...]  # argv that persists iptables rules (empty: firewalld persists itself)

    @staticmethod
    def of(platform: Platform) -> Dialect:
        return _decide(platform)

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

    def enable_service_argv(self, service: str) -> list[str]:
        """argv that enables a service at boot, the way this host does it."""
        if self.platform.init_system is InitSystem.SYSTEMD:
            return ["systemctl", "enable", service]
        if self.debian:
            return ["update-rc.d", service, "defaults"]
        return ["chkconfig", "--level", "345", service, "on"]

    def restart_line(self, service: str) -> str:
        """Shell line that restarts a running service or starts a stopped one. Some init.d scripts
        (Debian's postgrey) fail on `restart` when the service is not running."""
        from mailprov.transport.shell import join

        if self.platform.init_system is InitSystem.SYSTEMD:
            return join(["systemctl", "restart", service])
        status, restart, start = (join(self.service_argv(service, a)) for a in ("status", "restart", "start"))
        return f"if {status} >/dev/null 2>&1; then {restart}; else {start}; fi"

    def service_argv(self, service: str, action: str) -> list[str]:
        """argv for start/stop/restart/reload of a service."""
        if self.platform.init_system is InitSystem.SYSTEMD:
            return ["systemctl", action, service]
        return ["service", service, action]


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


def _decide(p: Platform) -> Dialect:
    pf = p.postfix_version
    dv = p.dovecot_version
    debian = p.os_family is OsFamily.DEBIAN
    gen = _dovecot_gen(dv)
    paths = Paths(
        postfix_dir="/etc/postfix",
        main_cf="/etc/postfix/main.cf",
        master_cf="/etc/postfix/master.cf",
        aliases="/etc/aliases",
        sender_access="/etc/postfix/sender_access",
        dovecot_conf="/etc/dovecot.conf" if dv.major < 2 else "/etc/dovecot/dovecot.conf",
        cert_dir="/etc/ssl/certs" if debian else "/etc/pki/tls/certs",
        key_dir="/etc/ssl/private" if debian else "/etc/pki/tls/private",
        postgrey_defaults="/etc/default/postgrey" if debian else "/etc/sysconfig/postgrey",
        firewall_v4="/etc/mailprov/firewall.v4",
        firewall_v6="/etc/mailprov/firewall.v6",
        state_dir="/var/lib/mailprov",
    )
    if debian:
        base = ("postfix", "dovecot-core", "openssl")
        imap: tuple[str, ...] = ("dovecot-imapd",)
        pop3: tuple[str, ...] = ("dovecot-pop3d",)
        firewall_pkgs: tuple[str, ...] = ("iptables", "iptables-persistent")
        mtas: tuple[str, ...] = ("exim4-daemon-light", "exim4-daemon-heavy", "sendmail-bin")
        save: tuple[str, ...] = ("netfilter-persistent", "save")
    else:
        base = ("postfix", "dovecot", "openssl")
        imap = pop3 = ()
        firewall_pkgs = ("iptables",) if p.os_major < 7 else ("iptables-services",)
        mtas = ("sendmail",)
        save = ("service", "iptables", "save")
    if p.firewall.value == "firewalld":
        firewall_pkgs, save = ("firewalld",), ()
    return Dialect(
        platform=p,
        paths=paths,
        dovecot_gen=gen,
        map_type=_map_type(p),
        cache_type="btree" if "btree" in p.map_types else "lmdb",
        compatibility_level=None if pf.major < 3 else ("3.6" if pf.at_least("3.6") else "2"),
        has_relay_restrictions=pf.at_least("2.10"),
        pipelining_anywhere=pf.at_least("2.6"),
        has_tls_protocols=pf.at_least("2.6"),
        tls_exclusion_syntax=pf.at_least("2.5"),
        tls_min_version_syntax=pf.at_least("3.6"),
        knows_tls11=pf.at_least("2.6"),
        has_data_directory=pf.at_least("2.5"),
        has_maillog_file=pf.at_least("3.4"),
        sasl_dovecot=pf.at_least("2.3"),
        chroot_smtpd="y" if debian else "n",
        dovecot_first_valid_uid=500 if (not debian and p.os_major < 7) else 1000,
        packages_base=base,
        packages_imap=imap,
        packages_pop3=pop3,
        packages_firewall=firewall_pkgs,
        packages_postgrey=("postgrey",),
        other_mtas=mtas,
        postgrey_policy="inet:127.0.0.1:10023" if debian else "unix:postgrey/socket",
        firewall_save=save,
    )


__all__ = ["Dialect", "DovecotGen", "InitSystem", "PackageManager", "Paths"]
