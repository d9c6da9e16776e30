"""What the lab needs on the runner, checked before anything runs: a missing tool is named with its package
and the command that installs it, instead of failing half-way (`unshare: failed to execute debootstrap`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError

PREREQS_SCRIPT = "scripts/lab-prereqs.sh"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # a non-login root shell may lack these in PATH


@dataclass(frozen=True)
class Requirement:
    what: str  # a program name, or a file path
    package: str  # the Debian package that provides it
    for_build: bool  # only needed to build a base image (not to start hosts from a cached one)


# Keep in step with PACKAGES in scripts/lab-prereqs.sh (a unit test compares them).
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("debootstrap", "debootstrap", True),
    Requirement("dpkg-scanpackages", "dpkg-dev", True),
    Requirement(KEYRING, "debian-archive-keyring", True),
    Requirement("chroot", "coreutils", True),
    Requirement("unshare", "util-linux", True),
    Requirement("setsid", "util-linux", False),
    Requirement("ip", "iproute2", False),
    Requirement("ss", "iproute2", False),
    Requirement("ssh-keygen", "openssh-client", False),
    Requirement("mount", "mount", False),
    Requirement("umount", "mount", False),
    Requirement("sysctl", "procps", False),
)

Which = Callable[[str], str | None]


def _which(program: str) -> str | None:
    path = os.environ.get("PATH", os.defpath)
    return shutil.which(program, path=os.pathsep.join([path, *_SBIN]))


def missing(
    *, building: bool, which: Which = _which, exists: Callable[[str], bool] = os.path.exists
) -> list[Requirement]:
    """Requirements this machine lacks; build-only ones only when an image is to be built."""
    lacking = []
    for requirement in REQUIREMENTS:
        if requirement.for_build and not building:
            continue
        present = exists(requirement.what) if requirement.what.startswith("/") else which(requirement.what) is not None
        if not present:
            lacking.append(requirement)
    return lacking


def message(lacking: list[Requirement]) -> str:
    """What is missing, and the two ways to install it (the script, or the apt-get line)."""
    names = ", ".join(f"{r.what} (package {r.package})" for r in lacking)
    packages = " ".join(dict.fromkeys(r.package for r in lacking))
    return (
        f"the lab needs what this machine lacks: {names}\n"
        f"install the lab's prerequisites as root: sh {PREREQS_SCRIPT}\n"
        f"or: apt-get install --no-install-recommends {packages}"
    )


def require_prerequisites(*, building: bool = True, which: Which = _which) -> None:
    lacking = missing(building=building, which=which)
    if lacking:
        raise LabError(message(lacking))


def script_packages(script: Path) -> set[str]:
    """The PACKAGES list of scripts/lab-prereqs.sh (for the test that keeps both in step)."""
    for line in script.read_text(encoding="utf-8").splitlines():
        if line.startswith("PACKAGES="):
            return set(line.split("=", 1)[1].strip('"').split())
    return set()
