"""plan and apply against real lab hosts (Debian 12 and 13) over SSH: converge, stay converged, change
exactly what the site says, refuse a broken config without touching the live one, refuse a wrong host key.

The tests in this module run in order on their own hosts (bookworm-3, trixie-3).
"""

from __future__ import annotations

import imaplib
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
MAILPROV = [sys.executable, "-m", "mailprov.cli"]
PASSWORD = "Live-john-pw-42"
ALICE_PASSWORD = "Live-alice-pw-43"
HOSTS = {"bookworm": "mx1.example.test", "trixie": "mx2.example.test"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "MAILPROV_JOHN_PASSWORD": PASSWORD,
        "MAILPROV_ALICE_PASSWORD": ALICE_PASSWORD,
        **(env or {}),
    }
    return subprocess.run([*MAILPROV, *args], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=600)


@pytest.fixture(scope="module")
def hosts(lab_host_at: Callable[[str, int], Any]) -> dict[str, Any]:
    return {distro: lab_host_at(distro, 3) for distro in HOSTS}


@pytest.fixture(scope="module")
def site(hosts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = (ROOT / "inventories" / "lab.yaml").read_text()
    text = text.replace("10.231.1.1", hosts["bookworm"].address).replace("10.231.2.1", hosts["trixie"].address)
    path = tmp_path_factory.mktemp("site") / "site.yaml"
    path.write_text(text)
    return path


def root_run(lab_connect: Callable[..., Any], host: Any, command: str) -> str:
    client = lab_connect(host)
    _, stdout, stderr = client.exec_command(command)
    out = stdout.read().decode()
    stderr.read()
    client.close()
    return out


def pids(lab_connect: Callable[..., Any], host: Any) -> str:
    return root_run(lab_connect, host, "cat /var/spool/postfix/pid/master.pid /run/dovecot/master.pid | tr -d ' '")


def test_first_apply_converges_both_hosts(site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any]) -> None:
    result = run_cli("apply", str(site), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    for host in hosts.values():
        state = root_run(
            lab_connect,
            host,
            "stat -c '%U %G %a %n' /etc/postfix/main.cf /etc/dovecot/dovecot.conf /etc/ssl/private/*.key "
            "/home/john/Maildir /home/john/Maildir/new; iptables -S MAILPROV | head -3; "
            "iptables -C INPUT -j MAILPROV && echo hooked; grep -c MAILPROV /etc/iptables/rules.v4; "
            "postfix status; service dovecot status; postmap -q junk@spam.com hash:/etc/postfix/sender_access",
        )
        assert "root root 644 /etc/postfix/main.cf" in state
        assert re.search(r"root root 600 /etc/ssl/private/mx\d\.example\.test\.key", state)
        assert "john john 700 /home/john/Maildir\n" in state
        assert "john john 700 /home/john/Maildir/new" in state
        assert "-A MAILPROV -i lo -j ACCEPT" in state and "hooked" in state
        assert "is running" in state
        assert "REJECT" in state  # the sender_access map answers
        # Only the hash travels: the password is in no file or log on the host.
        leaked = root_run(lab_connect, host, f"grep -rlF -e {PASSWORD} /etc /var/lib/mailprov /var/log; echo end")
        assert leaked == "end\n"


def test_second_run_changes_and_restarts_nothing(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any]
) -> None:
    before = {d: pids(lab_connect, h) for d, h in hosts.items()}
    plan = run_cli("plan", str(site))
    assert plan.returncode == 0, plan.stdout
    assert "no changes" in plan.stdout
    again = run_cli("apply", str(site), "--yes")
    assert again.returncode == 0, again.stdout
    assert {d: pids(lab_connect, h) for d, h in hosts.items()} == before


def test_site_change_shows_exactly_and_applies(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    # Accounts are never removed by mailprov, so a fresh name keeps this test re-runnable on a kept lab.
    login = f"alice{os.getpid() % 100000}"
    text = site.read_text()
    text = text.replace("aliases:\n  root: [john]", "aliases:\n  root: [john]\n  sales: [john]")
    text = text.replace("  - {pattern: junk@spam.com, action: REJECT}\n", "")
    text = text.replace(
        "    aliases: [jsmith, j.smith]\n",
        f"    aliases: [jsmith, j.smith]\n  - login: {login}\n    full_name: Alice\n"
        "    password: {env: MAILPROV_ALICE_PASSWORD}\n",
    )
    changed = tmp_path / "site.yaml"
    changed.write_text(text)
    plan = run_cli("plan", str(changed), "--json")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert ALICE_PASSWORD not in plan.stdout
    for line in ["+sales: john", "-junk@spam.com REJECT", f"user {login}: create"]:
        assert line in plan.stdout
    result = run_cli("apply", str(changed), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    for host in hosts.values():
        out = root_run(
            lab_connect,
            host,
            "postmap -q junk@spam.com hash:/etc/postfix/sender_access; echo rc=$?; "
            "postalias -q sales hash:/etc/aliases",
        )
        assert "rc=1" in out and "john" in out
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with imaplib.IMAP4_SSL(host.address, 993, ssl_context=context, timeout=10) as imap:
            assert imap.login(login, ALICE_PASSWORD)[0] == "OK"


def test_rejected_config_leaves_live_files_untouched(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    host = hosts["bookworm"]
    before = root_run(lab_connect, host, "md5sum /etc/postfix/main.cf /etc/dovecot/dovecot.conf")
    broken = tmp_path / "broken.yaml"
    broken.write_text(site.read_text() + "postfix:\n  extra:\n    no_such_parameter_at_all: 'yes'\n")
    result = run_cli("apply", str(broken), "--yes", "--host", HOSTS["bookworm"])
    assert result.returncode == 1
    assert "validate-postfix" in result.stdout and "no_such_parameter_at_all" in result.stdout
    assert root_run(lab_connect, host, "md5sum /etc/postfix/main.cf /etc/dovecot/dovecot.conf") == before
    assert root_run(lab_connect, host, "ls /etc/postfix /etc/dovecot | grep -c mailprov-new") == "0\n"
    with __import__("smtplib").SMTP(host.address, 25, timeout=10) as smtp:
        assert smtp.ehlo()[0] == 250


def test_changed_host_key_is_refused(site: Path, hosts: dict[str, Any], tmp_path: Path) -> None:
    host = hosts["bookworm"]
    key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(
        f"{host.address} {(key.with_suffix('.pub')).read_text().split()[0]} "
        f"{(key.with_suffix('.pub')).read_text().split()[1]}\n"
    )
    text = site.read_text().replace("/var/lib/mailprov-lab/known_hosts", str(known))
    other = tmp_path / "site.yaml"
    other.write_text(text)
    result = run_cli("plan", str(other), "--host", HOSTS["bookworm"])
    assert result.returncode == 1
    assert "known_hosts" in (result.stdout + result.stderr)
    assert "Traceback" not in result.stderr


def test_plan_changes_nothing_and_shows_drift(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    host = hosts["trixie"]
    name = HOSTS["trixie"]
    assert run_cli("apply", str(site), "--yes", "--host", name).returncode == 0
    snapshot = "stat -c '%Y %n' /etc/postfix/* /etc/dovecot/dovecot.conf /etc/aliases*; " + (
        "cat /var/spool/postfix/pid/master.pid /run/dovecot/master.pid"
    )
    root_run(lab_connect, host, "echo '# edited by hand' >> /etc/postfix/main.cf")
    before = root_run(lab_connect, host, snapshot)
    saved = tmp_path / "plan.json"
    plan = run_cli("plan", str(site), "--host", name, "--out", str(saved))
    assert plan.returncode == 2, plan.stdout
    assert "drift" in plan.stdout and "-# edited by hand" in plan.stdout
    assert root_run(lab_connect, host, snapshot) == before  # plan touched no file and restarted nothing
    assert PASSWORD not in saved.read_text()
    # The host changes again after the plan was saved: the saved plan is refused and nothing is applied.
    root_run(lab_connect, host, "echo '# edited again' >> /etc/postfix/main.cf")
    refused = run_cli("apply", str(site), "--plan-file", str(saved), "--host", name)
    assert refused.returncode == 1
    assert "changed since the saved plan" in refused.stdout + refused.stderr
    assert "# edited again" in root_run(lab_connect, host, "tail -1 /etc/postfix/main.cf")
    # A fresh saved plan applies without a question and converges.
    assert run_cli("plan", str(site), "--host", name, "--out", str(saved)).returncode == 2
    applied = run_cli("apply", str(site), "--plan-file", str(saved), "--host", name)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "edited" not in root_run(lab_connect, host, "cat /etc/postfix/main.cf")
    assert run_cli("plan", str(site), "--host", name).returncode == 0


def test_submission_block_added_then_really_removed(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    with_submission = tmp_path / "submission.yaml"
    with_submission.write_text(
        site.read_text().replace("  open: [smtp, imaps, pop3s]", "  open: [smtp, submission, imaps, pop3s]")
        + "postfix:\n  submission: true\n"
    )
    result = run_cli("apply", str(with_submission), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    for host in hosts.values():
        out = root_run(lab_connect, host, "postconf -M submission/inet; ss -ltn | grep -c ':587 '")
        assert out.startswith("submission") and "-o smtpd_tls_security_level=encrypt" in out.replace("\n", " ")
    assert run_cli("apply", str(site), "--yes").returncode == 0
    for host in hosts.values():
        out = root_run(lab_connect, host, "postconf -M submission/inet; grep -c mailprov /etc/postfix/master.cf")
        assert "submission" not in out and out.strip().endswith("0")


def test_failure_after_switch_restores_previous_config(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    """doveconf accepts a memory limit no Dovecot process can start in; Dovecot's logins then fail. apply
    must put the previous files back and leave Dovecot answering."""
    host = hosts["bookworm"]
    name = HOSTS["bookworm"]
    assert run_cli("apply", str(site), "--yes", "--host", name).returncode == 0
    before = root_run(lab_connect, host, "md5sum /etc/dovecot/dovecot.conf")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        site.read_text().replace(
            "dovecot:\n  protocols: [imap, pop3]",
            "dovecot:\n  protocols: [imap, pop3]\n  extra:\n    default_vsz_limit: 1M",
        )
    )
    result = run_cli("apply", str(broken), "--yes", "--host", name)
    assert result.returncode == 1, result.stdout
    assert "rolled back" in result.stdout
    assert root_run(lab_connect, host, "md5sum /etc/dovecot/dovecot.conf") == before
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL(host.address, 993, ssl_context=context, timeout=10) as imap:
        assert imap.login("john", PASSWORD)[0] == "OK"
    assert run_cli("plan", str(site), "--host", name).returncode == 0


def test_previous_mta_is_replaced(
    lab_host_at: Callable[[str, int], Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    host = lab_host_at("bookworm", 4)
    root_run(
        lab_connect,
        host,
        "DEBIAN_FRONTEND=noninteractive apt-get -q -y install exim4-daemon-light >/dev/null 2>&1;"
        " dpkg-query -W -f='${Status}' exim4-daemon-light",
    )
    text = (ROOT / "inventories" / "lab.yaml").read_text().replace("10.231.1.1", host.address)
    path = tmp_path / "site.yaml"
    path.write_text(text)
    plan = run_cli("plan", str(path), "--host", HOSTS["bookworm"])
    assert "replace the previous MTA (exim4-daemon-light)" in plan.stdout
    result = run_cli("apply", str(path), "--yes", "--host", HOSTS["bookworm"])
    assert result.returncode == 0, result.stdout + result.stderr
    status = root_run(lab_connect, host, "dpkg-query -W -f='${Status}' exim4-daemon-light postfix")
    assert status.count("install ok installed") == 1  # postfix installed, exim4 gone


def test_sudo_password_required_fails_fast(site: Path, tmp_path: Path) -> None:
    text = site.read_text().replace("user: admin", "user: pwadmin", 1)
    path = tmp_path / "site.yaml"
    path.write_text(text)
    start = __import__("time").monotonic()
    result = run_cli("plan", str(path), "--host", HOSTS["bookworm"])
    assert result.returncode == 1
    assert "password" in (result.stdout + result.stderr).lower()
    assert __import__("time").monotonic() - start < 15


def test_pushed_certificate_is_private_and_never_shown(
    site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any], tmp_path: Path
) -> None:
    host = hosts["trixie"]
    name = HOSTS["trixie"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN={name}",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    key_body = (tmp_path / "key.pem").read_text().splitlines()[1]
    pushed = tmp_path / "site.yaml"
    pushed.write_text(
        site.read_text().replace(
            "tls:\n  generate:\n    days: 365\n",
            "tls:\n  files: {cert: cert.pem, key: key.pem}\n  cert_path: /etc/ssl/certs/pushed.pem\n"
            "  key_path: /etc/ssl/private/pushed.key\n",
        )
    )
    plan = run_cli("plan", str(pushed), "--host", name)
    assert plan.returncode == 2 and "content redacted (secret)" in plan.stdout
    assert key_body not in plan.stdout + plan.stderr
    result = run_cli("apply", str(pushed), "--yes", "--host", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert key_body not in result.stdout + result.stderr
    out = root_run(lab_connect, host, "stat -c '%U %G %a' /etc/ssl/private/pushed.key; postconf -h smtpd_tls_cert_file")
    assert out == "root root 600\n/etc/ssl/certs/pushed.pem\n"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL(host.address, 993, ssl_context=context, timeout=10) as imap:
        served = imap.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
    assert served == ssl.PEM_cert_to_DER_cert((tmp_path / "cert.pem").read_text())
    assert run_cli("apply", str(site), "--yes", "--host", name).returncode == 0


def test_a_running_apply_holds_the_lock(site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any],
                                        tmp_path: Path) -> None:  # fmt: skip
    host = hosts["bookworm"]
    name = HOSTS["bookworm"]
    changed = tmp_path / "site.yaml"
    changed.write_text(site.read_text().replace("  root: [john]", "  root: [john]\n  locktest: [john]"))
    # A process on the host holds the apply lock, as a running apply would.
    holder = (
        "cd /var/lib/mailprov && echo 'PID 4242 since now by tester@lab' > lock.info &&"
        " (setsid flock apply.lock sleep 61 </dev/null >/dev/null 2>&1 &) && sleep 0.5"
    )
    root_run(lab_connect, host, holder)
    try:
        result = run_cli("apply", str(changed), "--yes", "--host", name)
        assert result.returncode == 1
        flat = " ".join(re.sub("[│┃]", " ", result.stdout).split())
        assert "another apply holds the lock: PID 4242 since now by tester@lab" in flat, result.stdout
        assert "locktest" not in root_run(lab_connect, host, "cat /etc/aliases")
    finally:
        root_run(lab_connect, host, "pkill -f '[s]leep 61'; pkill -f '[f]lock apply.lock'; sleep 0.2")
    # The holder is gone: the kernel released its lock, and nothing stands in the next apply's way.
    assert run_cli("apply", str(changed), "--yes", "--host", name).returncode == 0
    assert "locktest" in root_run(lab_connect, host, "cat /etc/aliases")
    assert run_cli("apply", str(site), "--yes", "--host", name).returncode == 0


def test_listening_change_restarts_postfix(site: Path, hosts: dict[str, Any], lab_connect: Callable[..., Any],
                                           tmp_path: Path) -> None:  # fmt: skip
    host = hosts["bookworm"]
    name = HOSTS["bookworm"]
    before = root_run(lab_connect, host, "cat /var/spool/postfix/pid/master.pid")
    assert "[::]:25 " in root_run(lab_connect, host, "ss -ltn")
    ipv4 = tmp_path / "site.yaml"
    ipv4.write_text(site.read_text() + "postfix:\n  inet_protocols: ipv4\n")
    plan = run_cli("plan", str(ipv4), "--host", name)
    assert "postfix restart" in plan.stdout and "postfix reload" not in plan.stdout
    assert run_cli("apply", str(ipv4), "--yes", "--host", name).returncode == 0
    assert root_run(lab_connect, host, "cat /var/spool/postfix/pid/master.pid") != before
    assert "[::]:25 " not in root_run(lab_connect, host, "ss -ltn")  # no longer on IPv6
    assert run_cli("apply", str(site), "--yes", "--host", name).returncode == 0
