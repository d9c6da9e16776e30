"""Facts in, changes out: the probe parser on output captured from real lab hosts (Debian 12 and 13,
converged by `mailprov apply`; one speculative probe each), and plans built from it. No network."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from mailprov.apply import build_script, handler_commands
from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.errors import ConfigError
from mailprov.facts.probe import HostState, parse_probe
from mailprov.plan import Handler, HostPlan, build_plan
from mailprov.planfile import load, save
from mailprov.render import render_host

DATA = Path(__file__).resolve().parents[1] / "data"
PASSWORD = "Live-john-pw-42"  # the lab password the captured shadow hash was made from
DISTROS = {"bookworm": 0, "trixie": 1}


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", PASSWORD)


def captured(distro: str) -> HostState:
    host = f"mx{DISTROS[distro] + 1}.example.test"
    return parse_probe((DATA / f"probe-{distro}.txt").read_text(), host)


def plan_for(site: Site, distro: str, state: HostState | None = None) -> HostPlan:
    state = state or captured(distro)
    host = site.hosts[DISTROS[distro]]
    rendered = render_host(site, host, state.platform, DATA)
    return build_plan(site, rendered, state, DATA)


def site_text() -> str:
    return (DATA / "lab-site.yaml").read_text()


def site_from(text: str, tmp_path: Path) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return load_site(path)


def test_platforms_read_from_real_hosts() -> None:
    bookworm, trixie = captured("bookworm").platform, captured("trixie").platform
    assert (str(bookworm.postfix_version), str(bookworm.dovecot_version)) == ("3.7.11", "2.3.19")
    assert (str(trixie.postfix_version), str(trixie.dovecot_version)) == ("3.10.13", "2.4.1")
    for p in (bookworm, trixie):
        assert p.os_family.value == "debian" and p.package_manager.value == "apt"
        assert p.init_system.value == "sysv"  # lab hosts run init.d scripts, no systemd
        assert "hash" in p.map_types and not p.has_syslog


def test_state_read_from_real_host() -> None:
    state = captured("bookworm")
    assert state.postfix_installed and state.dovecot_installed
    assert {"postfix", "dovecot-core", "postgrey", "iptables-persistent"} <= set(state.packages)
    main_cf = state.files["/etc/postfix/main.cf"]
    assert main_cf.exists and (main_cf.owner, main_cf.mode) == ("root", 0o644)
    assert main_cf.content is not None and "myhostname = mx1.example.test" in main_cf.content
    key = state.files["/etc/ssl/private/mx1.example.test.key"]
    assert key.content is None and key.mode == 0o600  # a secret file: checksum only, never read
    assert state.users["john"].shadow_hash.startswith("$6$")
    assert state.dirs["/home/john/Maildir"].mode == 0o700
    assert state.services["postfix"].running and state.services["dovecot"].running
    assert state.firewall_hooked == {"ipv4": True, "ipv6": True}
    cert = state.certs["/etc/ssl/certs/mx1.example.test.pem"]
    assert cert.exists and not cert.expiring and cert.subject.endswith("mx1.example.test")


@pytest.mark.parametrize("distro", DISTROS)
def test_converged_host_plans_no_change(distro: str) -> None:
    plan = plan_for(load_site(DATA / "lab-site.yaml"), distro)
    assert plan.changes == () and plan.handlers == ()


def test_removed_sender_access_entry_is_one_map_change(tmp_path: Path) -> None:
    site = site_from(site_text().replace("  - {pattern: junk@spam.com, action: REJECT}\n", ""), tmp_path)
    plan = plan_for(site, "bookworm")
    assert [c.key for c in plan.changes] == ["file:/etc/postfix/sender_access"]
    assert "-junk@spam.com REJECT\n" in plan.changes[0].diff
    assert plan.handlers == (Handler.POSTMAP, Handler.POSTFIX)
    assert handler_commands(Handler.POSTMAP, plan) == ["postmap hash:/etc/postfix/sender_access"]


def test_changed_password_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "a-new-password-1")
    plan = plan_for(load_site(DATA / "lab-site.yaml"), "trixie")
    (change,) = plan.changes
    assert change.summary == "user john: password changed (redacted)"
    (command,) = change.commands
    assert command.display() == "chpasswd -e <<(stdin redacted)"
    assert command.stdin is not None and command.secrets[0] in command.stdin  # the hash goes on stdin only
    assert "a-new-password-1" not in repr(plan)


def test_hand_edit_shows_as_drift() -> None:
    state = captured("bookworm")
    main_cf = state.files["/etc/postfix/main.cf"]
    assert main_cf.content is not None
    edited = dataclasses.replace(main_cf, content=main_cf.content + "# by hand\n", md5="0" * 32)
    state = dataclasses.replace(state, files={**state.files, main_cf.path: edited})
    plan = plan_for(load_site(DATA / "lab-site.yaml"), "bookworm", state)
    (change,) = plan.changes
    assert change.drift and "drift" in change.summary and "-# by hand\n" in change.diff
    assert plan.handlers == (Handler.POSTFIX,)


def test_missing_maildir_and_stopped_boot_link_are_changes() -> None:
    state = captured("bookworm")
    dirs = {p: d for p, d in state.dirs.items() if not p.endswith("/new")}
    services = {**state.services, "dovecot": dataclasses.replace(state.services["dovecot"], enabled=False)}
    plan = plan_for(load_site(DATA / "lab-site.yaml"), "bookworm",
                    dataclasses.replace(state, dirs=dirs, services=services))  # fmt: skip
    assert [c.key for c in plan.changes] == ["user:john", "enable:dovecot"]
    assert plan.handlers == ()  # a Maildir or a boot link restarts nothing


def test_apply_script_validates_before_switching_and_is_valid_sh(tmp_path: Path) -> None:
    site = site_from(site_text().replace("  root: [john]", "  root: [john]\n  sales: [john]"), tmp_path)
    plan = plan_for(site, "trixie")
    script = build_script(plan, "20260101-000000")
    assert script.index("step validate-postfix") < script.index("step switch")
    assert "doveconf -n -c" not in script  # only aliases changed: Dovecot's config is not revalidated
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_saved_plan_refuses_a_changed_site(tmp_path: Path) -> None:
    site_path = tmp_path / "site.yaml"
    site_path.write_text(site_text())
    saved = tmp_path / "plan.json"
    save(saved, site_path, {"mx1.example.test": "abc"}, [])
    assert load(saved, site_path).fingerprints == {"mx1.example.test": "abc"}
    site_path.write_text(site_text() + "\n# changed\n")
    with pytest.raises(ConfigError, match="changed since the plan"):
        load(saved, site_path)


def test_one_probe_covers_what_each_dialect_needs(tmp_path: Path) -> None:
    from mailprov.facts.platform import PRESETS
    from mailprov.facts.probe import covers
    from mailprov.orchestrate import speculative_request
    from mailprov.plan import probe_request

    site = load_site(DATA / "lab-site.yaml")
    host = site.hosts[0]
    request = speculative_request(site, host, DATA)
    for name, platform in PRESETS.items():
        needed = probe_request(site, render_host(site, host, platform, DATA))
        assert covers(request, needed), name


def test_listening_address_change_restarts_postfix_instead_of_reloading(tmp_path: Path) -> None:
    site = site_from(
        site_text().replace("mailbox: maildir", "mailbox: maildir\npostfix:\n  inet_protocols: ipv4"), tmp_path
    )
    plan = plan_for(site, "bookworm")
    assert Handler.POSTFIX_RESTART in plan.handlers and Handler.POSTFIX not in plan.handlers
    assert handler_commands(Handler.POSTFIX_RESTART, plan) == [
        "if service postfix status >/dev/null 2>&1; then service postfix restart; else service postfix start; fi"
    ]


def test_full_name_change_is_a_usermod(tmp_path: Path) -> None:
    site = site_from(site_text().replace("full_name: John Smith", "full_name: John Q. Smith"), tmp_path)
    (change,) = plan_for(site, "bookworm").changes
    assert [c.display() for c in change.commands] == ["usermod -c 'John Q. Smith' john"]
