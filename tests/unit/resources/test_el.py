"""EL packages and repositories, as tables: the probe answers of a FRESH and a CONVERGED host of each
release (tests/data/el/, written by tests/data/el/make_probes.py in the probe's exact framing) in,
plans out. No network."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.errors import ConfigError, FactsError
from mailprov.facts.probe import Facts, parse_probe
from mailprov.plan import HostPlan, build_plan, reads
from mailprov.resources.base import HostContext
from mailprov.resources.repositories import REPOS_READ, SHELL, RepoState, parse_repos

EL = Path(__file__).resolve().parents[2] / "data" / "el"
RELEASES = ("centos5", "centos6", "centos7", "rocky8", "rocky9", "rocky10", "alma9", "alma10")
HOST = "mail.example.test"


def probe(release: str, state: str) -> Facts:
    return parse_probe((EL / f"probe-{release}-{state}.txt").read_text(), HOST)


def site_file(release: str) -> Path:
    """site.yaml, or the release's own (site-centos5.yaml: CentOS 5 cannot enforce any TLS minimum, so
    its site has no TLS; make_probes.py writes its answers for the same file)."""
    own = EL / f"site-{release}.yaml"
    return own if own.exists() else EL / "site.yaml"


def el_site(tmp_path: Path | None = None, release: str = "rocky9", **repositories: object) -> Site:
    """The EL site (EPEL and archives asked for) for `release`, or with `repositories:` replaced."""
    text = site_file(release).read_text()
    if tmp_path is None:
        return load_site(site_file(release))
    head = text[: text.index("repositories:")]
    items = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in repositories.items())
    extra = f"repositories: {{{items}}}\n" if items else ""
    path = tmp_path / "site.yaml"
    path.write_text(head + extra)
    return load_site(path)


def plan(site: Site, facts: Facts) -> HostPlan:
    return build_plan(HostContext.of(site, site.hosts[0], facts.platform, EL), facts)


def no_greylisting(tmp_path: Path) -> Site:
    text = (EL / "site.yaml").read_text()
    text = text.replace("greylisting:\n  enabled: true", "greylisting:\n  enabled: false")
    text = text.replace("    - check_policy_service: postgrey\n", "")
    text = text[: text.index("repositories:")]
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return load_site(path)


def commands(p: HostPlan, key: str) -> list[str]:
    (change,) = [c for c in p.changes if c.key == key]
    return [c.display() for c in change.commands]


# --- the converged case: nothing to do --------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_a_converged_host_plans_no_change(release: str) -> None:
    p = plan(el_site(release=release), probe(release, "converged"))
    assert [c.key for c in p.changes] == [] and p.handlers == ()


def test_centos5_with_the_sites_tls_minimum_is_refused_before_anything_changes() -> None:
    """Postfix 2.3 with OpenSSL 0.9.8 cannot enforce any TLS minimum: the TLS site is refused there."""
    site = el_site()
    facts = probe("centos5", "fresh")  # answered for site-centos5.yaml: the TLS reads answered empty
    ctx = HostContext.of(site, site.hosts[0], facts.platform, EL)
    missing = {r.key: "" for r in reads(ctx) if r.key not in facts.sections}
    with pytest.raises(ConfigError) as err:
        plan(site, dataclasses.replace(facts, sections={**facts.sections, **missing}))
    assert err.value.field == "tls.min_protocol" and "cannot enforce any TLS minimum" in str(err.value)


@pytest.mark.parametrize("release", ["centos6", "rocky9"])
def test_a_converged_host_needs_no_repositories_setting(tmp_path: Path, release: str) -> None:
    """postgrey is installed already: nothing to install, so neither EPEL nor the archives are needed."""
    p = plan(el_site(tmp_path), probe(release, "converged"))
    assert [c.key for c in p.changes] == []


# --- fresh hosts: a cold package cache, the release's own versions -------------------------------------


EXPECTED = {
    # release: (Postfix, Dovecot that the probe decided, repository commands, packages installed)
    "centos5": ("2.3.3", "1.0.7", [
        "mp_repos_archive http://vault.centos.org/5.11",
        "rpm -Uvh https://archives.fedoraproject.org/pub/archive/epel/5/x86_64/epel-release-5-4.noarch.rpm",
        "mp_repos_archive_epel 'https://archives.fedoraproject.org/pub/archive/epel/5/$basearch/'",
    ], "postgrey postfix dovecot"),
    "centos6": ("2.6.6", "2.0.9", [
        "mp_repos_archive http://vault.centos.org/6.10",
        "rpm -Uvh https://archives.fedoraproject.org/pub/archive/epel/6/x86_64/epel-release-6-8.noarch.rpm",
        "mp_repos_archive_epel 'https://archives.fedoraproject.org/pub/archive/epel/6/$basearch/'",
    ], "postgrey dovecot"),
    "centos7": ("2.10.1", "2.2.36", [
        "mp_repos_archive http://vault.centos.org/7.9.2009",
        "yum -y install epel-release",
        "mp_repos_archive_epel 'https://archives.fedoraproject.org/pub/archive/epel/7/$basearch/'",
    ], "postgrey dovecot"),
    "rocky8": ("3.5.8", "2.3.16", ["dnf -y install epel-release"], "postgrey postfix dovecot"),
    "rocky9": ("3.5.25", "2.3.16", ["dnf -y install epel-release"], "postgrey postfix dovecot"),
    "rocky10": ("3.8.5", "2.3.21", ["dnf -y install epel-release"], "postgrey postfix postfix-lmdb dovecot"),
    "alma9": ("3.5.25", "2.3.16", ["dnf -y install epel-release"], "postgrey postfix dovecot"),
    "alma10": ("3.8.5", "2.3.21", ["dnf -y install epel-release"], "postgrey postfix postfix-lmdb dovecot"),
}  # fmt: skip


@pytest.mark.parametrize("release", RELEASES)
def test_a_fresh_host_plans_repositories_then_a_checked_install(release: str) -> None:
    facts = probe(release, "fresh")
    assert facts.section("candidates") == ""  # no package cache was asked
    postfix, dovecot, repo_commands, packages = EXPECTED[release]
    assert (str(facts.platform.postfix_version), str(facts.platform.dovecot_version)) == (postfix, dovecot)
    p = plan(el_site(release=release), facts)
    assert [c.key for c in p.changes][:2] == ["repositories", "packages"]  # repositories first
    assert commands(p, "repositories") == repo_commands
    tool = facts.platform.package_manager.value
    # every package is checked after the install: yum on EL5-7 skips a name it cannot find and exits 0
    assert commands(p, "packages") == [f"{tool} -y install {packages}", f"rpm -q {packages}"]


def test_a_fresh_rocky9_with_a_cold_cache_plans_an_install() -> None:
    facts = probe("rocky9", "fresh")
    assert "postfix_version" not in facts.section("kv")  # nothing installed, no yum/dnf cache read
    p = plan(el_site(), facts)
    (change,) = [c for c in p.changes if c.key == "packages"]
    assert change.summary == "install postgrey postfix dovecot"
    assert {h.owner for h in change.notifies} == {"postfix", "dovecot", "postgrey"}
    assert "main_mailer_type" not in str(change.commands)  # no debconf on EL


def test_el10_without_postfix_takes_lmdb_from_the_release() -> None:
    facts = probe("rocky10", "fresh")
    assert facts.platform.default_database_type == "lmdb" and "hash" not in facts.platform.map_types
    main_cf = next(f for f in plan(el_site(), facts).files if f.path == "/etc/postfix/main.cf").text()
    assert "alias_maps = lmdb:/etc/aliases" in main_cf and "hash:" not in main_cf and "btree:" not in main_cf


def test_an_unknown_el_release_gets_el_advice_not_apt() -> None:
    text = (EL / "probe-rocky9-fresh.txt").read_text().replace('VERSION_ID="9.5"', 'VERSION_ID="11.0"')
    with pytest.raises(FactsError) as err:
        parse_probe(text, HOST)
    assert "dnf -y install postfix dovecot" in str(err.value) and "apt-get" not in str(err.value)


# --- refusals at plan time: never half-applied -------------------------------------------------------------


@pytest.mark.parametrize("release", ["centos7", "rocky9", "rocky10"])
def test_greylisting_without_epel_is_refused_with_the_fix(tmp_path: Path, release: str) -> None:
    site = el_site(tmp_path, archived=True)
    with pytest.raises(ConfigError) as err:
        plan(site, probe(release, "fresh"))
    assert err.value.field == "repositories.epel"
    message = str(err.value)
    assert "postgrey" in message and "EPEL" in message and "`repositories: {epel: true}`" in message


def reread(site: Site, facts: Facts) -> Facts:
    """The facts as the probe for `site` reads them: its package and service reads (other names than the
    fixture's site) answered name by name from the fixture's answers."""
    ctx = HostContext.of(site, site.hosts[0], facts.platform, EL)
    sections = dict(facts.sections)
    for prefix in ("rpm ", "enabled "):
        (key,) = [r.key for r in reads(ctx) if r.key.startswith(prefix)]
        (old,) = [k for k in facts.sections if k.startswith(prefix)]
        lines = [ln for ln in facts.section(old).split("\n") if ln.strip()]
        sections[key] = "\n".join(ln for n in key.split()[1:] for ln in lines if n in ln.split()[:2])
    return dataclasses.replace(facts, sections=sections)


def test_without_greylisting_no_epel_is_needed(tmp_path: Path) -> None:
    site = no_greylisting(tmp_path)
    p = plan(site, reread(site, probe("rocky9", "fresh")))
    assert "repositories" not in [c.key for c in p.changes]
    assert commands(p, "packages")[0] == "dnf -y install postfix dovecot"


@pytest.mark.parametrize("release", ["centos5", "centos6", "centos7"])
def test_an_eol_centos_on_its_dead_mirrors_is_refused_saying_what_to_set(tmp_path: Path, release: str) -> None:
    site = el_site(tmp_path, release, epel=True)
    with pytest.raises(ConfigError) as err:
        plan(site, probe(release, "fresh"))
    assert err.value.field == "repositories.archived"
    message = str(err.value)
    assert "end-of-life" in message and "`repositories: {archived: true}`" in message
    assert "http://vault.centos.org/" in message and "mirrorlist.centos.org" not in message.split("Set")[1]


def test_an_eol_centos_that_needs_nothing_installed_is_not_refused(tmp_path: Path) -> None:
    """Stock (dead) mirrors on a host that has every package: yum never runs, so no refusal."""
    facts = probe("centos6", "converged")
    stock = (EL / "probe-centos6-fresh.txt").read_text().split("@@MP0 repos\n")[1].split("\n@@MP0 ")[0]
    facts = dataclasses.replace(facts, sections={**facts.sections, "repos": stock + "\n[epel]\nenabled=1"})
    assert plan(el_site(tmp_path, epel=True), facts).changes == ()


def test_epel_enabled_by_the_admin_is_used_as_it_is(tmp_path: Path) -> None:
    facts = probe("rocky9", "fresh")
    repos = facts.section("repos") + "\n@file /etc/yum.repos.d/epel.repo\n[epel]\nbaseurl=http://m.example/epel/9/\n"
    facts = dataclasses.replace(facts, sections={**facts.sections, "repos": repos})
    p = plan(el_site(tmp_path), facts)  # the site does not ask for EPEL: the host has it
    assert "repositories" not in [c.key for c in p.changes]


def test_a_site_mirror_of_epel_is_written_as_the_repo_file(tmp_path: Path) -> None:
    site = el_site(tmp_path, epel=True, epel_baseurl="http://mirror.example.net/epel/9/$basearch/")
    p = plan(site, probe("rocky9", "fresh"))
    (change,) = [c for c in p.changes if c.key == "repositories"]
    (command,) = change.commands
    assert command.argv == ("tee", "/etc/yum.repos.d/epel.repo")
    assert "baseurl=http://mirror.example.net/epel/9/$basearch/\n" in str(command.stdin_text())
    assert "gpgcheck=1" in str(command.stdin_text())


def test_a_site_mirror_of_the_vault_replaces_it(tmp_path: Path) -> None:
    site = el_site(tmp_path, epel=True, archived=True, archive_baseurl="http://mirror.example.net/vault/7.9.2009")
    p = plan(site, probe("centos7", "fresh"))
    assert commands(p, "repositories")[0] == "mp_repos_archive http://mirror.example.net/vault/7.9.2009"


# --- reading the host ------------------------------------------------------------------------------------


def test_installed_state_comes_from_rpm_on_el_even_with_dpkg_query_present() -> None:
    site = el_site()
    facts = probe("centos7", "fresh")
    ctx = HostContext.of(site, site.hosts[0], facts.platform, EL)
    (read,) = [r for r in reads(ctx) if r.key.startswith("rpm ")]
    assert read.script.startswith("rpm -q --qf ") and "dpkg" not in read.script


def test_repository_files_parse_into_enabled_repositories() -> None:
    body = (
        "@file /etc/yum.repos.d/CentOS-Base.repo\n[base]\n"
        "mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os\n"
        "[centosplus]\nmirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=centosplus\n"
        "enabled=0\n@file /etc/yum.repos.d/epel.repo\n[epel]\n"
        "metalink=https://mirrors.fedoraproject.org/metalink?repo=epel-7&arch=$basearch\nenabled = 1\n"
    )
    repos = parse_repos(body)
    assert [(r.id, r.enabled) for r in repos] == [("base", True), ("centosplus", False), ("epel", True)]
    assert repos[0].file == "/etc/yum.repos.d/CentOS-Base.repo" and "mirrorlist.centos.org" in repos[0].where
    assert REPOS_READ.key == "repos"


# --- the repository commands, run on copies of the stock files ---------------------------------------------


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_archiving_points_the_stock_repositories_at_the_vault_and_the_read_sees_it(tmp_path: Path, shell: str) -> None:
    """The read and the sh functions run (dash, bash) on the stock CentOS 7 files in a scratch folder: before,
    base/updates/extras are on the dead mirrors; after, on the vault, and EPEL on the archive."""
    for f in (EL / "repos").iterdir():
        shutil.copy(f, tmp_path / f.name)

    def run(script: str) -> str:
        text = (SHELL + script).replace("/etc/yum.repos.d", str(tmp_path))
        result = subprocess.run([shell, "-c", text], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    before = RepoState(parse_repos(run(REPOS_READ.script)))
    assert [r.id for r in before.stock_os()] == ["base", "updates", "extras"] and before.stock_epel()
    run("mp_repos_archive http://vault.centos.org/7.9.2009 && "
        "mp_repos_archive_epel 'https://archives.fedoraproject.org/pub/archive/epel/7/$basearch/'")  # fmt: skip
    after = RepoState(parse_repos(run(REPOS_READ.script)))
    assert after.stock_os() == () and not after.stock_epel()
    base = {r.id: r.baseurl for r in after.repos}
    assert base["base"] == "http://vault.centos.org/7.9.2009/os/$basearch/"
    assert base["cr"] == "http://vault.centos.org/7.9.2009/cr/$basearch/"  # disabled, rewritten all the same
    assert base["epel"] == "https://archives.fedoraproject.org/pub/archive/epel/7/$basearch/"
    text = (tmp_path / "CentOS-Base.repo").read_text()
    assert "\nmirrorlist=" not in text and "#mirrorlist=http://mirrorlist.centos.org" in text
    assert "gpgcheck=1" in text  # only the mirrors changed
    # a second run changes nothing (the apply may be repeated)
    run("mp_repos_archive http://vault.centos.org/7.9.2009")
    assert (tmp_path / "CentOS-Base.repo").read_text() == text


def test_repositories_on_a_debian_host_are_a_note_not_a_change(tmp_path: Path) -> None:
    from resources.helpers import plan_for, site_from, site_text

    site = site_from(site_text() + "repositories: {epel: true, archived: true}\n", tmp_path)
    p = plan_for(site, "bookworm")  # the converged lab host
    assert p.changes == ()
    assert any("not of the RHEL family" in n for n in p.notes)


def test_the_probe_answers_follow_what_the_resources_read() -> None:
    """The files are make_probes.py's output for today's reads: a resource that reads something new makes
    this fail until they are regenerated (`.venv/bin/python tests/data/el/make_probes.py`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_probes", EL / "make_probes.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    sys.modules["make_probes"] = make  # its dataclasses look their module up
    spec.loader.exec_module(make)
    for release in RELEASES:
        site = el_site(release=release)
        fresh = make.answer(release, site, converged=False)
        converged = make.answer(release, site, converged=True, files=make.written(release, site, fresh))
        assert (EL / f"probe-{release}-fresh.txt").read_text() == fresh, release
        assert (EL / f"probe-{release}-converged.txt").read_text() == converged, release


def test_a_stock_epel_on_an_eol_release_goes_to_the_archive_or_the_sites_mirror(tmp_path: Path) -> None:
    facts = probe("centos7", "fresh")
    vault = facts.section("repos").replace(
        "mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=",
        "baseurl=http://vault.centos.org/7.9.2009/",
    )
    stock_epel = "\n@file /etc/yum.repos.d/epel.repo\n[epel]\nmetalink=https://mirrors.fedoraproject.org/metalink?repo=epel-7&arch=$basearch\n"
    facts = dataclasses.replace(facts, sections={**facts.sections, "repos": vault + stock_epel})
    with pytest.raises(ConfigError) as err:
        plan(el_site(tmp_path, epel=True), facts)
    assert err.value.field == "repositories.archived" and "EPEL is archived" in str(err.value)
    p = plan(el_site(tmp_path, epel=True, archived=True), facts)
    assert commands(p, "repositories") == [
        "mp_repos_archive_epel 'https://archives.fedoraproject.org/pub/archive/epel/7/$basearch/'"
    ]
    p = plan(el_site(tmp_path, epel=True, epel_baseurl="http://mirror.example.net/epel/7/"), facts)
    assert commands(p, "repositories") == ["mp_repos_archive_epel http://mirror.example.net/epel/7/"]


def test_dkim_needs_epel_too_and_is_refused_without_it(tmp_path: Path) -> None:
    """OpenDKIM (main's DKIM resource) is in EPEL only, like postgrey: a site without greylisting but with
    DKIM still needs EPEL on EL, and says so before anything runs."""
    site = no_greylisting(tmp_path)
    path = tmp_path / "site.yaml"
    path.write_text(path.read_text() + "dkim: {selector: s1}\n")
    site = load_site(path)
    facts = reread(site, probe("rocky9", "fresh"))
    ctx = HostContext.of(site, site.hosts[0], facts.platform, EL)
    facts = dataclasses.replace(facts, sections={**{r.key: "" for r in reads(ctx)}, **facts.sections})
    with pytest.raises(ConfigError) as err:
        plan(site, facts)
    assert err.value.field == "repositories.epel"
    assert "opendkim" in str(err.value) and "DKIM signing" in str(err.value) and "greylisting" not in str(err.value)
    path.write_text(path.read_text() + "repositories: {epel: true}\n")
    p = plan(load_site(path), facts)
    assert commands(p, "repositories") == ["dnf -y install epel-release"]
    assert "opendkim" in commands(p, "packages")[0]
