"""The lab DNS server's and receiver's configuration, rendered without root: zones, knot.conf, main.cf, keys."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone
import pytest
from click.testing import CliRunner

from mailprov.errors import LabError
from mailprov.lab import dns as lab_dns
from mailprov.lab import receiver as lab_receiver
from mailprov.lab.network import LAB_DNS_ADDRESS, host_network
from mailprov.lab.paths import LabPaths
from mailprov.lab.services import ServicesRecipe


def _zone(origin: str, serial: int = 7) -> dns.zone.Zone:
    text = lab_dns.render_zone(origin, lab_dns.static_records()[origin], serial)
    return dns.zone.from_text(text, origin=origin, relativize=False, check_origin=True)


def _values(zone: dns.zone.Zone, name: str, rtype: str) -> set[str]:
    rdataset = zone.get_rdataset(dns.name.from_text(name), dns.rdatatype.from_text(rtype))
    return set() if rdataset is None else {rdata.to_text() for rdata in rdataset}


@pytest.mark.parametrize("origin", lab_dns.ZONES)
def test_every_zone_parses_with_soa_and_ns_of_the_lab_server(origin: str) -> None:
    zone = _zone(origin, serial=1234)
    soa = zone.get_rdataset(dns.name.from_text(origin), dns.rdatatype.SOA)
    assert soa is not None and soa[0].serial == 1234 and soa[0].mname.to_text() == "ns.example.test."
    assert _values(zone, origin, "NS") == {"ns.example.test."}


def test_the_four_zones_of_the_contract() -> None:
    assert lab_dns.ZONES == ("example.test", "receiver.test", "231.10.in-addr.arpa", "232.10.in-addr.arpa")


def test_the_lab_names_resolve_forward_and_back() -> None:
    assert _values(_zone("example.test"), "ns.example.test", "A") == {"10.231.0.53", "10.232.0.53"}
    receiver = _zone("receiver.test")
    assert _values(receiver, "receiver.test", "MX") == {"10 mx.receiver.test."}
    assert _values(receiver, "mx.receiver.test", "A") == {"10.232.0.25"}
    assert _values(receiver, "receiver.test", "A") == {"10.232.0.25"}  # `getent hosts receiver.test` works
    outside = _zone("232.10.in-addr.arpa")
    assert _values(outside, "25.0.232.10.in-addr.arpa", "PTR") == {"mx.receiver.test."}
    assert _values(outside, "1.0.232.10.in-addr.arpa", "PTR") == {"outside.example.test."}
    assert _values(_zone("231.10.in-addr.arpa"), "53.0.231.10.in-addr.arpa", "PTR") == {"ns.example.test."}


def test_no_zone_file_holds_what_a_site_manages() -> None:
    """example.test gets its MX, SPF, DKIM and DMARC from the sites' DNS resource, never from the lab."""
    zone = _zone("example.test")
    for rtype in ("MX", "TXT"):
        assert _values(zone, "example.test", rtype) == set()
    assert _values(zone, "_dmarc.example.test", "TXT") == set()


def test_host_records_point_the_host_name_at_its_outside_address_and_both_addresses_back() -> None:
    records = lab_dns.host_records(host_network("bookworm", 50))
    assert records.a == ("bookworm-50.example.test", "10.232.1.50")
    assert records.ptrs == (
        ("231.10.in-addr.arpa", "50.1.231.10.in-addr.arpa", "bookworm-50.example.test"),
        ("232.10.in-addr.arpa", "50.1.232.10.in-addr.arpa", "bookworm-50.example.test"),
    )


def test_knot_conf_allows_tsig_updates_to_every_zone_and_keeps_the_journal() -> None:
    conf = lab_dns.render_knot_conf("c2VjcmV0")
    assert "listen: [ 10.231.0.53@53, 10.232.0.53@53 ]" in conf
    assert "  - id: mailprov-lab\n    algorithm: hmac-sha256\n    secret: c2VjcmV0\n" in conf
    assert "    key: mailprov-lab\n    action: [update, transfer]\n" in conf
    assert "    acl: lab-update\n" in conf  # in the default template, which every zone uses
    assert "zonefile-sync: -1" in conf and "journal-content: changes" in conf
    for zone in lab_dns.ZONES:
        assert f"  - domain: {zone}\n" in conf


@pytest.mark.skipif(shutil.which("knotc") is None, reason="knotc is not installed on this machine")
def test_knot_conf_passes_knotc_conf_check(tmp_path: Path) -> None:
    conf = tmp_path / "knot.conf"
    conf.write_text(lab_dns.render_knot_conf(base64.b64encode(b"x" * 32).decode()))
    result = subprocess.run(["knotc", "-c", str(conf), "conf-check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_tsig_key_line_is_what_knsupdate_reads() -> None:
    secret = base64.b64encode(bytes(32)).decode()
    line = lab_dns.tsig_key_line(bytes(32))
    assert line == f"hmac-sha256:mailprov-lab:{secret}\n"
    assert lab_dns.parse_tsig_key_line(line) == ("hmac-sha256", "mailprov-lab", secret)


@pytest.mark.parametrize("text", ["", "hmac-sha256:mailprov-lab", "a:b:c:d", "hmac-sha256::c2VjcmV0"])
def test_a_malformed_key_file_is_refused(text: str) -> None:
    with pytest.raises(LabError, match="TSIG key file"):
        lab_dns.parse_tsig_key_line(text)


def test_the_key_file_is_made_once_mode_0600(tmp_path: Path) -> None:
    paths = LabPaths(state=tmp_path / "state", images=tmp_path / "images")
    secret = lab_dns.ensure_tsig_key(paths)
    key_file = lab_dns.tsig_key_file(paths)
    assert key_file == tmp_path / "state/dns/tsig.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(secret)) == 32
    assert lab_dns.ensure_tsig_key(paths) == secret
    assert list(lab_dns.keyring(paths)) == [dns.name.from_text("mailprov-lab")]


def test_the_dns_box_files_hold_one_zone_file_per_zone() -> None:
    files = lab_dns.box_files("c2VjcmV0", 1)
    assert sorted(files) == sorted(["init.sh", "knot.conf", *(f"zones/{zone}.zone" for zone in lab_dns.ZONES)])
    assert "knotd -c /etc/knot/knot.conf" in files["init.sh"]


def test_lab_hosts_resolve_through_the_lab_dns() -> None:
    assert LAB_DNS_ADDRESS == lab_dns.LabDns().address == "10.231.0.53"
    assert lab_dns.LabDns().outside_address == "10.232.0.53"


# --- receiver --------------------------------------------------------------------------------------------


def test_receiver_main_cf_takes_every_address_of_its_domain_into_one_maildir_through_rspamd() -> None:
    lines = dict(line.split(" = ", 1) for line in lab_receiver.render_main_cf().splitlines()[1:])
    assert lines["myhostname"] == "mx.receiver.test"
    assert lines["virtual_mailbox_domains"] == "receiver.test"
    assert lines["virtual_mailbox_maps"] == "static:Maildir/"
    assert lines["smtpd_milters"] == "inet:127.0.0.1:11332"
    assert lines["milter_default_action"] == "tempfail"
    assert lines["inet_protocols"] == "ipv4"
    assert "reject_unauth_destination" in lines["smtpd_relay_restrictions"]


@pytest.mark.skipif(not Path("/usr/sbin/postconf").exists(), reason="postconf is not installed here")
def test_receiver_main_cf_has_no_parameter_postfix_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(lab_receiver.render_main_cf())
    shutil.copy("/etc/postfix/master.cf", tmp_path / "master.cf")
    result = subprocess.run(["postconf", "-c", str(tmp_path), "-n"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_rspamd_adds_authentication_results_resolves_through_the_lab_and_rejects_nothing() -> None:
    local = lab_receiver.RSPAMD_LOCAL
    assert '"authentication-results"' in local["milter_headers.conf"]
    assert "skip_local = false;" in local["milter_headers.conf"]
    assert 'nameserver = ["10.232.0.53"];' in local["options.inc"]
    assert 'local_addrs = ["127.0.0.0/8"];' in local["options.inc"]
    assert "reject = null;" in local["actions.conf"] and "greylist = null;" in local["actions.conf"]
    assert "enabled = false;" in local["greylist.conf"]
    assert 'bind_socket = "127.0.0.1:11332";' in local["worker-proxy.inc"]
    files = lab_receiver.box_files()
    assert files["resolv.conf"] == "nameserver 10.232.0.53\n"
    assert {f"rspamd/{name}" for name in local} <= set(files)


def test_receiver_messages_oldest_first_and_clear(tmp_path: Path) -> None:
    receiver = lab_receiver.LabReceiver("10.232.0.25", "receiver.test", tmp_path / "Maildir")
    assert receiver.messages() == []
    (tmp_path / "Maildir/new").mkdir(parents=True)
    (tmp_path / "Maildir/cur").mkdir()
    first, second = tmp_path / "Maildir/cur/1.a", tmp_path / "Maildir/new/2.b"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    os.utime(first, ns=(1_000_000_000, 1_000_000_000))
    assert receiver.messages() == [b"one", b"two"]
    receiver.clear()
    assert receiver.messages() == []
    assert (tmp_path / "Maildir/new").is_dir()


def test_services_image_key_follows_its_recipe() -> None:
    assert ServicesRecipe().key() == ServicesRecipe().key()
    assert ServicesRecipe().key().startswith("services-bookworm-")
    assert ServicesRecipe(packages=("knot",)).key() != ServicesRecipe().key()


# --- CLI -------------------------------------------------------------------------------------------------


def test_lab_up_starts_the_dns_always_and_the_receiver_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mailprov.lab as lab_api
    from mailprov.cli import main

    calls: list[str] = []
    monkeypatch.setattr(lab_api, "up", lambda **_: calls.append("up") or [])
    monkeypatch.setattr(lab_api, "dns_up", lambda **_: calls.append("dns") or lab_dns.LabDns())
    receiver = lab_receiver.LabReceiver("10.232.0.25", "receiver.test", tmp_path / "Maildir")
    monkeypatch.setattr(lab_api, "receiver_up", lambda **_: calls.append("receiver") or receiver)

    result = CliRunner().invoke(main, ["lab", "up"], prog_name="mailprov")
    assert result.exit_code == 0, result.output
    assert calls == ["up", "dns"]
    assert "10.231.0.53" in result.output and "tsig.key" in result.output

    calls.clear()
    result = CliRunner().invoke(main, ["lab", "up", "--with-receiver"], prog_name="mailprov")
    assert result.exit_code == 0, result.output
    assert calls == ["up", "dns", "receiver"]
    assert "10.232.0.25" in result.output and "receiver.test" in result.output


def test_box_macs_are_fixed_per_address_and_distinct() -> None:
    from mailprov.lab.network import fixed_mac as box_mac

    macs = {box_mac(address) for address in ("10.231.0.53", "10.232.0.53", "10.232.0.25")}
    assert box_mac("10.231.0.53") == "02:6d:6c:e7:00:35"
    assert len(macs) == 3
