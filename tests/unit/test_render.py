"""What each dialect gets: the example site rendered per preset, read the way an admin reads main.cf,
dovecot.conf and the firewall rules. Byte-for-byte comparisons live in test_golden.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailprov.cli import main
from mailprov.config.loader import load_site, parse_site
from mailprov.config.model import Site
from mailprov.errors import ConfigError, FactsError
from mailprov.facts.platform import PRESETS, FirewallBackend, Platform, Version
from mailprov.render import Rendered, render_host

GUIDE_HELO = ["permit_mynetworks", "reject_non_fqdn_helo_hostname", "reject_invalid_helo_hostname", "permit"]
GUIDE_SENDER = ["permit_mynetworks", "reject_non_fqdn_sender", "reject_unknown_sender_domain", "permit"]
EL = ["centos5", "centos6", "centos7", "rocky8", "rocky9", "alma9"]
DEBIAN = ["debian11", "debian12", "debian13", "ubuntu2204", "ubuntu2404"]


@pytest.fixture
def example(example_path: Path) -> Site:
    return load_site(example_path)


def render(site: Site, platform: str | Platform) -> Rendered:
    return render_host(site, site.hosts[0], PRESETS[platform] if isinstance(platform, str) else platform)


def main_cf(rendered: Rendered) -> dict[str, str]:
    """main.cf as Postfix reads it: continuation lines joined, comments skipped, each name once."""
    params: dict[str, str] = {}
    name = ""
    for line in rendered.file("/etc/postfix/main.cf").content.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            params[name] = f"{params[name]} {line.strip()}".strip()
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        assert sep and name not in params, f"bad or repeated main.cf line: {line!r}"
        params[name] = value.strip()
    return params


def items(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def dovecot(rendered: Rendered) -> list[str]:
    path = rendered.dialect.paths.dovecot_conf
    return [line.strip() for line in rendered.file(path).content.splitlines()]


def settings(lines: list[str]) -> list[str]:
    return [line for line in lines if line and not line.startswith("#")]


# --- CentOS 5: the guide, corrected for Postfix 2.3 and Dovecot 1.0 -------------------------------------


def test_centos5_main_cf_is_the_guides(example: Site) -> None:
    cf = main_cf(render(example, "centos5"))
    assert cf["myhostname"] == "mail.example.com"
    assert cf["mydomain"] == "example.com"
    assert cf["myorigin"] == "$mydomain"
    assert cf["inet_interfaces"] == "all"
    assert cf["mydestination"] == "$myhostname, localhost.$mydomain, localhost, $mydomain"
    assert cf["mynetworks"] == "192.168.0.0/24, 127.0.0.0/8"
    assert cf["relay_domains"] == ""
    assert cf["home_mailbox"] == "Maildir/"
    assert cf["smtpd_delay_reject"] == "yes" and cf["smtpd_helo_required"] == "yes"
    assert items(cf["smtpd_helo_restrictions"]) == GUIDE_HELO
    assert items(cf["smtpd_sender_restrictions"]) == GUIDE_SENDER
    assert cf["alias_maps"] == "hash:/etc/aliases"


def test_centos5_recipient_restrictions_are_corrected_for_postfix_2_3(example: Site) -> None:
    rendered = render(example, "centos5")
    cf = main_cf(rendered)
    assert items(cf["smtpd_recipient_restrictions"]) == [
        "reject_non_fqdn_recipient",
        "reject_unknown_recipient_domain",
        "permit_mynetworks",
        "permit_sasl_authenticated",
        "reject_unauth_destination",
        "check_sender_access hash:/etc/postfix/sender_access",
        "reject_rbl_client zen.spamhaus.org",
        "reject_rbl_client bl.spamcop.net",
        "check_policy_service unix:postgrey/socket",
        "permit",
    ]
    # before 2.6 reject_unauth_pipelining works only in smtpd_data_restrictions
    assert items(cf["smtpd_data_restrictions"]) == ["reject_unauth_pipelining"]
    assert "smtpd_relay_restrictions" not in cf  # 2.10+
    assert "compatibility_level" not in cf  # 3.0+
    assert any("reject_unauth_pipelining" in note for note in rendered.notes)


def test_centos5_sasl_and_tls_use_the_guides_paths(example: Site) -> None:
    cf = main_cf(render(example, "centos5"))
    assert cf["smtpd_sasl_auth_enable"] == "yes"
    assert cf["smtpd_sasl_type"] == "dovecot"
    assert cf["smtpd_sasl_path"] == "private/auth"
    assert cf["smtpd_sasl_security_options"] == "noanonymous"
    assert "broken_sasl_auth_clients" not in cf  # the guide sets it; only Outlook Express 4 needs it
    assert cf["smtpd_tls_security_level"] == "may"
    assert cf["smtpd_tls_cert_file"] == "/etc/pki/tls/certs/mail.example.com.cert"
    assert cf["smtpd_tls_key_file"] == "/etc/pki/tls/private/mail.example.com.key"
    assert cf["smtpd_tls_auth_only"] == "yes"
    assert cf["smtpd_tls_loglevel"] == "1"
    assert cf["smtpd_tls_session_cache_timeout"] == "3600s"
    assert cf["smtpd_tls_session_cache_database"] == "btree:/var/spool/postfix/smtpd_scache"  # no data_directory
    # 2.3/2.4 know only an inclusion list; neither `!` nor smtpd_tls_protocols exist yet
    assert "!" not in cf["smtpd_tls_mandatory_protocols"]
    assert "smtpd_tls_protocols" not in cf


def test_centos5_dovecot_is_1x(example: Site) -> None:
    rendered = render(example, "centos5")
    assert rendered.dialect.paths.dovecot_conf == "/etc/dovecot.conf"
    lines = dovecot(rendered)
    for expected in (
        "protocols = imap imaps pop3 pop3s",
        "ssl_disable = no",
        "ssl_cert_file = /etc/pki/tls/certs/mail.example.com.cert",
        "ssl_key_file = /etc/pki/tls/private/mail.example.com.key",
        "mail_location = maildir:~/Maildir",
        "login_process_size = 64",
        "pop3_uidl_format = %08Xu%08Xv",
        "disable_plaintext_auth = yes",
        "auth default {",
        "mechanisms = plain login",
        "path = /var/spool/postfix/private/auth",
        "user = postfix",
        "group = postfix",
        "mode = 0660",
    ):
        assert expected in lines, expected
    for newer in ("ssl_cert = <", "service auth {", "ssl_min_protocol", "ssl = required"):
        assert not any(line.startswith(newer) for line in lines), newer


def test_centos5_aliases_and_sender_access(example: Site) -> None:
    rendered = render(example, "centos5")
    aliases = settings(rendered.file("/etc/aliases").content.splitlines())
    assert aliases == ["postmaster: root", "root: john", "jsmith: john", "j.smith: john"]
    access = settings(rendered.file("/etc/postfix/sender_access").content.splitlines())
    assert access == [
        "myfriend@example.com OK",
        "junk@spam.com REJECT",
        "marketing@ REJECT",
        "theboss@ OK",
        "deals.marketing.com REJECT",
        "somedomain.com OK",
    ]


# --- Postfix version gates -----------------------------------------------------------------------------


def test_centos7_relay_restrictions_and_tls_exclusions(example: Site) -> None:
    cf = main_cf(render(example, "centos7"))
    assert items(cf["smtpd_relay_restrictions"]) == [
        "permit_mynetworks",
        "permit_sasl_authenticated",
        "reject_unauth_destination",
    ]
    assert "compatibility_level" not in cf
    assert cf["smtpd_tls_mandatory_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
    assert cf["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
    # 2.6+: reject_unauth_pipelining stays where the site put it
    assert items(cf["smtpd_recipient_restrictions"])[0] == "reject_unauth_pipelining"
    assert "smtpd_data_restrictions" not in cf
    assert cf["smtpd_tls_session_cache_database"] == "btree:${data_directory}/smtpd_scache"


@pytest.mark.parametrize("preset", ["rocky8", "rocky9", "alma9", "debian11"])
def test_postfix_3_0_to_3_5_get_compatibility_level_2(example: Site, preset: str) -> None:
    cf = main_cf(render(example, preset))
    assert cf["compatibility_level"] == "2"
    assert cf["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"


@pytest.mark.parametrize("preset", ["debian12", "debian13", "ubuntu2204", "ubuntu2404"])
def test_postfix_3_6_and_later_get_min_version_syntax_and_level_3_6(example: Site, preset: str) -> None:
    cf = main_cf(render(example, preset))
    assert cf["compatibility_level"] == "3.6"
    assert cf["smtpd_tls_mandatory_protocols"] == ">=TLSv1.2"
    assert cf["smtpd_tls_protocols"] == ">=TLSv1.2"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_compatibility_level_is_the_first_setting(example: Site, preset: str) -> None:
    lines = settings(render(example, preset).file("/etc/postfix/main.cf").content.splitlines())
    if PRESETS[preset].postfix_version.at_least("3.0"):
        assert lines[0].startswith("compatibility_level = ")
    else:
        assert not any(line.startswith("compatibility_level") for line in lines)


def test_min_protocol_tls13_on_postfix_3_6(example: Site) -> None:
    site = example.model_copy(update={"tls": example.tls.model_copy(update={"min_protocol": "TLSv1.3"})})
    assert main_cf(render(site, "debian12"))["smtpd_tls_protocols"] == ">=TLSv1.3"


# --- Dovecot generations -------------------------------------------------------------------------------


def test_debian13_dovecot_is_2_4(example: Site) -> None:
    rendered = render(example, "debian13")
    lines = settings(dovecot(rendered))
    assert lines[0] == "dovecot_config_version = 2.4.0"  # 2.4 refuses a config that does not start with it
    for expected in (
        "ssl = required",
        "ssl_server_cert_file = /etc/ssl/certs/mail.example.com.pem",
        "ssl_server_key_file = /etc/ssl/private/mail.example.com.key",
        "ssl_min_protocol = TLSv1.2",
        "mail_driver = maildir",
        "mail_path = ~/Maildir",
        "auth_allow_cleartext = no",
        "auth_mechanisms = plain login",
        "passdb pam {",
        "userdb passwd {",
        "unix_listener /var/spool/postfix/private/auth {",
    ):
        assert expected in lines, expected
    for renamed in ("ssl_cert =", "ssl_key =", "mail_location", "disable_plaintext_auth", "driver = pam"):
        assert not any(line.startswith(renamed) for line in lines), renamed


@pytest.mark.parametrize("preset", ["rocky8", "rocky9", "debian11", "debian12", "ubuntu2204", "ubuntu2404"])
def test_dovecot_2_3(example: Site, preset: str) -> None:
    rendered = render(example, preset)
    lines = settings(dovecot(rendered))
    cert, key = rendered.certificate.cert_path, rendered.certificate.key_path  # type: ignore[union-attr]
    assert f"ssl_cert = <{cert}" in lines and f"ssl_key = <{key}" in lines
    assert "ssl_min_protocol = TLSv1.2" in lines
    assert "protocols = imap pop3" in lines
    assert "driver = pam" in lines and "driver = passwd" in lines
    assert not any(line.startswith("ssl_protocols") for line in lines)


def test_centos7_dovecot_2_2_uses_ssl_protocols(example: Site) -> None:
    lines = settings(dovecot(render(example, "centos7")))
    assert "ssl_protocols = !SSLv2 !SSLv3 !TLSv1 !TLSv1.1" in lines
    assert not any(line.startswith("ssl_min_protocol") for line in lines)
    assert "ssl_cert = </etc/pki/tls/certs/mail.example.com.cert" in lines


def test_centos6_dovecot_2_0_9_has_the_backported_ssl_protocols(example: Site) -> None:
    # RHEL 6's dovecot-2.0.9-11+ (the POODLE backport); a host without it: tests/unit/el/test_tls.py
    rendered = render(example, "centos6")
    lines = settings(dovecot(rendered))
    assert "ssl_protocols = !SSLv2 !SSLv3 !TLSv1 !TLSv1.1" in lines
    assert not any(line.startswith("ssl_min_protocol") for line in lines)
    assert "first_valid_uid = 500" in lines  # EL6 and older start user ids at 500
    assert not any("minimum TLS version" in note for note in rendered.notes)


def test_certificate_paths_follow_the_family(example: Site) -> None:
    for preset in EL:
        cert = render(example, preset).certificate
        assert cert is not None and cert.cert_path == "/etc/pki/tls/certs/mail.example.com.cert"
        assert cert.key_path == "/etc/pki/tls/private/mail.example.com.key"
    for preset in DEBIAN:
        cert = render(example, preset).certificate
        assert cert is not None and cert.cert_path == "/etc/ssl/certs/mail.example.com.pem"
        assert cert.key_path == "/etc/ssl/private/mail.example.com.key"
        assert cert.subject == "/C=US/O=Example/CN=mail.example.com" and cert.generate_days == 365


# --- facts that change the output ----------------------------------------------------------------------


def test_map_type_comes_from_the_hosts_map_types(example: Site) -> None:
    no_bdb = replace(PRESETS["debian13"], map_types=frozenset({"lmdb", "cdb"}))
    cf = main_cf(render(example, no_bdb))
    assert cf["alias_maps"] == "lmdb:/etc/aliases"
    assert cf["alias_database"] == "lmdb:/etc/aliases"
    assert "check_sender_access lmdb:/etc/postfix/sender_access" in items(cf["smtpd_recipient_restrictions"])
    assert "hash:" not in render(example, no_bdb).file("/etc/postfix/main.cf").content


def test_default_database_type_wins_when_compiled_in(example: Site) -> None:
    lmdb_default = replace(PRESETS["rocky9"], default_database_type="lmdb")
    assert main_cf(render(example, lmdb_default))["alias_maps"] == "lmdb:/etc/aliases"


def test_no_syslog_gets_maillog_file_on_postfix_3_4(example: Site) -> None:
    rendered = render(example, replace(PRESETS["debian13"], has_syslog=False))
    assert main_cf(rendered)["maillog_file"] == "/var/log/postfix.log"
    assert "log_path = /var/log/dovecot.log" in dovecot(rendered)
    assert "maillog_file" not in main_cf(render(example, "debian13"))  # syslog: leave logging alone


def test_no_syslog_before_postfix_3_4_gets_a_note_not_a_parameter(example: Site) -> None:
    old = replace(PRESETS["debian13"], has_syslog=False, postfix_version=Version(3, 3, 0))
    rendered = render(example, old)
    assert "maillog_file" not in main_cf(rendered)
    assert any("install a syslog daemon" in note for note in rendered.notes)


def test_maillog_file_from_the_site_needs_postfix_3_4(example: Site) -> None:
    site = example.model_copy(
        update={"postfix": example.postfix.model_copy(update={"maillog_file": "/var/log/mail/postfix.log"})}
    )
    assert main_cf(render(site, "debian12"))["maillog_file"] == "/var/log/mail/postfix.log"
    with pytest.raises(ConfigError, match=r"maillog_file needs Postfix 3\.4"):
        render(site, "centos7")


def test_no_ipv6_listens_on_ipv4_only(example: Site) -> None:
    rendered = render(example, replace(PRESETS["debian12"], has_ipv6=False))
    assert main_cf(rendered)["inet_protocols"] == "ipv4"
    assert "listen = *" in dovecot(rendered)
    assert "/etc/mailprov/firewall.v6" not in {f.path for f in rendered.files}


def test_postfix_older_than_2_3_is_refused(example: Site) -> None:
    with pytest.raises(FactsError, match=r"older than 2\.3, not supported"):
        render(example, replace(PRESETS["centos5"], postfix_version=Version(2, 2, 10)))


# --- postgrey ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", DEBIAN)
def test_postgrey_on_debian_listens_on_ipv4_loopback(example: Site, preset: str) -> None:
    rendered = render(example, preset)
    assert "check_policy_service inet:127.0.0.1:10023" in items(main_cf(rendered)["smtpd_recipient_restrictions"])
    defaults = rendered.file("/etc/default/postgrey").content
    assert 'POSTGREY_OPTS="--inet=127.0.0.1:10023 --delay=300"' in defaults.splitlines()


@pytest.mark.parametrize("preset", EL)
def test_postgrey_on_el_uses_the_socket_in_postfixs_queue(example: Site, preset: str) -> None:
    rendered = render(example, preset)
    assert "check_policy_service unix:postgrey/socket" in items(main_cf(rendered)["smtpd_recipient_restrictions"])
    lines = rendered.file("/etc/sysconfig/postgrey").content.splitlines()
    if PRESETS[preset].os_major < 7:
        assert 'OPTIONS="--unix=/var/spool/postfix/postgrey/socket --delay=300"' in lines
    else:
        assert 'POSTGREY_OPTS="--delay=300"' in lines


# --- firewall ------------------------------------------------------------------------------------------


def _iptables(rendered: Rendered, family: str) -> list[str]:
    text = rendered.file(f"/etc/mailprov/firewall.{family}").content
    return [line for line in text.splitlines() if line.startswith("-A MAILPROV")]


@pytest.mark.parametrize("preset", [*DEBIAN, "centos5", "centos6"])
def test_iptables_rules_open_25_993_995_and_keep_143_110_on_the_lan(example: Site, preset: str) -> None:
    rendered = render(example, preset)
    assert PRESETS[preset].firewall is FirewallBackend.IPTABLES
    v4 = _iptables(rendered, "v4")
    assert v4[:2] == ["-A MAILPROV -i lo -j ACCEPT", "-A MAILPROV -p tcp -m tcp --dport 22 -j ACCEPT"]
    for port in (25, 993, 995):
        assert f"-A MAILPROV -p tcp -m tcp --dport {port} -j ACCEPT" in v4
    for port in (143, 110):
        lan = v4.index(f"-A MAILPROV -p tcp -s 192.168.0.0/24 -m tcp --dport {port} -j ACCEPT")
        reject = v4.index(f"-A MAILPROV -p tcp -m tcp --dport {port} -j REJECT --reject-with tcp-reset")
        assert lan < reject
    for port in (587, 465):  # not offered by this site
        assert f"-A MAILPROV -p tcp -m tcp --dport {port} -j REJECT --reject-with tcp-reset" in v4
    assert v4[-1] == "-A MAILPROV -j RETURN"
    v6 = _iptables(rendered, "v6")
    assert not any(" -s " in rule for rule in v6 if "--dport 143" in rule)  # the LAN is IPv4 only
    assert "-A MAILPROV -p tcp -m tcp --dport 143 -j REJECT --reject-with tcp-reset" in v6
    assert "/etc/mailprov/firewalld.rules" not in {f.path for f in rendered.files}


@pytest.mark.parametrize("preset", ["centos7", "rocky8", "rocky9", "alma9"])
def test_firewalld_rules_on_el7_and_later(example: Site, preset: str) -> None:
    rendered = render(example, preset)
    paths = {f.path for f in rendered.files}
    assert "/etc/mailprov/firewall.v4" not in paths and "/etc/mailprov/firewall.v6" not in paths
    lines = settings(rendered.file("/etc/mailprov/firewalld.rules").content.splitlines())
    assert lines[0] == "--add-service=ssh"
    assert {"--add-port=25/tcp", "--add-port=993/tcp", "--add-port=995/tcp"} <= set(lines)
    assert not any(line in ("--add-port=143/tcp", "--add-port=110/tcp") for line in lines)
    for port in (143, 110):
        rule = (
            f'--add-rich-rule=rule family="ipv4" source address="192.168.0.0/24" port port="{port}" '
            'protocol="tcp" accept'
        )
        assert rule in lines


def test_ssh_from_limits_ssh_to_the_given_networks(example: Site) -> None:
    site = example.model_copy(update={"firewall": example.firewall.model_copy(update={"ssh_from": ("10.0.0.0/8",)})})
    v4 = _iptables(render(site, "debian12"), "v4")
    assert "-A MAILPROV -p tcp -s 10.0.0.0/8 -m tcp --dport 22 -j ACCEPT" in v4
    assert "-A MAILPROV -p tcp -m tcp --dport 22 -j ACCEPT" not in v4


def test_firewall_disabled_renders_no_rules(example: Site) -> None:
    site = example.model_copy(update={"firewall": example.firewall.model_copy(update={"enabled": False})})
    for preset in ("debian12", "rocky9"):
        assert not any(f.path.startswith("/etc/mailprov/") for f in render(site, preset).files)


def test_ipv6_networks_are_bracketed_in_mynetworks_only(example_text: str) -> None:
    text = example_text.replace(
        "mynetworks: [192.168.0.0/24, 127.0.0.0/8]", "mynetworks: [192.168.0.0/24, 2001:db8::/32]"
    )
    rendered = render(parse_site(text), "debian12")
    # postconf(5): IPv6 in mynetworks goes inside [], else `2001:db8::/32` reads as a type:table lookup
    assert main_cf(rendered)["mynetworks"] == "192.168.0.0/24, [2001:db8::]/32"
    assert "-A MAILPROV -p tcp -s 2001:db8::/32 -m tcp --dport 143 -j ACCEPT" in _iptables(rendered, "v6")


# --- relay control on Postfix before 2.10 --------------------------------------------------------------


def test_site_relay_list_goes_first_in_recipient_restrictions_before_2_10(example_text: str) -> None:
    text = example_text.replace(
        "  recipient:\n",
        "  relay: [permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination]\n  recipient:\n",
    )
    site = parse_site(text)
    old = items(main_cf(render(site, "centos6"))["smtpd_recipient_restrictions"])
    assert old[:3] == ["permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination"]
    assert old.count("permit_mynetworks") == 1
    new = main_cf(render(site, "centos7"))
    assert items(new["smtpd_relay_restrictions"]) == old[:3]


def test_relay_list_that_would_open_the_relay_once_merged_is_refused_before_2_10(example_text: str) -> None:
    # On 2.10+ the relay list only ends early and the recipient list still rejects unauthorised
    # destinations; merged into one list on 2.6 the `permit` would accept mail for anywhere.
    text = example_text.replace("  recipient:\n", "  relay: [permit_mynetworks, permit]\n  recipient:\n")
    site = parse_site(text)
    assert "smtpd_relay_restrictions" in main_cf(render(site, "centos7"))
    with pytest.raises(ConfigError, match="open relay"):
        render(site, "centos6")


# --- the minimal site and the manifest -----------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_minimal_site_renders_for_every_preset(minimal_path: Path, preset: str) -> None:
    site = load_site(minimal_path)
    rendered = render(site, preset)
    cf = main_cf(rendered)
    assert cf["myhostname"] == "mail.example.org"
    relay = cf.get("smtpd_relay_restrictions") or cf["smtpd_recipient_restrictions"]
    assert items(relay) == ["permit_mynetworks", "reject_unauth_destination"]  # no SASL in this site
    assert "smtpd_sasl_auth_enable" not in cf
    paths = {f.path for f in rendered.files}
    assert not {"/etc/postfix/sender_access", "/etc/default/postgrey", "/etc/sysconfig/postgrey"} & paths
    aliases = settings(rendered.file("/etc/aliases").content.splitlines())
    assert aliases == ["root: alice", "postmaster: root"]  # the site's postmaster, not a second one


def test_manifest_lists_owner_group_mode(tmp_path: Path, example_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(example_path), "--facts", "debian12", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["host"] == "mail.example.com"
    assert manifest["platform"]["postfix_version"] == "3.7.11"
    entries = {e["path"]: e for e in manifest["files"]}
    for entry in entries.values():
        assert {"owner", "group", "mode"} <= entry.keys()
        assert entry["file"] is None or (out / entry["file"]).is_file()
    assert (entries["/etc/postfix/main.cf"]["owner"], entries["/etc/postfix/main.cf"]["mode"]) == (
        "root",
        "0644",
    )
    assert entries["/etc/mailprov/firewall.v4"]["mode"] == "0600"
    key = entries["/etc/ssl/private/mail.example.com.key"]
    assert (key["owner"], key["group"], key["mode"], key["file"]) == ("root", "root", "0600", None)
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert written == {e["file"] for e in manifest["files"] if e["file"]}


def test_submission_and_smtps_render_a_managed_master_cf_block(example: Site) -> None:
    site = example.model_copy(
        update={"postfix": example.postfix.model_copy(update={"submission": True, "smtps": True})}
    )
    for preset, chroot in (("debian12", "y"), ("rocky9", "n")):
        block = render(site, preset).file("/etc/postfix/master.cf")
        assert block.block is not None
        lines = block.content.splitlines()
        assert lines[0].split() == ["submission", "inet", "n", "-", chroot, "-", "-", "smtpd"]
        assert "  -o smtpd_tls_security_level=encrypt" in lines
        assert "  -o smtpd_tls_wrappermode=yes" in lines
    old = render(site, "centos6").file("/etc/postfix/master.cf").content
    assert "smtpd_relay_restrictions" not in old  # 2.10+
