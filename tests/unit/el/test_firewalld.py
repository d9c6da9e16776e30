"""Issue 10 item 7: firewalld's zones that matter are read back and made to match the site: what left the
site is removed, zones bound to interfaces besides `public` are handled, drift shows in the plan."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from el.helpers import DATA, context, converged, example, plan, platform, run_read, with_sections
from mailprov.config.model import Site
from mailprov.errors import FactsError
from mailprov.facts.probe import Facts
from mailprov.resources import firewalld
from mailprov.resources.firewall import Firewall


def _firewall_cmd(runtime: str, permanent: str, default: str = "public") -> str:
    """A fake firewall-cmd answering the read's four calls from fixture files."""
    return (
        'case "$*" in\n'
        "  --state) echo running;;\n"
        f"  --get-default-zone) echo {default};;\n"
        f"  --list-all-zones) cat {DATA / runtime};;\n"
        f'  "--permanent --list-all-zones") cat {DATA / permanent};;\n'
        '  *) echo "unexpected: $*" >&2; exit 2;;\n'
        "esac"
    )


def _facts(tmp_path: Path, release: str, runtime: str, permanent: str, site: Site | None = None) -> Facts:
    facts = platform(release)
    ctx = context(facts, site)
    body = run_read(firewalld.STATE_READ, {"firewall-cmd": _firewall_cmd(runtime, permanent)}, tmp_path)
    return converged(ctx, with_sections(facts, {"firewalld": body}), Firewall().desired(ctx).files)


def _firewall_changes(facts: Facts, site: Site | None = None) -> list[tuple[str, str, list[str]]]:
    p = plan(facts, site)
    return [(c.key, c.action, [cmd.display() for cmd in c.commands]) for c in p.changes if "firewall" in c.key]


def test_the_listing_parses_as_firewalld_0_6_and_1_3_print_it(tmp_path: Path) -> None:
    zones = firewalld.parse_zones((DATA / "centos7-firewalld-converged.txt").read_text())
    assert zones["public"].interfaces == ("eth0",)
    assert zones["public"].ports == ("25/tcp", "993/tcp", "995/tcp")
    assert len(zones["public"].rich) == 4 and zones["internal"].rich == ()
    r9 = firewalld.parse_zones((DATA / "rocky9-firewalld-fresh.txt").read_text())
    assert r9["public"].services == ("cockpit", "dhcpv6-client", "ssh") and r9["public"].interfaces == ("enp1s0",)


def test_a_converged_centos7_plans_no_firewall_change(tmp_path: Path) -> None:
    facts = _facts(tmp_path, "centos7", "centos7-firewalld-converged.txt", "centos7-firewalld-converged-permanent.txt")
    assert _firewall_changes(facts) == []
    assert "firewall load" not in [h.name for h in plan(facts).handlers]


def test_a_fresh_rocky9_opens_the_site_in_its_public_zone(tmp_path: Path) -> None:
    facts = _facts(tmp_path, "rocky9", "rocky9-firewalld-fresh.txt", "rocky9-firewalld-fresh-permanent.txt")
    ((key, action, commands),) = _firewall_changes(facts)
    assert (key, action) == ("firewalld:public", "update")
    base = "firewall-cmd --permanent --zone=public"
    assert commands.pop(0) == "mp_firewalld_keep /etc/firewalld/zones public"  # for a rollback
    assert commands[:3] == [f"{base} --add-port=25/tcp", f"{base} --add-port=993/tcp", f"{base} --add-port=995/tcp"]
    assert commands[3] == (
        f'{base} \'--add-rich-rule=rule family="ipv4" source address="192.168.0.0/24" port port="143" '
        'protocol="tcp" accept\''
    )
    assert not any("remove" in c for c in commands)  # cockpit, dhcpv6-client: the admin's, left alone
    (step,) = [h for h in plan(facts).handlers if h.name == "firewall load"]
    assert [c.display() for c in step.commands] == ["firewall-cmd --reload"]


def test_a_service_moved_to_lan_only_is_closed_to_the_world(tmp_path: Path) -> None:
    facts = _facts(tmp_path, "centos7", "centos7-firewalld-imap-open.txt", "centos7-firewalld-imap-open.txt")
    ((key, _, commands),) = _firewall_changes(facts)
    base = "firewall-cmd --permanent --zone=public"
    assert commands[1:] == [f"{base} --remove-service=imap", f"{base} --remove-port=143/tcp"]
    summary = next(c.summary for c in plan(facts).changes if c.key == key)
    assert "close imap, 143/tcp" in summary


def test_a_port_that_left_the_site_is_removed(tmp_path: Path) -> None:
    site = example().model_copy(update={"firewall": example().firewall.model_copy(update={"open": ("smtp", "imaps")})})
    runtime, permanent = "centos7-firewalld-converged.txt", "centos7-firewalld-converged-permanent.txt"
    facts = _facts(tmp_path, "centos7", runtime, permanent, site)
    ((_, _, commands),) = _firewall_changes(facts, site)
    assert commands[1:] == ["firewall-cmd --permanent --zone=public --remove-port=995/tcp"]


def test_a_zone_bound_to_an_interface_is_handled_besides_the_default(tmp_path: Path) -> None:
    facts = _facts(
        tmp_path, "centos7", "centos7-firewalld-internal-runtime.txt", "centos7-firewalld-internal-permanent.txt"
    )
    changes = _firewall_changes(facts)
    assert [key for key, _, _ in changes] == ["firewalld:internal"]  # public (default) already matches
    (_, _, commands) = changes[0]
    assert "firewall-cmd --permanent --zone=internal --add-port=25/tcp" in commands


def test_running_rules_edited_by_hand_show_as_drift(tmp_path: Path) -> None:
    runtime, permanent = "centos7-firewalld-runtime-110.txt", "centos7-firewalld-converged-permanent.txt"
    facts = _facts(tmp_path, "centos7", runtime, permanent)
    ((key, action, commands),) = _firewall_changes(facts)
    assert (key, action, commands) == ("firewalld:public", "reload", [])
    summary = next(c.summary for c in plan(facts).changes if c.key == key)
    assert "close 110/tcp" in summary and "running rules differ" in summary


def test_verify_checks_the_running_zones(tmp_path: Path) -> None:
    class Host:
        def __init__(self, runtime: str) -> None:
            self.runtime = runtime

        def run(self, script: str) -> object:
            out = run_read(
                firewalld.STATE_READ,
                {"firewall-cmd": _firewall_cmd(self.runtime, "centos7-firewalld-converged-permanent.txt")},
                tmp_path,
            )
            return type("R", (), {"stdout": out, "rc": 0})()

    ctx = context(platform("centos7"))
    (check,) = Firewall().checks(ctx)
    assert check.name == "host.firewalld"
    assert check.probe(Host("centos7-firewalld-converged.txt"))[0] == "pass"
    status, detail = check.probe(Host("centos7-firewalld-runtime-110.txt"))
    assert status == "fail" and "110/tcp" in detail


def test_firewalld_not_answering_is_a_facts_error() -> None:
    with pytest.raises(FactsError, match="default zone"):
        firewalld.parse_state("")


def test_a_rollback_puts_back_the_zones_the_apply_changed(tmp_path: Path) -> None:
    facts = _facts(tmp_path, "rocky9", "rocky9-firewalld-fresh.txt", "rocky9-firewalld-fresh-permanent.txt")
    (step,) = [h for h in plan(facts).rollback if h.name == "firewall load"]
    assert [c.display() for c in step.commands] == [
        "mp_firewalld_restore /etc/firewalld/zones",
        "firewall-cmd --reload",
    ]
    zones, backup = tmp_path / "zones", tmp_path / "backup"
    zones.mkdir()
    (zones / "internal.xml").write_text("<zone>before</zone>\n")
    script = firewalld.SHELL + (
        f"BACKUP={backup}\nmp_firewalld_keep {zones} internal && mp_firewalld_keep {zones} public || exit 1\n"
        f'echo "<zone>after</zone>" > {zones}/internal.xml; echo "<zone>new</zone>" > {zones}/public.xml\n'
        f"mp_firewalld_restore {zones}\n"
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert (zones / "internal.xml").read_text() == "<zone>before</zone>\n"
    assert not (zones / "public.xml").exists()  # firewalld used its shipped public zone before
