from __future__ import annotations

from mailprov.facts.platform import PRESETS
from mailprov.render import render_host
from mailprov.resources.firewall import parse_state, rules
from resources.helpers import captured, context, lab_site, plan_for, with_section


def test_chain_state_parses() -> None:
    state = parse_state(captured("bookworm").section("firewall"))
    assert state["iptables"].hooked and state["ip6tables"].hooked
    assert state["iptables"].rules > 2


def test_converged_firewall_needs_nothing() -> None:
    assert not [c for c in plan_for(lab_site(), "trixie").changes if "firewall" in c.key]


def test_unhooked_chain_is_loaded_again() -> None:
    facts = captured("bookworm")
    body = "\n".join(ln for ln in facts.section("firewall").split("\n") if ln != "iptables hooked 1")
    plan = plan_for(lab_site(), "bookworm", with_section(facts, "firewall", body))
    assert [c.key for c in plan.changes] == ["firewall:ipv4"]
    (step,) = plan.handlers
    assert [c.display() for c in step.commands] == [
        "mp_iptables_load iptables /etc/mailprov/firewall.v4",
        "mp_iptables_load ip6tables /etc/mailprov/firewall.v6",
        "mp_if_present netfilter-persistent save",
    ]


def test_rules_keep_ssh_first_and_lan_only_per_ip_version() -> None:
    ctx = context(lab_site(), "bookworm")
    v4, v6 = rules(ctx, 4), rules(ctx, 6)
    assert v4[0].service == "ssh" and v4[0].action == "ACCEPT"
    assert any(r.service == "imap" and r.source == "10.231.0.0/16" for r in v4)
    assert not any(r.source for r in v6 if r.service == "imap")  # no IPv6 LAN in mynetworks


def test_firewalld_gets_one_rule_per_port_and_families_from_the_network() -> None:
    site = lab_site()
    rendered = render_host(site, site.hosts[0], PRESETS["rocky9"])
    text = rendered.file("/etc/mailprov/firewalld.rules").text()
    assert text.count("--add-port=25/tcp") == 1
    assert 'rule family="ipv4" source address="10.231.0.0/16" port port="143"' in text
