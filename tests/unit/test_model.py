"""The site model: the example inventory expresses the seed guide, and every cross-field rule refuses a
bad site with `FILE:LINE  field.path: message`, the line being the one the admin has to fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from mailprov.config.loader import load_site, parse_site
from mailprov.config.model import AccessAction, Site
from mailprov.config.restrictions import Restriction
from mailprov.config.secrets import sha512_crypt
from mailprov.errors import ConfigError
from mailprov.render import PORTS

FILE = "site.yaml"
MARK = "#<"  # marks the line the error must point at


# --- the example is the guide ------------------------------------------------------------------------


@pytest.fixture
def site(example_path: Path) -> Site:
    return load_site(example_path)


def test_example_identity_matches_the_guide(site: Site) -> None:
    assert site.domain == "example.com"
    assert [h.name for h in site.hosts] == ["mail.example.com"]
    assert site.myorigin == "$mydomain"
    assert site.mydestination == ("$myhostname", "localhost.$mydomain", "localhost", "$mydomain")
    assert site.mynetworks == ("192.168.0.0/24", "127.0.0.0/8")
    assert site.relay_domains == ()
    assert site.mailbox.value == "maildir"


def test_example_john_has_his_aliases_and_gets_roots_mail(site: Site) -> None:
    (john,) = site.users
    assert john.login == "john"
    assert john.full_name == "John Smith"
    assert john.aliases == ("jsmith", "j.smith")
    assert john.password is not None and john.password.env == "MAILPROV_JOHN_PASSWORD"
    assert john.password_hash is None  # never a password in the file
    assert site.aliases == {"root": ("john",)}


def test_example_restrictions_are_the_guides(site: Site) -> None:
    r = site.restrictions
    assert r.delay_reject and r.helo_required
    assert [x.name for x in r.helo] == [
        "permit_mynetworks",
        "reject_non_fqdn_helo_hostname",
        "reject_invalid_helo_hostname",
        "permit",
    ]
    assert [x.name for x in r.sender] == [
        "permit_mynetworks",
        "reject_non_fqdn_sender",
        "reject_unknown_sender_domain",
        "permit",
    ]
    names = [x.name for x in r.recipient]
    assert names.index("reject_unauth_destination") < names.index("check_sender_access")
    assert Restriction("reject_rbl_client", "zen.spamhaus.org") in r.recipient
    assert Restriction("reject_rbl_client", "bl.spamcop.net") in r.recipient
    assert Restriction("check_policy_service", "postgrey") in r.recipient
    assert Restriction("permit_sasl_authenticated") in r.recipient
    assert names[-1] == "permit"


def test_example_sender_access_has_the_guides_six_lines(site: Site) -> None:
    assert [e.line() for e in site.sender_access] == [
        "myfriend@example.com OK",
        "junk@spam.com REJECT",
        "marketing@ REJECT",
        "theboss@ OK",
        "deals.marketing.com REJECT",
        "somedomain.com OK",
    ]


def test_example_greylisting_sasl_tls(site: Site) -> None:
    assert site.greylisting.enabled and site.greylisting.delay == 300
    assert site.sasl.enabled and site.sasl.mechanisms == ("plain", "login")
    assert site.tls.enabled and site.tls.files is None
    assert site.tls.generate is not None and site.tls.generate.days == 365
    assert site.tls.generate.subject == "/C=US/O=Example/CN=mail.example.com"
    assert site.tls.auth_only and site.tls.security_level == "may"


def test_example_firewall_opens_25_993_995_and_keeps_143_110_on_the_lan(site: Site) -> None:
    assert site.firewall.enabled
    assert {PORTS[s] for s in site.firewall.open} == {25, 993, 995}
    assert {PORTS[s] for s in site.firewall.lan_only} == {143, 110}


def test_minimal_inventory_validates(minimal_path: Path) -> None:
    site = load_site(minimal_path)
    assert site.users[0].login == "alice"
    assert site.aliases == {"root": ("alice",), "postmaster": ("root",)}


def test_site_is_immutable(site: Site) -> None:
    with pytest.raises(ValidationError, match="frozen"):
        site.domain = "evil.example"


# --- cross-field rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A change to the example (old → new text); the error must name `path` on the line marked #<."""

    id: str
    edits: tuple[tuple[str, str], ...]
    path: str
    message: str


def _edit(text: str, edits: tuple[tuple[str, str], ...]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, f"the example changed: {old!r} is not there exactly once"
        text = text.replace(old, new)
    return text


def _marked_line(text: str) -> int:
    (line,) = [n for n, content in enumerate(text.splitlines(), 1) if MARK in content]
    return line


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_site(text, FILE)
    return str(info.value)


SENDER_ACCESS = """sender_access:
  - {pattern: myfriend@example.com, action: OK}
  - {pattern: junk@spam.com, action: REJECT}
  - {pattern: marketing@, action: REJECT}
  - {pattern: theboss@, action: OK}
  - {pattern: deals.marketing.com, action: REJECT}
  - {pattern: somedomain.com, action: OK}
"""
GOOD_HASH = sha512_crypt("correct horse", "saltsalt")

BAD = [
    Bad(
        "user listed twice",
        (("    aliases: [jsmith, j.smith]\n", "    aliases: [jsmith, j.smith]\n  - login: john  #<\n"),),
        "users.1.login",
        "user john is listed twice",
    ),
    Bad(
        "duplicate uid",
        (
            ("    full_name: John Smith\n", "    full_name: John Smith\n    uid: 1001\n"),
            (
                "    aliases: [jsmith, j.smith]\n",
                "    aliases: [jsmith, j.smith]\n  - login: mary\n    uid: 1001  #<\n",
            ),
        ),
        "users.1.uid",
        "uid 1001 is used twice",
    ),
    Bad(
        "alias to nobody",
        (("  root: [john]", "  root: [jon]  #<"),),
        "aliases.root.0",
        "'jon' is neither a site user nor an alias: mail to root would bounce",
    ),
    Bad(
        "alias defined twice (aliases and a user's aliases)",
        (("  root: [john]", "  root: [john]\n  jsmith: [root]  #<"),),
        "aliases.jsmith",
        "alias jsmith is also defined at users.0.aliases.0",
    ),
    Bad(
        "alias with a dot defined twice",
        (("  root: [john]", "  root: [john]\n  j.smith: [root]  #<"),),
        "aliases.j.smith",
        "alias j.smith is also defined at users.0.aliases.1",
    ),
    Bad(
        "alias defined twice (two users)",
        (
            (
                "    aliases: [jsmith, j.smith]\n",
                "    aliases: [jsmith, j.smith]\n  - login: mary\n    aliases: [jsmith]  #<\n",
            ),
        ),
        "users.1.aliases.0",
        "alias jsmith is defined twice",
    ),
    Bad(
        "alias shadows a user",
        (("  root: [john]", "  root: [john]\n  john: [root]  #<"),),
        "aliases.john",
        "alias john would shadow the user john",
    ),
    Bad(
        "permit_sasl_authenticated without SASL",
        (
            ("sasl:\n  enabled: true", "sasl:\n  enabled: false"),
            ("    - permit_sasl_authenticated\n", "    - permit_sasl_authenticated  #<\n"),
        ),
        "restrictions.recipient.4",
        "permit_sasl_authenticated needs `sasl: {enabled: true}`",
    ),
    Bad(
        "postgrey check without greylisting",
        (
            ("greylisting:\n  enabled: true", "greylisting:\n  enabled: false"),
            ("    - check_policy_service: postgrey\n", "    - check_policy_service: postgrey  #<\n"),
        ),
        "restrictions.recipient.9",
        "check_policy_service postgrey needs greylisting enabled",
    ),
    Bad(
        "greylisting without the postgrey check",
        (
            ("    - check_policy_service: postgrey\n", ""),
            ("greylisting:\n  enabled: true", "greylisting:\n  enabled: true  #<"),
        ),
        "greylisting.enabled",
        "no restriction list has `check_policy_service: postgrey`",
    ),
    Bad(
        "check_sender_access with an empty table",
        (
            (SENDER_ACCESS, "sender_access: []\n"),
            ("    - check_sender_access: sender_access\n", "    - check_sender_access: sender_access  #<\n"),
        ),
        "restrictions.recipient.6",
        "check_sender_access is used but sender_access is empty",
    ),
    Bad(
        "open relay: no reject_unauth_destination",
        (
            ("    - reject_unauth_destination\n", ""),
            ("  recipient:\n", "  recipient:  #<\n"),
        ),
        "restrictions.recipient",
        "the server would be an open relay",
    ),
    Bad(
        "permit before reject_unauth_destination",
        (("    - reject_unauth_destination\n", "    - permit  #<\n    - reject_unauth_destination\n"),),
        "restrictions.recipient.5",
        "`permit` ends a list",
    ),
    Bad(
        "permit_auth_destination before reject_unauth_destination",
        (
            (
                "    - reject_unauth_destination\n",
                "    - permit_auth_destination  #<\n    - reject_unauth_destination\n",
            ),
        ),
        "restrictions.recipient.5",
        "permit_auth_destination before reject_unauth_destination lets anyone relay",
    ),
    Bad(
        "whitelisting sender_access before reject_unauth_destination",
        (
            ("    - check_sender_access: sender_access\n", ""),
            (
                "    - reject_unauth_destination\n",
                "    - check_sender_access: sender_access  #<\n    - reject_unauth_destination\n",
            ),
        ),
        "restrictions.recipient.5",
        "check_sender_access before reject_unauth_destination lets anyone relay",
    ),
    Bad(
        "mynetworks 0.0.0.0/0",
        (("mynetworks: [192.168.0.0/24, 127.0.0.0/8]", "mynetworks: [192.168.0.0/24, 0.0.0.0/0]  #<"),),
        "mynetworks.1",
        "0.0.0.0/0 trusts far too many clients",
    ),
    Bad(
        "mynetworks ::/0",
        (("mynetworks: [192.168.0.0/24, 127.0.0.0/8]", "mynetworks:\n  - 192.168.0.0/24\n  - ::/0  #<"),),
        "mynetworks.1",
        "::/0 trusts far too many clients",
    ),
    Bad(
        "SASL without TLS",
        (
            ("tls:\n  generate:", "tls:\n  enabled: false\n  generate:"),
            ("sasl:\n  enabled: true", "sasl:\n  enabled: true  #<"),
        ),
        "sasl.enabled",
        "SASL without TLS sends passwords in clear text",
    ),
    Bad(
        "unknown top-level key",
        (("mynetworks: [192.168.0.0/24, 127.0.0.0/8]", "mynetwork: [192.168.0.0/24, 127.0.0.0/8]  #<"),),
        "mynetwork",
        "unknown key 'mynetwork' (did you mean 'mynetworks'?)",
    ),
    Bad(
        "unknown nested key",
        (("    full_name: John Smith", "    fullname: John Smith  #<"),),
        "users.0.fullname",
        "unknown key 'fullname' (did you mean 'full_name'?)",
    ),
    Bad(
        "Postfix 2.2 name reject_invalid_hostname",
        (("    - reject_invalid_helo_hostname\n", "    - reject_invalid_hostname  #<\n"),),
        "restrictions.helo.2",
        "unknown restriction 'reject_invalid_hostname' (Postfix 2.3 renamed it: use reject_invalid_helo_hostname)",
    ),
    Bad(
        "Postfix 2.2 name reject_non_fqdn_hostname",
        (("    - reject_non_fqdn_helo_hostname\n", "    - reject_non_fqdn_hostname  #<\n"),),
        "restrictions.helo.1",
        "(Postfix 2.3 renamed it: use reject_non_fqdn_helo_hostname)",
    ),
    Bad(
        "restriction typo",
        (("    - reject_unknown_sender_domain\n", "    - reject_unknown_sender_domian  #<\n"),),
        "restrictions.sender.2",
        "(did you mean reject_unknown_sender_domain?)",
    ),
    Bad(
        "password inline as plain text",
        (("    password: {env: MAILPROV_JOHN_PASSWORD}", "    password: Tr0ub4dor&3  #<"),),
        "users.0.password",
        "a secret is never written in the site file",
    ),
    Bad(
        "a plain-text password under another name",
        (("    password: {env: MAILPROV_JOHN_PASSWORD}", "    plain_password: Tr0ub4dor&3  #<"),),
        "users.0.plain_password",
        "unknown key 'plain_password'",
    ),
    Bad(
        "password_hash that is MD5-crypt",
        (
            (
                "    password: {env: MAILPROV_JOHN_PASSWORD}",
                "    password_hash: '$1$saltsalt$Tr0ub4dor3Tr0ub4dor3xx'  #<",
            ),
        ),
        "users.0.password_hash",
        "must be a SHA-512-crypt hash",
    ),
    Bad(
        "password_hash that is the password itself",
        (("    password: {env: MAILPROV_JOHN_PASSWORD}", "    password_hash: Tr0ub4dor&3  #<"),),
        "users.0.password_hash",
        "must be a SHA-512-crypt hash",
    ),
    Bad(
        "password_hash and a password reference",
        (
            (
                "    password: {env: MAILPROV_JOHN_PASSWORD}",
                f"    password: {{env: MAILPROV_JOHN_PASSWORD}}\n    password_hash: '{GOOD_HASH}'",
            ),
            ("  - login: john", "  - login: john  #<"),
        ),
        "users.0",
        "give either password_hash or password",
    ),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_rule_names_file_line_and_field(example_text: str, bad: Bad) -> None:
    text = _edit(example_text, bad.edits)
    problems = _problems(text)
    expected = f"  {FILE}:{_marked_line(text)}  {bad.path}: "
    lines = [line for line in problems.splitlines() if line.startswith(expected)]
    assert lines, f"no line starting {expected!r} in:\n{problems}"
    assert any(bad.message in line for line in lines), problems


def test_the_inline_password_is_never_repeated(example_text: str) -> None:
    for value in ("Tr0ub4dor&3", "'correct horse battery'"):
        problems = _problems(_edit(example_text, (("password: {env: MAILPROV_JOHN_PASSWORD}", f"password: {value}"),)))
        assert value.strip("'") not in problems
    problems = _problems(_edit(example_text, (("password: {env: MAILPROV_JOHN_PASSWORD}", "password_hash: hunter2"),)))
    assert "hunter2" not in problems


def test_a_site_needs_a_host(example_text: str) -> None:
    hosts = "  - name: mail.example.com          # becomes myhostname\n    ssh:\n      address: 192.168.0.10\n"
    text = _edit(example_text, (("hosts:\n" + hosts + "      user: root\n", "hosts: []\n"),))
    assert f"  {FILE}:5  hosts: a site needs at least one host" in _problems(text)


def test_a_bad_host_is_one_problem_not_also_too_few_hosts(example_text: str) -> None:
    problems = _problems(_edit(example_text, (("      address: 192.168.0.10", "      address: mail_gw!"),)))
    assert f"{FILE} is invalid (1 problem):" in problems
    assert f"  {FILE}:8  hosts.0.ssh.address: " in problems


def test_every_problem_is_listed_at_once(example_text: str) -> None:
    text = _edit(
        example_text,
        (
            ("    full_name: John Smith", "    fullname: John Smith"),
            ("    - reject_invalid_helo_hostname\n", "    - reject_invalid_hostname\n"),
        ),
    )
    problems = _problems(text)
    assert f"{FILE} is invalid (2 problems):" in problems
    assert "users.0.fullname" in problems and "restrictions.helo.2" in problems


# --- what the rules allow ------------------------------------------------------------------------------


def test_blacklisting_sender_access_may_come_before_reject_unauth_destination(example_text: str) -> None:
    only_rejects = "\n".join(line for line in SENDER_ACCESS.splitlines() if "action: OK" not in line) + "\n"
    text = _edit(
        example_text,
        (
            (SENDER_ACCESS, only_rejects),
            ("    - check_sender_access: sender_access\n", ""),
            (
                "    - reject_unauth_destination\n",
                "    - check_sender_access: sender_access\n    - reject_unauth_destination\n",
            ),
        ),
    )
    site = parse_site(text, FILE)
    assert all(e.action is AccessAction.REJECT for e in site.sender_access)


def test_no_restrictions_at_all_is_not_an_open_relay(minimal_path: Path) -> None:
    # mailprov renders permit_mynetworks, reject_unauth_destination itself when nothing is given
    assert load_site(minimal_path).restrictions.recipient == ()


def test_a_sha512_password_hash_is_accepted(example_text: str) -> None:
    text = _edit(example_text, (("password: {env: MAILPROV_JOHN_PASSWORD}", f"password_hash: '{GOOD_HASH}'"),))
    assert parse_site(text, FILE).users[0].password_hash == GOOD_HASH


def test_postfix_2_2_names_are_not_silently_translated(example_text: str) -> None:
    # the hint tells the admin; the file is still refused, so a copied CentOS 4 guide never reaches main.cf
    text = _edit(example_text, (("    - reject_invalid_helo_hostname\n", "    - reject_invalid_hostname\n"),))
    with pytest.raises(ConfigError):
        parse_site(text, FILE)


def test_a_certificate_made_inside_its_renewal_window_is_refused() -> None:
    """days: 30 with the default renew_before_days: 30 was renewed at every apply (no plan ever empty)."""
    import pydantic

    from mailprov.config.model import GeneratedCert

    with pytest.raises(pydantic.ValidationError, match=r"renew_before_days \(30\) must be less than days \(30\)"):
        GeneratedCert(days=30)
    assert GeneratedCert(days=30, renew_before_days=10).days == 30


@pytest.mark.parametrize(
    ("postfix", "where"),
    [
        ({"message_size_limit": 60_000_000}, "message_size_limit"),  # over Postfix's default mailbox limit
        ({"extra": {"mailbox_size_limit": 1_000_000}}, "extra.mailbox_size_limit"),  # under the default message
    ],
)
def test_a_mailbox_smaller_than_one_message_is_refused(postfix: dict[str, object], where: str) -> None:
    """local(8) defers every delivery then, though `postfix check` passes (the conformance suite met it)."""
    import pydantic

    from mailprov.config.model import Postfix

    with pytest.raises(pydantic.ValidationError, match="Postfix would defer every local delivery") as caught:
        Postfix.model_validate(postfix)
    assert where in str(caught.value) or "mailbox" in str(caught.value)
    assert Postfix.model_validate({"message_size_limit": 60_000_000, "extra": {"mailbox_size_limit": 0}})
