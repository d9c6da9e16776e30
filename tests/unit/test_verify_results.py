"""Results as the CLI shows them (one line per check, a summary line per host, JSON) and masking of secrets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mailprov.report import Reporter
from mailprov.verify.results import (
    CheckResult,
    any_failed,
    check_rows,
    masked,
    summary_lines,
    summary_rows,
    to_json,
)

RESULTS = {
    "mx1.example.test": [
        CheckResult("mx1.example.test", "smtp.connect", "pass", "port 25: 220 mx1"),
        CheckResult("mx1.example.test", "relay.percent_hack", "fail", "OPEN RELAY: ..."),
        CheckResult("mx1.example.test", "dns.mx", "skip", "no answer"),
    ],
    "mx2.example.test": [CheckResult("mx2.example.test", "smtp.connect", "pass", "ok")],
}


def test_rows_and_summary() -> None:
    assert check_rows(RESULTS)[1] == ["mx1.example.test", "relay.percent_hack", "FAIL", "OPEN RELAY: ..."]
    assert summary_rows(RESULTS) == [["mx1.example.test", "1", "1", "1"], ["mx2.example.test", "1", "0", "0"]]


def test_json_names_what_failed() -> None:
    doc = json.loads(json.dumps(to_json(RESULTS)))
    assert doc["ok"] is False
    assert doc["hosts"]["mx1.example.test"]["failed"] == ["relay.percent_hack"]
    assert doc["hosts"]["mx1.example.test"]["summary"] == {"pass": 1, "fail": 1, "skip": 1}
    assert doc["hosts"]["mx2.example.test"]["ok"] is True
    assert any_failed(RESULTS) and not any_failed({"h": RESULTS["mx2.example.test"]})


def test_masking() -> None:
    leaked = [CheckResult("h", "smtp.auth_valid_password", "fail", "535 for pw s3cret (czNjcmV0)")]
    out = masked(leaked, ["s3cret", "czNjcmV0"])
    assert out[0].detail == "535 for pw *** (***)"
    assert masked(leaked, []) == leaked


LONG = (
    "mail to <jsmith@example.test> from <verify@example.net>: deferred (RCPT: 451 4.3.5 <jsmith@example.test>: "
    "Recipient address rejected: Server configuration problem): a 4xx that is not greylisting means the server "
    "cannot take mail now"
)
TERMINAL = {
    "mx1.example.test": [
        CheckResult("mx1.example.test", "smtp.connect", "pass", "port 25: 220 mx1.example.test ESMTP " + "x" * 80),
        CheckResult("mx1.example.test", "smtp.local_recipient_accepted", "fail", LONG),
        CheckResult("mx1.example.test", "restrictions.sender_access_reject", "skip", "does not apply " * 10),
        CheckResult("mx1.example.test", "dns.mx", "fail", "example.test MX is NXDOMAIN"),
    ],
    "mx2.example.test": [CheckResult("mx2.example.test", "smtp.connect", "pass", "port 25: 220 mx2")],
}


def shown(results: dict[str, list[CheckResult]]) -> list[str]:
    out = io.StringIO()
    reporter = Reporter(out)
    reporter.checks(check_rows(results))
    for text, ok in summary_lines(results):
        (reporter.ok if ok else reporter.fail)(text)
    return out.getvalue().splitlines()


def test_one_line_per_check_at_80_columns_with_full_detail_for_failures_only() -> None:
    lines = shown(TERMINAL)
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "\x1b" not in "".join(lines)  # plain text in CI logs (not a terminal)
    assert lines[0] == "mx1.example.test"
    assert lines[1].startswith("PASS  smtp.connect   ") and lines[1].endswith("…")
    assert lines[2].split()[:4] == ["FAIL", "smtp.local_recipient_accepted", "mail", "to"]
    # the failure's full detail, indented under it, every word of it
    detail = [line for line in lines[3:] if line.startswith("      ")]
    assert " ".join(line.strip() for line in detail) == LONG
    assert lines[3 + len(detail)].startswith("SKIP  restrictions.sender_access_reject  does not apply")
    fits = lines[4 + len(detail)]  # a failure whose detail fits is said once
    assert fits.startswith("FAIL  dns.mx  ") and fits.endswith("  example.test MX is NXDOMAIN")
    assert lines[5 + len(detail)] == "mx2.example.test"
    assert lines[-2:] == ["✗ mx1.example.test: 1 pass, 2 fail, 1 skip", "✓ mx2.example.test: 1 pass, 0 fail, 0 skip"]
    checks = [line for line in lines if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert len(checks) == 5  # one line per check


def test_summary_lines() -> None:
    assert summary_lines(RESULTS) == [
        ("mx1.example.test: 1 pass, 1 fail, 1 skip", False),
        ("mx2.example.test: 1 pass, 0 fail, 0 skip", True),
    ]


def test_cli_verify_prints_lines_then_summary_and_json_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import mailprov.verify
    from mailprov.cli import main

    site = tmp_path / "site.yaml"
    site.write_text("domain: example.test\nhosts: [{name: mx1.example.test}, {name: mx2.example.test}]\n")
    monkeypatch.setattr(mailprov.verify, "verify_site", lambda *args: TERMINAL)
    text = CliRunner().invoke(main, ["verify", str(site)])
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert lines[-1] == "✓ mx2.example.test: 1 pass, 0 fail, 0 skip"
    assert "DNS records the site needs" in text.output and "┃" not in text.output  # no table
    as_json = CliRunner().invoke(main, ["verify", str(site), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output) == json.loads(json.dumps(to_json(TERMINAL)))
