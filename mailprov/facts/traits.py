"""What a host's security stack can do, beyond its versions: whether SELinux is enforcing labels, which
OpenSSL the daemons link, and the vendor backports that version numbers hide (RHEL 6's Postfix 2.6.6-8
knows TLSv1.1/TLSv1.2; its Dovecot 2.0.9-11+ has `ssl_protocols`).

One read (a command) and a pure parser, like every fact. The values feed `Dialect.of` (decided once); a
value the host did not give stays None, and the dialect then assumes the release's last update (what a
preset describes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mailprov.facts.platform import Version
from mailprov.facts.probe import Read, key_values

# `rpm -q` prints "package postfix is not installed" for an absent package: only `rpm_NAME=` lines count.
TRAITS_READ = Read(
    "traits",
    "command -v selinuxenabled >/dev/null && selinuxenabled && echo selinux=1\n"
    'command -v openssl >/dev/null && echo "openssl=$(openssl version)"\n'
    # Backports are RHEL's: a Debian host is spared the rpm and doveconf runs.
    "if [ ! -f /etc/debian_version ]; then\n"
    "command -v rpm >/dev/null && rpm -q --qf 'rpm_%{NAME}=%{VERSION}-%{RELEASE}\\n' postfix dovecot"
    " | grep '^rpm_'\n"
    "command -v doveconf >/dev/null && { doveconf -d ssl_protocols >/dev/null 2>&1"
    " && echo dovecot_ssl_protocols=1 || echo dovecot_ssl_protocols=0; }\nfi",
)


@dataclass(frozen=True)
class HostTraits:
    selinux: bool = False  # SELinux enabled: files mailprov creates are relabelled
    openssl: Version | None = None  # the host's OpenSSL; None: not read
    postfix_release: int | None = None  # RPM release of the installed (or candidate) Postfix: 8 of 2.6.6-8.el6
    dovecot_release: int | None = None
    dovecot_ssl_protocols: bool | None = None  # `doveconf -d ssl_protocols` knows the setting; None: not read


def parse_traits(sections: Mapping[str, str]) -> HostTraits:
    """The traits from a probe's sections (`traits`, and `candidates` for what yum would install)."""
    kv = key_values(sections.get(TRAITS_READ.key, ""))
    candidates = sections.get("candidates", "")
    openssl = re.search(r"OpenSSL\s+(\d+\.\d+\.\d+)", kv.get("openssl", ""))
    ssl_protocols = kv.get("dovecot_ssl_protocols")
    return HostTraits(
        selinux=kv.get("selinux") == "1",
        openssl=Version.parse(openssl.group(1)) if openssl else None,
        postfix_release=_release(kv.get("rpm_postfix")) or _candidate_release(candidates, "postfix"),
        dovecot_release=_release(kv.get("rpm_dovecot")) or _candidate_release(candidates, "dovecot"),
        dovecot_ssl_protocols=None if ssl_protocols is None else ssl_protocols == "1",
    )


def _release(version_release: str | None) -> int | None:
    """8 from `2.6.6-8.el6`, 19 from `2.0.9-19.el6_7`."""
    match = re.match(r"[^-]+-(\d+)", version_release or "")
    return int(match.group(1)) if match else None


def _candidate_release(text: str, package: str) -> int | None:
    """The release yum would install: `postfix.x86_64   2:2.6.6-8.el6   base` → 8."""
    match = re.search(rf"^{package}\.\S+\s+(?:\d+:)?(\S+)", text, re.M)
    return _release(match.group(1)) if match else None
