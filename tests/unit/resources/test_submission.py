"""Submission (587) and submissions (465): master.cf per Postfix version, the sender login map built from
users and aliases, AUTH only inside TLS, and `sasl.on_port_25: false`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.config.model import Site
from mailprov.dialects import Dialect
from mailprov.errors import ConfigError
from mailprov.facts.platform import PRESETS
from mailprov.render import render_host
from mailprov.resources.maps import sender_owners
from resources.helpers import plan_for, site_from, site_text, with_new_reads

SUBMISSION = "mailbox: maildir\npostfix:\n  submission: true\n  smtps: true"


def submission_site(tmp_path: Path, sasl: str = "sasl:\n  enabled: true\n") -> Site:
    text = site_text().replace("mailbox: maildir", SUBMISSION).replace("sasl:\n  enabled: true\n", sasl)
    return site_from(text.replace("aliases:\n  root: [john]", "aliases:\n  root: [john]\n  team: [john, root]"),
                     tmp_path)  # fmt: skip


def rendered(site: Site, preset: str, path: str) -> str:
    return render_host(site, site.hosts[0], PRESETS[preset]).file(path).text()


def services(master: str) -> dict[str, list[str]]:
    """master.cf block: service name → its -o options."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in master.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name = line.split()[0]
            out[name] = []
        elif line.strip().startswith("-o "):
            out[name].append(line.strip()[3:])
    return out


def test_owners_are_users_their_aliases_and_aliases_of_one_user(tmp_path: Path) -> None:
    owners = dict(sender_owners(submission_site(tmp_path)))
    for name in ("john", "jsmith", "j.smith", "root"):
        assert owners[f"{name}@example.test"] == "john"
        assert owners[f"{name}@mx1.example.test"] == "john"  # $myhostname is a local domain too
    assert not any(a.startswith("team@") for a in owners)  # two owners: nobody may send as it


@pytest.mark.parametrize(
    ("preset", "name", "relay"), [("debian12", "submissions", True), ("centos7", "smtps", True),
                                  ("centos6", "smtps", False)]
)  # fmt: skip
def test_master_cf_follows_postfix_s_own_submission_examples(
    tmp_path: Path, preset: str, name: str, relay: bool
) -> None:
    assert Dialect.of(PRESETS[preset]).submissions_service == name
    svc = services(rendered(submission_site(tmp_path), preset, "/etc/postfix/master.cf"))
    assert list(svc) == ["submission", name]
    assert "smtpd_tls_wrappermode=yes" in svc[name] and "smtpd_tls_wrappermode=yes" not in svc["submission"]
    for opts in svc.values():
        assert {"smtpd_tls_security_level=encrypt", "smtpd_tls_auth_only=yes", "smtpd_sasl_auth_enable=yes",
                "smtpd_client_restrictions=permit_sasl_authenticated,reject",
                "smtpd_sender_restrictions=reject_sender_login_mismatch"} <= set(opts)  # fmt: skip
        if relay:
            assert {
                "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
                "smtpd_recipient_restrictions=",
            } <= set(opts)  # port 25's greylisting and DNS lists are not for the site's own users
        else:
            assert "smtpd_recipient_restrictions=permit_sasl_authenticated,reject" in opts


def test_main_cf_names_the_login_map_and_maps_build_it(tmp_path: Path) -> None:
    site = submission_site(tmp_path)
    main = rendered(site, "debian12", "/etc/postfix/main.cf")
    assert "smtpd_sender_login_maps = hash:/etc/postfix/sender_login\n" in main
    assert "smtpd_sasl_auth_enable = yes\n" in main
    plan = plan_for(site, "bookworm", with_new_reads(site, "bookworm"))
    change = next(c for c in plan.changes if c.key == "file:/etc/postfix/sender_login")
    assert "+john@example.test john\n" in change.diff and "+root@example.test john\n" in change.diff
    assert "postmap hash:/etc/postfix/sender_login" in [h.name for h in plan.handlers]


def test_auth_can_leave_port_25(tmp_path: Path) -> None:
    site = submission_site(tmp_path, "sasl:\n  enabled: true\n  on_port_25: false\n")
    main = rendered(site, "debian12", "/etc/postfix/main.cf")
    assert "smtpd_sasl_auth_enable = no\n" in main and "smtpd_sasl_type = dovecot\n" in main
    assert "smtpd_tls_auth_only = yes\n" in main


def test_auth_off_on_25_without_submission_is_refused(tmp_path: Path) -> None:
    text = site_text().replace("sasl:\n  enabled: true\n", "sasl:\n  enabled: true\n  on_port_25: false\n")
    with pytest.raises(ConfigError) as err:
        site_from(text, tmp_path)
    assert "sasl.on_port_25" in str(err.value) and "submission" in str(err.value)


def test_no_submission_no_login_map(tmp_path: Path) -> None:
    site = site_from(site_text(), tmp_path)
    assert "sender_login" not in rendered(site, "debian12", "/etc/postfix/main.cf")
    assert rendered(site, "debian12", "/etc/postfix/master.cf") == ""
