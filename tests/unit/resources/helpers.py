"""Facts in, changes out: each resource against the probe output captured from real lab hosts (Debian 12
and 13, converged by `mailprov apply`; recaptured by tests/data/capture_probes.py). No network."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.facts.probe import Facts, parse_probe
from mailprov.plan import HostPlan, build_plan
from mailprov.resources.base import HostContext

DATA = Path(__file__).resolve().parents[2] / "data"
PASSWORD = "Live-john-pw-42"  # the lab password the captured shadow hash was made from
DISTROS = {"bookworm": 0, "trixie": 1}


def captured(distro: str) -> Facts:
    host = f"mx{DISTROS[distro] + 1}.example.test"
    return parse_probe((DATA / f"probe-{distro}.txt").read_text(), host)


def lab_site() -> Site:
    return load_site(DATA / "lab-site.yaml")


def site_from(text: str, tmp_path: Path) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return load_site(path)


def site_text() -> str:
    return (DATA / "lab-site.yaml").read_text()


def context(site: Site, distro: str, facts: Facts | None = None) -> HostContext:
    facts = facts or captured(distro)
    return HostContext.of(site, site.hosts[DISTROS[distro]], facts.platform, DATA)


def plan_for(site: Site, distro: str, facts: Facts | None = None) -> HostPlan:
    facts = facts or captured(distro)
    return build_plan(context(site, distro, facts), facts)


def with_section(facts: Facts, key: str, body: str) -> Facts:
    """The same facts with one section's output replaced (as if the host said `body`)."""
    return dataclasses.replace(facts, sections={**facts.sections, key: body})


def section_key(facts: Facts, prefix: str, distro: str = "bookworm") -> str:
    """The key of the read the lab site makes on `distro` that starts with `prefix` (e.g. "packages ")."""
    from mailprov.plan import reads

    (key,) = [r.key for r in reads(context(lab_site(), distro, facts)) if r.key.startswith(prefix)]
    return key


def with_new_reads(site: Site, distro: str, facts: Facts | None = None) -> Facts:
    """Captured facts plus an empty answer (nothing there: no file, no key) for every read the captured
    probe did not make, as a host that never had the feature answers."""
    from mailprov.plan import reads

    facts = facts or captured(distro)
    missing = {r.key: "" for r in reads(context(site, distro, facts)) if not facts.has(r.key)}
    return dataclasses.replace(facts, sections={**facts.sections, **missing})
