"""Issue 10 item 6: the site's TLS minimum is never silently missed on EL5/6. What the host can do is
rendered; where `tls.min_protocol` cannot be met the plan is refused, saying why and what to do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from el.helpers import context, converged, example, plan, platform
from mailprov.config.model import Site
from mailprov.errors import ConfigError
from mailprov.facts.traits import parse_traits
from mailprov.resources.dovecot import Dovecot
from mailprov.resources.postfix import Postfix, main_cf_parameters


def _site(minimum: str) -> Site:
    site = example()
    return site.model_copy(update={"tls": site.tls.model_copy(update={"min_protocol": minimum})})


def _main_cf(release: str, site: Site | None = None) -> dict[str, str]:
    return main_cf_parameters(Postfix().desired(context(platform(release), site)).files[0].text())


def _dovecot_conf(release: str, site: Site | None = None) -> list[str]:
    return [line.strip() for line in Dovecot().desired(context(platform(release), site)).files[0].text().split("\n")]


def _plan_error(release: str, site: Site | None = None) -> str:
    facts = platform(release)
    with pytest.raises(ConfigError) as caught:
        plan(converged(context(facts, site), facts, ()), site)
    assert caught.value.field == "tls.min_protocol"
    return str(caught.value)


def test_traits_are_read_from_rpm_openssl_and_doveconf() -> None:
    traits = parse_traits(platform("centos6.7").sections)
    assert (traits.postfix_release, traits.dovecot_release, traits.dovecot_ssl_protocols) == (6, 7, False)
    assert str(traits.openssl) == "1.0.1" and traits.selinux
    fresh = parse_traits(platform("centos6-fresh").sections)  # dovecot only in yum's list
    assert fresh.dovecot_release == 22 and fresh.dovecot_ssl_protocols is None
    assert parse_traits({"traits": "openssl=OpenSSL 0.9.8e-fips-rhel5 01 Jul 2008"}).openssl is not None


def test_centos6_10_has_both_backports_and_plans() -> None:
    cf = _main_cf("centos6")
    assert cf["smtpd_tls_protocols"] == cf["smtpd_tls_mandatory_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
    assert "ssl_protocols = !SSLv2 !SSLv3 !TLSv1 !TLSv1.1" in _dovecot_conf("centos6")
    facts = platform("centos6")
    assert plan(converged(context(facts), facts, ())).changes  # no refusal


def test_a_fresh_centos6_takes_dovecots_release_from_yum() -> None:
    assert "ssl_protocols = !SSLv2 !SSLv3 !TLSv1 !TLSv1.1" in _dovecot_conf("centos6-fresh")


def test_centos6_before_the_postfix_backport_never_renders_tlsv1_1_and_is_refused() -> None:
    cf = _main_cf("centos6.7")
    assert "TLSv1.1" not in cf["smtpd_tls_protocols"]  # Postfix 2.6.6-6 would disable TLS altogether
    assert cf["smtpd_tls_protocols"] == "!SSLv2, !SSLv3"  # never every name it knows
    message = _plan_error("centos6.7")
    assert "tls.min_protocol TLSv1.2 cannot be met by Postfix 2.6.6" in message
    assert "postfix-2.6.6-8" in message and "set tls.min_protocol: TLSv1 " in message


def test_centos6_before_the_dovecot_backport_cannot_refuse_any_protocol() -> None:
    lines = _dovecot_conf("centos6.7", _site("TLSv1"))
    assert not any(line.startswith(("ssl_protocols", "ssl_min_protocol")) for line in lines)
    message = _plan_error("centos6.7", _site("TLSv1"))
    assert "Dovecot 2.0.9" in message and "no setting for a minimum TLS version" in message


def test_centos5_openssl_0_9_8_is_refused_with_the_reason() -> None:
    assert _main_cf("centos5")["smtpd_tls_mandatory_protocols"] == "TLSv1"  # what 2.3 can say
    message = _plan_error("centos5")
    assert "OpenSSL 0.9.8 speaks TLS up to TLSv1 only" in message
    assert "cannot enforce any TLS minimum" in message


def test_a_site_without_tls_is_not_refused_on_centos5() -> None:
    site = example()
    site = site.model_copy(update={"tls": site.tls.model_copy(update={"enabled": False, "generate": None})})
    facts = platform("centos5")
    ctx = context(facts, site)
    assert Postfix().changes(ctx, Postfix().desired(ctx), converged(ctx, facts, ())) is not None


def test_rocky9_renders_the_minimum_as_is() -> None:
    assert "ssl_min_protocol = TLSv1.2" in _dovecot_conf("rocky9")
    assert _main_cf("rocky9")["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"


def test_a_minimum_beyond_the_hosts_openssl_is_refused_not_rendered_as_no_tls() -> None:
    cf = _main_cf("centos7", _site("TLSv1.3"))
    assert cf["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"  # OpenSSL 1.0.2 still speaks TLSv1.2
    message = _plan_error("centos7-iptables", _site("TLSv1.3"))
    assert "OpenSSL 1.0.2 speaks TLS up to TLSv1.2 only" in message and "set tls.min_protocol: TLSv1.2" in message


def test_postfix_3_5_with_openssl_1_1_1_excludes_tlsv1_2_for_a_tls_1_3_minimum() -> None:
    cf = _main_cf("rocky9", _site("TLSv1.3"))
    assert cf["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2"
    assert "ssl_min_protocol = TLSv1.3" in _dovecot_conf("rocky9", _site("TLSv1.3"))


def test_the_traits_read_on_centos6_7(tmp_path: Path) -> None:
    """rpm says "package X is not installed" for what is absent: only rpm_ lines count; doveconf 2.0.9
    before the backport says the setting is unknown (exit 89)."""
    from el.helpers import run_read
    from mailprov.facts.traits import TRAITS_READ

    read = dataclasses.replace(TRAITS_READ, script=TRAITS_READ.script.replace("/etc/debian_version", "/nonexistent"))
    body = run_read(
        read,
        {
            "selinuxenabled": "exit 0",
            "openssl": 'echo "OpenSSL 1.0.1e-fips 11 Feb 2013"',
            "rpm": 'echo rpm_postfix=2.6.6-6.el6_7.1; echo rpm_dovecot=2.0.9-7.el6; echo "package x is not installed"',
            "doveconf": 'echo "doveconf: Fatal: Unknown setting: ssl_protocols" >&2; exit 89',
        },
        tmp_path,
    )
    traits = parse_traits({"traits": body})
    assert traits.selinux and traits.postfix_release == 6 and traits.dovecot_release == 7
    assert traits.dovecot_ssl_protocols is False
    assert str(traits.openssl) == "1.0.1"
