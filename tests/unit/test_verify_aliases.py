"""Issue 9: verify exercises the site's `aliases:` map, not only a user's own alias: a message to an alias
that reaches a site user (root: [john]) is read back from that user's Maildir, then removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.config.loader import parse_site
from mailprov.config.model import Site
from mailprov.transport.base import CommandResult
from mailprov.verify import expect, probes
from mailprov.verify.checks import HostVerification, VerifyOptions

HASH = "$6$saltsalt$" + "a" * 86
SITE = f"""\
domain: example.test
hosts: [{{name: mx1.example.test, ssh: {{address: 192.0.2.1}}}}]
users:
  - {{login: john, password_hash: '{HASH}', aliases: [jsmith]}}
  - {{login: mary, password_hash: '{HASH}'}}
aliases:
  abuse: [john, someone@example.org]
  root: [admins]
  admins: [jsmith, mary]
"""


def test_the_alias_probe_reaches_site_users_only() -> None:
    site = parse_site(SITE)
    # abuse also forwards off the site: never used; root → admins → jsmith (john's alias), mary
    assert expect.alias_probe(site) == expect.AliasProbe("root", ("john", "mary"))
    assert expect.alias_expansion(site, "abuse") == (frozenset({"john"}), True)
    only_offsite = SITE.replace("  root: [admins]\n  admins: [jsmith, mary]\n", "")
    assert expect.alias_probe(parse_site(only_offsite)) is None


class FakeHost:
    """The on-host side: what find_in_maildir and remove_files run, answered from a dict of Maildirs."""

    host = "mx1.example.test"

    def __init__(self, delivered_to: set[str]) -> None:
        self.delivered_to = delivered_to
        self.removed: list[str] = []

    def run_script(self, script: str, **kwargs: object) -> CommandResult:
        login = next(name for name in ("john", "mary") if f"getent passwd {name} " in script)
        out = f"/home/{login}/Maildir/new/1.verify\n" if login in self.delivered_to else ""
        return CommandResult(["sh"], 0, out, "")

    def run(self, argv: list[str], **kwargs: object) -> CommandResult:
        self.removed.extend(argv[3:])
        return CommandResult(argv, 0, "", "")


def run(site: Site, monkeypatch: pytest.MonkeyPatch, host: FakeHost | None) -> dict[str, tuple[str, str]]:
    sent: list[str] = []

    def accept(endpoint: object, *, recipient: str, **kwargs: object) -> probes.Transaction:
        sent.append(recipient)
        return probes.Transaction((("data", probes.SmtpReply(250, "2.0.0 Ok: queued as ABC")),), "done")

    monkeypatch.setattr(probes, "smtp_transaction", accept)
    options = VerifyOptions(delivery_timeout=0.2)
    verification = HostVerification(site, site.hosts[0], options, Path("."))
    verification.smtp_up = True
    verification.alias_delivery(host)  # type: ignore[arg-type]
    results = {r.name: (r.status, r.detail) for r in verification.results}
    if host is not None and results["delivery.site_alias_accepted"][0] == "pass":
        assert sent == ["root@example.test"]
    return results


def test_alias_mail_read_back_from_every_user_it_reaches_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost({"john", "mary"})
    results = run(parse_site(SITE), monkeypatch, host)
    assert results["delivery.site_alias_accepted"][0] == "pass"
    assert "root → john, mary" in results["delivery.site_alias_accepted"][1]
    status, detail = results["delivery.site_alias_maildir"]
    assert status == "pass" and "removed again" in detail
    assert host.removed == ["/home/john/Maildir/new/1.verify", "/home/mary/Maildir/new/1.verify"]


def test_alias_mail_missing_from_one_user_fails_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    results = run(parse_site(SITE), monkeypatch, FakeHost({"john"}))
    status, detail = results["delivery.site_alias_maildir"]
    assert status == "fail" and "not in mary's Maildir" in detail


def test_alias_check_skips_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    no_aliases = parse_site(SITE.split("aliases:\n  abuse")[0])
    assert run(no_aliases, monkeypatch, FakeHost(set()))["delivery.site_alias_accepted"] == (
        "skip",
        "the site has no aliases: map",
    )
    offsite = parse_site(SITE.replace("  root: [admins]\n  admins: [jsmith, mary]\n", ""))
    status, detail = run(offsite, monkeypatch, FakeHost(set()))["delivery.site_alias_maildir"]
    assert status == "skip" and "never sent beyond the site" in detail
    status, detail = run(parse_site(SITE), monkeypatch, None)["delivery.site_alias_accepted"]
    assert status == "skip" and "no SSH session" in detail
