"""Lab figures: image build, one host up from the cache, 20 hosts at once, memory of an idle host.

    sudo .venv/bin/python benchmarks/lab_bench.py [--rebuild] [--hosts 20]

Takes the lab DOWN first and at the end (it measures cold starts). --rebuild times fresh image builds in a
temporary cache (the real cache is left alone); without it, an image is built (and timed) only if missing.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from mailprov import lab
from mailprov.lab.images import image_dir, is_built
from mailprov.lab.mounts import remove_tree
from mailprov.lab.network import host_network, netns_pids
from mailprov.lab.paths import CACHE_DIR_ENV, LabPaths

T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def figure(label: str, value: str) -> None:
    print(f"{label:<44} {value}", flush=True)


@contextmanager
def temporary_image_cache() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mailprov-lab-bench-", dir="/var/tmp"))
    previous = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            del os.environ[CACHE_DIR_ENV]
        else:
            os.environ[CACHE_DIR_ENV] = previous
        remove_tree(folder)


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """(PSS, RSS) summed over the processes, in KiB, from smaps_rollup."""
    pss = rss = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
    return pss, rss


def bench_image_builds(rebuild: bool) -> None:
    for distro in ("bookworm", "trixie"):
        if rebuild:
            with temporary_image_cache():
                _, seconds = timed(lambda d=distro: lab.ensure_image(d))  # type: ignore[misc]
            figure(f"image build, {distro} (fresh, --rebuild)", f"{seconds:6.1f} s")
        elif not is_built(image_dir(LabPaths.from_env(), distro)):
            _, seconds = timed(lambda d=distro: lab.ensure_image(d))  # type: ignore[misc]
            figure(f"image build, {distro} (was not cached)", f"{seconds:6.1f} s")
        else:
            _, seconds = timed(lambda d=distro: lab.ensure_image(d))  # type: ignore[misc]
            figure(f"image lookup, {distro} (cached)", f"{seconds * 1000:6.1f} ms")


def bench_single_up() -> None:
    for distro in ("bookworm", "trixie"):
        lab.down()
        _, cold = timed(lambda d=distro: lab.up(d, 1))  # type: ignore[misc]
        _, again = timed(lambda d=distro: lab.up(d, 1))  # type: ignore[misc]
        figure(f"1 host up from cached image, {distro}", f"{cold:6.2f} s")
        figure(f"up again (already running), {distro}", f"{again * 1000:6.1f} ms")


def bench_many(count: int) -> None:
    lab.down()
    hosts, seconds = timed(lambda: lab.up("bookworm", count))
    figure(f"{count} hosts up at once (bookworm-1..{count})", f"{seconds:6.2f} s")
    time.sleep(2)  # let sshd settle after the readiness probes
    per_host = [memory_kib(netns_pids(host_network("bookworm", index).netns)) for index in range(1, count + 1)]
    pss = [p for p, _ in per_host]
    rss = [r for _, r in per_host]
    figure("memory per idle host, PSS (median)", f"{statistics.median(pss) / 1024:6.2f} MiB")
    figure("memory per idle host, RSS (median)", f"{statistics.median(rss) / 1024:6.2f} MiB")
    figure(f"memory of all {count} idle hosts, PSS", f"{sum(pss) / 1024:6.2f} MiB")
    assert len(hosts) == count
    _, seconds = timed(lab.down)
    figure(f"down with {count} hosts", f"{seconds:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="time fresh image builds (temporary cache)")
    parser.add_argument("--hosts", type=int, default=20, help="how many hosts to start at once")
    parser.add_argument("--force", action="store_true", help="run even while other processes use the lab")
    options = parser.parse_args()
    others = lab.in_use_by_others()
    if others and not options.force:
        raise SystemExit(f"processes {others} are using the lab and this benchmark takes it down; --force to run")
    try:
        bench_image_builds(options.rebuild)
        bench_single_up()
        bench_many(options.hosts)
    finally:
        lab.down()


if __name__ == "__main__":
    main()
