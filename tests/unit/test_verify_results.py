"""Results as the CLI shows them (table rows, summary, JSON) and masking of secrets."""

from __future__ import annotations

import json

from mailprov.verify.results import CheckResult, any_failed, check_rows, masked, summary_rows, to_json

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
