"""Mail that big providers accept, proven by a receiver nobody here wrote: a lab site with DKIM, SPF, DMARC,
submission 587/465 and `dns:` at the lab's Knot server, on lab host bookworm-60, sending to the lab's
receiver (Postfix + rspamd at mx.receiver.test), which records its verdict in Authentication-Results.

    plan shows the record changes → apply converges host and zone → a second plan exits 0 (files and records)
    a message submitted on 587 arrives at the receiver with spf=pass, dkim=pass, dmarc=pass
    a From: in the site's domain injected at the receiver from outside the site gets dmarc=fail
    verify (from the outside network, through the lab's DNS): every DNS and DKIM check passes, none skipped;
    a changed SPF record fails exactly dns.spf; a deleted DKIM TXT fails exactly the two DKIM checks
    a new selector: both keys published, new mail signed with it, the receiver still says dkim=pass
    an apply to another selector whose SSH session dies at `switch`: the host keeps serving; the next
    apply publishes the key the cut run made, and the receiver says dkim=pass again

The host's public address is its outside address (10.232.x.y): the lab publishes its A and PTR there, and it
is the address the receiver sees. Only this module manages example.test's apex records (MX, SPF TXT, DMARC).

    MAILPROV_LAB_KEEP=1 .venv/bin/pytest -q tests/live/test_deliverability.py
"""

from __future__ import annotations

import email
import json
import os
import re
import secrets
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.message
import dns.query
import dns.update
import pytest
from test_faults import Root, runs, wait_for_step, wait_until_idle

from mailprov.lab import LabHost, LabReceiver
from mailprov.lab import dns as lab_dns
from mailprov.lab.network import OUTSIDE_NETNS
from mailprov.lab.paths import LabPaths

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
MAILPROV = [sys.executable, "-m", "mailprov.cli"]
INDEX = 60
DOMAIN = lab_dns.LAB_DOMAIN
PASSWORDS = {"john": "Deliver-john-pw-61", "mary": "Deliver-mary-pw-62"}
ENV = {"MAILPROV_DELIVER_JOHN": PASSWORDS["john"], "MAILPROV_DELIVER_MARY": PASSWORDS["mary"]}

SITE = """\
domain: example.test
hosts:
  - name: {name}.example.test
    public_address: {outside}
    ssh: {{address: {address}, user: root, identity_file: {key}, known_hosts: {known}}}
mynetworks: [127.0.0.0/8]
mailbox: maildir
users:
  - login: john
    password: {{env: MAILPROV_DELIVER_JOHN}}
  - login: mary
    password: {{env: MAILPROV_DELIVER_MARY}}
aliases:
  root: [john]
  postmaster: [john]
  dmarc: [john]
sasl: {{enabled: true, on_port_25: false}}
tls:
  generate: {{days: 365}}
postfix: {{submission: true, smtps: true}}
dovecot: {{protocols: [imap]}}
firewall: {{enabled: false}}
dkim: {{selector: {selector}}}
dmarc: {{policy: reject, rua: [dmarc@example.test]}}
dns:
  server: {dns}
  zone: example.test
  reverse_zones: [{reverse}]
  tsig_key: {{file: {tsig}}}
  ttl: 300
"""

# Sent from mplab-outside (10.232.0.1) straight to the receiver: a stranger using the site's domain in From.
FORGE = """\
import smtplib, sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
subject = sys.argv[1]
message = EmailMessage()
message["From"], message["To"], message["Subject"] = "ceo@example.test", "someone@receiver.test", subject
message["Date"], message["Message-ID"] = formatdate(), make_msgid(domain="outside.example.test")
message.set_content("Please wire the money.\\n")
with smtplib.SMTP("10.232.0.25", 25, local_hostname="outside.example.test", timeout=30) as smtp:
    smtp.send_message(message, from_addr="ceo@example.test", to_addrs=["someone@receiver.test"])
"""


def run_cli(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    env = {**os.environ, **ENV}
    return subprocess.run([*prefix, *MAILPROV, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)


def write_site(host: LabHost, path: Path, selector: str) -> Path:
    paths = LabPaths.from_env()
    path.write_text(
        SITE.format(
            name=host.name,
            outside=host.outside_address,
            address=host.address,
            key=host.root_key,
            known=host.known_hosts,
            selector=selector,
            dns=lab_dns.DNS_ADDRESS,
            reverse=lab_dns.OUTSIDE_REVERSE_ZONE,
            tsig=lab_dns.tsig_key_file(paths),
        )
    )
    return path


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the lab's certificates are self-signed
    return ctx


def submit(host: LabHost, login: str, subject: str, *, port: int = 587) -> None:
    """`login` sends from their own address to the receiver's domain through the site's submission port."""
    message = (
        f"From: {login}@{DOMAIN}\r\nTo: someone@{lab_dns.RECEIVER_DOMAIN}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@{DOMAIN}>\r\nDate: {email.utils.formatdate()}\r\n\r\nHello from {login}.\r\n"
    )
    if port == 465:
        with smtplib.SMTP_SSL(host.address, 465, timeout=30, context=tls_context()) as s:
            s.login(login, PASSWORDS[login])
            s.sendmail(f"{login}@{DOMAIN}", [f"someone@{lab_dns.RECEIVER_DOMAIN}"], message)
        return
    with smtplib.SMTP(host.address, port, timeout=30) as s:
        s.ehlo("laptop.example.org")
        s.starttls(context=tls_context())
        s.ehlo("laptop.example.org")
        s.login(login, PASSWORDS[login])
        s.sendmail(f"{login}@{DOMAIN}", [f"someone@{lab_dns.RECEIVER_DOMAIN}"], message)


def received(receiver: LabReceiver, subject: str, timeout: float = 90.0) -> email.message.Message:
    """The message with `subject` as the receiver delivered it (the host's queue may take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in receiver.messages():
            parsed = email.message_from_bytes(raw)
            if parsed["Subject"] == subject:
                return parsed
        time.sleep(0.5)
    raise AssertionError(f"the receiver got no message {subject!r} in {timeout:.0f} s")


def verdicts(message: email.message.Message) -> dict[str, str]:
    """rspamd's results by method, from the receiver's Authentication-Results: {"spf": "pass", ...}."""
    header = " ".join(str(message.get("Authentication-Results", "")).split())
    return dict(re.findall(r"\b(spf|dkim|dmarc)=(\w+)", header))


def selector_of(message: email.message.Message) -> str:
    header = " ".join(str(message.get("DKIM-Signature", "")).split())
    found = re.search(r"\bs=([a-z0-9-]+)", header)
    assert found, f"not DKIM-signed: {message.as_string()[:1500]}"
    return found.group(1)


def ask(name: str, rtype: str) -> set[str]:
    answer = dns.query.udp(dns.message.make_query(name, rtype), lab_dns.DNS_ADDRESS, timeout=3)
    return {rdata.to_text() for rrset in answer.answer for rdata in rrset}


def update(name: str, rtype: str, value: str | None) -> None:
    """Replace (value) or delete (None) a record set in example.test, as someone editing the zone by hand."""
    message = dns.update.UpdateMessage(
        DOMAIN, keyring=lab_dns.keyring(LabPaths.from_env()), keyalgorithm=lab_dns.TSIG_ALGORITHM
    )
    if value is None:
        message.delete(f"{name}.", rtype)
    else:
        message.replace(f"{name}.", 300, rtype, value)
    reply = dns.query.tcp(message, lab_dns.DNS_ADDRESS, timeout=5)
    assert reply.rcode() == 0, reply


def verify(site: Path) -> dict[str, str]:
    """verify from the outside network (10.232.0.1, where the receiver and the world are), through the lab's
    DNS server there; the status of every check by name."""
    result = run_cli(
        "verify",
        str(site),
        "--json",
        "--from-outside",
        "--resolver",
        lab_dns.DNS_OUTSIDE_ADDRESS,
        netns=OUTSIDE_NETNS,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    (host,) = document["hosts"].values()
    return {check["name"]: f"{check['status']}: {check['detail']}" for check in host["checks"]}


DNS_CHECKS = ("dns.mx", "dns.a", "dns.ptr", "dns.spf", "dns.dmarc", "dns.host_records", "dkim.signature")


def failed(statuses: dict[str, str]) -> set[str]:
    return {name for name, status in statuses.items() if status.startswith("fail")}


@pytest.fixture(scope="module")
def host(lab_host_at: Callable[[str, int], LabHost]) -> LabHost:
    return lab_host_at("bookworm", INDEX)


@pytest.fixture(scope="module")
def receiver(lab_session: ModuleType, host: LabHost) -> LabReceiver:
    found: LabReceiver = lab_session.receiver_up()
    return found


@pytest.fixture(scope="module")
def site(host: LabHost, receiver: LabReceiver, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_site(host, tmp_path_factory.mktemp("deliverability") / "site.yaml", "s1")


def test_plan_shows_records_apply_converges_files_and_zone(site: Path, host: LabHost) -> None:
    # A zone as a re-run or another session may have left it: the site's records are not all there.
    update(DOMAIN, "MX", None)
    update(f"_dmarc.{DOMAIN}", "TXT", None)
    plan = run_cli("plan", str(site))
    assert plan.returncode == 2, plan.stdout + plan.stderr  # 2: changes pending
    assert f"+{DOMAIN}. 300 IN MX 10 {host.name}.{DOMAIN}." in plan.stdout, plan.stdout
    assert f'+_dmarc.{DOMAIN}. 300 IN TXT "v=DMARC1; p=reject' in plan.stdout, plan.stdout
    applied = run_cli("apply", str(site), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = run_cli("plan", str(site))
    assert again.returncode == 0, again.stdout + again.stderr
    assert ask(DOMAIN, "MX") == {f"10 {host.name}.{DOMAIN}."}
    assert any("v=DMARC1; p=reject" in value for value in ask(f"_dmarc.{DOMAIN}", "TXT"))
    assert any(value.startswith('"v=DKIM1;') for value in ask(f"s1._domainkey.{DOMAIN}", "TXT"))
    # The secrets of the zone and the key never show.
    secret = lab_dns.tsig_key_file(LabPaths.from_env()).read_text().split(":")[-1].strip()
    for output in (plan, applied, again):
        assert secret not in output.stdout + output.stderr


@pytest.mark.parametrize("port", [587, 465])
def test_submitted_mail_passes_spf_dkim_and_dmarc_at_the_receiver(
    site: Path, host: LabHost, receiver: LabReceiver, port: int
) -> None:
    subject = f"deliver-{port}-{secrets.token_hex(4)}"
    submit(host, "john", subject, port=port)
    message = received(receiver, subject)
    assert selector_of(message) == "s1"
    assert verdicts(message) == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}, message["Authentication-Results"]


def test_a_forged_from_in_the_site_domain_fails_dmarc(site: Path, receiver: LabReceiver) -> None:
    subject = f"forged-{secrets.token_hex(4)}"
    forged = subprocess.run(
        ["ip", "netns", "exec", OUTSIDE_NETNS, sys.executable, "-c", FORGE, subject],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert forged.returncode == 0, forged.stderr
    message = received(receiver, subject)
    results = verdicts(message)
    assert results["dmarc"] == "fail", message["Authentication-Results"]
    assert results["spf"] == "fail"  # 10.232.0.1 is not in the site's `mx -all`
    assert "dkim" not in results or results["dkim"] != "pass"


def test_verify_passes_every_dns_and_dkim_check(site: Path) -> None:
    statuses = verify(site)
    for name in DNS_CHECKS:
        assert statuses.get(name, "missing").startswith("pass"), f"{name}: {statuses.get(name)}"
    assert not failed(statuses), statuses


def test_a_changed_spf_record_fails_exactly_dns_spf(site: Path) -> None:
    update(DOMAIN, "TXT", '"v=spf1 -all"')
    try:
        statuses = verify(site)
        assert failed(statuses) == {"dns.spf"}, statuses
        plan = run_cli("plan", str(site))
        assert plan.returncode == 2 and "v=spf1" in plan.stdout, plan.stdout + plan.stderr
    finally:
        restored = run_cli("apply", str(site), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert run_cli("plan", str(site)).returncode == 0


def test_a_deleted_dkim_key_fails_exactly_the_dkim_checks(site: Path) -> None:
    update(f"s1._domainkey.{DOMAIN}", "TXT", None)
    try:
        statuses = verify(site)
        # The published key differs from the host's, and a signed message no longer verifies against DNS.
        assert failed(statuses) == {"dns.host_records", "dkim.signature"}, statuses
    finally:
        restored = run_cli("apply", str(site), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert run_cli("plan", str(site)).returncode == 0


def test_a_new_selector_publishes_both_keys_and_signs_with_the_new_one(
    site: Path, host: LabHost, receiver: LabReceiver, tmp_path: Path
) -> None:
    rotated = write_site(host, tmp_path / "rotated.yaml", "s2")
    plan = run_cli("plan", str(rotated))
    # The new key is made by the apply, so its record is not known yet: apply publishes it, read back then.
    assert plan.returncode == 2 and "s2.private" in plan.stdout, plan.stdout + plan.stderr
    applied = run_cli("apply", str(rotated), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert run_cli("plan", str(rotated)).returncode == 0
    for selector in ("s1", "s2"):
        assert ask(f"{selector}._domainkey.{DOMAIN}", "TXT"), f"{selector} is no longer published"
    subject = f"rotated-{secrets.token_hex(4)}"
    submit(host, "mary", subject)
    message = received(receiver, subject)
    assert selector_of(message) == "s2"
    assert verdicts(message) == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}, message["Authentication-Results"]
    # back to the module's site (s1 signs again; s2's key stays published until retired)
    assert run_cli("apply", str(site), "--yes").returncode == 0


def test_an_apply_cut_at_switch_converges_on_the_next_and_mail_still_passes(
    site: Path, host: LabHost, receiver: LabReceiver, lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    rotated = write_site(host, tmp_path / "cut.yaml", "s3")
    root = Root(lab_connect, host)
    known = runs(root)
    proc = subprocess.Popen(
        [*MAILPROV, "apply", "--yes", str(rotated)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, **ENV},
        start_new_session=True,
    )
    try:
        assert wait_for_step(root, "switch", known), "the apply never reached its switch step"
        os.killpg(proc.pid, signal.SIGKILL)  # mailprov and its SSH connection die at once: no DNS update
    finally:
        proc.kill()
        proc.communicate()
    wait_until_idle(root)  # the host finishes the run on its own
    # The key the cut run made is on the host; the zone has not heard of it: the next apply publishes it.
    plan = run_cli("plan", str(rotated))
    assert plan.returncode == 2 and f"+s3._domainkey.{DOMAIN}." in plan.stdout, plan.stdout + plan.stderr
    applied = run_cli("apply", str(rotated), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert run_cli("plan", str(rotated)).returncode == 0
    subject = f"after-cut-{secrets.token_hex(4)}"
    submit(host, "john", subject)
    message = received(receiver, subject)
    assert selector_of(message) == "s3"
    assert verdicts(message) == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}, message["Authentication-Results"]
    assert run_cli("apply", str(site), "--yes").returncode == 0  # back to the module's site
