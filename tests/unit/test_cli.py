"""The command line as an admin meets it: help everywhere, exit codes, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from mailprov import __version__
from mailprov.cli import main
from mailprov.facts.platform import PRESETS


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


COMMANDS = list(_commands(main))


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="mailprov")


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_the_commands_an_admin_expects_exist() -> None:
    assert {("validate",), ("render",)} <= set(COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_main_help(flag: str) -> None:
    result = run(flag)
    assert result.exit_code == 0
    assert "Usage: mailprov" in result.output
    for name, *_rest in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_on_every_command(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: mailprov {' '.join(command)}" in result.output
    cmd: click.Command = main
    for name in command:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    summary = (cmd.help or "").strip().splitlines()[0]
    assert summary and summary.split()[0] in result.output  # every command says what it does


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"mailprov, version {__version__}"


def test_installed_entry_point(example_path: Path) -> None:
    """The `mailprov` script the package installs, as a separate process."""
    script = Path(sys.executable).with_name("mailprov")
    if not script.exists():
        pytest.skip(f"no mailprov script beside {sys.executable}")
    done = subprocess.run([str(script), "validate", str(example_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(script), "validate", "/nonexistent/site.yaml"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "cannot read the site file" in done.stderr and "Traceback" not in done.stderr


def test_validate_valid_site(example_path: Path) -> None:
    result = run("validate", str(example_path))
    assert result.exit_code == 0, result.output
    assert "valid (1 host, 1 user, 1 aliases)" in result.output


def test_validate_invalid_site_exits_2_listing_the_problem(tmp_path: Path, example_text: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(example_text.replace("  root: [john]", "  root: [jon]"))
    result = run("validate", str(site))
    assert result.exit_code == 2
    assert f"{site}:24  aliases.root.0: 'jon' is neither a site user nor an alias" in result.output
    _no_traceback(result)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("domain: [unclosed\n", ":2  YAML:"),
        ("- just\n- a list\n", ":1  the site file must be a mapping"),
        ("domain: a\ndomain: b\nhosts: []\n", "YAML:"),  # duplicate keys are an error, not last-wins
        ("", "must be a mapping"),
    ],
    ids=["broken YAML", "a list", "duplicate key", "empty"],
)
def test_validate_malformed_file_exits_2(tmp_path: Path, content: str, expected: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(content)
    result = run("validate", str(site))
    assert result.exit_code == 2, result.output
    assert expected in result.output
    _no_traceback(result)


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "cannot read the site file" in result.output
    _no_traceback(result)


def test_validate_binary_file_exits_2(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_bytes(b"domain: \xff\xfe\n")
    result = run("validate", str(site))
    assert result.exit_code == 2
    assert "not UTF-8" in result.output
    _no_traceback(result)


def test_render_writes_files_and_reports_notes(tmp_path: Path, example_path: Path) -> None:
    result = run("render", str(example_path), "--facts", "centos5", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "etc/postfix/main.cf").is_file() and (tmp_path / "manifest.json").is_file()
    assert "reject_unauth_pipelining only in smtpd_data_restrictions" in result.output


def test_render_unknown_host_exits_2_and_writes_nothing(tmp_path: Path, example_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", str(example_path), "--facts", "debian12", "--host", "mx.example.com", "--out", str(out))
    assert result.exit_code == 2
    assert "no host named 'mx.example.com' (hosts: mail.example.com)" in result.output
    assert not out.exists()
    _no_traceback(result)


def test_render_known_host(tmp_path: Path, example_path: Path) -> None:
    result = run(
        "render",
        str(example_path),
        "--facts",
        "debian12",
        "--host",
        "mail.example.com",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "manifest.json").read_text())["host"] == "mail.example.com"


def test_render_unknown_preset_is_a_clear_error(tmp_path: Path, example_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", str(example_path), "--facts", "centos4", "--out", str(out))
    assert result.exit_code == 1
    assert "unknown facts preset 'centos4'" in result.output
    for preset in PRESETS:
        assert preset in result.output  # the admin sees what to type instead
    assert not out.exists()
    _no_traceback(result)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not JSON"), ('{"os_family": "rhel"}', "missing or invalid field")],
    ids=["not JSON", "incomplete"],
)
def test_render_bad_facts_file_is_a_clear_error(
    tmp_path: Path, example_path: Path, content: str, expected: str
) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(content)
    result = run("render", str(example_path), "--facts", str(facts), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert expected in result.output
    _no_traceback(result)


def test_render_facts_file_round_trips_a_preset(tmp_path: Path, example_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(PRESETS["debian13"].to_json()))
    for name, source in (("file", str(facts)), ("preset", "debian13")):
        assert run("render", str(example_path), "--facts", source, "--out", str(tmp_path / name)).exit_code == 0
    assert (tmp_path / "file/etc/postfix/main.cf").read_text() == (tmp_path / "preset/etc/postfix/main.cf").read_text()


def test_render_requires_facts_and_out(example_path: Path) -> None:
    result = run("render", str(example_path))
    assert result.exit_code == 2
    assert "Missing option" in result.output


def test_unknown_command_exits_2() -> None:
    result = run("deploy")
    assert result.exit_code == 2
    assert "No such command 'deploy'" in result.output


def test_dns_offline_prints_the_zone_snippet(example_path: Path) -> None:
    result = run("dns", str(example_path), "--offline")
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "example.com. 3600 IN MX 10 mail.example.com." in result.output
    assert (
        '_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"' in result.output
    )


def test_plan_shows_site_record_changes_and_exits_2(example_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailprov import orchestrate
    from mailprov.plan import HostPlan
    from mailprov.resources.base import SiteChange, SitePlan

    converged = HostPlan("mail.example.com", "Debian 12", (), (), (), (), (), (), "", "fp")
    change = SiteChange(
        "dns:example.com/MX",
        "create",
        "DNS example.com MX: 1 to add",
        ("+example.com. 3600 IN MX 10 mail.example.com.",),
    )
    monkeypatch.setattr(
        orchestrate, "plan_site", lambda *a: [orchestrate.HostOutcome("mail.example.com", plan=converged)]
    )
    monkeypatch.setattr(
        orchestrate,
        "plan_site_resources",
        lambda *a: [orchestrate.SiteOutcome("dns", plan=SitePlan("dns", (change,), None))],
    )
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "x")
    result = run("plan", str(example_path))
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "● site: dns" in result.output and "+example.com. 3600 IN MX 10 mail.example.com." in result.output
    as_json = json.loads(run("plan", str(example_path), "--json").output)
    assert as_json[-1] == {
        "site": "dns",
        "error": None,
        "notes": [],
        "changes": [
            {
                "key": "dns:example.com/MX",
                "action": "create",
                "summary": "DNS example.com MX: 1 to add",
                "diff": ["+example.com. 3600 IN MX 10 mail.example.com."],
            }
        ],
    }
    monkeypatch.setattr(
        orchestrate,
        "plan_site_resources",
        lambda *a: [
            orchestrate.SiteOutcome("dns", error="the DNS server 192.0.2.53 port 53 did not answer within 5 s")
        ],
    )
    failed = run("plan", str(example_path))
    assert failed.exit_code == 1 and "did not answer" in failed.output
