from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.errors import ConfigError
from mailprov.resources.accounts import parse_account
from resources.helpers import captured, lab_site, plan_for, site_from, site_text, with_section


def user_changes(plan: object) -> list:  # type: ignore[type-arg]
    return [c for c in plan.changes if c.key.startswith("user:")]  # type: ignore[attr-defined]


def test_account_parses_from_getent_and_stat() -> None:
    body = captured("bookworm").section("user john")
    account = parse_account("john", body)
    assert account is not None and account.home == "/home/john" and account.full_name == "John Smith"
    assert account.shadow_hash.reveal().startswith("$6$") and "$6$" not in repr(account)
    top = account.dir("/home/john/Maildir")
    assert top is not None and (top.owner, top.mode) == ("john", 0o700)
    assert parse_account("nobody-here", "") is None


@pytest.mark.parametrize("distro", ["bookworm", "trixie"])
def test_converged_account_needs_nothing(distro: str) -> None:
    assert user_changes(plan_for(lab_site(), distro)) == []


def test_changed_password_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "a-new-password-1")
    plan = plan_for(lab_site(), "trixie")
    (change,) = plan.changes
    assert change.summary == "user john: password changed (redacted)"
    (command,) = change.commands
    assert command.display() == "chpasswd -e <<(stdin redacted)"
    text = command.stdin_text()
    assert text is not None and command.secrets[0].reveal() in text  # the hash goes on stdin only
    assert "a-new-password-1" not in repr(plan) and "$6$" not in repr(plan)


def test_full_name_change_is_a_usermod(tmp_path: Path) -> None:
    site = site_from(site_text().replace("full_name: John Smith", "full_name: John Q. Smith"), tmp_path)
    (change,) = plan_for(site, "bookworm").changes
    assert [c.display() for c in change.commands] == ["usermod -c 'John Q. Smith' john"]


def test_missing_maildir_part_is_made_0700() -> None:
    facts = captured("bookworm")
    body = "\n".join(ln for ln in facts.section("user john").split("\n") if not ln.endswith("/Maildir/new"))
    (change,) = user_changes(plan_for(lab_site(), "bookworm", with_section(facts, "user john", body)))
    assert change.summary == "user john: Maildir 0700"
    assert change.commands[-1].argv[:2] == ("chmod", "0700")
    assert not change.notifies


def test_new_user_is_created_with_password_and_maildir() -> None:
    facts = with_section(captured("bookworm"), "user john", "")
    (change,) = user_changes(plan_for(lab_site(), "bookworm", facts))
    assert change.action == "create"
    assert [c.argv[0] for c in change.commands] == ["useradd", "chpasswd", "mkdir", "chown", "chmod"]


def test_a_system_account_is_refused() -> None:
    facts = with_section(captured("bookworm"), "user john", "john:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    with pytest.raises(ConfigError, match="system account"):
        plan_for(lab_site(), "bookworm", facts)
