"""`python -m mailprov.verify SITE [--host H] [--address IP] [--json] [--from-outside] [--no-host-checks] [--no-dns]`

A small entry point for running the probes from another network namespace
(`ip netns exec mplab-outside .venv/bin/python -m mailprov.verify ...`); `mailprov verify` is the
command admins use. Exit status: 0 all passed or skipped, 1 a check failed, 2 the site file is invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailprov.config.loader import load_site
from mailprov.errors import ConfigError, MailprovError
from mailprov.report import Reporter
from mailprov.verify import (
    VerifyOptions,
    any_failed,
    check_rows,
    summary_lines,
    to_json,
    verify_site,
    with_address,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailprov.verify", description=__doc__.splitlines()[0])
    parser.add_argument("site")
    parser.add_argument("--host", action="append", default=[], help="only this host (repeatable)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--from-outside", action="store_true", help="this client is outside mynetworks")
    parser.add_argument("--address", help="probe the (one) selected host at this IP address for this run")
    parser.add_argument("--no-host-checks", action="store_true", help="skip the on-host checks over SSH")
    parser.add_argument("--no-dns", action="store_true", help="skip the DNS checks")
    args = parser.parse_args(argv)
    reporter = Reporter()
    try:
        site = load_site(args.site)
        hosts = site.hosts
        if args.host:
            unknown = sorted(set(args.host) - {h.name for h in site.hosts})
            if unknown:
                raise ConfigError(f"{args.site}: no host named {', '.join(unknown)}")
            hosts = tuple(h for h in site.hosts if h.name in args.host)
        hosts = with_address(hosts, args.address)
        options = VerifyOptions(
            from_outside=args.from_outside, host_checks=not args.no_host_checks, dns=not args.no_dns
        )
        results = verify_site(site, hosts, options, Path(args.site).resolve().parent)
    except MailprovError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    if args.json:
        reporter.json(to_json(results))
    else:
        reporter.checks(check_rows(results))
        for text, ok in summary_lines(results):
            (reporter.ok if ok else reporter.fail)(text)
    return 1 if any_failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
