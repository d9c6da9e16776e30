"""Live: the lab's DNS server (Knot) and receiver (Postfix + rspamd), as a lab site's mail would meet them.

Uses lab host bookworm-50 only. Records this module adds live under a name of its own
(`labdns-<random>.example.test`) and are deleted again: example.test's apex belongs to the sites' DNS
resource, and the DNS server is shared with every other test session.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update
import paramiko
import pytest

from mailprov.lab import LabDns, LabHost, LabReceiver
from mailprov.lab import dns as lab_dns
from mailprov.lab.paths import LabPaths
from mailprov.lab.receiver import RECEIVER_BOX
from mailprov.lab.services import box_exec

pytestmark = pytest.mark.live

HOST_INDEX = 50

_OUTSIDE_QUERY = """\
import sys
import dns.message, dns.query
answer = dns.query.udp(dns.message.make_query(sys.argv[2], sys.argv[3]), sys.argv[1], timeout=3)
print(" ".join(sorted(rdata.to_text() for rrset in answer.answer for rdata in rrset)))
"""

_OUTSIDE_SEND = """\
import smtplib, sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
sender, recipient, subject = sys.argv[1:4]
message = EmailMessage()
message["From"], message["To"], message["Subject"] = sender, recipient, subject
message["Date"], message["Message-ID"] = formatdate(), make_msgid(domain="outside.example.test")
message.set_content("sent by tests/live/test_lab_dns.py\\n")
with smtplib.SMTP("10.232.0.25", 25, local_hostname="outside.example.test", timeout=30) as smtp:
    smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
"""


def _in_outside(outside_netns: str, script: str, *args: str) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", outside_netns, sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _query(name: str, rtype: str, server: str = lab_dns.DNS_ADDRESS) -> set[str]:
    answer = dns.query.udp(dns.message.make_query(name, rtype), server, timeout=3)
    return {rdata.to_text() for rrset in answer.answer for rdata in rrset}


def _update(name: str, rtype: str, value: str | None, *, signed: bool = True) -> int:
    """Replace (value given) or delete (None) the record set; return the server's rcode."""
    keyring = lab_dns.keyring(LabPaths.from_env()) if signed else None
    update = dns.update.UpdateMessage(lab_dns.LAB_DOMAIN, keyring=keyring, keyalgorithm=lab_dns.TSIG_ALGORITHM)
    if value is None:
        update.delete(f"{name}.", rtype)
    else:
        update.replace(f"{name}.", 60, rtype, value)
    return int(dns.query.tcp(update, lab_dns.DNS_ADDRESS, timeout=5).rcode())


@pytest.fixture(scope="module")
def lab_dns_server(lab_session: ModuleType) -> LabDns:
    server: LabDns = lab_session.dns_up()
    return server


@pytest.fixture(scope="module")
def host50(lab_host_at: Callable[[str, int], LabHost], lab_dns_server: LabDns) -> LabHost:
    return lab_host_at("bookworm", HOST_INDEX)


@pytest.fixture(scope="module")
def receiver(lab_session: ModuleType, lab_dns_server: LabDns) -> LabReceiver:
    started: LabReceiver = lab_session.receiver_up()
    return started


@pytest.fixture
def new_name() -> Iterator[Callable[[], str]]:
    """Fresh names under example.test that no site manages (and no resolver has cached); deleted after."""
    names: list[str] = []

    def make() -> str:
        names.append(f"labdns-{secrets.token_hex(4)}.example.test")
        return names[-1]

    yield make
    for name in names:
        for owner in (name, f"_dmarc.{name}"):
            _update(owner, "TXT", None)


@pytest.fixture
def own_name(new_name: Callable[[], str]) -> str:
    return new_name()


def test_the_lab_dns_is_what_the_contract_says(lab_dns_server: LabDns) -> None:
    assert (lab_dns_server.address, lab_dns_server.outside_address) == ("10.231.0.53", "10.232.0.53")
    assert lab_dns_server.tsig_name == "mailprov-lab"
    assert lab_dns_server.tsig_key_file.stat().st_mode & 0o777 == 0o600
    assert lab_dns_server.tsig_key_file.read_text().startswith("hmac-sha256:mailprov-lab:")
    for zone in lab_dns_server.zones:
        assert any(value.startswith("ns.example.test. ") for value in _query(zone, "SOA")), zone


def test_a_lab_host_resolves_through_the_lab_dns(
    host50: LabHost, lab_ssh: Callable[..., paramiko.SSHClient], ssh_run: Callable[..., tuple[int, str, str]]
) -> None:
    client = lab_ssh(host50)
    rc, resolv, _ = ssh_run(client, "cat /etc/resolv.conf")
    assert rc == 0 and "nameserver 10.231.0.53" in resolv.splitlines()
    rc, out, err = ssh_run(client, "getent hosts receiver.test mx.receiver.test bookworm-50.example.test")
    assert rc == 0, err
    assert out.split() == [
        "10.232.0.25", "receiver.test",
        "10.232.0.25", "mx.receiver.test",
        "10.232.1.50", "bookworm-50.example.test",
    ]  # fmt: skip
    # Its outside (public) address points back at its name: the network owner's PTR, set by the lab.
    rc, out, _ = ssh_run(client, "getent hosts 10.232.1.50")
    assert rc == 0 and out.split() == ["10.232.1.50", "bookworm-50.example.test"]
    # The LAN address too (the host's /etc/hosts answers getent for it, so ask the server).
    assert _query("50.1.231.10.in-addr.arpa", "PTR") == {"bookworm-50.example.test."}


def test_the_dns_answers_the_outside_network(lab_dns_server: LabDns, outside_netns: str) -> None:
    mx = _in_outside(outside_netns, _OUTSIDE_QUERY, lab_dns_server.outside_address, "receiver.test", "MX")
    assert mx == "10 mx.receiver.test."
    ptr = _in_outside(outside_netns, _OUTSIDE_QUERY, lab_dns_server.outside_address, "25.0.232.10.in-addr.arpa", "PTR")
    assert ptr == "mx.receiver.test."


def test_a_tsig_signed_update_adds_and_deletes_a_txt_record(lab_dns_server: LabDns, own_name: str) -> None:
    assert _update(own_name, "TXT", '"lab test"') == dns.rcode.NOERROR
    assert _query(own_name, "TXT") == {'"lab test"'}
    assert _update(own_name, "TXT", None) == dns.rcode.NOERROR
    assert _query(own_name, "TXT") == set()


def test_an_unsigned_update_is_refused(lab_dns_server: LabDns, own_name: str) -> None:
    assert _update(own_name, "TXT", '"not signed"', signed=False) in (dns.rcode.NOTAUTH, dns.rcode.REFUSED)
    assert _query(own_name, "TXT") == set()


def test_updates_survive_a_knotd_restart(lab_dns_server: LabDns, own_name: str) -> None:
    assert _update(own_name, "TXT", '"kept"') == dns.rcode.NOERROR
    box_exec(lab_dns.DNS_BOX, ["knotc", "-c", "/etc/knot/knot.conf", "stop"], what="stop knotd")
    time.sleep(0.5)  # knotd is gone before its PID 1 starts it again
    deadline = time.monotonic() + 20
    answers: set[str] = set()
    while time.monotonic() < deadline:
        try:
            answers = _query(own_name, "TXT")
            break
        except (OSError, dns.exception.DNSException):
            time.sleep(0.2)
    assert answers == {'"kept"'}


def _delivered(receiver: LabReceiver, subject: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in receiver.messages():
            text = raw.decode(errors="replace")
            if f"Subject: {subject}" in text:
                return text
        time.sleep(0.2)
    raise AssertionError(f"no message {subject!r} in {receiver.maildir}")


def _authentication_results(message: str) -> str:
    """The unfolded Authentication-Results header of a delivered message."""
    header, _, _ = message.partition("\n\n")
    unfolded = header.replace("\n\t", " ").replace("\n ", " ")
    lines = [line for line in unfolded.splitlines() if line.startswith("Authentication-Results:")]
    assert len(lines) == 1, header
    return lines[0]


def _send(outside_netns: str, sender: str, subject: str) -> None:
    _in_outside(outside_netns, _OUTSIDE_SEND, sender, "someone@receiver.test", subject)


def test_the_receiver_judges_mail_from_outside(receiver: LabReceiver, outside_netns: str) -> None:
    """From: x@example.test: whatever a site published there, rspamd says spf= and dmarc= something."""
    assert (receiver.address, receiver.domain) == ("10.232.0.25", "receiver.test")
    subject = f"lab dns {secrets.token_hex(4)}"
    _send(outside_netns, "x@example.test", subject)
    results = _authentication_results(_delivered(receiver, subject))
    assert results.startswith("Authentication-Results: mx.receiver.test;")
    assert " spf=" in results and " dmarc=" in results and " dkim=" in results


def test_spf_and_dmarc_follow_what_is_published(
    receiver: LabReceiver, outside_netns: str, new_name: Callable[[], str]
) -> None:
    """Each case on a fresh name: rspamd caches the SPF and DMARC records it has read."""
    # With no record of its own, a subdomain falls under example.test's DMARC policy, if a site published one.
    org_policy = "dmarc=fail" if _query("_dmarc.example.test", "TXT") else "dmarc=none"
    cases = (
        (None, "spf=none", org_policy),
        ("v=spf1 ip4:10.232.0.1 -all", "spf=pass", "dmarc=pass"),
        ("v=spf1 ip4:192.0.2.1 -all", "spf=fail", "dmarc=fail"),
    )
    for spf, spf_result, dmarc_result in cases:
        domain = new_name()
        if spf is not None:
            assert _update(f"_dmarc.{domain}", "TXT", '"v=DMARC1; p=reject"') == dns.rcode.NOERROR
            assert _update(domain, "TXT", f'"{spf}"') == dns.rcode.NOERROR
        subject = f"{spf_result} {domain}"
        _send(outside_netns, f"x@{domain}", subject)
        # Delivered even when it fails: the receiver judges and adds headers, it never rejects.
        results = _authentication_results(_delivered(receiver, subject))
        assert spf_result in results and dmarc_result in results, results


def test_a_lab_host_reaches_the_receiver_by_its_mx(
    host50: LabHost,
    receiver: LabReceiver,
    lab_ssh: Callable[..., paramiko.SSHClient],
    ssh_run: Callable[..., tuple[int, str, str]],
) -> None:
    client = lab_ssh(host50)
    rc, banner, err = ssh_run(
        client, "timeout 10 bash -c 'exec 3<>/dev/tcp/mx.receiver.test/25; head -n 1 <&3; echo QUIT >&3'"
    )
    assert rc == 0, err
    assert banner.startswith("220 mx.receiver.test ESMTP")
    # It came from the host's outside address, whose PTR is forward-confirmed (else Postfix says "unknown").
    log = box_exec(RECEIVER_BOX, ["cat", "/var/log/mail.log"], what="read the receiver's log").stdout
    assert "connect from bookworm-50.example.test[10.232.1.50]" in log


_SEND_WITH_POSTFIX = """\
set -e
export DEBIAN_FRONTEND=noninteractive
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get -q update >/dev/null
apt-get -q -y install postfix >/dev/null 2>&1
cat > /etc/postfix/main.cf <<'END'
compatibility_level = 3.6
myhostname = bookworm-50.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
maillog_file = /var/log/postfix.log
END
service postfix restart </dev/null >/dev/null 2>&1
printf 'From: x@bookworm-50.example.test\\nTo: someone@receiver.test\\nSubject: %s\\n\\nhi\\n' "$1" |
    sendmail -f x@bookworm-50.example.test someone@receiver.test
"""


def test_postfix_on_a_lab_host_finds_the_receiver_by_mx_and_sends_from_its_outside_address(
    host50: LabHost,
    receiver: LabReceiver,
    lab_ssh: Callable[..., paramiko.SSHClient],
    ssh_run: Callable[..., tuple[int, str, str]],
) -> None:
    subject = f"from bookworm-50 {secrets.token_hex(4)}"
    client = lab_ssh(host50)
    rc, out, err = ssh_run(client, f"sh -s '{subject}' <<'SCRIPT'\n{_SEND_WITH_POSTFIX}SCRIPT\n", timeout=180)
    assert rc == 0, out + err
    try:
        message = _delivered(receiver, subject, timeout=60)
    finally:
        ssh_run(client, "service postfix stop </dev/null >/dev/null 2>&1")
    assert "Received: from bookworm-50.example.test (bookworm-50.example.test [10.232.1.50])" in message
    assert "spf=none" in _authentication_results(message)  # bookworm-50.example.test publishes no SPF
