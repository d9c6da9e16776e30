"""Write the EL probe answers of this folder: what the one speculative probe prints on a FRESH and on a
CONVERGED host of each release, in the exact framing the engine reads (`@@MP0 key` sections, files as
`stat line, md5, content, @@MP-eof`), for tests/data/el/site.yaml:

    .venv/bin/python tests/data/el/make_probes.py

No RHEL-family host can be built on this project's machines (no VMs, no RPM repositories), so these are
not captures: every section is written as the release answers it (see README.md beside this file for
the sources of each value). A CONVERGED host is the FRESH one after the plan's changes: each file holds
what the plan writes, packages installed, services enabled and running, repositories archived and EPEL
enabled. Regenerate after a change to what the resources read, and read the diff.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from mailprov.config.loader import load_site  # noqa: E402
from mailprov.config.model import Site  # noqa: E402
from mailprov.facts.files import file_md5  # noqa: E402
from mailprov.facts.platform import PRESETS, OsFamily  # noqa: E402
from mailprov.facts.probe import parse_probe, probe_script, split_sections  # noqa: E402
from mailprov.orchestrate import speculative_reads  # noqa: E402
from mailprov.plan import build_plan, reads  # noqa: E402
from mailprov.resources.base import HostContext  # noqa: E402
from mailprov.resources.firewall import Firewall  # noqa: E402

SITE = HERE / "site.yaml"


def site_file(release: str) -> Path:
    """The site a host of `release` is given: site.yaml, or site-RELEASE.yaml where the release needs
    another (CentOS 5: no TLS minimum can be enforced there, so its site has no TLS)."""
    own = HERE / f"site-{release}.yaml"
    return own if own.exists() else SITE


RELEASES = ("centos5", "centos6", "centos7", "rocky8", "rocky9", "rocky10", "alma9", "alma10")
T_FRESH = 1764000000  # mtimes: the distribution's files
T_APPLY = 1764100000  # what mailprov wrote
T_MAPS = 1764100005  # compiled maps, after their sources

# The stock master.cf services (upstream's, chroot column n as the EL packages keep it).
MASTER_CF = """\
#
# Postfix master process configuration file.  For details on the format
# of the file, see the master(5) manual page (command: "man 5 master").
#
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (yes)   (never) (100)
# ==========================================================================
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
"""

# `postconf -n` of the EL packages' main.cf (its comments left out): Postfix listens on localhost only.
MAIN_CF = """\
queue_directory = /var/spool/postfix
command_directory = /usr/sbin
daemon_directory = /usr/libexec/postfix
data_directory = /var/lib/postfix
mail_owner = postfix
inet_interfaces = localhost
inet_protocols = all
mydestination = $myhostname, localhost.$mydomain, localhost
unknown_local_recipient_reject_code = 550
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
debug_peer_level = 2
sendmail_path = /usr/sbin/sendmail.postfix
newaliases_path = /usr/bin/newaliases.postfix
mailq_path = /usr/bin/mailq.postfix
setgid_group = postdrop
html_directory = no
manpage_directory = /usr/share/man
"""

ALIASES = (HERE.parent / "aliases-centos").read_text()  # the setup package's /etc/aliases

PASSWD = "john:x:1000:1000:John Smith:/home/john:/bin/bash"
SHADOW_HASH = (
    "$6$Xqg0SXV1nMUOWR6m$UZkqhOHQ2rFhCEPqMg0LsqpTAABvwLZFV0lS4DqZxVryufgtw6fsr4YSQiSL1CBBQ9az/9InmMX6O7/JN6UrG1"
)


@dataclass
class Release:
    os_release: str  # /etc/os-release ("" where the release has none: EL5, EL6)
    redhat: str  # /etc/redhat-release
    init: str  # systemd | sysv
    manager: str  # yum | dnf
    firewalld: bool
    tools: tuple[str, ...]  # `command -v` finds these on a fresh host (besides postconf/dovecot)
    postfix: str  # `postconf -dh mail_version` once installed
    dovecot: str  # `dovecot --version`
    default_db: str
    map_types: str  # `postconf -m`, one line
    rpms: dict[str, str]  # package → VERSION-RELEASE, once installed
    fresh_rpms: tuple[str, ...]  # installed on a fresh host
    repos_fresh: str  # the `repos` section of a fresh host
    repos_converged: str
    openssl: str = ""  # `openssl version`
    postfix_preinstalled: bool = False
    uid: int = 1000
    ps_base: tuple[str, ...] = field(default=())


def _centos_repos(release: str, major: int, *, archived: bool) -> str:
    """CentOS-Base.repo as `grep` prints its section/enabled/baseurl/mirrorlist lines (commented lines
    are not printed): stock = mirrorlist.centos.org; archived = the vault's baseurl."""
    names = ["base", "updates", "extras", "centosplus"] + (["addons"] if major == 5 else [])
    out = ["@file /etc/yum.repos.d/CentOS-Base.repo"]
    for name in names:
        out.append(f"[{name}]")
        path = "os" if name == "base" else name
        if archived:
            out.append(f"baseurl=http://vault.centos.org/{release}/{path}/$basearch/")
        else:
            out.append(f"mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo={path}")
        if name == "centosplus":
            out.append("enabled=0")
    out += ["@file /etc/yum.repos.d/CentOS-Media.repo", f"[c{major}-media]"]
    out += ["baseurl=file:///media/CentOS/", "enabled=0"]
    if major >= 6:
        out += ["@file /etc/yum.repos.d/CentOS-Vault.repo", f"[C{major}.0-base]"]
        out += [f"baseurl=http://vault.centos.org/{major}.0/os/$basearch/", "enabled=0"]
    if archived:
        out += [
            "@file /etc/yum.repos.d/epel.repo",
            "[epel]",
            f"baseurl=https://archives.fedoraproject.org/pub/archive/epel/{major}/$basearch/",
            "enabled=1",
            "[epel-debuginfo]",
            "enabled=0",
            "[epel-source]",
            "enabled=0",
        ]
    return "\n".join(out)


def _dnf_repos(distro: str, major: int, *, epel: bool) -> str:
    if distro == "rocky":
        host = "https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo="
        if major == 8:
            files = {
                "Rocky-BaseOS.repo": [("baseos", "BaseOS-$releasever", 1)],
                "Rocky-AppStream.repo": [("appstream", "AppStream-$releasever", 1)],
                "Rocky-Extras.repo": [("extras", "extras-$releasever", 1)],
                "Rocky-PowerTools.repo": [("powertools", "PowerTools-$releasever", 0)],
            }
        else:
            files = {
                "rocky.repo": [
                    ("baseos", "BaseOS-$releasever$rltype", 1),
                    ("baseos-debuginfo", "BaseOS-$releasever-debug$rltype", 0),
                    ("appstream", "AppStream-$releasever$rltype", 1),
                    ("crb", "CRB-$releasever$rltype", 0),
                ],
                "rocky-extras.repo": [("extras", "extras-$releasever$rltype", 1)],
            }
        lines = []
        for name, sections in files.items():
            lines.append(f"@file /etc/yum.repos.d/{name}")
            for rid, repo, enabled in sections:
                lines += [f"[{rid}]", f"mirrorlist={host}{repo}", f"enabled={enabled}"]
    else:  # almalinux
        lines = []
        for rid, enabled in (("baseos", 1), ("appstream", 1), ("crb", 0), ("extras", 1)):
            lines += [f"@file /etc/yum.repos.d/almalinux-{rid}.repo", f"[{rid}]"]
            lines += [f"mirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/{rid}", f"enabled={enabled}"]
    if epel:
        metalink = "https://mirrors.fedoraproject.org/metalink?repo=epel-$releasever&arch=$basearch"
        lines += ["@file /etc/yum.repos.d/epel.repo", "[epel]", f"metalink={metalink}&infra=$infra&content=$contentdir"]
        lines += ["enabled=1", "[epel-debuginfo]", "enabled=0", "[epel-source]", "enabled=0"]
        lines += ["@file /etc/yum.repos.d/epel-testing.repo", "[epel-testing]", "enabled=0"]
    return "\n".join(lines)


def _os_release(name: str, id_: str, version: str, pretty: str, like: str) -> str:
    return (
        f'NAME="{name}"\nVERSION="{version}"\nID="{id_}"\nID_LIKE="{like}"\nVERSION_ID="{version.split()[0]}"\n'
        f'PRETTY_NAME="{pretty}"\n'
    )


_SYSTEMD_PS = ("1 /usr/lib/systemd/systemd --switched-root --system --deserialize 31",
               "702 /usr/sbin/sshd -D", "731 /usr/sbin/crond -n")  # fmt: skip
_SYSV_PS = ("1 init [3]", "1501 /sbin/syslogd -m 0", "1690 /usr/sbin/sshd", "1711 crond")

EL8_MAPS = "btree cidr environ fail hash inline internal ldap memcache nis pipemap proxy randmap regexp socketmap static tcp texthash unionmap unix"  # noqa: E501

OPENSSL_3 = "OpenSSL 3.2.2 4 Jun 2024 (Library: OpenSSL 3.2.2 4 Jun 2024)"

# fmt: off
RELEASE: dict[str, Release] = {
    "centos5": Release(
        "", "CentOS release 5.11 (Final)", "sysv", "yum", False, ("yum", "iptables", "ip6tables", "openssl"),
        "2.3.3", "1.0.7", "hash", "btree cidr environ hash ldap mysql nis pcre pgsql proxy regexp static unix",
        {"postfix": "2.3.3-7.el5", "dovecot": "1.0.7-9.el5_11.4", "openssl": "0.9.8e-40.el5_11",
         "iptables": "1.3.5-9.2.el5_8", "iptables-ipv6": "1.3.5-9.2.el5_8", "postgrey": "1.34-1.el5",
         "sendmail": "8.13.8-10.el5_11"},
        ("openssl", "iptables", "iptables-ipv6", "sendmail"),
        _centos_repos("5.11", 5, archived=False), _centos_repos("5.11", 5, archived=True),
        openssl="OpenSSL 0.9.8e-fips-rhel5 01 Jul 2008", uid=500,
        ps_base=(*_SYSV_PS, "1735 sendmail: accepting connections"),
    ),
    "centos6": Release(
        "", "CentOS release 6.10 (Final)", "sysv", "yum", False, ("yum", "iptables", "ip6tables", "openssl"),
        "2.6.6", "2.0.9", "hash", "btree cidr environ hash ldap mysql nis pcre pgsql proxy regexp static unix",
        {"postfix": "2.6.6-8.el6", "dovecot": "2.0.9-22.el6", "openssl": "1.0.1e-58.el6_10",
         "iptables": "1.4.7-19.el6", "iptables-ipv6": "1.4.7-19.el6", "postgrey": "1.34-1.el6"},
        ("postfix", "openssl", "iptables", "iptables-ipv6"),
        _centos_repos("6.10", 6, archived=False), _centos_repos("6.10", 6, archived=True),
        openssl="OpenSSL 1.0.1e-fips 11 Feb 2013", postfix_preinstalled=True, uid=500, ps_base=_SYSV_PS,
    ),
    "centos7": Release(
        _os_release("CentOS Linux", "centos", "7 (Core)", "CentOS Linux 7 (Core)", "rhel fedora"),
        "CentOS Linux release 7.9.2009 (Core)", "systemd", "yum", True,
        ("yum", "firewall-cmd", "iptables", "ip6tables", "openssl"),
        "2.10.1", "2.2.36 (1f10bfa63)", "hash",
        "btree cidr environ fail hash internal ldap memcache mysql nis pcre pgsql proxy regexp sdbm static tcp texthash unix",  # noqa: E501
        {"postfix": "2.10.1-9.el7", "dovecot": "2.2.36-8.el7", "openssl": "1.0.2k-26.el7_9",
         "firewalld": "0.6.3-13.el7_9", "postgrey": "1.34-12.el7"},
        ("postfix", "openssl", "firewalld"),
        _centos_repos("7.9.2009", 7, archived=False), _centos_repos("7.9.2009", 7, archived=True),
        openssl="OpenSSL 1.0.2k-fips  26 Jan 2017", postfix_preinstalled=True, ps_base=_SYSTEMD_PS,
    ),
    "rocky8": Release(
        _os_release("Rocky Linux", "rocky", "8.10 (Green Obsidian)", "Rocky Linux 8.10 (Green Obsidian)",
                    "rhel centos fedora"),
        "Rocky Linux release 8.10 (Green Obsidian)", "systemd", "dnf", True,
        ("dnf", "yum", "firewall-cmd", "iptables", "ip6tables", "openssl"),
        "3.5.8", "2.3.16 (7e2e900c1a)", "hash", EL8_MAPS,
        {"postfix": "3.5.8-7.el8", "dovecot": "2.3.16-6.el8_10", "openssl": "1.1.1k-14.el8_10",
         "firewalld": "0.9.11-9.el8_10", "postgrey": "1.37-13.el8"},
        ("openssl", "firewalld"),
        _dnf_repos("rocky", 8, epel=False), _dnf_repos("rocky", 8, epel=True),
        openssl="OpenSSL 1.1.1k  FIPS 25 Mar 2021", ps_base=_SYSTEMD_PS,
    ),
    "rocky9": Release(
        _os_release("Rocky Linux", "rocky", "9.5 (Blue Onyx)", "Rocky Linux 9.5 (Blue Onyx)", "rhel centos fedora"),
        "Rocky Linux release 9.5 (Blue Onyx)", "systemd", "dnf", True,
        ("dnf", "yum", "firewall-cmd", "iptables", "ip6tables", "openssl"),
        "3.5.25", "2.3.16 (7e2e900c1a)", "hash", EL8_MAPS,
        {"postfix": "3.5.25-1.el9", "dovecot": "2.3.16-11.el9_4.1", "openssl": "3.2.2-6.el9_5",
         "firewalld": "1.3.4-7.el9", "postgrey": "1.37-20.el9"},
        ("openssl", "firewalld"),
        _dnf_repos("rocky", 9, epel=False), _dnf_repos("rocky", 9, epel=True),
        openssl=OPENSSL_3, ps_base=_SYSTEMD_PS,
    ),
    "rocky10": Release(
        _os_release("Rocky Linux", "rocky", "10.0 (Red Quartz)", "Rocky Linux 10.0 (Red Quartz)", "rhel centos fedora"),
        "Rocky Linux release 10.0 (Red Quartz)", "systemd", "dnf", True,
        ("dnf", "yum", "firewall-cmd", "iptables", "ip6tables", "openssl"),
        "3.8.5", "2.3.21 (47349e2482)", "lmdb",
        "cidr environ fail inline internal lmdb memcache nis pipemap proxy randmap regexp socketmap static tcp texthash unionmap unix",  # noqa: E501
        {"postfix": "3.8.5-8.el10", "postfix-lmdb": "3.8.5-8.el10", "dovecot": "2.3.21-16.el10",
         "openssl": "3.2.2-16.el10", "firewalld": "2.3.0-1.el10", "postgrey": "1.37-27.el10_0"},
        ("openssl", "firewalld"),
        _dnf_repos("rocky", 10, epel=False), _dnf_repos("rocky", 10, epel=True),
        openssl=OPENSSL_3, ps_base=_SYSTEMD_PS,
    ),
    "alma9": Release(
        _os_release("AlmaLinux", "almalinux", "9.5 (Teal Serval)", "AlmaLinux 9.5 (Teal Serval)", "rhel centos fedora"),
        "AlmaLinux release 9.5 (Teal Serval)", "systemd", "dnf", True,
        ("dnf", "yum", "firewall-cmd", "iptables", "ip6tables", "openssl"),
        "3.5.25", "2.3.16 (7e2e900c1a)", "hash", EL8_MAPS,
        {"postfix": "3.5.25-1.el9", "dovecot": "2.3.16-11.el9_4.1", "openssl": "3.2.2-6.el9_5",
         "firewalld": "1.3.4-7.el9", "postgrey": "1.37-20.el9"},
        ("openssl", "firewalld"),
        _dnf_repos("alma", 9, epel=False), _dnf_repos("alma", 9, epel=True),
        openssl=OPENSSL_3, ps_base=_SYSTEMD_PS,
    ),
    "alma10": Release(  # the RHEL 10.0 packages, as Rocky 10's
        _os_release("AlmaLinux", "almalinux", "10.0 (Purple Lion)", "AlmaLinux 10.0 (Purple Lion)",
                    "rhel centos fedora"),
        "AlmaLinux release 10.0 (Purple Lion)", "systemd", "dnf", True,
        ("dnf", "yum", "firewall-cmd", "iptables", "ip6tables", "openssl"),
        "3.8.5", "2.3.21 (47349e2482)", "lmdb",
        "cidr environ fail inline internal lmdb memcache nis pipemap proxy randmap regexp socketmap static tcp texthash unionmap unix",  # noqa: E501
        {"postfix": "3.8.5-8.el10", "postfix-lmdb": "3.8.5-8.el10", "dovecot": "2.3.21-16.el10",
         "openssl": "3.2.2-16.el10", "firewalld": "2.3.0-1.el10", "postgrey": "1.37-27.el10_0"},
        ("openssl", "firewalld"),
        _dnf_repos("alma", 10, epel=False), _dnf_repos("alma", 10, epel=True),
        openssl=OPENSSL_3, ps_base=_SYSTEMD_PS,
    ),
}
# fmt: on


def _file(content: str, mode: str = "644", mtime: int = T_FRESH) -> str:
    return f"root root {mode} {mtime}\n{file_md5(content)}  -\n{content}\n@@MP-eof"


def _kv(r: Release, *, postfix: bool, dovecot: bool) -> str:
    lines = ["arch=x86_64", f"init={r.init}"]
    tools = list(r.tools)
    if postfix:
        tools.append("postconf")
    if dovecot:
        tools += ["dovecot"] + (["doveconf"] if not r.dovecot.startswith("1.") else [])
    order = ["apt-get", "dnf", "yum", "firewall-cmd", "iptables", "ip6tables", "postconf", "dovecot", "doveconf",
             "openssl"]  # fmt: skip
    lines += [f"has_{t}=1" for t in order if t in tools]
    lines += ["syslog=1", "ipv6=1"]
    if r.firewalld:
        lines.append("firewalld_running=1")
    if postfix:
        lines += [f"postfix_version={r.postfix}", f"default_database_type={r.default_db}", f"map_types={r.map_types} "]
    if dovecot:
        lines.append(f"dovecot_version={r.dovecot}")
    return "\n".join(lines)


def _rpm(key: str, installed: dict[str, str]) -> str:
    names = key.split()[1:]
    return "\n".join(f"{n} {installed[n]}" if n in installed else f"package {n} is not installed" for n in names)


def _enabled(key: str, r: Release, on: set[str]) -> str:
    names = key.split()[1:]
    if r.init == "systemd":
        return "\n".join(f"{n} {'enabled' if n in on else ''}".rstrip() if n in on else f"{n} " for n in names)
    return "\n".join(f"{n} enabled" for n in names if n in on)


def answer(name: str, site: Site, *, converged: bool, files: dict[str, str] | None = None) -> str:
    """The probe output of release `name`, fresh or converged (`files`: path → what the plan wrote)."""
    r = RELEASE[name]
    host = site.hosts[0]
    ctx = HostContext.of(site, host, PRESETS[name], HERE)
    wanted = [rd.key for rd in speculative_reads(site, host, HERE)]
    needed = {rd.key for rd in reads(ctx)}
    installed = {p: v for p, v in r.rpms.items() if converged or p in r.fresh_rpms}
    if converged:
        installed.pop("sendmail", None)
    has_postfix = "postfix" in installed
    has_dovecot = "dovecot" in installed
    files = files or {}
    out = ["@@MP0", "@@MP0 os", r.os_release, "@@MP0 redhat", r.redhat, ""]
    out += ["@@MP0 kv", _kv(r, postfix=has_postfix, dovecot=has_dovecot), "@@MP0 candidates"]
    for key in wanted:
        if key not in needed:
            continue  # a read only another OS family runs (guarded by only_if on the host)
        out.append(f"@@MP0 {key}")
        body = _section(key, r, ctx, installed, converged, files)
        if body:
            out.append(body)
    out.append("@@MP0 end")
    return "\n".join(out) + "\n"


def _section(key: str, r: Release, ctx: HostContext, installed: dict[str, str], converged: bool,
             files: dict[str, str]) -> str:  # fmt: skip
    kind, _, rest = key.partition(" ")
    daemons = {"postfix", "dovecot", "postgrey"}
    if key == "journal":
        return ""
    if key == "generation":
        return "20251125T193320Z-4711" if converged else ""
    if key == "repos":
        return r.repos_converged if converged else r.repos_fresh
    if kind == "rpm":
        return _rpm(key, installed)
    if kind == "user":
        if not converged:
            return ""
        home = "/home/john"
        dirs = [f"dir john john 700 {home}/Maildir{sub}" for sub in ("", "/cur", "/new", "/tmp")]
        passwd = PASSWD.replace("1000:1000", f"{r.uid}:{r.uid}")
        return "\n".join([passwd, f"john:{SHADOW_HASH}:20424:0:99999:7:::", *dirs])
    if kind == "cert":
        if not converged:
            return ""
        subject = f"/C=US/O=Example/CN={ctx.host.name}"
        if r.manager == "dnf":  # OpenSSL 1.1+ prints RFC 2253-ish names
            subject = f"C = US, O = Example, CN = {ctx.host.name}"
        return f"subject={subject}\nnotAfter=Nov 26 19:33:20 2026 GMT\nCertificate will not expire\nfresh=1"
    if kind == "stat":
        if not converged:
            return ""
        mode = "600" if "/private/" in rest else "644"
        return f"root root {mode} {T_MAPS}\n{file_md5(rest)}  -"
    if key == "applied":
        if not converged:
            return ""
        return "\n".join(f"{file_md5(content)} {path}" for path, content in files.items())
    if kind == "file":
        if converged and rest in files:
            mode = "600" if rest.startswith("/etc/mailprov/") else "644"
            return _file(files[rest], mode, T_APPLY)
        if rest == "/etc/aliases":
            return _file(ALIASES)
        if rest in ("/etc/postfix/main.cf", "/etc/postfix/master.cf") and "postfix" in installed:
            return _file(MAIN_CF if rest.endswith("main.cf") else MASTER_CF)
        return ""
    if key == "traits":
        return _traits(r, installed)
    if key == "firewalld":
        return _firewalld(r, ctx, converged)
    if key == "firewall":
        if not converged:
            return "iptables rules -1\nip6tables rules -1"
        counts = [sum(ln.startswith("-A MAILPROV") for ln in files.get(p, "").split("\n"))
                  for p in ("/etc/mailprov/firewall.v4", "/etc/mailprov/firewall.v6")]  # fmt: skip
        return f"iptables rules {counts[0]}\niptables hooked 1\nip6tables rules {counts[1]}\nip6tables hooked 1"
    if kind == "enabled":
        on = set(daemons) if converged else ({"postfix"} if "postfix" in installed else set())
        if r.init == "sysv":
            on |= {"iptables", "ip6tables"}  # chkconfig'd on by the iptables packages
        elif "firewalld" in installed:
            on.add("firewalld")  # enabled by its package preset
        return _enabled(key, r, on)
    if key == "ps":
        procs = list(r.ps_base)
        if "postfix" in installed and (converged or r.postfix_preinstalled):
            procs += ["1234 /usr/libexec/postfix/master -w", "1240 qmgr -l -t unix -u"]
        if converged:
            procs += ["1301 /usr/sbin/dovecot", "1302 dovecot/anvil", "1303 dovecot/log",
                      "1320 /usr/bin/perl -T -w /usr/sbin/postgrey --unix=/var/spool/postfix/postgrey/socket"
                      " --pidfile=/var/run/postgrey.pid --group=postgrey --user=postgrey --daemonize"]  # fmt: skip
        return "\n".join(f"{p.split(' ', 1)[0]:>7} {p.split(' ', 1)[1]}" for p in procs)
    raise SystemExit(f"no answer for the read {key!r}: teach make_probes.py what the host prints")


def _traits(r: Release, installed: dict[str, str]) -> str:
    """SELinux enforcing (every EL install's default), `openssl version`, the rpm releases of Postfix and
    Dovecot once installed, and whether doveconf knows `ssl_protocols` (2.0 and 2.2 do; 2.3 dropped it;
    Dovecot 1.0 has no doveconf)."""
    lines = ["selinux=1", f"openssl={r.openssl}"]
    lines += [f"rpm_{p}={installed[p]}" for p in ("postfix", "dovecot") if p in installed]
    if "dovecot" in installed and not r.dovecot.startswith("1."):
        lines.append(f"dovecot_ssl_protocols={0 if r.dovecot.startswith('2.3') else 1}")
    return "\n".join(lines)


def _zone(name: str, interfaces: str, services: str, ports: str = "", rich: tuple[str, ...] = (),
          *, forward: bool) -> str:  # fmt: skip
    """A zone as `firewall-cmd --list-all-zones` prints it (firewalld 0.9+ adds the `forward:` line)."""
    lines = [name, "  target: default", "  icmp-block-inversion: no", f"  interfaces: {interfaces}", "  sources: ",
             f"  services: {services}", f"  ports: {ports}", "  protocols: "]  # fmt: skip
    lines += ["  forward: yes"] if forward else []
    lines += ["  masquerade: no", "  forward-ports: ", "  source-ports: ", "  icmp-blocks: ", "  rich rules: "]
    lines += [f"\t{rule}" for rule in rich]
    return "\n".join(lines) + "\n"


def _firewalld(r: Release, ctx: HostContext, converged: bool) -> str:
    """`default ZONE`, then the runtime and the permanent `--list-all-zones` (the zones besides public and
    work left out: mailprov manages the default zone and the ones bound to an interface)."""
    if not r.firewalld:
        return ""
    old = r.postfix.startswith("2.")  # CentOS 7: firewalld 0.6, no cockpit, no forward line
    services = "ssh dhcpv6-client" if old else "cockpit dhcpv6-client ssh"
    ports, rich = "", ()
    if converged:
        wanted = Firewall().desired(ctx).zones
        assert wanted is not None
        ports, rich = " ".join(wanted.ports), wanted.rich
    out = ["default public"]
    for part in ("@runtime", "@permanent"):
        interfaces = "eth0" if old else "enp1s0"
        public = "public (active)" if part == "@runtime" else "public"
        out += [part, _zone(public, interfaces if part == "@runtime" else "", services, ports, rich, forward=not old)]
        out.append(_zone("work", "", "ssh dhcpv6-client" if old else "cockpit dhcpv6-client ssh", forward=not old))
    return "\n".join(out).rstrip("\n")


def written(name: str, site: Site, fresh: str) -> dict[str, str]:
    """What the fresh host's plan writes: path → content (a managed block merged into the stock file)."""
    facts = parse_probe(fresh, site.hosts[0].name)
    ctx = HostContext.of(site, site.hosts[0], facts.platform, HERE)
    out = {}
    for f in build_plan(ctx, facts).files:
        text = f.text()
        if f.block is not None:  # merged on the host into the file the package installed
            base = MASTER_CF if f.path.endswith("master.cf") else ""
            text = f"{base}{f.block[0]}\n{text}{f.block[1]}\n"
        out[f.path] = text
    return out


def main() -> int:
    for name in RELEASES:
        site = load_site(site_file(name))
        assert PRESETS[name].os_family is OsFamily.RHEL
        fresh = answer(name, site, converged=False)
        split_sections(fresh)  # well framed
        converged = answer(name, site, converged=True, files=written(name, site, fresh))
        for state, text in (("fresh", fresh), ("converged", converged)):
            (HERE / f"probe-{name}-{state}.txt").write_text(text, encoding="utf-8")
        print(f"{name}: fresh {len(fresh)} bytes, converged {len(converged)} bytes")
    return 0


if __name__ == "__main__":
    assert probe_script  # the framing these answers follow
    sys.exit(main())
