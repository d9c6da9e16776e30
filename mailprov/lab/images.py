"""Base images: a debootstrapped Debian root with sshd and an offline apt repository, built once and cached.

An image is a plain folder used read-only as the lower layer of every host's overlayfs. Its name carries a
hash of the recipe (suite, package lists, build scripts), so changing the recipe builds a new image and a
stale one is never reused. A build happens in a temporary sibling folder renamed into place at the end,
so a half-built image is never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError
from mailprov.lab.commands import exclusive_lock, require_root_on_linux, run, tail
from mailprov.lab.mounts import remove_tree
from mailprov.lab.paths import LabPaths
from mailprov.lab.prereqs import require_prerequisites

DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class DistroSpec:
    """How to debootstrap one Debian release from this runner (a Debian 12 machine)."""

    name: str
    # debootstrap's script for the suite: the runner's debootstrap may not know a newer codename (forky),
    # whose bootstrap is the same as sid's.
    script: str = ""
    # Suites added to the image's apt sources for the download step, besides the main one (the main suite
    # already holds the last point release).
    extra_sources: tuple[str, ...] = ()
    # testing's Release files carry a Valid-Until a week ahead; a mirror snapshot older than that would fail
    # `apt-get update` during the build. Only the build's download step is affected (hosts use a file: repo).
    ignore_valid_until: bool = False


DISTRO_SPECS: dict[str, DistroSpec] = {
    # bullseye-security is left out: its pool answered 404 for packages its index lists (dovecot-pop3d
    # 2.3.13+dfsg1-2+deb11u4, libnet-dns-perl 1.29-1+deb11u1) on this runner's mirror, failing the build.
    "bullseye": DistroSpec("bullseye", extra_sources=(f"deb {DEBIAN_MIRROR} bullseye-updates main",)),
    "bookworm": DistroSpec("bookworm"),
    "trixie": DistroSpec("trixie"),
    "forky": DistroSpec("forky", script="sid", ignore_valid_until=True),
}
DISTROS = tuple(DISTRO_SPECS)

# Bump when the build steps change in a way the scripts' text does not show (it is hashed too).
BUILD_VERSION = 1

IMAGE_INCLUDES = ("openssh-server", "iproute2", "sudo", "ca-certificates", "procps")

# What mailprov may install on a host, downloaded with its dependencies into the image's local repository.
# Each group is one `apt-get install --download-only`: exim4 conflicts with postfix, so it has its own.
REPO_PACKAGE_GROUPS: tuple[tuple[str, ...], ...] = (
    (
        "postfix",
        "dovecot-core",
        "dovecot-imapd",
        "dovecot-pop3d",
        "postgrey",
        "openssl",
        "iptables",
        "iptables-persistent",
        "netfilter-persistent",
        "ssl-cert",
        "opendkim",
        "opendkim-tools",
    ),
    ("exim4-daemon-light",),  # so a test can start from a host whose MTA is exim4
)

REPO_DIR_IN_IMAGE = "/srv/repo"
STAMP_IN_IMAGE = "etc/mailprov-lab-image"
PWADMIN_PASSWORD = "pwadmin-lab-pw"

# Run by the runner in a private mount namespace: whatever it mounts goes away when it exits, even on failure.
# $1 = image root, $2 = script to run in the chroot, the rest = that script's arguments.
_CHROOT_WRAPPER = """\
set -eu
root=$1
script=$2
shift 2
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
exec chroot "$root" /bin/sh -c "$script" image-build "$@"
"""

_DOWNLOAD_SCRIPT = f"""\
set -eu
mkdir -p {REPO_DIR_IN_IMAGE}
apt-get -q -y install --download-only -o Dir::Cache::archives={REPO_DIR_IN_IMAGE} "$@"
rm -rf {REPO_DIR_IN_IMAGE}/partial {REPO_DIR_IN_IMAGE}/lock
"""

_CONFIGURE_SCRIPT = f"""\
set -eu
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
echo 'deb [trusted=yes] file:{REPO_DIR_IN_IMAGE} ./' > /etc/apt/sources.list.d/mailprov-lab.list
apt-get clean
rm -rf /var/lib/apt/lists/*
apt-get -q update
useradd --create-home --shell /bin/bash --groups sudo admin
useradd --create-home --shell /bin/bash --groups sudo pwadmin
echo 'pwadmin:{PWADMIN_PASSWORD}' | chpasswd
# Every host gets its own host keys at first boot; none may be shared through the image.
rm -f /etc/ssh/ssh_host_*
test -x /usr/sbin/service
"""

_SSHD_DROP_IN = """\
# mailprov lab: key logins only; root may log in with the lab key.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

_SUDOERS_ADMIN = (
    "# mailprov lab: the non-root admin user may become root without a password.\nadmin ALL=(ALL:ALL) NOPASSWD: ALL\n"
)

_RESOLV_CONF = "# mailprov lab: hosts have no DNS (no outside network); glibc falls back to 127.0.0.1.\n"

_CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "HOME": "/root",
    "DEBIAN_FRONTEND": "noninteractive",
}

ProgressCallback = Callable[[str], None] | None


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that decides an image's content; its hash names the cache folder."""

    distro: str
    mirror: str = DEBIAN_MIRROR
    includes: tuple[str, ...] = IMAGE_INCLUDES
    repo_package_groups: tuple[tuple[str, ...], ...] = REPO_PACKAGE_GROUPS
    build_version: int = BUILD_VERSION
    scripts: tuple[str, ...] = (
        _CHROOT_WRAPPER,
        _DOWNLOAD_SCRIPT,
        _CONFIGURE_SCRIPT,
        _SSHD_DROP_IN,
        _SUDOERS_ADMIN,
        _RESOLV_CONF,
    )

    @property
    def spec(self) -> DistroSpec:
        return DISTRO_SPECS.get(self.distro, DistroSpec(self.distro))

    def key(self) -> str:
        """`<distro>-<12 hex digits>`: same recipe, same key, whatever the order packages were listed in."""
        recipe: dict[str, object] = {
            "distro": self.distro,
            "mirror": self.mirror,
            "includes": sorted(self.includes),
            "repo": sorted(sorted(group) for group in self.repo_package_groups),
            "build_version": self.build_version,
            "scripts": list(self.scripts),
        }
        if self.spec != DistroSpec(self.distro):  # only then: the images of plain specs keep their keys
            recipe["spec"] = dataclasses.asdict(self.spec)
        canonical = json.dumps(recipe, sort_keys=True)
        return f"{self.distro}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def check_distro(distro: str) -> None:
    if distro not in DISTROS:
        raise LabError(f"unknown lab distro {distro!r}: choose one of {', '.join(DISTROS)}")


def image_dir(paths: LabPaths, distro: str) -> Path:
    """Where the image for the current recipe lives (whether or not it is built yet)."""
    return paths.images / ImageRecipe(distro).key()


def is_built(image: Path) -> bool:
    return (image / STAMP_IN_IMAGE).is_file()


def ensure_image(distro: str, progress: ProgressCallback = None, paths: LabPaths | None = None) -> Path:
    """The cached base image for `distro`, built first if missing (a few minutes: debootstrap + downloads)."""
    check_distro(distro)
    require_root_on_linux()
    paths = paths or LabPaths.from_env()
    recipe = ImageRecipe(distro)
    final = paths.images / recipe.key()
    if is_built(final):
        return final
    require_prerequisites(building=True)
    with exclusive_lock(paths.images_lock):
        if is_built(final):  # another process built it while we waited
            return final
        _remove_abandoned_builds(paths.images, recipe.key())
        building = paths.images / f".build-{recipe.key()}-{os.getpid()}"
        log = paths.images / f"{recipe.key()}.build.log"
        started = time.monotonic()
        try:
            _build(recipe, building, log, progress)
        except BaseException:
            remove_tree(building)
            raise
        if final.exists():  # an unstamped leftover from an interrupted rename: never used, replace it
            remove_tree(final)
        building.rename(final)
        if progress:
            progress(f"image {recipe.key()} built in {time.monotonic() - started:.0f} s")
    return final


def _remove_abandoned_builds(images: Path, key: str) -> None:
    """Builds interrupted earlier (we hold the lock, so none is running now)."""
    for leftover in images.glob(f".build-{key}-*"):
        remove_tree(leftover)


def _build(recipe: ImageRecipe, root: Path, log: Path, progress: ProgressCallback) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    say = progress or (lambda _line: None)

    say(f"{recipe.distro}: debootstrap (minbase) from {recipe.mirror}")
    _logged(
        [
            "unshare", "--mount", "--propagation", "private", "--",
            "debootstrap", "--variant=minbase", f"--include={','.join(recipe.includes)}",
            recipe.distro, str(root), recipe.mirror,
            *([f"/usr/share/debootstrap/scripts/{recipe.spec.script}"] if recipe.spec.script else []),
        ],
        log=log,
        what=f"debootstrap {recipe.distro}",
        timeout=1800,
        extra_log=root / "debootstrap" / "debootstrap.log",
    )  # fmt: skip

    say(f"{recipe.distro}: downloading mail packages into the image's local repository")
    _add_build_sources(root, recipe.spec)
    _in_chroot(root, "apt-get -q update", [], log=log, what="apt-get update (image build)")
    for group in recipe.repo_package_groups:
        _in_chroot(root, _DOWNLOAD_SCRIPT, group, log=log, what=f"download {' '.join(group)}")

    say(f"{recipe.distro}: indexing the local repository")
    repo = root / REPO_DIR_IN_IMAGE.lstrip("/")
    scan = run(
        ["dpkg-scanpackages", "--multiversion", ".", "/dev/null"],
        what="dpkg-scanpackages",
        cwd=repo,
        timeout=300,
    )
    (repo / "Packages").write_text(scan.stdout)
    _make_world_readable(repo)  # apt reads file: sources as the unprivileged _apt user

    say(f"{recipe.distro}: configuring users, sshd and apt")
    _in_chroot(root, _CONFIGURE_SCRIPT, [], log=log, what="configure image")
    (root / "etc/apt/apt.conf.d/99mailprov-build").unlink(missing_ok=True)
    _write(root / "etc/ssh/sshd_config.d/mailprov-lab.conf", _SSHD_DROP_IN, 0o644)
    _write(root / "etc/sudoers.d/mailprov-lab-admin", _SUDOERS_ADMIN, 0o440)
    _write(root / "etc/resolv.conf", _RESOLV_CONF, 0o644, replace_link=True)
    _write(root / "etc/machine-id", "", 0o444)  # each host writes its own
    (root / "etc/hostname").unlink(missing_ok=True)  # each host writes its own
    # Without policy-rc.d, invoke-rc.d blocks starts at install time (no init system): mailprov starts
    # services itself, as it must on a real host. A policy-rc.d left by a tool would change that.
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    _write(root / STAMP_IN_IMAGE, f"{recipe.key()}\n", 0o644)


def _add_build_sources(root: Path, spec: DistroSpec) -> None:
    """The spec's extra suites and apt options, for the download step (the configure step replaces them)."""
    if spec.extra_sources:
        _write(root / "etc/apt/sources.list.d/mailprov-build.list", "\n".join(spec.extra_sources) + "\n", 0o644)
    if spec.ignore_valid_until:
        _write(root / "etc/apt/apt.conf.d/99mailprov-build", 'Acquire::Check-Valid-Until "false";\n', 0o644)


def _in_chroot(root: Path, script: str, args: Sequence[str], *, log: Path, what: str) -> None:
    _logged(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _CHROOT_WRAPPER,
         "chroot-wrapper", str(root), script, *args],
        log=log,
        what=what,
        timeout=1800,
        env=_CHROOT_ENV,
    )  # fmt: skip


def _logged(
    argv: Sequence[str],
    *,
    log: Path,
    what: str,
    timeout: float,
    env: dict[str, str] | None = None,
    extra_log: Path | None = None,
) -> None:
    """Run a long build step with its output appended to the build log; on failure show the log's tail."""
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(argv[:12])}\n")
        sink.flush()
        try:
            result = subprocess.run(
                list(argv), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env=env, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{what}: no result within {timeout:.0f} s (log: {log})") from exc
    if result.returncode != 0:
        detail = tail(log.read_text(errors="replace"))
        if extra_log is not None and extra_log.is_file():
            detail += "\n--- " + str(extra_log) + "\n" + tail(extra_log.read_text(errors="replace"))
        raise LabError(f"{what} failed (exit {result.returncode}); full log: {log}\n{detail}")


def _write(path: Path, text: str, mode: int, *, replace_link: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if replace_link and path.is_symlink():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def _make_world_readable(folder: Path) -> None:
    folder.chmod(0o755)
    for entry in folder.iterdir():
        entry.chmod(0o755 if entry.is_dir() else 0o644)
