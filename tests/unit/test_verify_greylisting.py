"""Issue 9: a 4xx that is not greylisting is a FAIL. `451 4.3.5 Server configuration problem` (postgrey
down) and `temporary lookup failure` used to pass smtp.local_recipient_accepted; greylisting is known by
its text and passes only where the site greylists this client."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.config.loader import parse_site
from mailprov.config.model import Site
from mailprov.verify import expect, probes
from mailprov.verify.checks import HostVerification, VerifyOptions

GREYLISTING = """\
domain: example.test
hosts: [{name: mx1.example.test, ssh: {address: 192.0.2.1}}]
users: [{login: john, password_hash: '$6$saltsalt$%s'}]
greylisting: {enabled: true}
restrictions:
  recipient: [permit_mynetworks, reject_unauth_destination, reject_non_fqdn_sender, {check_policy_service: postgrey}]
""" % ("a" * 86)
NO_GREYLISTING = GREYLISTING.replace("greylisting: {enabled: true}\n", "").replace(
    ", {check_policy_service: postgrey}", ""
)
GREYLISTED = "4.2.0 <john@example.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/"
CONFIG_PROBLEM = "4.3.5 <john@example.test>: Recipient address rejected: Server configuration problem"
LOOKUP_FAILURE = "4.3.0 <john@example.test>: Temporary lookup failure"


def deferred(code: int, text: str) -> probes.Transaction:
    ok = probes.SmtpReply(250, "ok")
    return probes.Transaction(
        (("connect", probes.SmtpReply(220, "mx1")), ("ehlo", ok), ("mail", ok), ("rcpt", probes.SmtpReply(code, text))),
        "rcpt",
    )


def run(site: Site, monkeypatch: pytest.MonkeyPatch, tx: probes.Transaction, *, outside: bool) -> HostVerification:
    monkeypatch.setattr(probes, "smtp_transaction", lambda *a, **k: tx)
    run = HostVerification(site, site.hosts[0], VerifyOptions(from_outside=outside), Path("."))
    run.smtp_up = True
    return run


@pytest.mark.parametrize("text", [CONFIG_PROBLEM, LOOKUP_FAILURE])
def test_a_4xx_that_is_not_greylisting_fails_the_local_recipient_check(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for site_text in (GREYLISTING, NO_GREYLISTING):
        verification = run(parse_site(site_text), monkeypatch, deferred(451, text), outside=True)
        verification._local_recipient()
        (result,) = verification.results
        assert result.name == "smtp.local_recipient_accepted"
        assert result.status == "fail", result.detail
        assert "not greylisting" in result.detail and "451" in result.detail


def test_greylisting_passes_where_the_site_greylists_this_client(monkeypatch: pytest.MonkeyPatch) -> None:
    verification = run(parse_site(GREYLISTING), monkeypatch, deferred(450, GREYLISTED), outside=True)
    verification._local_recipient()
    assert verification.results[0].status == "pass"
    assert "greylisted" in verification.results[0].detail


def test_greylisting_where_the_site_does_not_greylist_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    verification = run(parse_site(NO_GREYLISTING), monkeypatch, deferred(450, GREYLISTED), outside=True)
    verification._local_recipient()
    assert verification.results[0].status == "fail"
    # inside mynetworks, permit_mynetworks comes first: greylisting does not apply either
    verification = run(parse_site(GREYLISTING), monkeypatch, deferred(450, GREYLISTED), outside=False)
    verification._local_recipient()
    assert verification.results[0].status == "fail"
    assert "permit_mynetworks" in verification.results[0].detail


def test_restriction_checks_fail_on_a_server_problem_and_skip_behind_greylisting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site_text = GREYLISTING.replace(
        "reject_non_fqdn_sender, {check_policy_service: postgrey}",
        "{check_policy_service: postgrey}, reject_non_fqdn_sender",
    )
    site = parse_site(site_text)
    verification = run(site, monkeypatch, deferred(451, CONFIG_PROBLEM), outside=True)
    verification._restriction(
        "restrictions.non_fqdn_sender", ("reject_non_fqdn_sender",), helo="h.example", sender="x@y", marker="sender"
    )
    assert verification.results[0].status == "fail"
    assert "not greylisting" in verification.results[0].detail
    verification = run(site, monkeypatch, deferred(450, GREYLISTED), outside=True)
    verification._restriction(
        "restrictions.non_fqdn_sender", ("reject_non_fqdn_sender",), helo="h.example", sender="x@y", marker="sender"
    )
    assert verification.results[0].status == "skip"
    assert "greylisting answered first" in verification.results[0].detail


def test_relay_deferral_is_never_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    for text in (CONFIG_PROBLEM, GREYLISTED):
        verification = run(parse_site(GREYLISTING), monkeypatch, deferred(451, text), outside=True)
        verification.trusted = False
        verification.relay()
        assert {r.status for r in verification.results} == {"fail"}


@pytest.mark.parametrize(
    ("text", "greylisting"),
    [(GREYLISTED, True), ("4.7.1 Greylisting in action, please come back later", True),
     (CONFIG_PROBLEM, False), (LOOKUP_FAILURE, False), ("4.7.1 Service unavailable - try again", False)],
)  # fmt: skip
def test_greylisting_is_known_by_its_text(text: str, greylisting: bool) -> None:
    assert expect.is_greylisting(text) is greylisting


def test_greylisting_reach_follows_the_restriction_lists() -> None:
    site = parse_site(GREYLISTING)
    assert expect.greylisting_reach(site, trusted=False).applies
    assert not expect.greylisting_reach(site, trusted=True).applies  # permit_mynetworks first
    assert not expect.greylisting_reach(parse_site(NO_GREYLISTING), trusted=False).applies
    own_policy_server = NO_GREYLISTING.replace(
        "reject_non_fqdn_sender]", "reject_non_fqdn_sender, {check_policy_service: 'inet:127.0.0.1:10040'}]"
    )
    assert expect.greylisting_reach(parse_site(own_policy_server), trusted=False).applies
