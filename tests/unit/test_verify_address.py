"""Issue 9: a host's public address (hosts[].public_address) apart from ssh.address, used by verify's
probes and the A/PTR records it prints; `verify --address` replaces it for one run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mailprov.cli import main
from mailprov.config.loader import parse_site
from mailprov.errors import ConfigError
from mailprov.verify import checks, dns
from mailprov.verify.checks import VerifyOptions, probe_address, verify_host, with_address

SITE = """\
domain: example.com
hosts:
  - name: mail.example.com
    public_address: 203.0.113.10
    ssh: {address: 10.8.0.5}
  - name: mx2.example.com
    ssh: {address: 192.168.0.11}
  - name: mx3.example.com
"""


def test_public_address_is_where_verify_probes_and_what_dns_records_carry() -> None:
    site = parse_site(SITE)
    vpn, lan, named = site.hosts
    assert probe_address(vpn) == "203.0.113.10"  # not the SSH (VPN) address
    assert probe_address(lan) == "192.168.0.11"  # default: ssh.address
    assert probe_address(named) == "mx3.example.com"  # else the name
    assert dns.needed_records(site, vpn)[1:] == [
        "mail.example.com. IN A 203.0.113.10",
        "10.113.0.203.in-addr.arpa. IN PTR mail.example.com.",
    ]
    assert dns.needed_records(site, lan)[1] == "mx2.example.com. IN A 192.168.0.11"


def test_an_ipv6_public_address_gives_aaaa_and_ip6_ptr() -> None:
    site = parse_site(SITE.replace("203.0.113.10", "'2001:db8::10'"))
    records = dns.needed_records(site, site.hosts[0])
    assert records[1] == "mail.example.com. IN AAAA 2001:db8::10"
    assert records[2].endswith(".ip6.arpa. IN PTR mail.example.com.")


@pytest.mark.parametrize("bad", ["mail.example.com", "fe80::1%eth0", "203.0.113.10/32", "lots"])
def test_public_address_must_be_an_ip_address(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_site(SITE.replace("203.0.113.10", f"'{bad}'"))
    assert "site.yaml:4  hosts.0.public_address: " in str(info.value)


def test_address_override_replaces_the_public_address_for_one_host() -> None:
    site = parse_site(SITE)
    (host,) = with_address(site.hosts[:1], "198.51.100.7")
    assert probe_address(host) == "198.51.100.7"
    assert dns.needed_records(site, host)[1] == "mail.example.com. IN A 198.51.100.7"
    assert host.ssh.address == "10.8.0.5"  # SSH (the on-host checks) still goes where it always did
    assert with_address(site.hosts, None) == site.hosts


def test_address_override_needs_exactly_one_host_and_an_ip() -> None:
    site = parse_site(SITE)
    with pytest.raises(ConfigError, match=r"3 hosts are selected .* add --host NAME"):
        with_address(site.hosts, "198.51.100.7")
    with pytest.raises(ConfigError, match=r"--address: .gw\.example\.com. is not an IP address"):
        with_address(site.hosts[:1], "gw.example.com")


def test_verify_host_probes_the_public_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = parse_site(SITE)
    seen: list[str] = []

    def no_smtp(endpoint: checks.probes.Endpoint) -> checks.probes.SmtpSession:
        seen.append(endpoint.address)
        raise checks.probes.ProbeError("refused")

    monkeypatch.setattr(checks.probes, "smtp_session", no_smtp)
    monkeypatch.setattr(checks.HostVerification, "ports", lambda self: None)
    monkeypatch.setattr(checks.HostVerification, "implicit_tls", lambda self: None)
    monkeypatch.setattr(checks.HostVerification, "plaintext_logins", lambda self: None)
    options = VerifyOptions(host_checks=False, dns=False, connect_timeout=0.5)
    verify_host(site, site.hosts[0], options, tmp_path)
    verify_host(site, with_address(site.hosts[:1], "198.51.100.7")[0], options, tmp_path)
    assert seen == ["203.0.113.10", "198.51.100.7"]


def test_cli_address_with_several_hosts_exits_2_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    result = CliRunner().invoke(main, ["verify", str(path), "--address", "198.51.100.7"])
    assert result.exit_code == 2
    assert "add --host NAME" in result.output
