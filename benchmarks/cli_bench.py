"""Whole-process figures on one lab host: a no-change `mailprov plan` and `mailprov apply --yes` next to their
floor (a Python process that connects with paramiko, runs `true` and exits), the same no-change plan over the
openssh transport (`--transport openssh`) next to its floor (a bare `ssh HOST true` with the site's key and
known_hosts), and `mailprov validate` of the example site next to its floor (`python -c pass`). Every figure
is a subprocess timed from outside, median of --repeat; the targets are issue 8's.

    sudo .venv/bin/python benchmarks/cli_bench.py [--repeat 5] [--index 12]

Uses lab host bookworm-<index> (12 by default: hosts 1-8 belong to the live tests), converges it first (not
timed), and leaves the lab up. benchmarks/apply_bench.py prints the same section for its first host.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailprov import lab

ROOT = Path(__file__).resolve().parents[1]
MAILPROV = Path(sys.executable).parent / "mailprov"
PASSWORD = "bench-John-pw-1"

# The floor for plan and apply: what any tool that reaches the host over SSH with paramiko pays.
FLOOR = """\
import sys
import paramiko
address, key, known_hosts = sys.argv[1:]
client = paramiko.SSHClient()
client.load_host_keys(known_hosts)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(address, username="root", key_filename=key)
_, out, _ = client.exec_command("true")
status = out.channel.recv_exit_status()
client.close()
sys.exit(status)
"""


def timed(argv: list[str], repeat: int, env: dict[str, str], quiet_if: str | None = None) -> tuple[float, bool]:
    """Median wall time of `argv` as a whole process; whether every run exited 0 (and printed `quiet_if`)."""
    times, ok = [], True
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        ok &= done.returncode == 0 and (quiet_if is None or quiet_if in done.stdout + done.stderr)
    return statistics.median(times), ok


def write_site(directory: Path, host: lab.LabHost) -> Path:
    """inventories/lab.yaml with its hosts replaced by this one (root login, the lab's key); bookworm-12 is
    mx12.example.test, as in peer_bench.py, so the two scripts do not undo each other's host."""
    text = (ROOT / "inventories" / "lab.yaml").read_text()
    head, _, rest = text.partition("hosts:\n")
    _, _, tail = rest.partition("\nmyorigin:")
    index = host.name.rsplit("-", 1)[1]
    hosts = (
        f"  - name: mx{index}.example.test\n    ssh:\n      address: {host.address}\n      user: root\n"
        f"      identity_file: {host.root_key}\n      known_hosts: {host.known_hosts}\n"
    )
    path = directory / "cli-bench.yaml"
    path.write_text(f"{head}hosts:\n{hosts}\nmyorigin:{tail}")
    return path


def whole_process_figures(site: Path, host: lab.LabHost, repeat: int = 5) -> None:
    """Print the section for `site`, whose one host (`host`, root login) is already converged."""
    env = dict(os.environ)
    env.setdefault("MAILPROV_JOHN_PASSWORD", PASSWORD)
    floor, floor_ok = timed([sys.executable, "-c", FLOOR, host.address, host.root_key, host.known_hosts], repeat, env)
    plan, plan_ok = timed([str(MAILPROV), "plan", str(site)], repeat, env, quiet_if="no changes")
    apply, apply_ok = timed([str(MAILPROV), "apply", "--yes", str(site)], repeat, env, quiet_if="unchanged")
    ssh_floor, ssh_floor_ok = timed(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={host.known_hosts}", "-i", host.root_key, "-l", "root", host.address, "true"],
        repeat,
        env,
    )  # fmt: skip
    plan_openssh, plan_openssh_ok = timed(
        [str(MAILPROV), "plan", "--transport", "openssh", str(site)], repeat, env, quiet_if="no changes"
    )
    python, _ = timed([sys.executable, "-c", "pass"], repeat, env)
    validate, validate_ok = timed([str(MAILPROV), "validate", "inventories/example.com.yaml"], repeat, env)

    def line(label: str, seconds: float, note: str = "", ok: bool = True) -> None:
        print(f"  {label:48} {seconds:6.3f} s  {note}{'' if ok else '  (FAILED or changed)'}", flush=True)

    print(f"whole processes on {host.name}, median of {repeat}:", flush=True)
    line("floor: paramiko connect + `true`, exit", floor, ok=floor_ok)
    line("mailprov plan (no change)", plan, f"{plan / floor:4.2f}x the floor (target <= 1.5x)", plan_ok)
    line("mailprov apply --yes (no change)", apply, f"{apply / floor:4.2f}x the floor (target <= 1.5x)", apply_ok)
    line("floor: ssh HOST true (OpenSSH client)", ssh_floor, ok=ssh_floor_ok)
    line(
        "mailprov plan --transport openssh (no change)",
        plan_openssh,
        f"{plan_openssh / ssh_floor:4.2f}x the ssh floor",
        plan_openssh_ok,
    )
    line("floor: python -c pass", python)
    line("mailprov validate inventories/example.com.yaml", validate, "(target <= 0.120 s)", validate_ok)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--index", type=int, default=12, help="lab host bookworm-INDEX")
    args = parser.parse_args()
    host = lab.up("bookworm", args.index)[args.index - 1]
    env = dict(os.environ)
    env.setdefault("MAILPROV_JOHN_PASSWORD", PASSWORD)
    with tempfile.TemporaryDirectory(prefix="mailprov-cli-bench-") as tmp:
        site = write_site(Path(tmp), host)
        start = time.perf_counter()
        done = subprocess.run([str(MAILPROV), "apply", "--yes", str(site)], env=env, capture_output=True, check=False)
        print(f"converge {host.name}: {time.perf_counter() - start:.1f} s, exit {done.returncode}", flush=True)
        whole_process_figures(site, host, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
