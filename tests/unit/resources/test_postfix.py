from __future__ import annotations

import dataclasses
from pathlib import Path

from mailprov.facts.files import file_md5
from mailprov.resources.postfix import MASTER_BEGIN, main_cf_parameters
from resources.helpers import captured, lab_site, plan_for, site_from, site_text, with_new_reads, with_section


def test_main_cf_parameters_join_continuation_lines() -> None:
    text = "# c\nmynetworks = a,\n    b\nempty =\nx=1\n"
    assert main_cf_parameters(text) == {"mynetworks": "a, b", "empty": "", "x": "1"}


def test_hand_edit_shows_as_drift() -> None:
    facts = captured("bookworm")
    key = "file /etc/postfix/main.cf"
    lines = facts.section(key).split("\n")
    stat, _md5, rest = lines[0], lines[1], "\n".join(lines[2:])
    content = rest[: rest.rfind("\n@@MP-eof")] + "# by hand\n"
    body = f"{stat}\n{file_md5(content)}  -\n{content}\n@@MP-eof\n"
    plan = plan_for(lab_site(), "bookworm", with_section(facts, key, body))
    (change,) = plan.changes
    assert change.drift and "drift" in change.summary and "-# by hand\n" in change.diff
    assert [h.name for h in plan.handlers] == ["postfix reload"]


def test_listening_address_change_restarts_postfix_instead_of_reloading(tmp_path: Path) -> None:
    site = site_from(
        site_text().replace("mailbox: maildir", "mailbox: maildir\npostfix:\n  inet_protocols: ipv4"), tmp_path
    )
    plan = plan_for(site, "bookworm")
    assert [h.name for h in plan.handlers] == ["postfix restart", "dovecot restart"]
    (command,) = plan.handlers[0].commands
    assert command.argv[-1] == "postfix" and "restart" in command.argv[2]


def test_submission_block_is_merged_into_master_cf(tmp_path: Path) -> None:
    site = site_from(
        site_text().replace("mailbox: maildir", "mailbox: maildir\npostfix:\n  submission: true"), tmp_path
    )
    plan = plan_for(site, "trixie", with_new_reads(site, "trixie"))
    changes = {c.key: c for c in plan.changes}
    assert set(changes) == {
        "file:/etc/postfix/master.cf", "file:/etc/postfix/main.cf", "file:/etc/postfix/sender_login"
    }  # fmt: skip
    change = changes["file:/etc/postfix/master.cf"]
    assert change.file is not None
    assert change.file.block is None  # merged here, written whole
    assert f"+{MASTER_BEGIN}\n" in change.diff
    gates = [g.step for g in plan.gates]
    assert gates == ["validate-postfix"]


def test_gate_validates_a_staged_copy_of_the_changed_cf_files(tmp_path: Path) -> None:
    text = site_text().replace("mailbox: maildir", "mailbox: maildir\npostfix:\n  message_size_limit: 2048000")
    site = site_from(text, tmp_path)
    plan = plan_for(site, "bookworm")
    (gate,) = plan.gates
    assert gate.command.argv == (
        "mp_postfix_check", "/var/lib/mailprov/stage/postfix", "/etc/postfix", "/etc/postfix/main.cf.mailprov-new"
    )  # fmt: skip
    assert dataclasses.asdict(plan.handlers[0])["name"] == "postfix reload"
