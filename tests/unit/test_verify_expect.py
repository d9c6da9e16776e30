"""What verify expects from a site: which checks apply to which client, ports, relay probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.config.loader import load_site, parse_site
from mailprov.config.model import Site
from mailprov.verify import expect

LIVE_SITE = Path(__file__).resolve().parent.parent / "live" / "data" / "verify-site.yaml"


@pytest.fixture
def example(example_path: Path) -> Site:
    return load_site(example_path)


def site_with(extra: str) -> Site:
    return parse_site("domain: example.test\nhosts: [{name: mx.example.test}]\nmynetworks: [10.0.0.0/8]\n" + extra)


# --- restrictions: who meets them ------------------------------------------------------------------------


def test_guide_restrictions_skip_trusted_clients(example: Site) -> None:
    """The guide puts permit_mynetworks first: a LAN client never meets the HELO/sender checks."""
    for name in ("reject_non_fqdn_helo_hostname", "reject_non_fqdn_sender", "check_sender_access"):
        reach = expect.restriction_reach(example, (name,), trusted=True)
        assert not reach.applies, name
        assert "permit_mynetworks" in reach.reason


def test_guide_restrictions_apply_to_untrusted_clients(example: Site) -> None:
    reach = expect.restriction_reach(example, ("reject_non_fqdn_helo_hostname",), trusted=False)
    assert reach.applies
    assert "restrictions.helo" in reach.reason
    assert expect.restriction_reach(example, ("check_sender_access",), trusted=False).applies


def test_restriction_before_permit_mynetworks_applies_to_trusted_clients() -> None:
    site = site_with("restrictions: {helo: [reject_non_fqdn_helo_hostname, permit_mynetworks, permit]}\n")
    assert expect.restriction_reach(site, ("reject_non_fqdn_helo_hostname",), trusted=True).applies


def test_restriction_after_permit_auth_destination_never_meets_local_mail() -> None:
    site = site_with(
        "restrictions: {recipient: [reject_unauth_destination, permit_auth_destination, "
        "{check_sender_access: sender_access}]}\nsender_access: [{pattern: a@b.com, action: REJECT}]\n"
    )
    reach = expect.restriction_reach(site, ("check_sender_access",), trusted=False)
    assert not reach.applies
    assert "mail to a local recipient passes" in reach.reason


def test_restriction_not_used() -> None:
    site = site_with("")
    reach = expect.restriction_reach(site, ("reject_non_fqdn_sender",), trusted=False)
    assert (reach.applies, reach.reason) == (False, "the site does not use reject_non_fqdn_sender")


def test_restriction_in_a_later_list_still_applies() -> None:
    """A permit in the helo list ends that list only: the sender list is evaluated too."""
    site = site_with("restrictions: {helo: [permit], sender: [reject_non_fqdn_sender]}\n")
    assert expect.restriction_reach(site, ("reject_non_fqdn_sender",), trusted=True).applies


# --- addresses -------------------------------------------------------------------------------------------


def test_relay_variants_are_the_classic_tricks(example: Site) -> None:
    host = example.hosts[0]
    variants = dict(expect.relay_variants(host, "example.net"))
    assert variants == {
        "relay.external_recipient": "relaytest@example.net",
        "relay.quoted_local_part": '"relaytest@example.net"@mail.example.com',
        "relay.percent_hack": "relaytest%example.net@mail.example.com",
        "relay.source_route": "@mail.example.com:relaytest@example.net",
        "relay.bang_path": "example.net!relaytest@mail.example.com",
        "relay.double_at": "relaytest@example.net@mail.example.com",
    }


def test_external_domain_is_never_the_sites_own() -> None:
    site = parse_site("domain: example.net\nhosts: [{name: mx.example.net}]\n")
    assert expect.external_domain(site, site.hosts[0]) == "example.org"
    site = parse_site("domain: sub.example.net\nhosts: [{name: mx.example.org}]\n")
    assert expect.external_domain(site, site.hosts[0]) == "example.com"


def test_external_domain_avoids_relay_domains() -> None:
    site = parse_site("domain: example.test\nhosts: [{name: mx.example.test}]\nrelay_domains: [example.net]\n")
    assert expect.external_domain(site, site.hosts[0]) == "example.org"


def test_delivery_goes_to_the_first_alias_in_the_mail_domain(example: Site) -> None:
    user = expect.test_user(example)
    assert user is not None and user.login == "john"
    assert expect.delivery_recipient(example, example.hosts[0], user) == "jsmith@example.com"


def test_mail_domain_falls_back_to_the_host_name() -> None:
    site = parse_site("domain: example.test\nhosts: [{name: mx.example.test}]\nmydestination: [$myhostname]\n")
    assert expect.local_domains(site, site.hosts[0]) == ("mx.example.test",)
    assert expect.mail_domain(site, site.hosts[0]) == "mx.example.test"


def test_no_test_user_without_a_password_reference() -> None:
    site = parse_site(
        "domain: example.test\nhosts: [{name: mx.example.test}]\n"
        "users: [{login: ann, password_hash: '$6$abcdefgh$" + "x" * 86 + "'}]\n"
    )
    assert expect.test_user(site) is None


@pytest.mark.parametrize(
    ("pattern", "address"),
    [
        ("junk@spam.com", "junk@spam.com"),
        ("marketing@", "marketing@example.net"),
        ("deals.marketing.com", "verify@deals.marketing.com"),
    ],
)
def test_rejecting_sender_from_each_pattern_form(pattern: str, address: str) -> None:
    site = site_with(f"sender_access: [{{pattern: {pattern}, action: REJECT}}]\n")
    found = expect.rejecting_sender(site, "example.net")
    assert found is not None and found[0] == address


def test_rejecting_sender_ignores_ok_entries_and_takes_5xx_codes() -> None:
    site = site_with("sender_access: [{pattern: a@b.com, action: OK}, {pattern: c@d.com, action: '554'}]\n")
    found = expect.rejecting_sender(site, "example.net")
    assert found is not None and found[0] == "c@d.com"
    assert expect.rejecting_sender(site_with("sender_access: [{pattern: a@b.com, action: OK}]\n"), "x.net") is None


# --- ports -----------------------------------------------------------------------------------------------


def _expect_open(site: Site, from_outside: bool) -> dict[str, bool]:
    return {p.service: p.expect_open for p in expect.port_expectations(site, from_outside=from_outside)}


def test_guide_ports_from_the_lan(example: Site) -> None:
    assert _expect_open(example, False) == {
        "smtp": True, "submission": False, "smtps": False,
        "imap": True, "imaps": True, "pop3": True, "pop3s": True,
    }  # fmt: skip


def test_guide_ports_from_outside_close_the_lan_only_services(example: Site) -> None:
    assert _expect_open(example, True) == {
        "smtp": True, "submission": False, "smtps": False,
        "imap": False, "imaps": True, "pop3": False, "pop3s": True,
    }  # fmt: skip
    reasons = {p.service: p.reason for p in expect.port_expectations(example, from_outside=True)}
    assert "firewall.lan_only" in reasons["imap"]


def test_ports_without_firewall_follow_the_daemons() -> None:
    site = site_with(
        "firewall: {enabled: false}\ndovecot: {protocols: [imap], plaintext_ports: false}\n"
        "sasl: {enabled: true}\npostfix: {submission: true}\n"
    )
    assert _expect_open(site, True) == {
        "smtp": True, "submission": True, "smtps": False,
        "imap": False, "imaps": True, "pop3": False, "pop3s": False,
    }  # fmt: skip


def test_loopback_only_postfix_is_closed_everywhere() -> None:
    site = site_with("postfix: {inet_interfaces: loopback-only}\n")
    assert _expect_open(site, False)["smtp"] is False


def test_live_site_is_valid() -> None:
    """The site the live test provisions must load (placeholders are plain YAML strings)."""
    text = LIVE_SITE.read_text(encoding="utf-8")
    for key, value in {"@HOSTNAME@": "bookworm-5.example.test", "@ADDRESS@": "10.231.1.5",
                       "@SSH_USER@": "admin", "@IDENTITY_FILE@": "/k", "@KNOWN_HOSTS@": "/kh"}.items():  # fmt: skip
        text = text.replace(key, value)
    site = parse_site(text)
    assert expect.restriction_reach(site, ("check_sender_access",), trusted=False).applies
