"""Faults injected into real applies (lab hosts bookworm-6 and trixie-6, side by side):

- for every step of the host script, the SSH session is cut when that step starts (bookworm-6), or the
  host's apply process itself is killed then (trixie-6): the host keeps serving the previous or the new
  configuration, never a mix that fails its checks; the next apply converges; `plan` is then empty and
  the running daemons enforce the new site (Dovecot's TLS floor, greylisting answered `450 … Greylisted`);
- the host's link goes down for longer than a TCP timeout in the middle of an apply: the apply ends on
  the host, mailprov connects again and says so;
- two applies at once: one runs, the other names the holder and touches nothing of it;
- values that only the running daemon rejects are rolled back, and the old configuration serves (the
  issue's own examples, `lots` as a number and `TLSv9`, are refused at validate now: other values that
  pass every check of the configuration but kill the daemon stand in for them).

Each cycle starts from the "before" site with postgrey removed and the certificate deleted, so the
"after" site's plan has every kind of step: packages, the user, the certificate, staging, both gates,
the switch, boot links, every handler, health.
"""

from __future__ import annotations

import os
import random
import re
import signal
import smtplib
import ssl
import string
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko
import pytest

from mailprov.config.loader import load_site
from mailprov.hostscript import step_names
from mailprov.orchestrate import RunOptions, plan_site

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
MAILPROV = [sys.executable, "-m", "mailprov.cli"]
INDEX = int(os.environ.get("MAILPROV_FAULT_HOST_INDEX", "6"))  # lab hosts <distro>-6 unless told
BEFORE_PW, AFTER_PW = "Before-pw-61", "After-pw-62"
NAMES = {"bookworm": "mx1.example.test", "trixie": "mx2.example.test"}

SITE = """domain: example.test
hosts:
  - name: {name}
    ssh: {{address: {address}, user: root, identity_file: {key}, known_hosts: {known}}}
mynetworks: [10.231.0.0/16, 127.0.0.0/8]
users:
  - login: john
    full_name: John Smith
    password: {{env: FAULT_PW}}
aliases:
  root: [john]
restrictions:
  recipient:
    - permit_mynetworks
    - permit_sasl_authenticated
    - reject_unauth_destination
{policy}    - permit
greylisting: {{enabled: {greylisting}, delay: 300}}
sasl: {{enabled: true}}
tls:
  generate: {{days: 365}}
  min_protocol: {tls}
"""


def write_site(host: Any, directory: Path, *, after: bool) -> Path:
    text = SITE.format(
        name=NAMES[host.distro],
        address=host.address,
        key=host.root_key,
        known="/var/lib/mailprov-lab/known_hosts",
        policy="    - check_policy_service: postgrey\n" if after else "",
        greylisting="true" if after else "false",
        tls="TLSv1.3" if after else "TLSv1.2",
    )
    path = directory / f"{host.distro}-{'after' if after else 'before'}.yaml"
    path.write_text(text)
    return path


def cli(*args: str, password: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FAULT_PW": password}
    return subprocess.Popen([*MAILPROV, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=env, start_new_session=True)  # fmt: skip


def cli_run(*args: str, password: str) -> tuple[int, str]:
    proc = cli(*args, password=password)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


class Root:
    """A root shell on a lab host over its own strict SSH connection (not mailprov's)."""

    def __init__(self, connect: Callable[..., paramiko.SSHClient], host: Any) -> None:
        self.connect, self.host = connect, host
        self.client = connect(host)

    def run(self, command: str, timeout: float = 300) -> tuple[int, str]:
        for attempt in range(3):
            try:
                _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
                out = stdout.read().decode() + stderr.read().decode()
                return stdout.channel.recv_exit_status(), out
            except (paramiko.SSHException, OSError, EOFError):
                if attempt == 2:
                    raise
                self.client = self.connect(self.host)
        raise AssertionError("unreachable")


def runs(root: Root) -> set[str]:
    return set(root.run("ls /var/lib/mailprov/runs/*.out 2>/dev/null", timeout=30)[1].split())


def wait_for_step(root: Root, step: str, before: set[str], timeout: float = 300) -> bool:
    """Until the run that is not in `before` (the runs there were) announces `step`."""
    deadline = time.monotonic() + timeout
    marker = f"@@MP step {step} "
    while time.monotonic() < deadline:
        new = sorted(runs(root) - before)
        out = root.run(f"cat {new[-1]}", timeout=30)[1] if new else ""
        if marker in out:
            return True
        if "@@MP done" in out or "@@MP fail" in out:
            return False
        time.sleep(0.05)
    return False


def wait_until_idle(root: Root) -> None:
    """No apply and no package tool still running on the host (a killed apply's children finish)."""
    root.run("i=0; while [ $i -lt 600 ] && { pgrep -f '[r]uns/.*[.]sh' || pgrep -x dpkg || pgrep apt-get; }"
             " >/dev/null; do sleep 0.2; i=$((i+1)); done")  # fmt: skip


def imaps_login(address: str, password: str) -> bool:
    import imaplib

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with imaplib.IMAP4_SSL(address, 993, ssl_context=ctx, timeout=10) as imap:
            return imap.login("john", password)[0] == "OK"
    except (imaplib.IMAP4.error, OSError):
        return False


def smtp_greets(address: str) -> bool:
    try:
        with smtplib.SMTP(address, 25, timeout=10) as smtp:
            return smtp.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def tls12_refused(address: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    import socket

    try:
        with socket.create_connection((address, 993), timeout=10) as raw, ctx.wrap_socket(raw):
            return False
    except (ssl.SSLError, OSError):
        return True


OUTSIDE_RCPT = """
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], 25, timeout=20)
s.ehlo("outside.example.net")
s.mail(sys.argv[2] + "@example.net")  # a new triplet: a known one passes after the delay
code, text = s.rcpt("john@example.test")
print(code, text.decode(errors="replace"))
"""


def greylisted_from_outside(outside_netns: str, address: str) -> str:
    # Letters only: postgrey folds digits in a sender's local part (VERP), so digit-only variety would make
    # every check after the first the same triplet, which passes once the delay is over.
    sender = "fault-" + "".join(random.choice(string.ascii_lowercase) for _ in range(16))
    out = subprocess.run(["ip", "netns", "exec", outside_netns, sys.executable, "-c", OUTSIDE_RCPT, address, sender],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    return out.stdout.strip() + out.stderr.strip()[-200:]


def reset(root: Root, before: Path) -> None:
    """The "before" site, then postgrey removed and the certificate deleted: the next plan has every step."""
    wait_until_idle(root)
    rc, out = cli_run("apply", "--yes", str(before), password=BEFORE_PW)
    assert rc == 0, out
    name = NAMES[root.host.distro]
    rc, out = root.run(
        "DEBIAN_FRONTEND=noninteractive apt-get -q -y remove postgrey >/dev/null 2>&1;"
        f" rm -f /etc/ssl/certs/{name}.pem /etc/ssl/private/{name}.key;"
        " dpkg-query -W -f='${Status}' postgrey 2>/dev/null | grep -q 'ok installed' && exit 1; true"
    )
    assert rc == 0, out


def check_after_cut(root: Root, after: Path, outside_netns: str, what: str) -> list[str]:
    """The host serves and passes its own checks; the next apply converges; the daemons enforce the site."""
    problems = []
    address = root.host.address
    wait_until_idle(root)
    if not smtp_greets(address):
        problems.append(f"{what}: SMTP does not greet after the cut")
    if not (imaps_login(address, AFTER_PW) or imaps_login(address, BEFORE_PW)):
        problems.append(f"{what}: IMAPS login fails after the cut")
    rc, out = root.run("postfix check && doveconf -n >/dev/null")
    if rc != 0:
        problems.append(f"{what}: postfix check / doveconf -n fail after the cut: {out[-300:]}")
    rc, out = cli_run("apply", "--yes", str(after), password=AFTER_PW)
    if rc != 0:
        problems.append(f"{what}: the next apply did not converge: {out[-800:]}")
    rc, out = cli_run("plan", str(after), password=AFTER_PW)
    if rc != 0:
        problems.append(f"{what}: plan after the converging apply is not empty: {out[-800:]}")
    if not tls12_refused(address):
        problems.append(f"{what}: Dovecot still accepts TLS 1.2 (the new floor is not in force)")
    answer = greylisted_from_outside(outside_netns, root.host.outside_address)
    if not answer.startswith("450") or "Greylisted" not in answer:
        problems.append(f"{what}: greylisting is not answered from outside: {answer}")
    if not imaps_login(address, AFTER_PW):
        problems.append(f"{what}: the new password does not log in")
    return problems


def cut_cycles(root: Root, tmp: Path, outside_netns: str, kill_on_host: bool) -> list[str]:
    before, after = write_site(root.host, tmp, after=False), write_site(root.host, tmp, after=True)
    # Once through, so that what only a fresh host needs (boot links) is done: every cycle then plans alike.
    reset(root, before)
    rc, out = cli_run("apply", "--yes", str(after), password=AFTER_PW)
    assert rc == 0, out
    reset(root, before)
    site = load_site(after)  # FAULT_PW is set by the test
    (outcome,) = plan_site(site, site.hosts, RunOptions(), after.parent)
    assert outcome.plan is not None, outcome.error
    steps = step_names(outcome.plan)
    for must in ("packages", "user:john", "stage", "validate-postfix", "validate-dovecot", "switch", "health"):
        assert must in steps, (must, steps)
    problems: list[str] = []
    for step in steps:
        if step != steps[0]:
            reset(root, before)
        what = f"{root.host.name} {'host apply killed' if kill_on_host else 'SSH cut'} at {step}"
        known = runs(root)
        proc = cli("apply", "--yes", str(after), password=AFTER_PW)
        if not wait_for_step(root, step, known):
            proc.kill()
            problems.append(f"{what}: the step never started: {proc.communicate()[0][-500:]}")
            continue
        if kill_on_host:
            root.run("pkill -KILL -f '[r]uns/.*[.]sh'")
            proc.communicate(timeout=600)  # the launcher on the host dies with it
        else:
            os.killpg(proc.pid, signal.SIGKILL)  # mailprov and its SSH connection die at once
            proc.communicate()
        problems += check_after_cut(root, after, outside_netns, what)
    return problems


def test_a_cut_at_every_step_converges(lab_host_at: Callable[[str, int], Any], lab_connect: Callable[..., Any],
                                       outside_netns: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FAULT_PW", AFTER_PW)
    roots = {d: Root(lab_connect, lab_host_at(d, INDEX)) for d in ("bookworm", "trixie")}
    with ThreadPoolExecutor(2) as pool:
        ssh_cut = pool.submit(cut_cycles, roots["bookworm"], tmp_path, outside_netns, False)
        killed = pool.submit(cut_cycles, roots["trixie"], tmp_path, outside_netns, True)
        problems = ssh_cut.result() + killed.result()
    assert problems == []


def test_a_dead_link_longer_than_tcp_timeout(lab_host_at: Callable[[str, int], Any],
                                             lab_connect: Callable[..., Any], tmp_path: Path) -> None:  # fmt: skip
    host = lab_host_at("bookworm", INDEX)
    root = Root(lab_connect, host)
    before, after = write_site(host, tmp_path, after=False), write_site(host, tmp_path, after=True)
    reset(root, before)
    known = runs(root)
    proc = cli("apply", "--yes", str(after), password=AFTER_PW)
    assert wait_for_step(root, "switch", known)
    link = f"mpl1-{INDEX}"
    subprocess.run(["ip", "link", "set", link, "down"], check=True)
    try:
        time.sleep(100)  # keepalive every 15 s + 45 s unanswered: mailprov's connection is gone by then
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    flat = " ".join(re.sub("[│┃]", " ", out).split())
    assert "was lost during the apply; the host finished it at" in flat, out
    rc, out = cli_run("plan", str(after), password=AFTER_PW)
    assert rc == 0, out


def test_two_applies_at_once(lab_host_at: Callable[[str, int], Any], lab_connect: Callable[..., Any],
                             tmp_path: Path) -> None:  # fmt: skip
    host = lab_host_at("trixie", INDEX)
    root = Root(lab_connect, host)
    before, after = write_site(host, tmp_path, after=False), write_site(host, tmp_path, after=True)
    reset(root, before)
    both = [cli("apply", "--yes", str(after), password=AFTER_PW) for _ in range(2)]
    results = [(p.communicate(timeout=600)[0], p.returncode) for p in both]
    assert sorted(rc for _, rc in results) == [0, 1], results
    refused = " ".join(re.sub("[│┃]", " ", next(out for out, rc in results if rc == 1)).split())
    assert "another apply holds the lock: PID" in refused and "with mailprov" in refused, refused
    rc, logs = root.run("grep -c '' $(ls -t /var/lib/mailprov/runs/*.log | head -1)")
    assert rc == 0 and int(logs.split()[0]) > 5  # the winner's log is whole; the refused run wrote none
    rc, out = cli_run("plan", str(after), password=AFTER_PW)
    assert rc == 0, out
    # A lock left by a killed apply never blocks: kill the holder, apply again.
    reset(root, before)
    known = runs(root)
    third = cli("apply", "--yes", str(after), password=AFTER_PW)
    assert wait_for_step(root, "stage", known)
    root.run("pkill -KILL -f '[r]uns/.*[.]sh'")
    third.communicate(timeout=600)
    rc, out = cli_run("apply", "--yes", str(after), password=AFTER_PW)
    assert rc == 0, out


def test_values_only_the_daemon_rejects_are_rolled_back(lab_host_at: Callable[[str, int], Any],
                                                        tmp_path: Path) -> None:  # fmt: skip
    host = lab_host_at("bookworm", INDEX)
    after = write_site(host, tmp_path, after=True)
    rc, out = cli_run("apply", "--yes", str(after), password=AFTER_PW)
    assert rc == 0, out
    for extra, check in (
        # Both pass validate, postfix check, postconf -n and doveconf -n; the daemons die on them at run time
        # (smtpd: a limit below its minimum; Dovecot's login processes: no memory to start in).
        ("postfix:\n  extra: {smtpd_recipient_limit: 0}\n", "health: Postfix smtp"),
        ("dovecot:\n  extra: {default_vsz_limit: 1M}\n", "health: Dovecot"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(after.read_text() + extra)
        rc, out = cli_run("apply", "--yes", str(bad), password=AFTER_PW)
        flat = " ".join(re.sub("[│┃]", " ", out).split())
        assert rc == 1 and check in flat and "previous configuration restored and serving" in flat, out
        assert smtp_greets(host.address) and imaps_login(host.address, AFTER_PW)
        rc, out = cli_run("plan", str(after), password=AFTER_PW)
        assert rc == 0, out
