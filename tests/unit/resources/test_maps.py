from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.facts.files import file_md5
from mailprov.facts.probe import Facts
from mailprov.resources.maps import alias_names, merge_aliases
from resources.helpers import DATA, captured, lab_site, plan_for, site_from, site_text, with_section


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


# --- /etc/aliases: the site's block inside the distribution's file -------------------------------------

ALIASES_KEY = "file /etc/aliases"


def _aliases_facts(content: str | None) -> Facts:
    facts = captured("bookworm")
    if content is None:
        return with_section(facts, ALIASES_KEY, "")
    return with_section(facts, ALIASES_KEY, f"root root 644 1796223355\n{file_md5(content)}  -\n{content}\n@@MP-eof")


@pytest.mark.parametrize("distribution", ["centos", "debian"])
def test_the_distributions_aliases_are_kept(distribution: str) -> None:
    """A fresh host's /etc/aliases (CentOS's setup package, Debian's Postfix) keeps every system alias;
    the site's entries replace the distribution's entries of the same name; a second plan changes nothing."""
    shipped = (DATA / f"aliases-{distribution}").read_text()
    plan = plan_for(lab_site(), "bookworm", _aliases_facts(shipped))
    (change,) = [c for c in plan.changes if c.key == "file:/etc/aliases"]
    assert change.file is not None
    written = change.file.text()
    names = alias_names(shipped) - {"postmaster", "root"}
    assert names <= alias_names(written)  # every system alias is still there
    kept = [ln for ln in shipped.split("\n") if ln.split(":")[0].strip() not in ("postmaster", "root")]
    assert "\n".join(kept).rstrip("\n") in written  # byte for byte, comments and all
    assert [ln for ln in written.split("\n") if ln.startswith(("postmaster:", "root:"))] == [
        "postmaster: root",
        "root: john",
    ]
    assert "-postmaster:\troot\n" in change.diff or "-postmaster:    root\n" in change.diff
    assert written.endswith("j.smith: john\n# END mailprov aliases\n")
    # converged: the host now holds what was written
    again = plan_for(lab_site(), "bookworm", _aliases_facts(written))
    assert not [c for c in again.changes if c.key.endswith("/etc/aliases")]


def test_a_missing_aliases_file_gets_the_block_alone() -> None:
    plan = plan_for(lab_site(), "bookworm", _aliases_facts(None))
    (change,) = [c for c in plan.changes if c.key == "file:/etc/aliases"]
    assert change.file is not None and change.file.text().startswith("# BEGIN mailprov aliases\n")


def test_a_file_an_earlier_mailprov_wrote_whole_becomes_the_block() -> None:
    old = (
        "# Managed by mailprov: edits here are overwritten on the next apply.\n"
        "# See aliases(5). After a change mailprov runs newaliases.\n"
        "postmaster: root\nroot: john\njsmith: john\nj.smith: john\n"
    )
    written = merge_aliases(old, "postmaster: root\nroot: john\n")  # the site dropped jsmith and j.smith
    assert written == "# BEGIN mailprov aliases\npostmaster: root\nroot: john\n# END mailprov aliases\n"


def test_continuation_lines_go_with_their_entry() -> None:
    current = "root: alice,\n  bob\nabuse: root\n# root: in a comment\n"
    assert merge_aliases(current, "root: john\n") == (
        "abuse: root\n# root: in a comment\n# BEGIN mailprov aliases\nroot: john\n# END mailprov aliases\n"
    )
