"""Peer figures: the guide's site with mailprov, pyinfra and Ansible, no-change re-runs side by side.

    sudo .venv/bin/python benchmarks/peer_bench.py [--repeat 5]

One lab host per tool: bookworm-12 (mailprov), -13 (pyinfra), -14 (Ansible); hosts 1-8 belong to the live
tests. pyinfra and ansible-core are installed from PyPI into their own venvs under /var/cache/mailprov-bench
(kept: reruns are fast). The peers' inputs are in benchmarks/peers/: they get the files `mailprov render`
writes for their host and manage the rest themselves (packages, user and Maildir, certificate, maps,
firewall, services). Ansible needs python3 and python3-apt on the host and the lab's hosts have no Python:
the Debian packages are downloaded here (`apt-get download`, cached) and installed on its host first.

Each host is converged (not timed), run once more to show that it reports no change, and checked with
`mailprov verify` (the peers' hosts too: it tests any host against the site); then whole
processes are timed, interleaved, median of --repeat. Prints figures; asserts nothing; leaves the lab up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from mailprov import lab

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
CACHE = Path("/var/cache/mailprov-bench")
HOST_INDICES = (12, 13, 14)  # mailprov, pyinfra, Ansible
PYINFRA = "pyinfra==3.10.0"
ANSIBLE = "ansible-core==2.19.14"  # the newest that runs on Python 3.11 (2.20 needs 3.12)
PASSWORD = "bench-John-pw-1"
# python3 and python3-apt for Ansible's modules, less what the lab's bookworm image already has.
PYTHON_DEBS = (
    "python3", "python3-minimal", "python3.11", "python3.11-minimal", "libpython3-stdlib",
    "libpython3.11-minimal", "libpython3.11-stdlib", "libexpat1", "libreadline8", "readline-common",
    "libsqlite3-0", "media-types", "python3-apt", "python-apt-common", "distro-info-data",
)  # fmt: skip


@dataclass(frozen=True)
class Tool:
    label: str
    argv: list[str]
    unchanged: Callable[[str], bool]  # from the run's output: did it change nothing?


def say(text: str) -> None:
    print(text, flush=True)


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def ensure_venv(name: str, spec: str, program: str) -> Path:
    venv = CACHE / name
    stamp = venv / "mailprov-bench-spec"
    if (venv / "bin" / program).exists() and stamp.exists() and stamp.read_text() == spec:
        return venv / "bin" / program
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], check=True, capture_output=True)
    stamp.write_text(spec)
    say(f"installed {spec} into {venv} ({time.perf_counter() - start:.0f} s)")
    return venv / "bin" / program


def python_debs() -> list[Path]:
    folder = CACHE / "debs-bookworm"
    if not all(any(folder.glob(f"{name}_*.deb")) for name in PYTHON_DEBS):
        folder.mkdir(parents=True, exist_ok=True)
        download = ["apt-get", "download", "-q", *PYTHON_DEBS]
        if subprocess.run(download, cwd=folder, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(download, cwd=folder, check=True, capture_output=True)
    return sorted(folder.glob("*.deb"))


def connect(host: lab.LabHost) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(host.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host.address, port=host.ssh_port, username="root", key_filename=host.root_key)
    return client


def give_python(host: lab.LabHost) -> None:
    """python3 + python3-apt on the Ansible host (Ansible's modules are Python; the lab's image has none)."""
    client = connect(host)
    try:
        _, out, _ = client.exec_command("python3 -c 'import apt' 2>/dev/null && echo yes")
        if out.read().strip() == b"yes":
            return
        debs = python_debs()
        client.exec_command("mkdir -p /tmp/mailprov-bench-debs")[1].channel.recv_exit_status()
        with client.open_sftp() as sftp:
            for deb in debs:
                sftp.put(str(deb), f"/tmp/mailprov-bench-debs/{deb.name}")
        _, out, _ = client.exec_command(
            "apt-get install -y -q --no-install-recommends /tmp/mailprov-bench-debs/*.deb >/tmp/mailprov-bench-debs.log"
            " 2>&1 && rm -rf /tmp/mailprov-bench-debs; echo $?"
        )
        say(f"python3 + python3-apt on {host.name} for Ansible: exit {out.read().decode().strip()}")
    finally:
        client.close()


def write_site(directory: Path, host: lab.LabHost, index: int) -> Path:
    """inventories/lab.yaml with its hosts replaced by this one (root login, the lab's key)."""
    text = (ROOT / "inventories" / "lab.yaml").read_text()
    head, _, rest = text.partition("hosts:\n")
    _, _, tail = rest.partition("\nmyorigin:")
    hosts = (
        f"  - name: mx{index}.example.test\n    ssh:\n      address: {host.address}\n      user: root\n"
        f"      identity_file: {host.root_key}\n      known_hosts: {host.known_hosts}\n"
    )
    path = directory / f"site-{index}.yaml"
    path.write_text(f"{head}hosts:\n{hosts}\nmyorigin:{tail}")
    return path


def verified(mailprov: Path, site: Path, env: dict[str, str]) -> str:
    """`mailprov verify` of a host, whichever tool set it up: the same outside-in and on-host checks."""
    _, rc, output = run([str(mailprov), "verify", "--json", str(site)], env)
    try:
        (result,) = json.loads(output[output.index("{") :])["hosts"].values()
    except (ValueError, KeyError):
        return f"exit {rc}, no JSON result"
    counts = result["summary"]
    return f"{counts['pass']} checks pass, {counts['fail']} fail, {counts['skip']} skipped" + (
        f" ({', '.join(str(name) for name in result['failed'])})" if result["failed"] else ""
    )


def pyinfra_unchanged(output: str) -> bool:
    total = re.search(r"Grand total\s+\d+\s+(\S+)\s+(\S+)", output)
    return total is not None and total.group(1) in ("-", "0") and total.group(2) in ("-", "0")


def ansible_unchanged(output: str) -> bool:
    recap = re.search(r"ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    return recap is not None and recap.groups() == ("0", "0", "0")


def tools(directory: Path, hosts: list[lab.LabHost], mailprov: Path, pyinfra: Path, ansible: Path) -> list[Tool]:
    own, py_host, ans_host = hosts
    own_site = write_site(directory, own, HOST_INDICES[0])
    files: dict[int, Path] = {}
    for host, index in zip(hosts[1:], HOST_INDICES[1:], strict=True):
        out = directory / f"files-{index}"
        site = write_site(directory, host, index)
        facts = PEERS / "lab-bookworm-facts.json"
        subprocess.run([str(mailprov), "render", str(site), "--facts", str(facts), "--out", str(out)], check=True,
                       capture_output=True)  # fmt: skip
        files[index] = out
    john_hash = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "mailprovbench", "-stdin"],
        input=PASSWORD, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    inventory = directory / "inventory.ini"
    inventory.write_text(
        (PEERS / "ansible" / "inventory.ini.tmpl")
        .read_text()
        .format(address=ans_host.address, key=ans_host.root_key, known_hosts=ans_host.known_hosts)
    )
    extra = directory / "ansible-vars.json"
    ans_index = HOST_INDICES[2]
    extra.write_text(json.dumps(
        {"files_dir": str(files[ans_index]), "mail_hostname": f"mx{ans_index}.example.test", "john_hash": john_hash}
    ))  # fmt: skip
    py_index = HOST_INDICES[1]
    py_data = {
        "ssh_known_hosts_file": py_host.known_hosts,
        "ssh_strict_host_key_checking": "yes",
        "files_dir": files[py_index],
        "mail_hostname": f"mx{py_index}.example.test",
        "john_hash": john_hash,
    }
    py_argv = [str(pyinfra), "-y", py_host.address, str(PEERS / "pyinfra" / "deploy.py")]
    py_argv += ["--user", "root", "--key", py_host.root_key]
    py_argv += [arg for key, value in py_data.items() for arg in ("--data", f"{key}={value}")]
    return [
        Tool("mailprov plan", [str(mailprov), "plan", str(own_site)], lambda out: "no changes" in out),
        Tool("mailprov apply --yes", [str(mailprov), "apply", "--yes", str(own_site)], lambda out: "unchanged" in out),
        Tool("pyinfra -y", py_argv, pyinfra_unchanged),
        Tool(
            "ansible-playbook",
            [str(ansible), "-i", str(inventory), str(PEERS / "ansible" / "site.yml"), "-e", f"@{extra}"],
            ansible_unchanged,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("MAILPROV_JOHN_PASSWORD", PASSWORD)
    env["ANSIBLE_CONFIG"] = str(PEERS / "ansible" / "ansible.cfg")
    if env["MAILPROV_JOHN_PASSWORD"] != PASSWORD:
        say("note: MAILPROV_JOHN_PASSWORD differs from the peers' password: john's password will flip-flop")
    mailprov = Path(sys.executable).parent / "mailprov"
    CACHE.mkdir(parents=True, exist_ok=True)
    pyinfra = ensure_venv("venv-pyinfra", PYINFRA, "pyinfra")
    ansible = ensure_venv("venv-ansible", ANSIBLE, "ansible-playbook")
    hosts = lab.up("bookworm", max(HOST_INDICES))[HOST_INDICES[0] - 1 : HOST_INDICES[-1]]
    give_python(hosts[2])
    with tempfile.TemporaryDirectory(prefix="mailprov-peer-bench-") as tmp:
        all_tools = tools(Path(tmp), hosts, mailprov, pyinfra, ansible)
        converging = [all_tools[1], all_tools[2], all_tools[3]]
        for tool, host in zip(converging, hosts, strict=True):
            seconds, rc, output = run(tool.argv, env)
            say(f"converge {host.name} with {tool.label}: {seconds:.1f} s, exit {rc}")
            if rc != 0:
                say("  " + "\n  ".join(output.splitlines()[-15:]))
        for tool in all_tools:
            _, rc, output = run(tool.argv, env)
            say(f"second run, {tool.label}: exit {rc}, {'no change' if tool.unchanged(output) else 'CHANGES'}")
        for host, index in zip(hosts, HOST_INDICES, strict=True):
            say(f"mailprov verify {host.name}: {verified(mailprov, Path(tmp) / f'site-{index}.yaml', env)}")
        times: dict[str, list[float]] = {tool.label: [] for tool in all_tools}
        quiet: dict[str, bool] = {tool.label: True for tool in all_tools}
        for _ in range(args.repeat):  # interleaved, so drift on the machine touches every tool alike
            for tool in all_tools:
                seconds, rc, output = run(tool.argv, env)
                times[tool.label].append(seconds)
                quiet[tool.label] &= rc == 0 and tool.unchanged(output)
    plan = statistics.median(times["mailprov plan"])
    apply = statistics.median(times["mailprov apply --yes"])
    say(f"\nno-change runs on one Debian 12 lab host each, whole processes, median of {args.repeat}:")
    say(f"{'':22} {'median':>8} {'min':>7} {'max':>7} {'÷ apply':>8} {'÷ plan':>7}  every run unchanged")
    for tool in all_tools:
        t = times[tool.label]
        median = statistics.median(t)
        say(
            f"{tool.label:22} {median:7.2f}s {min(t):6.2f}s {max(t):6.2f}s {median / apply:7.1f}x {median / plan:6.1f}x"
            f"  {'yes' if quiet[tool.label] else 'NO'}"
        )
    say(
        f"pyinfra/mailprov apply {statistics.median(times['pyinfra -y']) / apply:.1f}x, "
        f"ansible/mailprov apply {statistics.median(times['ansible-playbook']) / apply:.1f}x "
        f"(targets of issue 8: >= 7x and >= 17x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
