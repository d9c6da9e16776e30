from __future__ import annotations

from pathlib import Path

from mailprov.resources.base import Phase
from mailprov.resources.services import parse_enabled
from resources.helpers import captured, lab_site, plan_for, section_key, site_from, site_text, with_section


def test_dovecot_change_is_validated_and_restarts_dovecot_only(tmp_path: Path) -> None:
    site = site_from(site_text().replace("min_protocol: TLSv1.2", "min_protocol: TLSv1.3"), tmp_path)
    plan = plan_for(site, "trixie")
    assert [c.key for c in plan.changes] == ["file:/etc/postfix/main.cf", "file:/etc/dovecot/dovecot.conf"]
    assert [g.step for g in plan.gates] == ["validate-postfix", "validate-dovecot"]
    assert plan.gates[1].command.argv == (
        "mp_dovecot_check", "doveconf", "-n", "-c", "/etc/dovecot/dovecot.conf.mailprov-new"
    )  # fmt: skip
    assert [h.name for h in plan.handlers] == ["postfix reload", "dovecot restart"]


def test_postgrey_delay_change_restarts_postgrey(tmp_path: Path) -> None:
    site = site_from(site_text().replace("delay: 300", "delay: 60"), tmp_path)
    plan = plan_for(site, "bookworm")
    (change,) = plan.changes
    assert change.key == "file:/etc/default/postgrey" and "--delay=60" in "".join(change.diff)
    assert [h.name for h in plan.handlers] == ["postgrey restart"]


def test_boot_link_missing_is_enabled_after_the_switch_and_restarts_nothing() -> None:
    facts = captured("bookworm")
    key = section_key(facts, "enabled ")
    assert parse_enabled(facts.section(key)) >= {"postfix", "dovecot", "postgrey"}
    body = "\n".join(ln for ln in facts.section(key).split("\n") if not ln.startswith("dovecot"))
    plan = plan_for(lab_site(), "bookworm", with_section(facts, key, body))
    (change,) = plan.changes
    assert change.key == "enable:dovecot" and change.phase is Phase.FINISH
    assert plan.handlers == ()
