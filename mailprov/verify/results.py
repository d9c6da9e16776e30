"""What a verification found, and the shapes the CLI prints: check rows, summary lines, a JSON document.

Nothing here prints or lays out text: `report.Reporter` does (`reporter.checks(rows)` writes one line per
check at the terminal's width, with a failure's full detail indented below it; `reporter.json(...)`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from mailprov.transport.shell import mask

Status = Literal["pass", "fail", "skip"]

CHECK_COLUMNS = ("host", "check", "status", "detail")
SUMMARY_COLUMNS = ("host", "pass", "fail", "skip")


@dataclass(frozen=True)
class CheckResult:
    """One check on one host. `name` is dotted (`smtp.auth_before_tls`, `relay.percent_hack`)."""

    host: str
    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def masked(results: Iterable[CheckResult], secrets: Sequence[str]) -> list[CheckResult]:
    """The results with every secret (and its encoded forms, which the caller lists) replaced by ***."""
    if not any(secrets):
        return list(results)
    return [replace(r, detail=mask(r.detail, secrets)) for r in results]


def any_failed(results: Mapping[str, Sequence[CheckResult]]) -> bool:
    return any(r.failed for checks in results.values() for r in checks)


def check_rows(results: Mapping[str, Sequence[CheckResult]]) -> list[list[str]]:
    """Rows for `reporter.checks(rows)` (columns CHECK_COLUMNS): every check of every host, in run order."""
    return [[r.host, r.name, r.status.upper(), r.detail] for checks in results.values() for r in checks]


def summary_rows(results: Mapping[str, Sequence[CheckResult]]) -> list[list[str]]:
    """Counts per host (columns SUMMARY_COLUMNS)."""
    rows = []
    for host, checks in results.items():
        counts = Counter(r.status for r in checks)
        rows.append([host, str(counts["pass"]), str(counts["fail"]), str(counts["skip"])])
    return rows


def summary_lines(results: Mapping[str, Sequence[CheckResult]]) -> list[tuple[str, bool]]:
    """One line per host for the end of the output, and whether that host passed (no check failed)."""
    return [
        (f"{host}: {passed} pass, {failed} fail, {skipped} skip", failed == "0")
        for host, passed, failed, skipped in summary_rows(results)
    ]


def to_json(results: Mapping[str, Sequence[CheckResult]]) -> dict[str, Any]:
    """A document for CI: `ok`, then per host its counts, the names of failed checks, and every check."""
    hosts: dict[str, Any] = {}
    for host, checks in results.items():
        counts = Counter(r.status for r in checks)
        hosts[host] = {
            "ok": counts["fail"] == 0,
            "summary": {"pass": counts["pass"], "fail": counts["fail"], "skip": counts["skip"]},
            "failed": [r.name for r in checks if r.failed],
            "checks": [{"name": r.name, "status": r.status, "detail": r.detail} for r in checks],
        }
    return {"ok": not any_failed(results), "hosts": hosts}
