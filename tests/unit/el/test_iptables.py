"""Issue 10 item 5 and 8: the iptables path on EL5/6 (no -C; EL5 no -S) converges, never adds a second
INPUT jump, saves both tools the distribution's way and loads them at boot; EL7+ without firewalld too."""

from __future__ import annotations

import subprocess
from pathlib import Path

from el.helpers import DATA, cat, context, converged, fixture, plan, platform, run_read, with_sections
from mailprov.facts.probe import Facts
from mailprov.resources.firewall import _STATE_READ, SHELL, Firewall, parse_state

ENABLED = {"enabled iptables ip6tables firewalld": "iptables enabled\nip6tables enabled"}  # as chkconfig answers
NO_S_OR_C = 'case "$1" in -S|-C) echo "$0: unknown option \\"$1\\"" >&2; exit 2;; esac'


def _el6_state(tmp_path: Path, v4: str = "centos6-iptables-save.txt") -> str:
    return run_read(
        _STATE_READ,
        {"iptables": NO_S_OR_C, "ip6tables": NO_S_OR_C, "iptables-save": cat(DATA / v4),
         "ip6tables-save": cat(DATA / "centos6-ip6tables-save.txt")},
        tmp_path,
    )  # fmt: skip


def _converged_el6(tmp_path: Path, release: str = "centos6", v4: str = "centos6-iptables-save.txt") -> Facts:
    facts = platform(release)
    ctx = context(facts)
    firewall = Firewall().desired(ctx)
    facts = with_sections(facts, {"firewall": _el6_state(tmp_path, v4), **ENABLED})
    return converged(ctx, facts, firewall.files)


def test_old_iptables_save_is_read_without_s_or_c(tmp_path: Path) -> None:
    state = parse_state(_el6_state(tmp_path))
    assert state["iptables"].rules == 14 and state["iptables"].jumps == 1
    assert state["ip6tables"].rules == 10 and state["ip6tables"].jumps == 1


def test_centos5_iptables_1_3_5_is_read(tmp_path: Path) -> None:
    tools = {"iptables": NO_S_OR_C, "iptables-save": cat(DATA / "centos5-iptables-save.txt")}
    body = run_read(_STATE_READ, tools, tmp_path)
    assert parse_state(body)["iptables"].rules == 14 and parse_state(body)["iptables"].jumps == 1


def test_a_converged_centos6_plans_no_firewall_change(tmp_path: Path) -> None:
    p = plan(_converged_el6(tmp_path))
    assert not [c for c in p.changes if c.key.startswith("firewall")]
    assert "firewall load" not in [h.name for h in p.handlers]


def test_a_converged_centos5_plans_no_firewall_change(tmp_path: Path) -> None:
    facts = platform("centos5")
    ctx = context(facts)
    body = run_read(
        _STATE_READ,
        {"iptables": NO_S_OR_C, "ip6tables": NO_S_OR_C, "iptables-save": cat(DATA / "centos5-iptables-save.txt"),
         "ip6tables-save": cat(DATA / "centos6-ip6tables-save.txt")},
        tmp_path,
    )  # fmt: skip
    facts = with_sections(facts, {"firewall": body, **ENABLED})
    changes = Firewall().changes(ctx, Firewall().desired(ctx), converged(ctx, facts, Firewall().desired(ctx).files))
    assert changes == []


def test_three_input_jumps_left_by_an_older_apply_become_one(tmp_path: Path) -> None:
    p = plan(_converged_el6(tmp_path, v4="centos6-iptables-save-3-jumps.txt"))
    (change,) = [c for c in p.changes if c.key.startswith("firewall")]
    assert change.key == "firewall:ipv4" and "3 times: keep one" in change.summary
    (step,) = [h for h in p.handlers if h.name == "firewall load"]
    assert [c.display() for c in step.commands] == [
        "mp_iptables_load iptables /etc/mailprov/firewall.v4",
        "mp_iptables_load ip6tables /etc/mailprov/firewall.v6",
        "service iptables save",
        "service ip6tables save",
    ]


def test_a_fresh_centos6_gets_the_chain_and_boot_links(tmp_path: Path) -> None:
    facts = platform("centos6")
    ctx = context(facts)
    facts = with_sections(facts, {"firewall": _el6_state(tmp_path, "centos6-iptables-save-fresh.txt")})
    p = plan(converged(ctx, facts, ()))
    keys = [c.key for c in p.changes if c.key.startswith("firewall")]
    assert keys == ["firewall:ipv4", "firewall:boot"]  # v6 converged in this answer; files are new
    (boot,) = [c for c in p.changes if c.key == "firewall:boot"]
    assert [c.display() for c in boot.commands] == [
        "chkconfig --level 345 iptables on",
        "chkconfig --level 345 ip6tables on",
    ]
    packages = next(c for c in p.changes if c.key == "packages")
    assert "iptables-ipv6" in packages.summary  # ip6tables and its init script on EL5/6


def test_el7_and_el9_without_firewalld_enable_and_save_through_the_init_scripts() -> None:
    for release, package in (("centos7-iptables", "iptables-services"), ("rocky9-iptables", "iptables-nft-services")):
        facts = platform(release)
        ctx = context(facts)
        assert ctx.dialect.packages_firewall == (package,)
        p = plan(converged(ctx, facts, ()))
        (boot,) = [c for c in p.changes if c.key == "firewall:boot"]
        assert [c.display() for c in boot.commands] == ["systemctl enable iptables", "systemctl enable ip6tables"]
        (step,) = [h for h in p.handlers if h.name == "firewall load"]
        assert [c.display() for c in step.commands][2:] == [
            "/usr/libexec/iptables/iptables.init save",
            "/usr/libexec/iptables/ip6tables.init save",
        ]


def test_enabled_services_are_not_enabled_again(tmp_path: Path) -> None:
    facts = platform("rocky9-iptables")
    ctx = context(facts)
    key = "enabled iptables ip6tables firewalld"  # systemctl is-enabled, one line each
    facts = with_sections(facts, {key: "iptables enabled\nip6tables enabled\nfirewalld disabled"})
    assert not [c for c in plan(converged(ctx, facts, ())).changes if c.key == "firewall:boot"]


def test_a_stopped_but_enabled_firewalld_is_disabled_beside_iptables_on_el7() -> None:
    facts = platform("centos7-iptables")
    ctx = context(facts)
    facts = with_sections(
        facts, {"enabled iptables ip6tables firewalld": "iptables disabled\nip6tables disabled\nfirewalld enabled"}
    )
    (boot,) = [c for c in plan(converged(ctx, facts, ())).changes if c.key == "firewall:boot"]
    assert [c.display() for c in boot.commands] == [
        "systemctl disable firewalld",
        "systemctl enable iptables",
        "systemctl enable ip6tables",
    ]
    assert "firewalld is stopped but starts at boot" in boot.summary


# --- the handler's shell, run against fake iptables that behave like 1.4.7 (no -C) -------------------------

FAKE_IPTABLES = r"""
state=$STATE_DIR/$(basename "$0" | sed 's/-.*//')
case "$(basename "$0")" in
  *-restore) cat >/dev/null; echo restored >> "$state.log";;
  *-save) cat "$state.save";;
  *) case "$1" in
       -C|-S) echo "unknown option $1" >&2; exit 2;;
       -I) { echo "-A INPUT -j MAILPROV "; cat "$state.save"; } > "$state.new"; mv "$state.new" "$state.save"
           echo "insert" >> "$state.log";;
       -D) awk -v n="$3" '$1 == "-A" && $2 == "INPUT" { i++; if (i == n) next } { print }' "$state.save" > "$state.new";
           mv "$state.new" "$state.save"; echo "delete $3" >> "$state.log";;
     esac;;
esac
"""


def _load(tmp_path: Path, save: str) -> tuple[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("iptables", "iptables-save", "iptables-restore"):
        (bin_dir / name).write_text("#!/bin/sh\n" + FAKE_IPTABLES)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "iptables.save").write_text(fixture(save))
    (tmp_path / "rules").write_text("*filter\nCOMMIT\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE_DIR": str(tmp_path), "LC_ALL": "C"}
    script = SHELL + f"mp_iptables_load iptables {tmp_path / 'rules'}\n"
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return (tmp_path / "iptables.log").read_text(), (tmp_path / "iptables.save").read_text()


def test_loading_again_adds_no_jump(tmp_path: Path) -> None:
    log, save = _load(tmp_path, "centos6-iptables-save.txt")
    assert log == "restored\n"
    assert save.count("-A INPUT -j MAILPROV") == 1


def test_loading_removes_duplicate_jumps_from_the_bottom(tmp_path: Path) -> None:
    log, save = _load(tmp_path, "centos6-iptables-save-3-jumps.txt")
    assert log == "restored\ndelete 3\ndelete 2\n"
    assert save.count("-A INPUT -j MAILPROV") == 1


def test_loading_a_fresh_host_inserts_one_jump_first(tmp_path: Path) -> None:
    log, save = _load(tmp_path, "centos6-iptables-save-fresh.txt")
    assert log == "restored\ninsert\n"
    assert save.startswith("-A INPUT -j MAILPROV")


def test_one_round_trip_reads_what_every_el_firewall_needs() -> None:
    """The first probe (before the platform is known) already asks for every read these hosts need, but the
    package list (the packages resource's key names every package: EL7+ firewall packages differ)."""
    from el.helpers import REPO, example
    from mailprov.orchestrate import speculative_reads
    from mailprov.plan import reads

    site = example()
    asked = {r.key for r in speculative_reads(site, site.hosts[0], REPO / "inventories")}
    for release in ("centos5", "centos6", "centos7", "centos7-iptables", "rocky9", "rocky9-iptables"):
        needed = {r.key for r in reads(context(platform(release))) if not r.key.startswith(("packages ", "rpm "))}
        assert needed <= asked, (release, needed - asked)
