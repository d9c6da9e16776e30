"""How long a large site takes: 1,000 users and 5,000 aliases, loaded, validated and rendered.

    .venv/bin/python benchmarks/render_bench.py [--users N] [--aliases N] [--repeat N] [--profile]

Prints the best of --repeat runs for each step (target: each under 1 s). The site is built in memory as
YAML text, so the loader's line mapping and every cross-field rule run as they do for a real file.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import TypeVar

from mailprov.config.loader import parse_site
from mailprov.config.model import Site
from mailprov.facts.platform import PRESETS
from mailprov.render import render_host

T = TypeVar("T")
TARGET = 1.0  # seconds

HEAD = """\
domain: example.com
hosts:
  - name: mail.example.com
mynetworks: [192.168.0.0/24, 127.0.0.0/8]
restrictions:
  helo: [permit_mynetworks, reject_non_fqdn_helo_hostname, reject_invalid_helo_hostname, permit]
  recipient:
    - reject_non_fqdn_recipient
    - permit_mynetworks
    - permit_sasl_authenticated
    - reject_unauth_destination
    - check_sender_access: sender_access
    - reject_rbl_client: zen.spamhaus.org
    - check_policy_service: postgrey
    - permit
sender_access:
  - {pattern: junk@spam.com, action: REJECT}
greylisting: {enabled: true}
sasl: {enabled: true}
"""


def site_yaml(users: int, aliases: int) -> str:
    """`users` users with two aliases each; the rest of `aliases` as site aliases to users or outside."""
    per_user = 2
    lines = [HEAD, "users:"]
    for i in range(users):
        lines += [
            f"  - login: user{i:05d}",
            f"    full_name: User Number {i}",
            f"    uid: {2000 + i}",
            f"    aliases: [u{i:05d}.a, u{i:05d}.b]",
        ]
    lines.append("aliases:")
    lines.append("  root: [user00000]")
    for j in range(max(0, aliases - users * per_user - 1)):
        target = f"user{j % users:05d}" if j % 3 else f"list{j:05d}@lists.example.net"
        lines.append(f"  team{j:05d}: [{target}, user{(j * 7) % users:05d}]")
    return "\n".join(lines) + "\n"


def best(repeat: int, step: Callable[[], T]) -> tuple[float, T]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    assert result is not None
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--aliases", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top functions of load+validate")
    args = parser.parse_args()

    text = site_yaml(args.users, args.aliases)
    seconds, site = best(args.repeat, lambda: parse_site(text, "bench.yaml"))
    alias_count = len(site.aliases) + sum(len(u.aliases) for u in site.users)
    print(f"site: {len(site.users)} users, {alias_count} aliases, {text.count(chr(10))} lines of YAML")
    rows = [("load + validate", seconds)]
    for preset in ("debian12", "centos5"):
        seconds, rendered = best(args.repeat, lambda p=preset: render_host(site, site.hosts[0], PRESETS[p]))  # type: ignore[misc]
        aliases_lines = rendered.file("/etc/aliases").content.count("\n")
        rows.append((f"render {preset} ({aliases_lines} lines in /etc/aliases)", seconds))
    for label, seconds in rows:
        verdict = "ok" if seconds < TARGET else f"SLOW (target < {TARGET:.0f} s)"
        print(f"  {label:<48} {seconds * 1000:8.1f} ms  {verdict}")
    if args.profile:
        profile(text)


def profile(text: str) -> None:
    profiler = cProfile.Profile()
    site: Site = profiler.runcall(parse_site, text, "bench.yaml")
    assert site.users
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
