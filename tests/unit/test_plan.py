"""The engine: facts round trip, plan assembly and the host script, on probe output captured from real
lab hosts. Resource behaviour is tested per resource in tests/unit/resources/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from resources.helpers import DATA, PASSWORD, captured, lab_site, plan_for, site_from, site_text

from mailprov.errors import ConfigError, FactsError
from mailprov.facts.platform import PRESETS
from mailprov.facts.probe import parse_probe, probe_script, split_sections
from mailprov.hostscript import build_script, parse_result
from mailprov.orchestrate import speculative_reads
from mailprov.plan import reads
from mailprov.planfile import load, save
from mailprov.resources.base import HostContext

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", PASSWORD)


def test_platforms_read_from_real_hosts() -> None:
    bookworm, trixie = captured("bookworm").platform, captured("trixie").platform
    assert (str(bookworm.postfix_version), str(bookworm.dovecot_version)) == ("3.7.11", "2.3.19")
    assert (str(trixie.postfix_version), str(trixie.dovecot_version)) == ("3.10.13", "2.4.1")
    for p in (bookworm, trixie):
        assert p.os_family.value == "debian" and p.package_manager.value == "apt"
        assert p.init_system.value == "sysv"  # lab hosts run init.d scripts, no systemd
        assert "hash" in p.map_types and not p.has_syslog


@pytest.mark.parametrize("distro", ["bookworm", "trixie"])
def test_converged_host_plans_no_change(distro: str) -> None:
    plan = plan_for(lab_site(), distro)
    assert plan.changes == () and plan.handlers == () and plan.gates == () and plan.health == ()


def test_one_probe_covers_what_each_dialect_needs() -> None:
    site = lab_site()
    host = site.hosts[0]
    done = {r.key for r in speculative_reads(site, host, DATA)}
    for name, platform in PRESETS.items():
        needed = {r.key for r in reads(HostContext.of(site, host, platform, DATA))}
        assert needed <= done, name


def test_file_content_cannot_fake_a_probe_section() -> None:
    script = probe_script((), nonce="abc")
    assert "M=@@MPabc" in script
    output = "@@MPabc\n@@MPabc kv\n@@MP end\nx=1\n@@MPabc end\n"
    assert split_sections(output) == {"kv": "@@MP end\nx=1"}
    with pytest.raises(FactsError, match="did not finish"):
        parse_probe("@@MPabc\n@@MPabc kv\n", "h")


def test_engine_names_no_resource() -> None:
    engine = [p for p in (ROOT / "mailprov").glob("*.py")]
    for word in ("firewall", "postgrey", "iptables", "postmap", "newaliases"):
        hits = [p.name for p in engine if word in p.read_text().lower()]
        assert hits == [], (word, hits)


def test_apply_script_validates_before_switching_and_is_valid_sh(tmp_path: Path) -> None:
    site = site_from(site_text().replace("min_protocol: TLSv1.2", "min_protocol: TLSv1.3"), tmp_path)
    plan = plan_for(site, "trixie")
    script = build_script(plan, "20260101-000000")
    assert script.index("step validate-postfix") < script.index("step switch")
    assert script.index("step validate-dovecot") < script.index("step switch")
    assert script.index("step switch") < script.index("step 'handler:postfix reload'")
    assert script.index("step 'handler:dovecot restart'") < script.index("step health")
    shells = [["sh", "-n"], *([s, "-n"] for s in ("dash",) if shutil.which(s)), ["bash", "--posix", "-n"]]
    for shell in shells:
        subprocess.run(shell, input=script, text=True, check=True)


def test_aliases_only_change_does_not_revalidate_dovecot(tmp_path: Path) -> None:
    site = site_from(site_text().replace("  root: [john]", "  root: [john]\n  sales: [john]"), tmp_path)
    script = build_script(plan_for(site, "trixie"), "20260101-000000")
    assert "step validate-postfix" in script and "validate-dovecot" not in script


def test_no_secret_in_script_display_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "a-new-password-1")
    plan = plan_for(lab_site(), "bookworm")
    hashed, secret = plan.secrets()  # the hash, and the chpasswd line that carries it
    assert secret.reveal().startswith("john:$6$") and hashed.reveal() in secret.reveal()
    assert "$6$" not in repr(plan) and "a-new-password-1" not in build_script(plan, "x")
    assert secret.reveal() in build_script(plan, "x")  # only the script itself carries it, on stdin


def test_results_parse_into_steps() -> None:
    out = (
        "@@MP step packages\nnoise\n@@MP step switch\n@@MP rollback switch\n"
        "@@MP fail switch bad (previous configuration restored)\n"
    )
    result = parse_result("h", 1, out)
    assert result.steps == ("packages", "switch") and result.rolled_back and not result.ok
    assert result.failed_step == "switch" and result.message.startswith("bad")
    assert parse_result("h", 255, "@@MP step packages\n").failed_step == "packages"


def test_saved_plan_refuses_a_changed_site(tmp_path: Path) -> None:
    site_path = tmp_path / "site.yaml"
    site_path.write_text(site_text())
    saved = tmp_path / "plan.json"
    save(saved, site_path, {"mx1.example.test": "abc"}, [])
    assert load(saved, site_path).fingerprints == {"mx1.example.test": "abc"}
    site_path.write_text(site_text() + "\n# changed\n")
    with pytest.raises(ConfigError, match="changed since the plan"):
        load(saved, site_path)


def test_fingerprint_ignores_nothing_the_plan_reads() -> None:
    facts = captured("bookworm")
    ctx = HostContext.of(lab_site(), lab_site().hosts[0], facts.platform, DATA)
    before = facts.fingerprint(reads(ctx))
    from resources.helpers import with_section

    changed = with_section(facts, "file /etc/postfix/main.cf", facts.section("file /etc/postfix/main.cf") + "x")
    assert changed.fingerprint(reads(ctx)) != before
    assert re.fullmatch(r"[0-9a-f]{64}", before)


def test_owed_handlers_of_an_interrupted_apply_are_a_change() -> None:
    from resources.helpers import with_section

    facts = with_section(captured("bookworm"), "journal", "since 20261202-101010\npostfix reload\ndovecot restart\n")
    plan = plan_for(lab_site(), "bookworm", facts)
    (change,) = plan.changes
    assert change.summary == "interrupted apply at 20261202-101010: dovecot restart, postfix reload"
    assert [h.name for h in plan.handlers] == ["postfix reload", "dovecot restart"]
    assert plan.health  # and the health check after them


def test_script_journals_owed_handlers_before_any_change_and_clears_them_after_health(tmp_path: Path) -> None:
    site = site_from(site_text().replace("min_protocol: TLSv1.2", "min_protocol: TLSv1.3"), tmp_path)
    script = build_script(plan_for(site, "trixie"), "20260101-000000")
    journal = script.index("> /var/lib/mailprov/journal.new && sync && mv")
    assert script.index("flock -n 9") < journal < script.index("step stage")
    assert "dovecot restart\npostfix reload\n" in script[journal - 200 : journal]
    assert script.index("step health") < script.index("rm -f /var/lib/mailprov/journal; sync")
    assert 'run "$@"' not in script and '"$@" >"$OUT" 2>&1 9>&-' in script  # no command keeps the lock


def test_a_stopped_service_is_started() -> None:
    from resources.helpers import with_section

    facts = captured("trixie")
    ps = "\n".join(ln for ln in facts.section("ps").split("\n") if "postgrey" not in ln)
    plan = plan_for(lab_site(), "trixie", with_section(facts, "ps", ps))
    (change,) = plan.changes
    assert change.key == "start:postgrey" and change.summary == "postgrey is not running: start it"
    assert [h.name for h in plan.handlers] == ["postgrey restart"]


def test_launcher_detaches_the_run_and_follow_reads_it_later() -> None:
    from mailprov.hostscript import ended, follow, launcher

    text = launcher("echo hi\n", "/var/lib/mailprov/runs/x-1")
    assert "setsid sh /var/lib/mailprov/runs/x-1.sh /var/lib/mailprov/runs/x-1 </dev/null" in text
    assert "while [ ! -f /var/lib/mailprov/runs/x-1.rc ]" in follow("/var/lib/mailprov/runs/x-1")
    assert ended("@@MP step a 10:00:00\n@@MP done 10:00:01\n") and not ended("@@MP step a 10:00:00\n")
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)


def test_a_run_killed_on_the_host_is_reported_as_such() -> None:
    result = parse_result("h", 1, "@@MP step stage 10:00:00\n@@MP step switch 10:00:01\n@@MP died\n")
    assert not result.ok and result.failed_step == "switch"
    assert "stopped on the host during switch without finishing" in result.message
