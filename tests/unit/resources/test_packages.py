from __future__ import annotations

from pathlib import Path

from mailprov.resources.packages import parse_installed
from resources.helpers import captured, lab_site, plan_for, section_key, site_from, site_text, with_section


def test_installed_packages_parse_from_dpkg_and_rpm() -> None:
    dpkg = "postfix ii 3.7.11-0+deb12u1\ndovecot-core un <none>\npostgrey ii 1.37-1.1\n"
    assert parse_installed(dpkg) == {"postfix": "3.7.11-0+deb12u1", "postgrey": "1.37-1.1"}
    # rpm's answer for absent packages names no package (not {"package": "is"}), whatever their names
    rpm = "postfix 3.5.25-1.el9\npackage iptables-services is not installed\npackage dovecot is not installed\n"
    assert parse_installed(rpm, rpm=True) == {"postfix": "3.5.25-1.el9"}


def test_converged_host_installs_nothing() -> None:
    plan = plan_for(lab_site(), "bookworm")
    assert not [c for c in plan.changes if c.key in ("packages", "mta")]


def test_missing_package_is_installed_preseeded_and_restarts_services() -> None:
    facts = captured("bookworm")
    key = section_key(facts, "packages ")
    body = "\n".join(line for line in facts.section(key).split("\n") if not line.startswith("postgrey "))
    plan = plan_for(lab_site(), "bookworm", with_section(facts, key, body))
    (change,) = [c for c in plan.changes if c.key == "packages"]
    assert change.summary == "install postgrey"
    assert [c.display() for c in change.commands] == [
        "debconf-set-selections <<(stdin redacted)",
        "apt-get -q update",
        "env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300"
        " -o Dpkg::Options::=--force-confold install postgrey",
    ]
    assert {h.owner for h in change.notifies} == {"postfix", "dovecot", "postgrey"}


def test_previous_mta_is_removed() -> None:
    facts = captured("trixie")
    key = section_key(facts, "packages ", "trixie")
    plan = plan_for(
        lab_site(), "trixie", with_section(facts, key, facts.section(key) + "\nexim4-daemon-light ii 4.98\n")
    )
    (change,) = [c for c in plan.changes if c.key == "mta"]
    assert change.commands[-1].argv[-1] == "exim4-daemon-light"


def test_packages_come_from_the_resources_that_need_them(tmp_path: Path) -> None:
    text = site_text().replace("greylisting:\n  enabled: true", "greylisting:\n  enabled: false")
    site = site_from(text.replace("    - check_policy_service: postgrey\n", ""), tmp_path)
    key = section_key(captured("bookworm"), "packages ")
    assert "postgrey" in key
    from mailprov.resources.packages import wanted
    from resources.helpers import context

    assert "postgrey" not in wanted(context(site, "bookworm"))
    assert "postgrey" in wanted(context(lab_site(), "bookworm"))
