"""Read a host in ONE round trip: the engine joins every resource's reads into one POSIX sh script,
frames each read's output as a section, and hands resources the sections to parse.

A section starts with a line `@@MP<nonce> <key>`; the nonce is new for every probe, so no file content
or command output on the host can fake a section. Nothing here runs anything itself: `probe_script`
builds text, `parse_probe` reads text. Works with dash/bash and old coreutils (CentOS 5); needs no Python.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailprov.errors import FactsError
from mailprov.facts.platform import (
    FirewallBackend,
    InitSystem,
    OsFamily,
    PackageManager,
    Platform,
    Version,
    release_platform,
)
from mailprov.transport.shell import quote

MARK = "@@MP"
EOF_MARK = "@@MP-eof"  # ends a file's content (found from the end: content cannot fake it)
END_KEY = "end"


@dataclass(frozen=True)
class Read:
    """One thing to read on a host: a key naming it (and everything its output depends on) and the
    shell that prints it. Reads with the same key are the same read."""

    key: str
    script: str
    volatile: bool = False  # changes on its own (PIDs): left out of the facts fingerprint
    only_if: str = ""  # a shell condition: read (and print the section) only where it holds


@dataclass(frozen=True)
class Facts:
    """What one probe read: the platform and every section's raw text, for resources to parse."""

    platform: Platform
    sections: Mapping[str, str]

    def section(self, key: str) -> str:
        try:
            return self.sections[key]
        except KeyError:
            raise FactsError(f"the probe did not read {key!r} (a resource asked for it too late)") from None

    def has(self, key: str) -> bool:
        return key in self.sections

    def fingerprint(self, reads: Iterable[Read]) -> str:
        """A digest of what `reads` saw, less volatile ones: a saved plan refuses a host that changed."""
        keys = sorted({r.key for r in (*PLATFORM_READS, *reads) if not r.volatile})
        return hashlib.sha256("\n".join(f"{k}\0{self.sections.get(k, '')}" for k in keys).encode()).hexdigest()

    def merged(self, more: Facts) -> Facts:
        """These facts and those of a second probe in the same run."""
        return Facts(self.platform, {**self.sections, **more.sections})


PLATFORM_READS: tuple[Read, ...] = (
    Read("os", "cat /etc/os-release; echo"),
    Read("redhat", "cat /etc/redhat-release; echo"),
    Read(
        "kv",
        "\n".join(
            [
                "echo arch=$(uname -m)",
                "if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=sysv; fi",
                "for t in apt-get dnf yum firewall-cmd iptables ip6tables postconf dovecot doveconf openssl; do"
                " command -v $t >/dev/null && echo has_$t=1; done",
                "[ -S /dev/log ] && echo syslog=1",
                "[ -f /proc/net/if_inet6 ] && echo ipv6=1",
                "command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null && echo firewalld_running=1",
                "command -v postconf >/dev/null && {"
                " set -- $(postconf -dh mail_version default_database_type);"
                " echo postfix_version=$1; echo default_database_type=$2;"
                " echo map_types=$(postconf -m | tr '\\n' ' '); }",
                "command -v dovecot >/dev/null && echo dovecot_version=$(dovecot --version)",
            ]
        ),
    ),
    # What would be installed matters only before installation (and apt-cache is slow). On EL the
    # release decides it (facts/platform.py `release_platform`): no yum/dnf cache is needed, which a fresh
    # host does not have (`yum -C list` prints nothing there).
    Read(
        "candidates",
        "if ! command -v postconf >/dev/null || ! command -v dovecot >/dev/null; then"
        " if command -v apt-cache >/dev/null; then apt-cache policy postfix dovecot-core; fi; fi",
    ),
)


def unique(reads: Iterable[Read]) -> tuple[Read, ...]:
    return tuple({r.key: r for r in reads}.values())


def probe_script(reads: Iterable[Read], *, platform: bool = True, nonce: str | None = None) -> str:
    """The probe's text. platform=False leaves out the platform reads (already read this run)."""
    mark = MARK + (nonce if nonce is not None else secrets.token_hex(6))
    lines = ["exec 2>/dev/null", f"M={quote(mark)}", 'echo "$M"']
    for read in unique([*(PLATFORM_READS if platform else ()), *reads]):
        section = f'echo "$M "{quote(read.key)}\n{read.script}'
        lines.append(f"if {read.only_if}; then\n{section}\nfi" if read.only_if else section)
    lines += [f'echo "$M {END_KEY}"', "exit 0"]
    return "\n".join(lines) + "\n"


def split_sections(output: str) -> dict[str, str]:
    """Sections of a probe's output by key. The first line names the marker of this probe."""
    lines = output.split("\n")  # \n only: a file may hold \r, U+2028 … that splitlines() would cut at
    mark = lines[0].strip() if lines else ""
    if not mark.startswith(MARK):
        raise FactsError("the fact probe printed no marker: is the remote shell POSIX sh?")
    head = mark + " "
    sections: dict[str, str] = {}
    key: str | None = None
    body: list[str] = []
    for line in lines[1:]:
        if line.startswith(head):
            if key is not None:
                sections[key] = "\n".join(body)
            key, body = line[len(head) :], []
        else:
            body.append(line)
    if key != END_KEY:
        raise FactsError("the fact probe did not finish (no end marker): the connection may have dropped")
    return sections


def parse_probe(output: str, host: str, platform: Platform | None = None) -> Facts:
    """Parse probe output. `platform`: the one read earlier, when this probe left those sections out."""
    sections = split_sections(output)
    return Facts(platform or parse_platform(host, sections), sections)


def lines_of(body: str) -> list[str]:
    """Non-empty lines of a section, split on \\n only."""
    return [line for line in body.split("\n") if line.strip()]


def key_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


# --- the platform --------------------------------------------------------------------------------------


def parse_platform(host: str, sections: Mapping[str, str]) -> Platform:
    os_release = key_values(sections.get("os", ""))
    redhat = sections.get("redhat", "")
    kv = key_values(sections.get("kv", ""))
    candidates = sections.get("candidates", "")
    os_id = os_release.get("ID", "")
    version = os_release.get("VERSION_ID", "")
    if not os_id and redhat.strip():
        match = re.search(r"(CentOS|Red Hat|Rocky|AlmaLinux)\D*(\d+(\.\d+)?)", redhat)
        os_id = {"CentOS": "centos", "Red Hat": "rhel", "Rocky": "rocky", "AlmaLinux": "almalinux"}.get(
            match.group(1) if match else "", "rhel"
        )
        version = match.group(2) if match else ""
    like = os_release.get("ID_LIKE", "")
    if os_id in ("debian", "ubuntu") or "debian" in like:
        family = OsFamily.DEBIAN
    elif os_id in ("centos", "rhel", "rocky", "almalinux", "fedora") or "rhel" in like or redhat.strip():
        family = OsFamily.RHEL
    else:
        raise FactsError(f"{host}: unsupported operating system {os_id or 'unknown'!r} (Debian or RHEL family)")
    if "has_apt-get" in kv:
        pm = PackageManager.APT
    elif "has_dnf" in kv:
        pm = PackageManager.DNF
    elif "has_yum" in kv:
        pm = PackageManager.YUM
    else:
        raise FactsError(f"{host}: no package manager found (apt-get, dnf or yum)")
    postfix = kv.get("postfix_version") or _candidate(candidates, "postfix")
    dovecot = kv.get("dovecot_version") or _candidate(candidates, "dovecot")
    release = release_platform(family, os_id, version) if family is OsFamily.RHEL else None
    if release is not None:  # EL: the release's own Postfix/Dovecot, whatever its package cache holds
        postfix = postfix or str(release.postfix_version)
        dovecot = dovecot or str(release.dovecot_version)
    if not postfix or not dovecot:
        if family is OsFamily.RHEL:
            tool = pm.value
            raise FactsError(
                f"{host}: cannot tell which Postfix/Dovecot version {tool} would install on {os_id} {version} "
                f"(a release mailprov has no preset for): install them first (`{tool} -y install postfix "
                "dovecot`), then plan again"
            )
        raise FactsError(
            f"{host}: cannot tell which Postfix/Dovecot version would be installed "
            "(no package candidate: refresh the package lists, e.g. apt-get update)"
        )
    map_types = frozenset(kv.get("map_types", "").split())
    default_db = kv.get("default_database_type")
    if not map_types and release is not None:  # Postfix not installed yet: the release's build
        map_types, default_db = release.map_types, release.default_database_type
    map_types = map_types or frozenset({"hash", "btree"})
    default_db = default_db or "hash"
    if "postfix_version" not in kv and family is OsFamily.DEBIAN and Version.parse(postfix).at_least("3.11"):
        # Not installed yet: what the candidate will say once it is (Debian 14's 3.11 defaults to cdb), so
        # that the first apply writes the maps the second one would plan (one apply converges).
        default_db, map_types = "cdb", frozenset({"cdb", "lmdb", "hash", "btree"})
    return Platform(
        os_family=family,
        os_id=os_id,
        os_version=version,
        package_manager=pm,
        init_system=InitSystem.SYSTEMD if kv.get("init") == "systemd" else InitSystem.SYSV,
        firewall=FirewallBackend.FIREWALLD if "firewalld_running" in kv else FirewallBackend.IPTABLES,
        postfix_version=Version.parse(postfix),
        dovecot_version=Version.parse(dovecot),
        default_database_type=default_db,
        map_types=map_types,
        has_syslog="syslog" in kv,
        has_ipv6="ipv6" in kv,
    )


def _candidate(text: str, package: str) -> str | None:
    """Candidate version from `apt-cache policy` or `yum list` output."""
    match = re.search(rf"^{package}(-core)?:\s*\n(?:.*\n)*?\s+Candidate:\s*(\S+)", text, re.M)
    if match and match.group(2) != "(none)":
        return match.group(2)
    match = re.search(rf"^{package}\.\S+\s+(\S+)", text, re.M)
    return match.group(1).split(":")[-1] if match else None
