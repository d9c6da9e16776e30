"""Issue 10 items 9 and 10: restorecon where mailprov creates files, only where SELinux is enabled (a
fact); verify asks Dovecot 1.x with `dovecot -n` and EL5/6 iptables without -C."""

from __future__ import annotations

import subprocess
from pathlib import Path

from el.helpers import DATA, context, converged, plan, platform, with_sections
from mailprov.facts.probe import Facts
from mailprov.hostscript import build_script
from mailprov.resources.dovecot import Dovecot
from mailprov.resources.firewall import Firewall
from mailprov.resources.postfix import SHELL as POSTFIX_SHELL


def _without_selinux(facts: Facts) -> Facts:
    traits = facts.sections["traits"].replace("selinux=1\n", "")
    return with_sections(facts, {"traits": traits})


def _fresh(release: str, selinux: bool = True) -> Facts:
    facts = platform(release)
    facts = facts if selinux else _without_selinux(facts)
    return converged(context(facts), facts, ())


def test_selinux_hosts_relabel_what_the_apply_creates() -> None:
    p = plan(_fresh("rocky9-iptables"))
    script = build_script(p, "20261202-000000")
    files = " ".join(f.path for f in p.files)
    assert f"run restorecon {files} </dev/null || rollback" in script
    user = next(c for c in p.changes if c.key == "user:john")
    assert user.commands[-1].display() == "restorecon -R /home/john/Maildir"
    cert = next(c for c in p.changes if c.key.startswith("cert:"))
    assert cert.commands[-1].display() == (
        "restorecon /etc/pki/tls/certs/mail.example.com.cert /etc/pki/tls/private/mail.example.com.key"
    )
    (gate,) = [g for g in p.gates if g.step == "validate-postfix"]
    assert gate.command.argv[:2] == ("mp_postfix_check", "-Z")


def test_without_selinux_nothing_is_relabelled() -> None:
    p = plan(_fresh("rocky9-iptables", selinux=False))
    script = build_script(p, "20261202-000000")
    assert "restorecon" not in script and "chcon" not in " ".join(g.command.display() for g in p.gates)
    assert p.relabel == ()


def test_the_postfix_stage_gets_the_live_directorys_label(tmp_path: Path) -> None:
    """mp_postfix_check -Z calls chcon --reference on the stage (a fake chcon records it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "chcon").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/chcon.args\n')
    (bin_dir / "postfix").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "postconf").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    live = tmp_path / "etc-postfix"
    live.mkdir()
    (live / "main.cf").write_text("myhostname = mail.example.com\n")
    script = POSTFIX_SHELL + f"mp_postfix_check -Z {tmp_path}/stage {live}\n"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "chcon.args").read_text().split() == ["-R", f"--reference={live}", f"{tmp_path}/stage"]
    assert (tmp_path / "stage" / "main.cf").exists()


class _Host:
    """A testinfra host stand-in: answers commands from a table, records what was asked."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def run(self, command: str) -> object:
        self.asked.append(command)
        rc, out = self.answers.get(command, (127, ""))
        return type("R", (), {"rc": rc, "stdout": out, "stderr": "" if rc == 0 else f"{command}: not found"})()


def test_verify_asks_dovecot_1_x_with_dovecot_n() -> None:
    (check,) = Dovecot().checks(context(platform("centos5")))
    host = _Host({"dovecot -n": (0, "# 1.0.7: /etc/dovecot.conf\nprotocols: imaps pop3s\n")})
    assert check.probe(host)[0] == "pass"
    assert host.asked == ["dovecot -n"]


def test_verify_reads_the_jump_in_iptables_save_on_el5_and_el6() -> None:
    save = (DATA / "centos6-iptables-save.txt").read_text()
    checks = Firewall().checks(context(platform("centos6")))
    assert [c.name for c in checks] == [
        "host.firewall_hooked.ipv4",
        "host.firewall_hooked.ipv6",
        "host.firewall_boot.iptables",
        "host.firewall_boot.ip6tables",
    ]
    host = _Host({"iptables-save -t filter": (0, save)})
    assert checks[0].probe(host)[0] == "pass"
    assert not any(" -C " in cmd for cmd in host.asked)
    three = (DATA / "centos6-iptables-save-3-jumps.txt").read_text()
    status, detail = checks[0].probe(_Host({"iptables-save -t filter": (0, three)}))
    assert status == "fail" and "3 times" in detail


def test_relabel_is_decided_in_the_dialect_from_the_fact() -> None:
    assert context(platform("centos6")).dialect.relabel == ("restorecon",)
    assert context(_without_selinux(platform("centos6"))).dialect.relabel == ()


def test_verify_says_when_the_rules_would_not_survive_a_reboot() -> None:
    class Service:
        is_enabled = False

    class Host:
        def service(self, name: str) -> Service:
            return Service()

    boot = [c for c in Firewall().checks(context(platform("centos7-iptables"))) if "boot" in c.name]
    status, detail = boot[0].probe(Host())
    assert status == "fail" and "gone after a reboot" in detail
    assert not [c for c in Firewall().checks(context(platform("centos7"))) if "boot" in c.name]  # firewalld
