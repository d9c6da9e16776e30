"""The site's DNS records against a real Knot DNS server (knotd on 127.0.0.1, a high port, a temp dir):
plan shows the changes → apply (RFC 2136, TSIG) → plan is empty; records the site does not own survive;
a wrong key is refused with a clear message; `mailprov dns` prints the snippet. Needs no lab host.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailprov.cli import main
from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.orchestrate import plan_site_resources
from mailprov.resources.base import DnsRecord, SiteContext
from mailprov.resources.dns import DnsError, DnsResource, read_current

pytestmark = pytest.mark.live

ZONE = """$ORIGIN example.test.
$TTL 300
@ SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300
@ NS ns.example.test.
ns A 127.0.0.1
www A 192.0.2.80
@ MX 5 old-mx.example.test.
@ TXT "google-site-verification=keep-me"
@ TXT "v=spf1 a -all"
"""
REVERSE = """$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@ SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300
@ NS ns.example.test.
80 PTR www.example.test.
"""
# A 2048-bit key's TXT is longer than one 255-byte string: the update must split it.
DKIM = DnsRecord(
    "mail._domainkey.example.test",
    "TXT",
    "v=DKIM1; k=rsa; p=" + base64.b64encode(os.urandom(294)).decode(),
    why="DKIM key (a stand-in for the dkim resource's record)",
)


@dataclass(frozen=True)
class Knot:
    port: int
    key_file: Path
    site_file: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    if shutil.which("knotd") is None:
        pytest.skip("knotd is not installed (apt-get install knot knot-dnsutils; scripts/setup.sh does)")
    work = tmp_path_factory.mktemp("knot")
    secret = base64.b64encode(os.urandom(32)).decode()
    port = _free_port()
    (work / "db").mkdir()
    (work / "example.test.zone").write_text(ZONE)
    (work / "2.0.192.in-addr.arpa.zone").write_text(REVERSE)
    (work / "knot.conf").write_text(
        f"""server:
    rundir: "{work}"
    listen: 127.0.0.1@{port}
database:
    storage: "{work}/db"
key:
  - id: mailprov-test
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: update
    key: mailprov-test
    action: update
template:
  - id: default
    storage: "{work}"
    file: "%s.zone"
    zonefile-load: whole
    journal-content: changes
zone:
  - domain: example.test
    acl: update
  - domain: 2.0.192.in-addr.arpa
    acl: update
log:
  - target: "{work}/knot.log"
    any: info
"""
    )
    key_file = work / "tsig.key"
    key_file.write_text(f"hmac-sha256:mailprov-test:{secret}\n")
    key_file.chmod(0o600)
    site_file = work / "site.yaml"
    site_file.write_text(
        f"""domain: example.test
hosts:
  - name: mx1.example.test
    public_address: 192.0.2.10
  - name: mx2.example.test
    public_address: 198.51.100.20
    mx_priority: 20
dmarc: {{policy: reject, rua: [dmarc@example.test]}}
dns:
  server: 127.0.0.1
  port: {port}
  zone: example.test
  reverse_zones: [2.0.192.in-addr.arpa]
  tsig_key: {{file: tsig.key}}
"""
    )
    process = subprocess.Popen(["knotd", "-c", str(work / "knot.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                read_current("127.0.0.1", port, [("example.test", "SOA")], timeout=1.0)
                break
            except DnsError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log = (work / "knot.log").read_text() if (work / "knot.log").exists() else ""
                    pytest.fail(f"knotd did not start: {log[-2000:]}")
                time.sleep(0.2)
        yield Knot(port, key_file, site_file)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _site(knot: Knot) -> Site:
    return load_site(str(knot.site_file))


def _plan(knot: Knot, records: tuple[DnsRecord, ...] = (DKIM,)) -> list[str]:
    ctx = SiteContext(_site(knot), knot.site_file.parent, records)
    return [c.key for c in DnsResource().plan(ctx).changes]


def _converge(knot: Knot, records: tuple[DnsRecord, ...] = (DKIM,)) -> None:
    """The module's site published (each test starts from it, whichever ran before)."""
    ctx = SiteContext(_site(knot), knot.site_file.parent, records)
    DnsResource().apply(ctx, DnsResource().plan(ctx))


def _dig(knot: Knot, name: str, rtype: str) -> str:
    out = subprocess.run(
        ["kdig", "@127.0.0.1", "-p", str(knot.port), "+short", "+norecurse", name, rtype],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_plan_apply_then_plan_is_empty(knot: Knot) -> None:
    site = _site(knot)
    ctx = SiteContext(site, knot.site_file.parent, (DKIM,))
    plan = DnsResource().plan(ctx)
    keys = {c.key for c in plan.changes}
    assert keys == {
        "dns:example.test/MX",
        "dns:mx1.example.test/A",
        "dns:mx2.example.test/A",
        "dns:example.test/TXT",
        "dns:mx1.example.test/TXT",
        "dns:mx2.example.test/TXT",
        "dns:_dmarc.example.test/TXT",
        "dns:mail._domainkey.example.test/TXT",
        "dns:10.2.0.192.in-addr.arpa/PTR",
    }
    mx = next(c for c in plan.changes if c.key == "dns:example.test/MX")
    assert "-example.test. IN MX 5 old-mx.example.test." in mx.diff
    # 198.51.100.20 is in no reverse zone of the site: the network owner's, reported, never updated.
    assert any("20.100.51.198.in-addr.arpa. IN PTR mx2.example.test." in n for n in plan.notes)

    done = DnsResource().apply(ctx, plan)
    assert "example.test" in done and "2.0.192.in-addr.arpa" in done

    assert DnsResource().plan(ctx).changes == ()  # converged: a second plan is empty
    assert _dig(knot, "example.test", "MX").split() == ["10", "mx1.example.test.", "20", "mx2.example.test."]
    apex = _dig(knot, "example.test", "TXT")
    assert '"google-site-verification=keep-me"' in apex  # not the site's: kept
    assert '"v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all"' in apex
    assert '"v=spf1 a -all"' not in apex  # the old SPF record of the domain was replaced
    assert _dig(knot, "www.example.test", "A").strip() == "192.0.2.80"  # not the site's: kept
    assert _dig(knot, "80.2.0.192.in-addr.arpa", "PTR").strip() == "www.example.test."
    assert _dig(knot, "10.2.0.192.in-addr.arpa", "PTR").strip() == "mx1.example.test."
    assert _dig(knot, "_dmarc.example.test", "TXT").strip() == '"v=DMARC1; p=reject; rua=mailto:dmarc@example.test"'
    dkim = _dig(knot, "mail._domainkey.example.test", "TXT")
    assert "".join(part.strip('"') for part in dkim.split()) == DKIM.value.replace(" ", "")


def test_a_changed_site_updates_only_what_changed(knot: Knot) -> None:
    _converge(knot)
    rotated = DnsRecord("new._domainkey.example.test", "TXT", "v=DKIM1; k=rsa; p=QUJD")
    ctx = SiteContext(_site(knot), knot.site_file.parent, (DKIM, rotated))
    plan = DnsResource().plan(ctx)
    assert [c.key for c in plan.changes] == ["dns:new._domainkey.example.test/TXT"]
    DnsResource().apply(ctx, plan)
    assert DnsResource().plan(ctx).changes == ()
    # The selector's record left the hosts: its name is no longer the site's to read or delete.
    assert _plan(knot, (DKIM,)) == []
    assert "QUJD" in _dig(knot, "new._domainkey.example.test", "TXT")


def test_a_wrong_tsig_key_is_refused_clearly_without_the_secret(knot: Knot, tmp_path: Path) -> None:
    _converge(knot)
    wrong_secret = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "tsig.key").write_text(f"hmac-sha256:mailprov-test:{wrong_secret}\n")
    (tmp_path / "site.yaml").write_text(knot.site_file.read_text())
    site = load_site(str(tmp_path / "site.yaml"))
    changed = site.model_copy(update={"dmarc": site.dmarc.model_copy(update={"policy": "quarantine"})})
    ctx = SiteContext(changed, tmp_path, (DKIM,))
    plan = DnsResource().plan(ctx)
    assert [c.key for c in plan.changes] == ["dns:_dmarc.example.test/TXT"]
    with pytest.raises(DnsError) as caught:
        DnsResource().apply(ctx, plan)
    message = str(caught.value)
    assert "refused the update" in message and "check tsig_key" in message
    assert wrong_secret not in message
    assert "p=reject" in _dig(knot, "_dmarc.example.test", "TXT")  # nothing changed


def test_engine_and_cli_show_the_same_records(knot: Knot) -> None:
    _converge(knot)
    outcomes = plan_site_resources(_site(knot), [], knot.site_file.parent)
    assert [o.resource for o in outcomes] == ["dns"]
    assert outcomes[0].error is None
    # Without the hosts' records (none planned here), the DKIM name is not the site's: no change for it.
    assert outcomes[0].plan is not None and outcomes[0].plan.changes == ()
    result = CliRunner().invoke(main, ["dns", str(knot.site_file), "--offline"])
    assert result.exit_code == 0, result.output
    assert "example.test. 3600 IN MX 10 mx1.example.test." in result.output
    assert '_dmarc.example.test. 3600 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"' in result.output
    assert "10.2.0.192.in-addr.arpa. 3600 IN PTR mx1.example.test." in result.output


def _verify(knot: Knot, host_index: int, published: tuple[DnsRecord, ...]) -> dict[str, tuple[str, str]]:
    """verify's DNS checks of one host through the site's dns.server (no SMTP: the site has no submission,
    and the hosts' addresses are documentation addresses nobody serves)."""
    from mailprov.verify.checks import HostVerification, VerifyOptions

    site = _site(knot)
    run = HostVerification(site, site.hosts[host_index], VerifyOptions(host_checks=False), knot.site_file.parent)
    run.published = published
    run.dns()
    return {r.name: (r.status, r.detail) for r in run.results}


def test_verify_dns_checks_pass_through_the_site_server_and_one_break_fails_one_check(knot: Knot) -> None:
    _converge(knot)
    ctx = SiteContext(_site(knot), knot.site_file.parent, (DKIM,))
    results = _verify(knot, 0, (DKIM,))
    statuses = {name: status for name, (status, _) in results.items()}
    assert statuses == {
        "dns.mx": "pass",
        "dns.a": "pass",
        "dns.ptr": "pass",
        "dns.spf": "pass",
        "dns.dmarc": "pass",
        "dns.host_records": "pass",
        "dkim.signature": "skip",  # the site has no submission port: nothing to send through
    }, results
    assert "forward-confirmed" in results["dns.ptr"][1]
    # mx2's address is in no reverse zone the site's server holds: it cannot say (a resolver could).
    status, detail = _verify(knot, 1, (DKIM,))["dns.ptr"]
    assert status == "skip" and "REFUSED" in detail and "--resolver" in detail

    # Break one record by hand: exactly that check fails.
    subprocess.run(
        ["knsupdate", "-k", str(knot.key_file)],
        input=f"server 127.0.0.1 {knot.port}\nzone example.test\ndel mail._domainkey.example.test TXT\nsend\n",
        text=True,
        check=True,
        capture_output=True,
    )
    broken = {name: status for name, (status, _) in _verify(knot, 0, (DKIM,)).items()}
    assert broken == {**statuses, "dns.host_records": "fail"}
    DnsResource().apply(ctx, DnsResource().plan(ctx))
    assert _verify(knot, 0, (DKIM,))["dns.host_records"][0] == "pass"


def test_a_dkim_signature_verifies_against_the_key_the_site_published(knot: Knot) -> None:
    _converge(knot)
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mailprov.verify import records

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = DnsRecord("live._domainkey.example.test", "TXT", "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())
    ctx = SiteContext(_site(knot), knot.site_file.parent, (DKIM, record))
    DnsResource().apply(ctx, DnsResource().plan(ctx))
    message = b"From: john@example.test\r\nTo: x@receiver.test\r\nSubject: t\r\n\r\nhello\r\n"
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signed = bytes(dkim.sign(message, b"live", b"example.test", private)) + message
    resolver = records.Resolver("127.0.0.1", knot.port, 3.0, "the site's dns.server")
    assert records.dkim_check(signed, resolver).ok
    assert not records.dkim_check(signed.replace(b"hello", b"hellO"), resolver).ok


def test_cli_plan_apply_plan_with_the_hosts_faked(knot: Knot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`mailprov plan` / `apply` / `plan` through the CLI: the hosts are stand-ins (converged, no SSH) whose
    apply "generates" a DKIM key, which must be published after the apply; the zone is the real knotd."""
    _converge(knot)
    import json

    from mailprov import orchestrate
    from mailprov.apply import ApplyResult
    from mailprov.plan import HostPlan

    site_file = tmp_path / "site.yaml"
    site_file.write_text(knot.site_file.read_text().replace("policy: reject", "policy: quarantine"))
    (tmp_path / "tsig.key").write_text(knot.key_file.read_text())
    generated = DnsRecord("gen._domainkey.example.test", "TXT", "v=DKIM1; k=rsa; p=R0VO")

    def host_plan(name: str) -> HostPlan:
        return HostPlan(name, "Debian 12", (), (), (), (), (), (), "", "fp", records=(DKIM,))

    def fake_plan_site(site: Site, hosts: Any, options: Any, base_dir: Path) -> list[orchestrate.HostOutcome]:
        return [orchestrate.HostOutcome(h.name, plan=host_plan(h.name)) for h in hosts]

    def fake_apply_site(site: Site, hosts: Any, options: Any, base_dir: Path, approve: Any, **_: Any) -> Any:
        planned = fake_plan_site(site, hosts, options, base_dir)
        assert approve(planned)
        return [
            orchestrate.HostOutcome(o.host, o.plan, ApplyResult(o.host, True, ()), records=(DKIM, generated))
            for o in planned
        ]

    monkeypatch.setattr(orchestrate, "plan_site", fake_plan_site)
    monkeypatch.setattr(orchestrate, "apply_site", fake_apply_site)
    runner = CliRunner()
    first = runner.invoke(main, ["plan", str(site_file)])
    assert first.exit_code == 2, first.output
    assert "● site: dns" in first.output and "DNS _dmarc.example.test TXT" in first.output
    assert '+_dmarc.example.test. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test"' in first.output
    assert knot.key_file.read_text().split(":")[2].strip() not in first.output
    as_json = json.loads(runner.invoke(main, ["plan", str(site_file), "--json"]).output)
    assert as_json[-1]["site"] == "dns" and as_json[-1]["changes"][0]["key"] == "dns:_dmarc.example.test/TXT"

    applied = runner.invoke(main, ["apply", str(site_file), "--yes"])
    assert applied.exit_code == 0, applied.output
    assert "dns: updated" in applied.output
    assert "p=quarantine" in _dig(knot, "_dmarc.example.test", "TXT")
    assert "R0VO" in _dig(knot, "gen._domainkey.example.test", "TXT")  # the key made by the apply

    monkeypatch.setattr(
        orchestrate,
        "plan_site",
        lambda site, hosts, options, base_dir: [
            orchestrate.HostOutcome(h.name, plan=replace(host_plan(h.name), records=(DKIM, generated))) for h in hosts
        ],
    )
    second = runner.invoke(main, ["plan", str(site_file)])
    assert second.exit_code == 0, second.output
    assert "no changes: the dns records match the site" in second.output

    snippet = runner.invoke(main, ["dns", str(site_file)])
    assert snippet.exit_code == 0, snippet.output
    assert 'gen._domainkey.example.test. 3600 IN TXT "v=DKIM1; k=rsa; p=R0VO"' in snippet.output
