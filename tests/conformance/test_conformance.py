"""One conformance suite for any host: what mailprov promises on every host of a site, whatever it runs.

In order, on every host of the site at once (mailprov works on a site's hosts in parallel):
  1. apply converges;
  2. plan is then empty (exit 0);
  3. a second apply changes, restarts and reloads nothing (no handler, same daemon PIDs);
  4. verify passes (from where the suite runs);
  5. a value the running daemon rejects (it passes every configuration check: smtpd dies on it at start) is
     rolled back: the live configuration is untouched and serving, and the site plans empty again;
  6. an apply cut half-way (its SSH session killed as the host starts the switch; with
     MAILPROV_CONFORMANCE_CUT=host the run on the host is killed instead) leaves each host serving, and the
     next apply converges: plan empty, verify passes.
Nothing here names a distribution, a path or a package: the hosts' own `postconf -n`/`doveconf -n` and
mailprov's own plan, apply and verify are the judges. Each step needs the ones before it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conformance_suite import (
    EFFECTIVE_CONFIG,
    MASTER_PIDS,
    HostShell,
    flat,
    json_outcomes,
    mailprov,
    mailprov_run,
    write_variant,
)

from mailprov.config.model import Site
from mailprov.hostscript import step_names
from mailprov.orchestrate import RunOptions, plan_site

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))
from test_faults import runs, wait_for_step, wait_until_idle  # the fault tests' own helpers

CUT_AT = "switch"  # the step whose start the apply is cut at (the one that matters most)
CUT_KIND = os.environ.get("MAILPROV_CONFORMANCE_CUT", "ssh")  # ssh: mailprov's session dies; host: the run
DEFAULT_MESSAGE_SIZE = 10240000  # Postfix's default message_size_limit


class Progress:
    """Steps that passed so far: a step whose predecessor failed is skipped (it would only repeat it)."""

    def __init__(self) -> None:
        self.passed: set[str] = set()

    def need(self, step: str) -> None:
        if step not in self.passed:
            pytest.skip(f"needs the step {step!r}, which did not pass")


@pytest.fixture(scope="module")
def progress() -> Progress:
    return Progress()


@pytest.fixture(scope="module")
def shells(site: Site, site_path: Path) -> Iterator[dict[str, HostShell]]:
    opened = {host.name: HostShell(host, site_path.parent) for host in site.hosts}
    yield opened
    for shell in opened.values():
        shell.close()


@pytest.fixture(scope="module")
def variants(site: Site, site_path: Path) -> Iterator[dict[str, Path]]:
    # 1 KiB more: a bigger step could pass mailbox_size_limit (51200000 by default), which kills local(8)
    # at delivery time ("mailbox_size_limit is smaller than message_size_limit") though every check passes.
    size = (site.postfix.message_size_limit or DEFAULT_MESSAGE_SIZE) + 1024
    made = {
        # A change every host can take: main.cf only (stage, both gates, switch, a Postfix reload, health).
        "changed": write_variant(site_path, "changed", {"postfix": {"message_size_limit": size}}),
        # Passes validate, `postfix check` and `postconf -n`: smtpd dies on it when it starts (its minimum is 1).
        "rejected": write_variant(site_path, "rejected", {"postfix": {"extra": {"smtpd_recipient_limit": 0}}}),
    }
    yield made
    for path in made.values():
        path.unlink(missing_ok=True)


def on_every_host(shells: dict[str, HostShell], command: str) -> dict[str, str]:
    with ThreadPoolExecutor(len(shells)) as pool:
        futures = {name: pool.submit(shell.run, command, 120) for name, shell in shells.items()}
        answers = {name: future.result() for name, future in futures.items()}
    failed = {name: out for name, (rc, out) in answers.items() if rc != 0}
    assert failed == {}, f"`{command}` failed: {failed}"
    return {name: out for name, (_rc, out) in answers.items()}


def test_apply_converges(site_path: Path, progress: Progress) -> None:
    rc, out = mailprov_run("apply", "--yes", str(site_path))
    assert rc == 0, out
    progress.passed.add("apply")


def test_plan_is_then_empty(site_path: Path, progress: Progress) -> None:
    progress.need("apply")
    rc, out = mailprov_run("plan", str(site_path))
    assert rc == 0, out
    progress.passed.add("plan")


def test_a_second_apply_restarts_and_reloads_nothing(
    site_path: Path, shells: dict[str, HostShell], progress: Progress
) -> None:
    progress.need("plan")
    before = on_every_host(shells, MASTER_PIDS)
    assert all(len(out.split()) == 4 for out in before.values()), before  # both daemons run on every host
    rc, out = mailprov_run("apply", "--yes", "--json", str(site_path))
    assert rc == 0, out
    for outcome in json_outcomes(out):
        assert outcome["error"] is None, outcome
        assert outcome["changes"] == [] and outcome["handlers"] == [], outcome
        assert not outcome.get("apply", {}).get("steps"), outcome  # nothing was run on the host
    assert on_every_host(shells, MASTER_PIDS) == before  # no daemon restarted
    progress.passed.add("idempotent")


def test_verify_passes(site_path: Path, progress: Progress) -> None:
    progress.need("apply")
    rc, out = mailprov_run("verify", str(site_path))
    assert rc == 0, out
    progress.passed.add("verify")


def test_a_config_the_daemon_rejects_leaves_the_live_one_serving(
    site_path: Path, variants: dict[str, Path], shells: dict[str, HostShell], progress: Progress
) -> None:
    progress.need("verify")
    live = on_every_host(shells, EFFECTIVE_CONFIG)
    rc, out = mailprov_run("apply", "--yes", str(variants["rejected"]))
    text = flat(out)
    assert rc == 1, out
    assert text.count("previous configuration restored and serving") == len(shells), out
    assert on_every_host(shells, EFFECTIVE_CONFIG) == live  # untouched, byte for byte
    rc, out = mailprov_run("plan", str(site_path))
    assert rc == 0, out
    rc, out = mailprov_run("verify", str(site_path))
    assert rc == 0, out  # and serving: every probe passes
    progress.passed.add("rejected")


def test_an_apply_cut_half_way_leaves_hosts_serving_and_the_next_apply_converges(
    site: Site, site_path: Path, variants: dict[str, Path], shells: dict[str, HostShell], progress: Progress
) -> None:
    progress.need("verify")
    assert CUT_KIND in ("ssh", "host"), f"MAILPROV_CONFORMANCE_CUT must be ssh or host, not {CUT_KIND!r}"
    changed = variants["changed"]
    from mailprov.config.loader import load_site

    planned = plan_site(load_site(changed), site.hosts, RunOptions(), site_path.parent)
    for outcome in planned:
        assert outcome.plan is not None, outcome.error
        assert CUT_AT in step_names(outcome.plan), (outcome.host, step_names(outcome.plan))

    def cut(name: str) -> str:
        """One apply per host, its SSH session killed when the host announces the step (hosts in parallel)."""
        shell = shells[name]
        known = runs(shell)  # type: ignore[arg-type]
        proc = mailprov("apply", "--yes", "--host", name, str(changed))
        if not wait_for_step(shell, CUT_AT, known):  # type: ignore[arg-type]
            proc.kill()
            return f"{name}: the step {CUT_AT} never started: {proc.communicate()[0][-500:]}"
        if CUT_KIND == "host":
            shell.run("pkill -KILL -f '[r]uns/.*[.]sh'")  # the detached run dies; mailprov reports it
            proc.communicate(timeout=600)
        else:
            os.killpg(proc.pid, signal.SIGKILL)  # mailprov and its SSH connection die at once
            proc.communicate()
        wait_until_idle(shell)  # type: ignore[arg-type]  (the host finishes the run on its own)
        return ""

    started = time.monotonic()
    with ThreadPoolExecutor(len(shells)) as pool:
        problems = [p for p in pool.map(cut, list(shells)) if p]
    assert problems == [], problems
    rc, out = mailprov_run("verify", "--no-host-checks", str(changed))
    assert rc == 0, f"a host does not serve after the cut ({time.monotonic() - started:.0f} s):\n{out}"
    rc, out = mailprov_run("apply", "--yes", str(changed))
    assert rc == 0, out
    rc, out = mailprov_run("plan", str(changed))
    assert rc == 0, out
    rc, out = mailprov_run("verify", str(changed))
    assert rc == 0, out
