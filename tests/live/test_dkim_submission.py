"""DKIM signing and submission on real lab hosts (bookworm-40, trixie-40): apply converges; mail a user
submits on 587 arrives DKIM-signed, and the signature verifies (dkimpy) against the public key read on the
host; a user cannot send as another; AUTH is never offered before TLS (25, 587) and not at all on 25
(`sasl.on_port_25: false`); 465 speaks TLS at once; a new selector makes a second key, signs with it and
keeps the first until retired; no private key ever shows in plan or apply output.

The runner (10.231.0.1) is outside the site's mynetworks here: what gets mail signed is the login. The
site has two hosts, so each signs with a selector of its own: s1-bookworm-40, s1-trixie-40.

    MAILPROV_LAB_KEEP=1 .venv/bin/pytest -q tests/live/test_dkim_submission.py
"""

from __future__ import annotations

import email
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from conftest import connect, run_ssh
from one_host import one_host

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
MAILPROV = [sys.executable, "-m", "mailprov.cli"]
DISTROS = ("bookworm", "trixie")
INDEX = 40
PASSWORDS = {"john": "Dkim-john-pw-42", "mary": "Dkim-mary-pw-43"}
DOMAIN = "example.test"
KEYS = f"/etc/opendkim/keys/{DOMAIN}"

SITE = """\
domain: example.test
hosts:
{hosts}
mynetworks: [127.0.0.0/8]
mailbox: maildir
users:
  - login: john
    password: {{env: MAILPROV_DKIM_JOHN}}
    aliases: [jsmith]
  - login: mary
    password: {{env: MAILPROV_DKIM_MARY}}
aliases:
  root: [john]
  sales: [john]
sasl: {{enabled: true, on_port_25: false}}
tls:
  generate: {{days: 365}}
postfix: {{submission: true, smtps: true}}
dovecot: {{protocols: [imap]}}
firewall: {{enabled: false}}
dkim: {dkim}
"""

HOST = """\
  - name: {name}.example.test
    public_address: {outside}
    ssh: {{address: {address}, user: root, identity_file: {key}, known_hosts: {known}}}
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILPROV_DKIM_JOHN": PASSWORDS["john"], "MAILPROV_DKIM_MARY": PASSWORDS["mary"]}
    return subprocess.run([*MAILPROV, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)


@pytest.fixture(scope="module")
def hosts(lab_session: Any) -> dict[str, Any]:
    # Only hosts 40 (lab.up would start 1..40).
    return {distro: one_host(distro, INDEX) for distro in DISTROS}


def write_site(hosts: dict[str, Any], path: Path, dkim_field: str) -> Path:
    entries = "".join(
        HOST.format(name=h.name, outside=h.outside_address, address=h.address, key=h.root_key, known=h.known_hosts)
        for h in hosts.values()
    )
    path.write_text(SITE.format(hosts=entries.rstrip("\n"), dkim=dkim_field))
    return path


def sel(base: str, host: Any) -> str:
    """The selector `host` signs with in this two-host site."""
    return f"{base}-{host.name}"


def root(host: Any, command: str) -> str:
    client = connect(host)
    try:
        rc, out, err = run_ssh(client, command, timeout=120)
    finally:
        client.close()
    assert rc == 0, f"{command}: {out}{err}"
    return out


def private_lines(host: Any) -> list[str]:
    """The base64 lines of every private key on the host (to prove none of them is ever shown)."""
    text = root(host, f"cat {KEYS}/*.private")
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


def public_record(host: Any, selector: str) -> bytes:
    pem = root(host, f"openssl rsa -in {KEYS}/{selector}.private -pubout 2>/dev/null")
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return f"v=DKIM1; k=rsa; p={body}".encode()


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the lab's certificates are self-signed
    return ctx


def submit(host: Any, login: str, sender: str, subject: str) -> None:
    with smtplib.SMTP(host.address, 587, timeout=30) as s:
        s.ehlo("client.example.org")
        s.starttls(context=tls_context())
        s.ehlo("client.example.org")
        s.login(login, PASSWORDS[login])
        msg = (
            f"From: {sender}\r\nTo: john@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.example.org>\r\n\r\nHello from {login}.\r\n"
        )
        s.sendmail(sender, [f"john@{DOMAIN}"], msg)


def delivered(host: Any, subject: str) -> bytes:
    """The copy of the message with `subject` in john's Maildir (waits up to 30 s)."""
    for _ in range(60):
        out = root(host, f"grep -l -r 'Subject: {subject}' /home/john/Maildir/new || true")
        if out.strip():
            client = connect(host)
            try:
                _in, stdout, _err = client.exec_command(f"cat {out.split()[0]}")
                return bytes(stdout.read())
            finally:
                client.close()
        time.sleep(0.5)
    raise AssertionError(f"no message {subject} delivered on {host.name}")


def signature_selector(message: bytes) -> str:
    header = email.message_from_bytes(message)["DKIM-Signature"]
    assert header is not None, message.decode(errors="replace")[:2000]
    found = re.search(r"\bs=([a-z0-9-]+)", header.replace("\n", ""))
    assert found and f"d={DOMAIN}" in header.replace(" ", "")
    return found.group(1)


def verifies(message: bytes, record: bytes, selector: str) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == f"{selector}._domainkey.{DOMAIN}.".encode() else b""

    return bool(dkim.verify(message, dnsfunc=dns))


@pytest.fixture(scope="module")
def site(hosts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield write_site(hosts, tmp_path_factory.mktemp("dkim") / "site.yaml", "{selector: s1}")


def test_apply_converges_and_keeps_the_key_private(site: Path, hosts: dict[str, Any]) -> None:
    result = run_cli("apply", str(site), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = run_cli("plan", str(site))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for host in hosts.values():
        key = f"{KEYS}/{sel('s1', host)}.private"
        state = root(host, f"stat -c '%U %G %a %n' {key}; postconf -h smtpd_milters non_smtpd_milters")
        assert f"opendkim opendkim 600 {key}" in state
        assert "inet:127.0.0.1:8891" in state
        lines = private_lines(host)
        for line in lines:
            assert line not in result.stdout + result.stderr + plan.stdout + plan.stderr
        # nor in the apply's script, log and backups on the host, nor in any log there
        found = root(host, f"grep -rlF -e {lines[1]} /var/lib/mailprov /var/log /etc/postfix; echo end")
        assert found == "end\n", found


@pytest.mark.parametrize("distro", DISTROS)
def test_submitted_mail_is_signed_and_verifies(site: Path, hosts: dict[str, Any], distro: str) -> None:
    host = hosts[distro]
    subject = f"signed-{distro}-{os.getpid()}"
    submit(host, "john", f"jsmith@{DOMAIN}", subject)  # an alias of john's is his to send as
    message = delivered(host, subject)
    selector = sel("s1", host)
    assert signature_selector(message) == selector
    assert verifies(message, public_record(host, selector), selector)
    assert not verifies(message.replace(b"Hello from", b"Hullo from"), public_record(host, selector), selector)


@pytest.mark.parametrize("distro", DISTROS)
def test_a_user_cannot_send_as_another(site: Path, hosts: dict[str, Any], distro: str) -> None:
    host = hosts[distro]
    with smtplib.SMTP(host.address, 587, timeout=30) as s:
        s.starttls(context=tls_context())
        s.login("john", PASSWORDS["john"])
        code, _ = s.mail(f"mary@{DOMAIN}")
        if code == 250:  # smtpd_delay_reject: the sender is judged at RCPT
            code, reply = s.rcpt(f"john@{DOMAIN}")
        else:
            reply = b""
    assert code == 553, reply
    assert b"5.7.1" in reply and b"not owned by user john" in reply


@pytest.mark.parametrize("distro", DISTROS)
def test_auth_only_inside_tls_and_never_on_25(site: Path, hosts: dict[str, Any], distro: str) -> None:
    host = hosts[distro]
    for port in (25, 587):
        with smtplib.SMTP(host.address, port, timeout=30) as s:
            s.ehlo("client.example.org")
            assert not s.has_extn("auth"), f"AUTH offered before STARTTLS on {port}"
            s.starttls(context=tls_context())
            s.ehlo("client.example.org")
            assert s.has_extn("auth") == (port == 587), port
    with smtplib.SMTP_SSL(host.address, 465, timeout=30, context=tls_context()) as s:
        s.ehlo("client.example.org")
        assert s.has_extn("auth")
        s.login("mary", PASSWORDS["mary"])


def test_selector_rotation_keeps_the_old_key_until_retired(site: Path, hosts: dict[str, Any], tmp_path: Path) -> None:
    rotated = write_site(hosts, tmp_path / "rotated.yaml", "{selector: s2, bits: 3072}")
    result = run_cli("apply", str(rotated), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_cli("plan", str(rotated)).returncode == 0
    for distro, host in hosts.items():
        listing = root(host, f"ls {KEYS}")
        assert listing.split() == [f"{sel('s1', host)}.private", f"{sel('s2', host)}.private"]
        for line in private_lines(host):
            assert line not in result.stdout + result.stderr
        subject = f"rotated-{distro}-{os.getpid()}"
        submit(host, "mary", f"mary@{DOMAIN}", subject)
        message = delivered(host, subject)
        assert signature_selector(message) == sel("s2", host)
        assert verifies(message, public_record(host, sel("s2", host)), sel("s2", host))
    retired = write_site(hosts, tmp_path / "retired.yaml", "{selector: s2, bits: 3072, retire: [s1]}")
    result = run_cli("apply", str(retired), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    for host in hosts.values():
        assert root(host, f"ls {KEYS}").split() == [f"{sel('s2', host)}.private"]
    # back to the module's site for a re-run on a kept lab: s1 comes back as a fresh key
    assert run_cli("apply", str(site), "--yes").returncode == 0
