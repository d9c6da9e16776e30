"""EL probe answers (tests/data/el-fw) in, plans out: the example site on CentOS 5/6/7 and Rocky 9.

`run_read` runs one of mailprov's own read scripts with fake commands on PATH that print what the EL
release prints, so the shell that digests old formats (iptables 1.3.5's trailing spaces, firewalld's
listings) is tested, not only the Python parser after it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.facts.files import file_md5
from mailprov.facts.probe import EOF_MARK, Facts, Read, parse_probe
from mailprov.facts.traits import parse_traits
from mailprov.plan import HostPlan, build_plan, reads
from mailprov.resources.base import HostContext, ManagedFile

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "el-fw"
HOST = "mail.example.com"


def example() -> Site:
    """The guide's site, with EPEL and the CentOS archives asked for: these tests are about the firewall,
    TLS and SELinux, not about where postgrey comes from (tests/unit/resources/test_el.py covers that)."""
    site = load_site(REPO / "inventories" / "example.com.yaml")
    repositories = site.repositories.model_copy(update={"epel": True, "archived": True})
    return site.model_copy(update={"repositories": repositories})


def platform(release: str) -> Facts:
    """The platform and traits sections a host of `release` answers (centos5, centos6, rocky9 …)."""
    return parse_probe((DATA / f"{release}-platform.txt").read_text(), HOST)


def context(facts: Facts, site: Site | None = None) -> HostContext:
    site = site or example()
    return HostContext.of(site, site.hosts[0], facts.platform, REPO / "inventories", parse_traits(facts.sections))


def with_sections(facts: Facts, sections: dict[str, str]) -> Facts:
    return dataclasses.replace(facts, sections={**facts.sections, **sections})


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def run_read(read: Read, tools: dict[str, str], tmp_path: Path) -> str:
    """The section `read` prints on a host whose commands are `tools` (name → sh body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C"}
    out = subprocess.run(["sh", "-c", read.script], capture_output=True, text=True, env=env, check=False)
    return out.stdout


def cat(path: Path) -> str:
    """A fake command's body that prints a fixture file whatever its arguments."""
    return f"cat {os.fspath(path)}"


def file_section(f: ManagedFile) -> str:
    """What the probe reads for a file the host already has exactly as mailprov renders it."""
    text = f.text()
    return f"{f.owner} {f.group} {f.mode:o} 1764700000\n{file_md5(text)}  -\n{text}\n{EOF_MARK}\n"


def converged(ctx: HostContext, facts: Facts, files: tuple[ManagedFile, ...]) -> Facts:
    """`facts` plus the given files as rendered, and an empty answer for every other read."""
    sections = {r.key: "" for r in reads(ctx) if r.key not in facts.sections}
    sections.update({f"file {f.path}": file_section(f) for f in files})
    return with_sections(facts, sections)


def plan(facts: Facts, site: Site | None = None) -> HostPlan:
    ctx = context(facts, site)
    return build_plan(ctx, facts)
