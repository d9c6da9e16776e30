"""What a verification found, and the shapes the CLI prints: table rows and a JSON document.

Nothing here prints: `report.Reporter` does (`reporter.table(...)`, `reporter.json(...)`).
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
    """Rows for `reporter.table(title, CHECK_COLUMNS, rows)`: every check of every host, in run order."""
    return [[r.host, r.name, r.status.upper(), r.detail] for checks in results.values() for r in checks]


def summary_rows(results: Mapping[str, Sequence[CheckResult]]) -> list[list[str]]:
    """Rows for `reporter.table("summary", SUMMARY_COLUMNS, rows)`: counts per host."""
    rows = []
    for host, checks in results.items():
        counts = Counter(r.status for r in checks)
        rows.append([host, str(counts["pass"]), str(counts["fail"]), str(counts["skip"])])
    return rows


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
