"""Outside-in verification of provisioned mail hosts: real SMTP/IMAP/POP3/TLS clients, on-host checks
over SSH (testinfra), DNS. `verify_site` runs it; `check_rows`/`summary_lines`/`to_json` shape the results
for `report.Reporter`; `any_failed` decides the exit code.
"""

from __future__ import annotations

from mailprov.verify.checks import (
    TransportFactory,
    VerifyOptions,
    probe_address,
    verify_host,
    verify_site,
    with_address,
)
from mailprov.verify.dns import needed_records
from mailprov.verify.results import (
    CHECK_COLUMNS,
    SUMMARY_COLUMNS,
    CheckResult,
    Status,
    any_failed,
    check_rows,
    summary_lines,
    summary_rows,
    to_json,
)

__all__ = [
    "CHECK_COLUMNS",
    "SUMMARY_COLUMNS",
    "CheckResult",
    "Status",
    "TransportFactory",
    "VerifyOptions",
    "any_failed",
    "check_rows",
    "needed_records",
    "probe_address",
    "summary_lines",
    "summary_rows",
    "to_json",
    "verify_host",
    "verify_site",
    "with_address",
]
