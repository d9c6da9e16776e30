"""`verify` against real Debian hosts in the lab: from the LAN, from the outside namespace, and on hosts
broken by hand (open relay, AUTH before TLS, a certificate for another name), each restored afterwards.

Needs root and the lab (`mailprov.lab`). Uses lab hosts `<distro>-N`, N from MAILPROV_VERIFY_LAB_INDEX
(default 5), so it does not step on hosts others are applying to. Before any probe, the route to the host
must go through the lab's bridge: if the lab went away meanwhile, no packet leaves for the real network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.verify import CheckResult, VerifyOptions, check_rows, to_json, verify_site

pytestmark = pytest.mark.live

if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("ip"):
    pytest.skip("the lab needs root on Linux", allow_module_level=True)
try:
    from mailprov import lab
    from mailprov.lab import LabHost
except ImportError as exc:  # pragma: no cover - the lab is being built alongside
    pytest.skip(f"mailprov.lab is not available: {exc}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
import lab_site as by_hand  # noqa: E402 - the lab site and root access, next to this file

REPO = Path(__file__).resolve().parents[2]
LAB_INDEX = int(os.environ.get("MAILPROV_VERIFY_LAB_INDEX", "5"))
LAN_BRIDGE = "mplab0"
OUTSIDE_BRIDGE = "br-out"


@dataclass(frozen=True)
class Provisioned:
    lab: by_hand.LabTarget
    site_path: Path
    site: Site
    password: str


# --- the lab host, provisioned -----------------------------------------------------------------------


def require_lab_route(address: str, netns: str | None = None) -> None:
    """Refuse to probe unless `address` is reached through the lab's own link."""
    argv = ["ip", *(["-n", netns] if netns else []), "route", "get", address]
    route = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    bridge = OUTSIDE_BRIDGE if netns else LAN_BRIDGE
    if f" dev {bridge} " not in route + " ":
        pytest.fail(f"{address} is not routed through the lab ({bridge}): {route.strip() or 'no route'}")


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def lab_host(request: pytest.FixtureRequest, lab_host_at: Callable[[str, int], LabHost]) -> by_hand.LabTarget:
    h = lab_host_at(request.param, LAB_INDEX)  # our own host: this module breaks and restores it
    require_lab_route(h.address)
    return by_hand.LabTarget(h.name, h.address, h.ssh_port, h.root_key, h.user, h.known_hosts, h.outside_address)


@pytest.fixture(scope="module")
def provisioned(lab_host: by_hand.LabTarget, tmp_path_factory: pytest.TempPathFactory) -> Provisioned:
    """The host, provisioned the way admins do it: `mailprov apply SITE --yes`."""
    password = by_hand.ensure_password()
    site_path = by_hand.write_site(lab_host, tmp_path_factory.mktemp(lab_host.name) / "site.yaml")
    argv = [sys.executable, "-m", "mailprov.cli", "apply", str(site_path), "--yes"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert password not in proc.stdout + proc.stderr
    return Provisioned(lab_host, site_path, load_site(site_path), password)


def verify_from_lan(p: Provisioned, *, host_checks: bool = True) -> dict[str, CheckResult]:
    require_lab_route(p.lab.address)
    options = VerifyOptions(host_checks=host_checks, dns=host_checks)
    results = verify_site(p.site, p.site.hosts, options, p.site_path.parent)
    shown = json.dumps(to_json(results)) + repr(check_rows(results))
    assert p.password not in shown
    (checks,) = results.values()
    return {r.name: r for r in checks}


def verify_from_outside(p: Provisioned, address: str | None = None) -> tuple[int, dict[str, dict[str, str]]]:
    """`python -m mailprov.verify --from-outside` inside the outside namespace (10.232.0.1), at the host's
    LAN address or at `address` (`--address`: the host's public address for this run)."""
    netns = lab.outside_netns()
    require_lab_route(address or p.lab.address, netns)
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "mailprov.verify", str(p.site_path),
            "--from-outside", "--json", "--no-dns",  # SSH too: the certificate the password may go to
            *(["--address", address] if address else [])]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert p.password not in proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    (host,) = json.loads(proc.stdout)["hosts"].values()
    return proc.returncode, {c["name"]: c for c in host["checks"]}


def failures(checks: dict[str, CheckResult]) -> dict[str, str]:
    return {name: r.detail for name, r in checks.items() if r.status == "fail"}


# --- a working host ----------------------------------------------------------------------------------

MUST_PASS_FROM_LAN = (
    "client.position", "smtp.connect", "smtp.banner_names_host", "smtp.starttls_offered",
    "smtp.starttls_handshake", "smtp.auth_before_tls", "smtp.auth_offered_after_tls",
    "smtp.auth_valid_password", "smtp.auth_wrong_password", "smtp.cert_names_host", "smtp.cert_expiry",
    "smtp.tls_refuses_tls1_0", "smtp.tls_refuses_tls1_1", "smtp.local_recipient_accepted",
    "imaps.cert_names_host", "pop3s.cert_names_host", "restrictions.helo_required",
    "ports.smtp_from_lan", "ports.imap_from_lan", "ports.pop3_from_lan", "ports.imaps_from_lan",
    "ports.pop3s_from_lan", "ports.submission_from_lan", "ports.smtps_from_lan",
    "imap.plaintext_login_refused", "pop3.plaintext_login_refused",
    "host.ssh", "host.package.postfix", "host.service_running.postfix", "host.service_enabled.dovecot",
    "host.tls_key_private", "host.maildir.john", "host.postfix_check", "host.postconf_warnings",
    "host.doveconf", "host.map_fresh.aliases", "host.map_fresh.sender_access", "host.firewall_hooked.ipv4",
    "delivery.smtp_accepted", "delivery.maildir", "delivery.imaps_read", "delivery.pop3s_read",
    "delivery.site_alias_accepted", "delivery.site_alias_maildir",
)  # fmt: skip
SKIPPED_FROM_LAN = ("relay.", "restrictions.non_fqdn_helo", "restrictions.non_fqdn_sender",
                    "restrictions.sender_access_reject", "dns.", "dkim.")  # fmt: skip


def test_from_the_lan_everything_passes_or_skips_with_reason(provisioned: Provisioned) -> None:
    checks = verify_from_lan(provisioned)
    assert failures(checks) == {}
    missing = [name for name in MUST_PASS_FROM_LAN if checks.get(name, None) is None]
    assert missing == []
    assert {n: checks[n].status for n in MUST_PASS_FROM_LAN} == dict.fromkeys(MUST_PASS_FROM_LAN, "pass")
    skipped = {name: r.detail for name, r in checks.items() if r.status == "skip"}
    assert all(name.startswith(SKIPPED_FROM_LAN) for name in skipped), skipped
    assert all(detail for detail in skipped.values())
    assert "mynetworks" in checks["relay.percent_hack"].detail


def test_from_outside_relay_is_refused_and_lan_ports_are_closed(provisioned: Provisioned) -> None:
    rc, checks = verify_from_outside(provisioned)
    failed = {n: c["detail"] for n, c in checks.items() if c["status"] == "fail"}
    assert (rc, failed) == (0, {})
    for name in ("relay.external_recipient", "relay.quoted_local_part", "relay.percent_hack",
                 "relay.source_route", "relay.bang_path", "relay.double_at",
                 "ports.imap_from_outside", "ports.pop3_from_outside", "ports.smtp_from_outside",
                 "ports.imaps_from_outside", "restrictions.non_fqdn_helo", "restrictions.non_fqdn_sender",
                 "restrictions.sender_access_reject", "delivery.smtp_accepted", "delivery.imaps_read",
                 "delivery.pop3s_read", "client.position"):  # fmt: skip
        assert checks[name]["status"] == "pass", (name, checks[name]["detail"])
    assert "refused" in checks["ports.imap_from_outside"]["detail"]
    assert checks["imap.plaintext_login_refused"]["status"] == "skip"  # 143 is closed from outside


# --- hosts broken by hand, then restored -------------------------------------------------------------


@contextmanager
def broken(p: Provisioned, breaking: str, restoring: str) -> Iterator[None]:
    with by_hand.root_transport(p.lab) as t:
        by_hand.sh(t, breaking)
    try:
        yield
    finally:
        with by_hand.root_transport(p.lab) as t:
            by_hand.sh(t, restoring)


MAIN_CF = "/etc/postfix/main.cf"
SAVE_MAIN_CF = f"cp -p {MAIN_CF} {MAIN_CF}.verify-test"
# A restart, not `postfix reload`: after a reload an idle smtpd of the old generation may still take the
# next connection with the old settings.
RESTART_POSTFIX = "service postfix stop >/dev/null 2>&1 </dev/null; service postfix start >/dev/null 2>&1 </dev/null"
RESTORE_MAIN_CF = f"mv {MAIN_CF}.verify-test {MAIN_CF} && {RESTART_POSTFIX}"


def test_open_relay_is_named(provisioned: Provisioned) -> None:
    with broken(provisioned, f"{SAVE_MAIN_CF} && postconf -e 'mynetworks = 0.0.0.0/0' && {RESTART_POSTFIX}",
                RESTORE_MAIN_CF):  # fmt: skip
        rc, checks = verify_from_outside(provisioned)
    assert rc == 1
    relay = {n: c for n, c in checks.items() if n.startswith("relay.")}
    assert relay["relay.external_recipient"]["status"] == "fail"
    assert "OPEN RELAY" in relay["relay.external_recipient"]["detail"]
    assert all(c["status"] == "fail" for c in relay.values()), relay
    _, after = verify_from_outside(provisioned)
    assert {n: c["status"] for n, c in after.items() if n.startswith("relay.")} == dict.fromkeys(relay, "pass")


def test_auth_before_tls_is_named(provisioned: Provisioned) -> None:
    with broken(provisioned, f"{SAVE_MAIN_CF} && postconf -e 'smtpd_tls_auth_only = no' && {RESTART_POSTFIX}",
                RESTORE_MAIN_CF):  # fmt: skip
        checks = verify_from_lan(provisioned, host_checks=False)
    assert failures(checks).keys() == {"smtp.auth_before_tls"}
    assert "offered before STARTTLS" in checks["smtp.auth_before_tls"].detail


def test_certificate_for_another_name_is_named(provisioned: Provisioned) -> None:
    cert = provisioned.site.hosts[0].name
    c, k = f"/etc/ssl/certs/{cert}.pem", f"/etc/ssl/private/{cert}.key"
    restart = "; ".join(
        f"service {s} stop >/dev/null 2>&1 </dev/null; service {s} start >/dev/null 2>&1 </dev/null"
        for s in ("postfix", "dovecot")
    )
    breaking = (
        f"cp -p {c} {c}.verify-test && cp -p {k} {k}.verify-test && "
        f"openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=wrong.example.test "
        f"-keyout {k} -out {c} 2>/dev/null && {restart}"
    )
    restoring = f"mv {c}.verify-test {c} && mv {k}.verify-test {k} && {restart}"
    with broken(provisioned, breaking, restoring):
        checks = verify_from_lan(provisioned, host_checks=False)
    assert failures(checks).keys() == {"smtp.cert_names_host", "imaps.cert_names_host", "pop3s.cert_names_host"}
    assert "wrong.example.test" in checks["smtp.cert_names_host"].detail
    assert verify_from_lan(provisioned, host_checks=False)["smtp.cert_names_host"].status == "pass"


def test_unknown_host_key_is_refused(provisioned: Provisioned, tmp_path: Path) -> None:
    """The on-host checks use mailprov's SSH transport: a host missing from known_hosts is not logged into."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    text = provisioned.site_path.read_text(encoding="utf-8").replace(provisioned.lab.known_hosts, str(empty))
    site_path = tmp_path / "site.yaml"
    site_path.write_text(text, encoding="utf-8")
    site = load_site(site_path)
    require_lab_route(provisioned.lab.address)
    results = verify_site(site, site.hosts, VerifyOptions(dns=False), tmp_path)
    checks = {r.name: r for r in results[site.hosts[0].name]}
    assert checks["host.ssh"].status == "fail"
    assert "known_hosts" in checks["host.ssh"].detail or "unknown" in checks["host.ssh"].detail.lower()
    assert not any(name.startswith("host.package") for name in checks)
    assert checks["delivery.maildir"].status == "skip"


def test_from_outside_at_the_public_address_and_a_stopped_postgrey_fails(provisioned: Provisioned) -> None:
    """Reached at its outside address, the host passes; postgrey stopped by hand makes verify FAIL (Postfix
    then answers `451 4.3.5 Server configuration problem`, which is not greylisting); apply starts it again."""
    outside = provisioned.lab.outside_address
    rc, checks = verify_from_outside(provisioned, outside)
    assert rc == 0, {n: c["detail"] for n, c in checks.items() if c["status"] == "fail"}
    assert checks["smtp.local_recipient_accepted"]["status"] == "pass"
    with by_hand.root_transport(provisioned.lab) as root:
        root.run_script("service postgrey stop >/dev/null 2>&1; true", check=False)
        try:
            rc, checks = verify_from_outside(provisioned, outside)
            assert rc == 1
            failed = checks["smtp.local_recipient_accepted"]
            assert failed["status"] == "fail" and "451" in failed["detail"], failed
        finally:
            argv = [sys.executable, "-m", "mailprov.cli", "apply", str(provisioned.site_path), "--yes"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
            assert proc.returncode == 0 and "postgrey is not running: start it" in proc.stdout, proc.stdout[-2000:]
    rc, _ = verify_from_outside(provisioned, outside)
    assert rc == 0
