"""The DNS site resource without a server: the records a site needs, SPF/DMARC text, what the site owns,
the diff against records read, the RFC 2136 update on the wire, the zone snippet, the TSIG key, and the
`spf:`/`dmarc:`/`dns:` site fields (each refusal placed at its file:line)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dns.message
import dns.opcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from mailprov.config.loader import parse_site
from mailprov.config.model import Site
from mailprov.config.secrets import Secret
from mailprov.errors import ConfigError
from mailprov.orchestrate import HostOutcome, apply_site_resources, plan_site_resources
from mailprov.resources import SITE_REGISTRY
from mailprov.resources.base import DnsRecord, SiteContext, SitePlan, SiteResource
from mailprov.resources.dns import (
    DnsDetail,
    DnsResource,
    Owned,
    TsigKey,
    dmarc_text,
    record_changes,
    site_records,
    spf_text,
    update_messages,
    zone_snippet,
)

SITE = """domain: example.test
hosts:
  - name: mx1.example.test
    public_address: 192.0.2.10
  - name: mx2.example.test
    public_address: 2001:db8::20
    mx_priority: 20
"""
DNS = """dns:
  server: 192.0.2.53
  zone: example.test
  reverse_zones: [2.0.192.in-addr.arpa]
  tsig_key: {env: MAILPROV_TSIG}
"""
SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DKIM = DnsRecord("mail._domainkey.example.test", "TXT", "v=DKIM1; k=rsa; p=" + "A" * 392, why="DKIM key of mail")


def site(extra: str = "") -> Site:
    return parse_site(SITE + extra)


def refusal(extra: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_site(SITE + extra, "site.yaml")
    return str(info.value)


# --- SPF and DMARC text ----------------------------------------------------------------------------------


def test_spf_defaults_to_every_host_public_address_and_dash_all() -> None:
    assert spf_text(site()) == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::20 -all"


def test_spf_falls_back_to_mx_when_a_host_has_no_ip_address() -> None:
    text = SITE.replace("    public_address: 2001:db8::20\n", "    ssh: {address: mx2.lan}\n")
    assert spf_text(parse_site(text)) == "v=spf1 mx -all"


def test_spf_uses_the_site_mechanisms_normalized() -> None:
    s = site(
        "spf: {mechanisms: [MX, 'ip4:198.51.100.0/24', '~include:_spf.example.net', 'ip4:203.0.113.5/32'], all: ~all}\n"
    )
    assert spf_text(s) == "v=spf1 mx ip4:198.51.100.0/24 ~include:_spf.example.net ip4:203.0.113.5 ~all"


@pytest.mark.parametrize(
    "mechanism",
    [
        "ip4:192.0.2.1 +all",  # a second term
        "ip4:192.0.2.1 include:evil.example",
        "a:x.example;rm",
        "redirect=evil.example",
        "exists:%{i}.evil.example",  # macros
        "include:%{d}",
        '"v=spf1 +all"',
        "ip4:192.0.2.0/16",  # host bits
        "ip6:192.0.2.1",
        "+all",
        "ptr",
    ],
)
def test_spf_mechanisms_cannot_inject_text(mechanism: str) -> None:
    message = refusal(f"spf:\n  mechanisms:\n    - {mechanism!r}\n")
    assert "spf.mechanisms.0" in message and "site.yaml:" in message


def test_spf_all_cannot_be_plus_all() -> None:
    assert "spf.all" in refusal("spf: {all: +all}\n")


def test_dmarc_text_has_policy_and_only_the_tags_given() -> None:
    assert dmarc_text(site()) == "v=DMARC1; p=none"
    s = site(
        "dmarc: {policy: reject, subdomain_policy: quarantine, rua: [Dmarc@Example.test, r@x.example],"
        " pct: 50, adkim: s, aspf: s}\n"
    )
    assert dmarc_text(s) == (
        "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.test,mailto:r@x.example; pct=50; adkim=s; aspf=s"
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("dmarc: {policy: block}\n", "dmarc.policy"),
        ("dmarc: {rua: ['a@b.example; p=none']}\n", "dmarc.rua.0"),
        ("dmarc: {rua: ['mailto:a@b.example']}\n", "dmarc.rua.0"),
        ("dmarc: {pct: 101}\n", "dmarc.pct"),
        ("mta_sts: {enabled: true}\n", "mta_sts.enabled"),
        ("tls_rpt: {enabled: true}\n", "tls_rpt.enabled"),
        ("dns: {server: ns.example.test, zone: example.test, tsig_key: {file: k}}\n", "dns.server"),
        ("dns: {server: 192.0.2.53, zone: other.test, tsig_key: {file: k}}\n", "dns.zone"),
        ("dns: {server: 192.0.2.53, zone: example.test, tsig_key: 'hmac-sha256:k:AAAA'}\n", "dns.tsig_key"),
        (
            "dns: {server: 192.0.2.53, zone: example.test, tsig_key: {file: k}, reverse_zones: [example.net]}\n",
            "dns.reverse_zones.0",
        ),
    ],
)
def test_bad_fields_are_refused_at_their_line(extra: str, field: str) -> None:
    message = refusal(extra)
    assert field in message
    assert "AAAA" not in message  # an inline secret is never repeated


def test_later_stubs_are_accepted_disabled_and_refused_enabled_with_a_clear_message() -> None:
    assert not site("mta_sts: {enabled: false}\ntls_rpt: {}\n").mta_sts.enabled
    assert "not supported yet" in refusal("mta_sts: {enabled: true}\n")


# --- the records ------------------------------------------------------------------------------------------


def test_records_the_site_needs() -> None:
    records = site_records(site("dmarc: {policy: quarantine}\n"), (DKIM,))
    assert [(r.name, r.rtype, r.value) for r in records] == [
        ("example.test", "MX", "10 mx1.example.test."),
        ("example.test", "MX", "20 mx2.example.test."),
        ("mx1.example.test", "A", "192.0.2.10"),
        ("mx2.example.test", "AAAA", "2001:db8::20"),
        ("example.test", "TXT", "v=spf1 ip4:192.0.2.10 ip6:2001:db8::20 -all"),
        ("mx1.example.test", "TXT", "v=spf1 a -all"),
        ("mx2.example.test", "TXT", "v=spf1 a -all"),
        ("_dmarc.example.test", "TXT", "v=DMARC1; p=quarantine"),
        ("mail._domainkey.example.test", "TXT", DKIM.value),
        ("10.2.0.192.in-addr.arpa", "PTR", "mx1.example.test."),
        ("0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "PTR", "mx2.example.test."),
    ]


def test_spf_and_dmarc_can_be_turned_off() -> None:
    rtypes = {(r.name, r.rtype) for r in site_records(site("spf: {enabled: false}\ndmarc: {enabled: false}\n"))}
    assert ("example.test", "TXT") not in rtypes and ("_dmarc.example.test", "TXT") not in rtypes


def test_the_site_owns_only_spf_among_shared_txt_and_whole_underscore_names() -> None:
    assert Owned("example.test", "TXT", "spf").owns("v=spf1 -all")
    assert not Owned("example.test", "TXT", "spf").owns("google-site-verification=x")
    assert Owned("_dmarc.example.test", "TXT").owns("anything")


# --- the diff ---------------------------------------------------------------------------------------------

ZONES = ("example.test", "2.0.192.in-addr.arpa")


def converged() -> dict[tuple[str, str], tuple[str, ...]]:
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for r in site_records(site(), (DKIM,)):
        value = r.value if r.rtype == "TXT" else r.value.lower()
        out[(r.name, r.rtype)] = (*out.get((r.name, r.rtype), ()), value)
    return out


def test_converged_records_plan_no_change() -> None:
    detail = record_changes(site_records(site(), (DKIM,)), converged(), ZONES)
    assert detail.changes == ()
    # the IPv6 PTR is in no zone of the site: reported for the network owner, never changed
    assert [r.rtype for r in detail.by_hand] == ["PTR"]


def test_diff_replaces_owned_values_and_keeps_others() -> None:
    current = converged()
    current[("example.test", "TXT")] = ("google-site-verification=keep", "v=spf1 a -all")
    current[("example.test", "MX")] = ("10 mx1.example.test.", "5 old.example.test.", "20 mx2.example.test.")
    current[("mx1.example.test", "A")] = ()
    detail = record_changes(site_records(site(), (DKIM,)), current, ZONES)
    by_key = {(c.owned.name, c.owned.rtype): c for c in detail.changes}
    assert set(by_key) == {("example.test", "TXT"), ("example.test", "MX"), ("mx1.example.test", "A")}
    txt = by_key[("example.test", "TXT")]
    assert txt.remove == ("v=spf1 a -all",) and txt.add == ("v=spf1 ip4:192.0.2.10 ip6:2001:db8::20 -all",)
    assert by_key[("example.test", "MX")].remove == ("5 old.example.test.",)
    assert by_key[("example.test", "MX")].add == ()
    assert by_key[("mx1.example.test", "A")].action == "create"
    assert by_key[("example.test", "MX")].diff() == ("-example.test. IN MX 5 old.example.test.",)


def test_names_compare_case_and_dot_insensitively() -> None:
    current = converged()
    current[("example.test", "MX")] = ("10 MX1.Example.Test.", "20 mx2.example.test.")
    assert record_changes(site_records(site(), (DKIM,)), current, ZONES).changes == ()


# --- the update on the wire -------------------------------------------------------------------------------


def test_update_message_deletes_exact_values_adds_ours_signed_and_splits_long_txt() -> None:
    current = converged()
    current[("example.test", "TXT")] = ("google-site-verification=keep", "v=spf1 a -all")
    del current[("mail._domainkey.example.test", "TXT")]
    detail = record_changes(site_records(site(), (DKIM,)), current, ZONES)
    key = TsigKey.parse(Secret(f"hmac-sha256:mailprov-lab:{SECRET}"), "test")
    (message,) = update_messages(detail, key)
    wire = message.to_wire()
    parsed = dns.message.from_wire(wire, keyring={dns.name.from_text("mailprov-lab"): key.dns_key()})
    assert parsed.opcode() == dns.opcode.UPDATE
    assert parsed.had_tsig
    text = parsed.to_text()
    assert 'example.test. 0 NONE TXT "v=spf1 a -all"' in text  # delete exactly that RR (RFC 2136 2.5.4)
    assert "google-site-verification" not in text
    assert 'example.test. 3600 IN TXT "v=spf1 ip4:192.0.2.10 ip6:2001:db8::20 -all"' in text
    (dkim,) = [rrset for rrset in parsed.update if rrset.name == dns.name.from_text(DKIM.name)]
    strings = next(iter(dkim)).strings
    assert [len(s) for s in strings] == [255, len(DKIM.value) - 255]
    assert b"".join(strings).decode() == DKIM.value
    assert SECRET not in text


def test_one_update_per_zone() -> None:
    current = converged()
    del current[("10.2.0.192.in-addr.arpa", "PTR")]
    del current[("example.test", "MX")]
    detail = record_changes(site_records(site(), (DKIM,)), current, ZONES)
    zones = [str(m.origin) for m in update_messages(detail, None)]
    assert sorted(zones) == ["2.0.192.in-addr.arpa.", "example.test."]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mailprov-lab:" + SECRET, "one line `ALGORITHM:NAME:BASE64SECRET`"),
        (f"hmac-md4:mailprov-lab:{SECRET}", "not one of"),
        (f"hmac-sha256:bad name:{SECRET}", "DNS name"),
        ("hmac-sha256:mailprov-lab:not*base64!", "not base64"),
    ],
)
def test_tsig_key_format_errors_never_show_the_secret(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        TsigKey.parse(Secret(text), "dns.tsig_key (file k)")
    assert problem in str(info.value)
    assert SECRET not in str(info.value) and "not*base64" not in str(info.value)


def test_tsig_key_keeps_the_secret_masked() -> None:
    key = TsigKey.parse(Secret(f"HMAC-SHA256:mailprov-lab:{SECRET}"), "k")
    assert key.algorithm == "hmac-sha256" and SECRET not in repr(key)


# --- zone snippet -----------------------------------------------------------------------------------------


def test_zone_snippet_is_pasteable_with_why_comments() -> None:
    lines = zone_snippet(site("dmarc: {policy: reject, rua: [postmaster@example.test]}\n"), (DKIM,))
    assert "example.test. 3600 IN MX 10 mx1.example.test." in lines
    assert "mx2.example.test. 3600 IN AAAA 2001:db8::20" in lines
    assert '_dmarc.example.test. 3600 IN TXT "v=DMARC1; p=reject; rua=mailto:postmaster@example.test"' in lines
    dkim = next(line for line in lines if line.startswith("mail._domainkey"))
    assert dkim == f'mail._domainkey.example.test. 3600 IN TXT "{DKIM.value[:255]}" "{DKIM.value[255:]}"'
    assert "; DKIM key of mail" in lines
    assert all(line.startswith(";") or line.split()[2] == "IN" for line in lines)


def test_zone_snippet_escapes_quotes_and_backslashes() -> None:
    lines = zone_snippet(site(), (DnsRecord("x._domainkey.example.test", "TXT", 'a"b\\c'),))
    assert 'x._domainkey.example.test. 3600 IN TXT "a\\034b\\092c"' in lines


# --- the resource and the engine seam ---------------------------------------------------------------------


def test_without_dns_the_resource_plans_nothing_and_reads_nothing() -> None:
    plan = DnsResource().plan(SiteContext(site(), Path("."), (DKIM,)))
    assert plan.changes == () and plan.notes == ()


def test_plan_reads_the_server_for_the_owned_names_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_TSIG", f"hmac-sha256:mailprov-lab:{SECRET}")
    asked: list[tuple[str, str]] = []

    def fake_read(server: str, port: int, keys: Any, timeout: float = 5.0) -> dict[tuple[str, str], tuple[str, ...]]:
        asked.extend(keys)
        return {}

    monkeypatch.setattr("mailprov.resources.dns.read_current", fake_read)
    plan = DnsResource().plan(SiteContext(site(DNS), Path("."), (DKIM,)))
    assert ("0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "PTR") not in asked
    assert ("mail._domainkey.example.test", "TXT") in asked
    assert all(c.action == "create" for c in plan.changes)
    assert any("the network owner sets it" in n for n in plan.notes)


def test_plan_refuses_a_malformed_tsig_key_before_asking_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_TSIG", "mailprov-lab:" + SECRET)
    monkeypatch.setattr("mailprov.resources.dns.read_current", lambda *a, **k: pytest.fail("asked the server"))
    with pytest.raises(ConfigError) as info:
        DnsResource().plan(SiteContext(site(DNS), Path("."), ()))
    assert "dns.tsig_key (environment variable MAILPROV_TSIG)" in str(info.value)
    assert SECRET not in str(info.value)


class FakeSiteResource(SiteResource[tuple[DnsRecord, ...]]):
    """Records what the engine hands a site resource (the stand-in for any site resource)."""

    name = "fake"

    def __init__(self) -> None:
        self.applied: list[tuple[DnsRecord, ...]] = []

    def plan(self, ctx: SiteContext) -> SitePlan[tuple[DnsRecord, ...]]:
        from mailprov.resources.base import SiteChange

        changes = tuple(SiteChange(f"fake:{r.name}", "create", r.name) for r in ctx.records)
        return SitePlan(self.name, changes, ctx.records)

    def apply(self, ctx: SiteContext, plan: SitePlan[tuple[DnsRecord, ...]]) -> str:
        self.applied.append(plan.detail)
        return "done"


def _outcome(host: str, records: tuple[DnsRecord, ...], after: tuple[DnsRecord, ...] | None, ok: bool = True) -> Any:
    from mailprov.apply import ApplyResult
    from mailprov.plan import HostPlan

    plan = HostPlan(host, "Debian 12", (), (), (), (), (), (), "", "fp", records=records)
    return HostOutcome(host, plan, ApplyResult(host, ok, ()), records=after)


def test_site_resources_get_every_host_records_and_apply_reads_them_again() -> None:
    fake = FakeSiteResource()
    new = DnsRecord("new._domainkey.example.test", "TXT", "v=DKIM1; p=QQ")
    outcomes = [_outcome("mx1.example.test", (DKIM,), None), _outcome("mx2.example.test", (), (new,))]
    (planned,) = plan_site_resources(site(), outcomes, Path("."), (fake,))
    assert planned.plan is not None and planned.plan.detail == (DKIM, new)
    (applied,) = apply_site_resources(site(), outcomes, Path("."), (fake,))
    assert applied.applied == "done" and fake.applied == [(DKIM, new)]


def test_site_resources_do_not_apply_after_a_host_failed() -> None:
    fake = FakeSiteResource()
    outcomes = [_outcome("mx1.example.test", (DKIM,), None, ok=False)]
    (applied,) = apply_site_resources(site(), outcomes, Path("."), (fake,))
    assert applied.error is not None and "mx1.example.test failed" in applied.error
    assert fake.applied == []


def test_the_engine_names_no_site_resource() -> None:
    assert [r.name for r in SITE_REGISTRY] == ["dns"]
    for module in ("plan.py", "orchestrate.py", "apply.py"):
        text = (Path(__file__).parents[3] / "mailprov" / module).read_text().lower()
        assert "dnsresource" not in text and "resources.dns" not in text, module


def test_dns_detail_is_the_value_apply_executes() -> None:
    detail = record_changes(site_records(site(DNS)), {}, ZONES)
    assert isinstance(detail, DnsDetail) and detail.changes
    assert {c.zone for c in detail.changes} == set(ZONES)
    assert dns.rdatatype.from_text(detail.changes[0].owned.rtype) == dns.rdatatype.MX


def test_a_server_that_cannot_be_asked_is_a_clear_error() -> None:
    import socket

    from mailprov.resources.dns import DnsError, read_current

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never answering
        with pytest.raises(DnsError) as info:
            read_current("127.0.0.1", port, [("example.test", "MX")], timeout=0.3)
    assert f"the DNS server 127.0.0.1 port {port} did not answer within 0.3 s" in str(info.value)
