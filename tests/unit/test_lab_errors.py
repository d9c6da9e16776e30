"""The lab fails with LabError messages that say what to do, before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov import lab
from mailprov.errors import LabError
from mailprov.lab import images
from mailprov.lab.commands import run


def test_up_without_root_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        lab.up("bookworm", 1)


def test_down_off_linux_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    with pytest.raises(LabError, match="needs Linux"):
        lab.down()


@pytest.mark.parametrize(("distro", "count", "message"), [("sid", 1, "unknown lab distro"), ("trixie", 0, "1..99")])
def test_bad_arguments_are_refused_before_anything_runs(distro: str, count: int, message: str) -> None:
    with pytest.raises(LabError, match=message):
        lab.up(distro, count)


def test_a_failing_command_shows_its_stderr_tail() -> None:
    with pytest.raises(LabError, match=r"(?s)list things failed \(exit 3\).*\nboom$"):
        run(["sh", "-c", "echo out; echo boom >&2; exit 3"], what="list things")


def test_a_missing_tool_points_at_the_prereqs_script() -> None:
    with pytest.raises(LabError, match=r"lab-prereqs\.sh"):
        run(["mailprov-no-such-tool"], what="probe")


def test_a_failing_build_step_shows_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("")
    with pytest.raises(LabError, match=r"(?s)debootstrap trixie failed \(exit 1\); full log: .*E: Couldn't download"):
        images._logged(
            ["sh", "-c", 'echo I: Retrieving; echo "E: Couldn\'t download packages"; exit 1'],
            log=log,
            what="debootstrap trixie",
            timeout=10,
        )
