"""Repositories (EL): where the packages come from, made ready before the packages resource installs.

Two things break a real install on the RHEL family, and both are read on the host first:
- postgrey and OpenDKIM (the packages the dialect lists as EPEL-only) are in EPEL only. With `repositories.epel`
  mailprov enables EPEL the distribution's way (`epel-release` from extras; the archived epel-release RPM
  on EL5/6; or the site's own EPEL mirror as /etc/yum.repos.d/epel.repo). Without it a site that needs such
  a package is refused at plan time, with the fix: yum on EL5-7 would skip the name and exit 0.
- CentOS 5, 6 and 7 are end-of-life: their stock mirrors (mirrorlist.centos.org, EPEL's metalink) are
  gone. With `repositories.archived` the stock repository files are pointed at the archives
  (vault.centos.org, archives.fedoraproject.org, or the site's mirrors); without it a plan that must
  install something there is refused, saying exactly what to set.
Debian needs none of this: the dialect's `Repos()` is empty and nothing is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailprov.errors import ConfigError
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.resources.base import Change, Command, Desired, HostContext, Phase, Resource

NAME = "repositories"
REPO_DIR = "/etc/yum.repos.d"
EPEL_REPO = f"{REPO_DIR}/epel.repo"

# The lines of every .repo file that say which repositories exist, whether enabled, and where they point.
REPOS_READ = Read(
    "repos",
    f'for f in {REPO_DIR}/*.repo; do [ -f "$f" ] && echo "@file $f" &&'
    " grep -E '^[[:space:]]*(\\[|enabled[[:space:]]*=|baseurl[[:space:]]*=|mirrorlist[[:space:]]*=|"
    'metalink[[:space:]]*=)\' "$f"; done; true',
)

# Stock mirror hosts that stopped serving an end-of-life release.
STOCK_OS = ("mirrorlist.centos.org", "mirror.centos.org")
STOCK_EPEL = ("mirrors.fedoraproject.org", "download.fedoraproject.org")

# sh functions the commands call (sed -i and grep -E are in EL5's GNU tools; no bash-only syntax).
SHELL = r"""
mp_repos_archive() {
  for f in /etc/yum.repos.d/CentOS-*.repo; do
    [ -f "$f" ] || continue
    sed -i -e 's|^mirrorlist=|#mirrorlist=|' \
      -e "s|^#*baseurl=http://mirror\.centos\.org/centos/\$releasever|baseurl=$1|" "$f" || return 1
  done
  yum clean all >/dev/null 2>&1; return 0
}
mp_repos_archive_epel() {
  [ -f /etc/yum.repos.d/epel.repo ] || { echo "no /etc/yum.repos.d/epel.repo to point at $1"; return 1; }
  sed -i -e 's|^metalink=|#metalink=|' -e 's|^mirrorlist=|#mirrorlist=|' \
    -e "s|^#*baseurl=.*/epel/[0-9]*/\$basearch/*\$|baseurl=$1|" /etc/yum.repos.d/epel.repo || return 1
  yum clean all >/dev/null 2>&1; return 0
}
"""


@dataclass(frozen=True)
class Repo:
    id: str
    file: str
    enabled: bool = True  # yum's default when a section has no enabled= line
    baseurl: str = ""
    mirrorlist: str = ""  # mirrorlist= or metalink=

    @property
    def where(self) -> str:
        return self.baseurl or self.mirrorlist


def parse_repos(body: str) -> tuple[Repo, ...]:
    """The `repos` read: `@file PATH` then each file's section, enabled, baseurl, mirrorlist/metalink lines."""
    out: list[Repo] = []
    path = ""
    for line in lines_of(body):
        line = line.strip()
        if line.startswith("@file "):
            path = line[len("@file ") :]
            continue
        section = re.match(r"^\[([^\]]+)\]", line)
        if section:
            out.append(Repo(section.group(1).strip(), path))
            continue
        key, sep, value = line.partition("=")
        if not sep or not out:
            continue
        key, value, last = key.strip(), value.strip(), out[-1]
        if key == "enabled":
            out[-1] = Repo(last.id, last.file, value not in ("0", "no", "false", "False"), last.baseurl,
                           last.mirrorlist)  # fmt: skip
        elif key == "baseurl":
            out[-1] = Repo(last.id, last.file, last.enabled, value, last.mirrorlist)
        elif key in ("mirrorlist", "metalink"):
            out[-1] = Repo(last.id, last.file, last.enabled, last.baseurl, value)
    return tuple(out)


@dataclass(frozen=True)
class RepoState:
    repos: tuple[Repo, ...]

    def epel(self) -> Repo | None:
        return next((r for r in self.repos if r.id == "epel" and r.enabled), None)

    def stock_os(self) -> tuple[Repo, ...]:
        """Enabled repositories that still point at the release's stock (now dead) mirrors."""
        return tuple(r for r in self.repos if r.enabled and any(h in r.where for h in STOCK_OS))

    def stock_epel(self) -> bool:
        epel = self.epel()
        return epel is not None and any(h in epel.where for h in STOCK_EPEL) and "/archive/" not in epel.baseurl


@dataclass(frozen=True)
class RepoWish(Desired):
    epel: bool = False  # the site asked for EPEL
    archived: bool = False  # the site allows pointing an EOL release at the archives


def epel_repo_file(baseurl: str, major: int) -> str:
    """/etc/yum.repos.d/epel.repo for a site's EPEL mirror. Packages are still checked against the EPEL key,
    which must be on the host (/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-N: epel-release ships it)."""
    return (
        "# Managed by mailprov (repositories.epel_baseurl).\n"
        "[epel]\n"
        f"name=Extra Packages for Enterprise Linux {major} (mirror)\n"
        f"baseurl={baseurl}\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        f"gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-{major}\n"
    )


class Repositories(Resource[RepoWish]):
    name = NAME
    shell = (SHELL,)

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        return (REPOS_READ,) if ctx.dialect.repos.epel_only else ()

    def desired(self, ctx: HostContext) -> RepoWish:
        r = ctx.site.repositories
        asked = r.epel or r.archived or r.epel_baseurl or r.archive_baseurl
        if not ctx.dialect.repos.epel_only and asked:
            note = f"repositories: {ctx.host.name} is not of the RHEL family: EPEL and the archives do not apply"
            return RepoWish(notes=(note,))
        return RepoWish(epel=r.epel, archived=r.archived)

    def changes(self, ctx: HostContext, desired: RepoWish, facts: Facts) -> Sequence[Change]:
        repos = ctx.dialect.repos
        if not repos.epel_only:
            return ()
        from mailprov.resources.packages import missing_packages

        state = RepoState(parse_repos(facts.section(REPOS_READ.key)))
        site = ctx.site.repositories
        missing = missing_packages(ctx, facts)
        needs_epel = [p for p in missing if p in repos.epel_only]
        commands: list[Command] = []
        done: list[str] = []
        installs = bool(missing) or (desired.epel and state.epel() is None)
        # 1. An end-of-life release on its dead stock mirrors: archives, or a refusal (only when yum must run).
        dead = state.stock_os() if repos.os_archive else ()
        if dead and installs:
            base = site.archive_baseurl or repos.os_archive
            if not desired.archived:
                raise ConfigError(
                    f"{ctx.host.name} runs {repos.release}, which is end-of-life: its repositories "
                    f"({', '.join(r.id for r in dead)}) still point at the stock mirrors, which are gone, so "
                    f"yum cannot install {' '.join(missing) or 'epel-release'}. Set `repositories: {{archived: "
                    f"true}}` to point them at {repos.os_archive} (or archive_baseurl: a mirror of it)",
                    field="repositories.archived",
                )
            commands.append(Command(("mp_repos_archive", base)))
            done.append(f"point {', '.join(r.id for r in dead)} at {base}")
        # 2. EPEL: asked for, or needed by a package to install.
        epel = state.epel()
        if epel is None and (desired.epel or needs_epel):
            if not desired.epel:
                raise ConfigError(
                    f"{ctx.host.name} ({repos.release}) has no enabled EPEL repository, and "
                    f"{', '.join(needs_epel)} ({', '.join(_features(needs_epel))}) "
                    f"{'is' if len(needs_epel) == 1 else 'are'} in EPEL only: yum would skip "
                    f"{'it' if len(needs_epel) == 1 else 'them'} and the apply would end half-done. Set "
                    "`repositories: {epel: true}` (mailprov installs epel-release), or enable EPEL on the host "
                    f"yourself, or turn {' and '.join(_features(needs_epel))} off",
                    field="repositories.epel",
                )
            if site.epel_baseurl:
                text = epel_repo_file(site.epel_baseurl, ctx.dialect.platform.os_major)
                commands.append(Command(("tee", EPEL_REPO), stdin=text))
                done.append(f"EPEL from {site.epel_baseurl}")
            else:
                commands.append(Command(repos.epel_install))
                done.append("install epel-release")
                if repos.epel_archive:
                    commands.append(self._epel_archive(ctx, desired, missing, repos.epel_archive))
                    done.append(f"EPEL at {repos.epel_archive}")
        elif epel is not None and repos.epel_archive and state.stock_epel() and (needs_epel or desired.epel):
            commands.append(self._epel_archive(ctx, desired, missing, site.epel_baseurl or repos.epel_archive))
            done.append(f"point epel at {site.epel_baseurl or repos.epel_archive}")
        if not commands:
            return ()
        return (Change(NAME, Phase.PREPARE, "set", "; ".join(done), commands=tuple(commands)),)

    @staticmethod
    def _epel_archive(ctx: HostContext, desired: RepoWish, missing: Sequence[str], url: str) -> Command:
        repos = ctx.dialect.repos
        if not desired.archived and not ctx.site.repositories.epel_baseurl:
            raise ConfigError(
                f"{ctx.host.name} runs {repos.release}, whose EPEL is archived: EPEL's stock mirrors no longer "
                f"serve it, so yum cannot install {' '.join(missing) or 'from EPEL'}. Set `repositories: "
                f"{{archived: true}}` to point EPEL at {repos.epel_archive} (or epel_baseurl: a mirror of it)",
                field="repositories.archived",
            )
        return Command(("mp_repos_archive_epel", url))


def _features(packages: Sequence[str]) -> list[str]:
    """The site features that ask for these EPEL packages, for the refusal's way out."""
    return list(dict.fromkeys("DKIM signing" if p.startswith("opendkim") else "greylisting" for p in packages))
