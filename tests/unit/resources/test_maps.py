from __future__ import annotations

from pathlib import Path

from resources.helpers import captured, lab_site, plan_for, site_from, site_text, with_section


def test_removed_sender_access_entry_is_one_map_change(tmp_path: Path) -> None:
    site = site_from(site_text().replace("  - {pattern: junk@spam.com, action: REJECT}\n", ""), tmp_path)
    plan = plan_for(site, "bookworm")
    assert [c.key for c in plan.changes] == ["file:/etc/postfix/sender_access"]
    assert "-junk@spam.com REJECT\n" in plan.changes[0].diff
    assert [h.name for h in plan.handlers] == ["postmap hash:/etc/postfix/sender_access", "postfix reload"]
    assert [c.display() for c in plan.handlers[0].commands] == ["postmap hash:/etc/postfix/sender_access"]


def test_new_alias_runs_newaliases_only(tmp_path: Path) -> None:
    site = site_from(site_text().replace("  root: [john]", "  root: [john]\n  sales: [john]"), tmp_path)
    plan = plan_for(site, "trixie")
    assert [c.key for c in plan.changes] == ["file:/etc/aliases"]
    assert [h.name for h in plan.handlers] == ["newaliases"]


def test_stale_compiled_map_is_rebuilt() -> None:
    facts = captured("bookworm")
    key = "stat /etc/aliases.db"
    old = facts.section(key).split("\n")
    owner, group, mode, _ = old[0].split()
    plan = plan_for(lab_site(), "bookworm", with_section(facts, key, f"{owner} {group} {mode} 1\n{old[1]}"))
    (change,) = plan.changes
    assert change.key == "map:/etc/aliases" and change.action == "rebuild"
    assert [h.name for h in plan.handlers] == ["newaliases"]
