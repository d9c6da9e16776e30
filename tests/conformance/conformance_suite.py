"""What the conformance tests do to a site's hosts, with no distribution in sight: run mailprov's CLI on the
site (every host at once), write variants of the site, and read a host's state through mailprov's own
transport (so `become`, `sudo_password` and the site's SSH settings apply as they do for mailprov)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from mailprov.config.model import Host
from mailprov.orchestrate import RunOptions, target_for
from mailprov.transport import Transport, connect

ROOT = Path(__file__).resolve().parents[2]
MAILPROV = [sys.executable, "-m", "mailprov.cli"]
TIMEOUT = 900

# Postfix's and Dovecot's effective configuration (Dovecot 1.x has no doveconf), and their master PIDs:
# a restart changes a PID; the daemons' names are the same on every distribution.
EFFECTIVE_CONFIG = "postconf -n; (doveconf -n 2>/dev/null || dovecot -n) | grep -v '^# '"
MASTER_PIDS = "echo postfix $(pgrep -o -x master); echo dovecot $(pgrep -o -x dovecot)"


def mailprov(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    """The CLI in its own process group (a test may kill it, and its SSH connections, at once)."""
    return subprocess.Popen([*MAILPROV, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=cwd, env=dict(os.environ), start_new_session=True)  # fmt: skip


def mailprov_run(*args: str) -> tuple[int, str]:
    proc = mailprov(*args)
    out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out


def json_outcomes(out: str) -> list[dict[str, Any]]:
    """`apply --json` / `plan --json` output: a list with one entry per host."""
    start = out.index("[")
    data = json.loads(out[start:])
    assert isinstance(data, list), out
    return data


def flat(out: str) -> str:
    """CLI output with table borders and line breaks folded, for `in` checks."""
    return " ".join(out.replace("│", " ").replace("┃", " ").split())


@dataclass
class HostShell:
    """A root shell on one host of the site, over mailprov's transport; reconnects after a cut."""

    host: Host
    base_dir: Path
    transport: Transport | None = None

    def _connect(self) -> Transport:
        if self.transport is None:
            self.transport = connect(target_for(self.host, RunOptions(), self.base_dir))
        return self.transport

    def run(self, command: str, timeout: float = 300) -> tuple[int, str]:
        """(exit code, stdout + stderr) of a shell command run as root (the interface test_faults' helpers use)."""
        for attempt in range(3):
            try:
                result = self._connect().run_script(command, check=False, timeout=timeout)
                return result.rc, result.stdout + result.stderr
            except Exception:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.transport is not None:
            try:
                self.transport.close()
            finally:
                self.transport = None


def write_variant(site_path: Path, name: str, change: dict[str, Any]) -> Path:
    """The site with `change` merged in (mappings merged key by key), written beside it so that relative
    paths in it (keys, known_hosts, secret files) mean the same. The caller removes it."""
    yaml = YAML()
    data = yaml.load(site_path.read_text(encoding="utf-8"))
    _merge(data, change)
    variant = site_path.with_name(f".{site_path.stem}.conformance-{name}.yaml")
    with variant.open("w", encoding="utf-8") as sink:
        yaml.dump(data, sink)
    return variant


def _merge(target: Any, change: dict[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
