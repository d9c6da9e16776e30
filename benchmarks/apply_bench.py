"""Figures for plan and apply against real lab hosts (root, Linux): no-change plan and apply on one host
(wall time, SSH round trips), the same as whole processes next to their floor (benchmarks/cli_bench.py), then
no-change plan/apply on N hosts in parallel against one host's time.

    sudo .venv/bin/python benchmarks/apply_bench.py [--hosts 10] [--keep]

Hosts are converged first (not timed). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cli_bench import whole_process_figures

from mailprov import lab
from mailprov.config.loader import load_site
from mailprov.orchestrate import RunOptions, apply_site, plan_site

ROOT = Path(__file__).resolve().parents[1]


def site_for(addresses: list[str], user: str, directory: Path) -> Path:
    text = (ROOT / "inventories" / "lab.yaml").read_text()
    head, _, rest = text.partition("hosts:\n")
    _, _, tail = rest.partition("\nmyorigin:")
    hosts = "".join(
        f"  - name: mx{i}.example.test\n    ssh:\n      address: {a}\n      user: {user}\n"
        + ("      become: true\n" if user != "root" else "")
        + "      identity_file: /var/lib/mailprov-lab/id_ed25519\n"
        + "      known_hosts: /var/lib/mailprov-lab/known_hosts\n"
        for i, a in enumerate(addresses, 1)
    )
    path = directory / f"bench-{len(addresses)}-{user}.yaml"
    path.write_text(f"{head}hosts:\n{hosts}\nmyorigin:{tail}")
    return path


def timed(func, repeat: int = 5) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="leave the lab up")
    args = parser.parse_args()
    os.environ.setdefault("MAILPROV_JOHN_PASSWORD", "bench-John-pw-1")
    hosts = lab.up("bookworm", max(args.hosts, 1))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        options = RunOptions(workers=max(args.hosts, 1))
        all_site_path = site_for([h.address for h in hosts[: args.hosts]], "root", directory)
        all_site = load_site(all_site_path)
        start = time.perf_counter()
        first = apply_site(all_site, all_site.hosts, options, directory, lambda _p: True)
        failed = [o.host for o in first if o.error or (o.result and not o.result.ok)]
        print(
            f"first apply of {args.hosts} fresh hosts (install + configure): {time.perf_counter() - start:.1f} s"
            + (f"  FAILED: {failed}" if failed else "")
        )
        for user in ("root", "admin"):
            one = load_site(site_for([hosts[0].address], user, directory))
            wall, outcomes = timed(lambda one=one: plan_site(one, one.hosts, options, directory))
            trips = outcomes[0].round_trips  # type: ignore[index]
            print(f"no-change plan, 1 host, login {user:5}: {wall * 1000:6.0f} ms, {trips} SSH round trips")
            wall, outcomes = timed(lambda one=one: apply_site(one, one.hosts, options, directory, lambda _p: True))
            trips = outcomes[0].round_trips  # type: ignore[index]
            print(f"no-change apply, 1 host, login {user:5}: {wall * 1000:6.0f} ms, {trips} SSH round trips")
        whole_process_figures(site_for([hosts[0].address], "root", directory), hosts[0])
        one_wall, _ = timed(lambda: plan_site(all_site, all_site.hosts[:1], options, directory))
        before = resource.getrusage(resource.RUSAGE_SELF)
        many_wall, _ = timed(lambda: plan_site(all_site, all_site.hosts, options, directory), repeat=3)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / 3
        print(
            f"no-change plan, {args.hosts} hosts in parallel: {many_wall * 1000:.0f} ms "
            f"({many_wall / one_wall:.1f}x one host); mailprov's own CPU {cpu * 1000 / args.hosts:.0f} ms per host "
            f"(the rest is the hosts' sshd and shells, which share this machine's {os.cpu_count()} cores)"
        )
        many_wall, _ = timed(lambda: apply_site(all_site, all_site.hosts, options, directory, lambda _p: True), 3)
        print(
            f"no-change apply, {args.hosts} hosts in parallel: {many_wall * 1000:.0f} ms "
            f"({many_wall / one_wall:.1f}x one host's plan)"
        )
    if not args.keep:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
