"""What a host is, as far as rendering cares: OS family, tools, and the Postfix/Dovecot versions.

`Platform` is read from a live host by the probe (facts/probe.py) or taken from a preset for offline
rendering. Versions are those installed or, before installation, those the package manager would install.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailprov.errors import FactsError


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version:
        """`3.7.11`, `2.3.19.1 (9b53102964)`, `1:2.4.1+dfsg1-6`, `2.4.1-4 (7d8c0e5759)` → Version."""
        text = text.strip()
        text = re.sub(r"^\d+:", "", text)  # Debian epoch
        match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
        if not match:
            raise FactsError(f"cannot read a version from {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, text: str) -> bool:
        return self >= Version.parse(text)


class OsFamily(StrEnum):
    RHEL = "rhel"
    DEBIAN = "debian"


class PackageManager(StrEnum):
    APT = "apt"
    YUM = "yum"
    DNF = "dnf"


class InitSystem(StrEnum):
    SYSTEMD = "systemd"
    SYSV = "sysv"  # init.d scripts: chkconfig (RHEL) or update-rc.d (Debian)


class FirewallBackend(StrEnum):
    IPTABLES = "iptables"
    FIREWALLD = "firewalld"


@dataclass(frozen=True)
class Platform:
    os_family: OsFamily
    os_id: str  # centos, rocky, almalinux, rhel, debian, ubuntu
    os_version: str  # "5.11", "12", "24.04"
    package_manager: PackageManager
    init_system: InitSystem
    firewall: FirewallBackend
    postfix_version: Version
    dovecot_version: Version
    default_database_type: str = "hash"
    map_types: frozenset[str] = field(default_factory=lambda: frozenset({"hash", "btree"}))
    has_syslog: bool = True
    has_ipv6: bool = True

    @property
    def os_major(self) -> int:
        return int(re.match(r"\d+", self.os_version).group(0)) if re.match(r"\d+", self.os_version) else 0  # type: ignore[union-attr]

    def describe(self) -> str:
        return (
            f"{self.os_id} {self.os_version} ({self.os_family}), Postfix {self.postfix_version}, "
            f"Dovecot {self.dovecot_version}, {self.init_system}, {self.firewall}"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["postfix_version"] = str(self.postfix_version)
        data["dovecot_version"] = str(self.dovecot_version)
        data["map_types"] = sorted(self.map_types)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        try:
            return cls(
                os_family=OsFamily(data["os_family"]),
                os_id=str(data["os_id"]),
                os_version=str(data["os_version"]),
                package_manager=PackageManager(data["package_manager"]),
                init_system=InitSystem(data["init_system"]),
                firewall=FirewallBackend(data["firewall"]),
                postfix_version=Version.parse(str(data["postfix_version"])),
                dovecot_version=Version.parse(str(data["dovecot_version"])),
                default_database_type=str(data.get("default_database_type", "hash")),
                map_types=frozenset(data.get("map_types", ("hash", "btree"))),
                has_syslog=bool(data.get("has_syslog", True)),
                has_ipv6=bool(data.get("has_ipv6", True)),
            )
        except (KeyError, ValueError) as exc:
            raise FactsError(f"facts file: missing or invalid field {exc}") from None


def _preset(
    family: OsFamily, os_id: str, version: str, pm: PackageManager, init: InitSystem, fw: FirewallBackend,
    postfix: str, dovecot: str, maps: tuple[str, ...] = ("hash", "btree"), default_db: str = "hash",
) -> Platform:  # fmt: skip
    return Platform(
        family, os_id, version, pm, init, fw, Version.parse(postfix), Version.parse(dovecot),
        default_db, frozenset(maps),
    )  # fmt: skip


_R, _D = OsFamily.RHEL, OsFamily.DEBIAN
_SYSD, _SYSV = InitSystem.SYSTEMD, InitSystem.SYSV
_IPT, _FWD = FirewallBackend.IPTABLES, FirewallBackend.FIREWALLD

# Versions from ../shared/reference/dialects.md §5.1 (the releases each distribution ships).
PRESETS: dict[str, Platform] = {
    "centos5": _preset(_R, "centos", "5.11", PackageManager.YUM, _SYSV, _IPT, "2.3.3", "1.0.7"),
    "centos6": _preset(_R, "centos", "6.10", PackageManager.YUM, _SYSV, _IPT, "2.6.6", "2.0.9"),
    "centos7": _preset(_R, "centos", "7.9", PackageManager.YUM, _SYSD, _FWD, "2.10.1", "2.2.36"),
    "rocky8": _preset(_R, "rocky", "8.10", PackageManager.DNF, _SYSD, _FWD, "3.5.8", "2.3.16"),
    "rocky9": _preset(_R, "rocky", "9.5", PackageManager.DNF, _SYSD, _FWD, "3.5.25", "2.3.16", ("hash", "btree", "lmdb")),  # noqa: E501
    "alma9": _preset(_R, "almalinux", "9.5", PackageManager.DNF, _SYSD, _FWD, "3.5.25", "2.3.16", ("hash", "btree", "lmdb")),  # noqa: E501
    # EL10: Berkeley DB is gone (no hash:/btree:), maps and caches are lmdb; Postfix 3.8, Dovecot 2.3.21.
    "rocky10": _preset(_R, "rocky", "10.0", PackageManager.DNF, _SYSD, _FWD, "3.8.5", "2.3.21", ("lmdb",), "lmdb"),
    "alma10": _preset(_R, "almalinux", "10.0", PackageManager.DNF, _SYSD, _FWD, "3.8.5", "2.3.21", ("lmdb",), "lmdb"),
    "debian11": _preset(_D, "debian", "11", PackageManager.APT, _SYSD, _IPT, "3.5.25", "2.3.13"),
    "debian12": _preset(_D, "debian", "12", PackageManager.APT, _SYSD, _IPT, "3.7.11", "2.3.19.1"),
    "debian13": _preset(_D, "debian", "13", PackageManager.APT, _SYSD, _IPT, "3.10.13", "2.4.1", ("hash", "btree", "lmdb", "cdb")),  # noqa: E501
    "ubuntu2204": _preset(_D, "ubuntu", "22.04", PackageManager.APT, _SYSD, _IPT, "3.6.4", "2.3.16"),
    "ubuntu2404": _preset(_D, "ubuntu", "24.04", PackageManager.APT, _SYSD, _IPT, "3.8.6", "2.3.21"),
    "ubuntu2604": _preset(_D, "ubuntu", "26.04", PackageManager.APT, _SYSD, _IPT, "3.10.5", "2.4.1", ("hash", "btree", "lmdb", "cdb")),  # noqa: E501
}  # fmt: skip


def release_platform(family: OsFamily, os_id: str, version: str) -> Platform | None:
    """The preset of this EL release (same major; the same distribution when there is one): what its
    repositories install. EL keeps Postfix's and Dovecot's major versions for a release's whole life."""
    match = re.match(r"\d+", version)
    if family is not OsFamily.RHEL or not match:
        return None
    same = [p for p in PRESETS.values() if p.os_family is family and p.os_major == int(match.group(0))]
    return next((p for p in same if p.os_id == os_id), same[0] if same else None)


def load_platform(preset_or_file: str) -> Platform:
    """A preset name (centos5 … ubuntu2604) or a JSON file written by `mailprov facts`."""
    if preset_or_file in PRESETS:
        return PRESETS[preset_or_file]
    path = Path(preset_or_file)
    if not path.exists():
        raise FactsError(
            f"unknown facts preset {preset_or_file!r}; use one of {', '.join(PRESETS)} or a JSON facts file"
        )
    try:
        return Platform.from_json(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise FactsError(f"{path}: not JSON: {exc}") from None
