"""LocalTransport: the Transport contract on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailprov.errors import CommandError, TransportError
from mailprov.transport import LocalTransport, Script, Transport


def test_run_returns_output_and_counts_round_trips() -> None:
    t = LocalTransport("here")
    result = t.run(["printf", "%s|%s", "it's", "$(id)"])
    assert (result.rc, result.stdout, result.stderr, result.ok) == (0, "it's|$(id)", "", True)
    assert result.command == "printf '%s|%s' 'it'\\''s' '$(id)'"
    t.run(["true"])
    assert t.round_trips == 2


def test_stdin_reaches_the_command_byte_exactly() -> None:
    data = "héllo\n".encode() + bytes(range(1, 128)) * 1000
    assert LocalTransport().run(["cat"], stdin=data).stdout == data.decode()
    assert LocalTransport().run(["wc", "-c"], stdin=data).stdout.strip() == str(len(data))


def test_no_stdin_means_eof_not_a_hang() -> None:
    assert LocalTransport().run(["cat"], timeout=5).stdout == ""


def test_check_raises_command_error_with_masked_command_and_stderr() -> None:
    argv = ["sh", "-c", 'echo "bad password $1" >&2; exit 3', "sh", "hunter2"]
    with pytest.raises(CommandError) as caught:
        LocalTransport("mx1").run(argv, secrets=["hunter2"])
    err = caught.value
    assert (err.host, err.rc) == ("mx1", 3)
    assert "hunter2" not in str(err)
    assert "bad password ***" in str(err)
    assert "***" in err.command


def test_check_false_returns_the_failure_with_masked_command() -> None:
    result = LocalTransport().run(["sh", "-c", "exit 4", "hunter2"], check=False, secrets=["hunter2"])
    assert (result.rc, result.ok) == (4, False)
    assert "hunter2" not in result.command


def test_timeout_kills_the_command_and_names_it() -> None:
    start = time.monotonic()
    with pytest.raises(TransportError, match=r"mx1: command timed out after 0\.3s: sleep 5"):
        LocalTransport("mx1").run(["sleep", "5"], timeout=0.3)
    assert time.monotonic() - start < 2


def test_run_script_is_one_round_trip_and_writes_files(tmp_path: Path) -> None:
    t = LocalTransport()
    target = tmp_path / "main.cf"
    script = Script().run(["mkdir", "-p", str(tmp_path / "d")]).write_file(str(target), "a = $b\nno newline")
    result = t.run_script(script.raw("cat " + str(target)).render())
    assert result.stdout == "a = $b\nno newline"
    assert target.read_bytes() == b"a = $b\nno newline"
    assert t.round_trips == 1
    assert result.command.startswith("sh -s: mkdir -p ")


def test_run_script_failure_raises() -> None:
    with pytest.raises(CommandError) as caught:
        LocalTransport().run_script(Script().run(["false"]).run(["echo", "never"]).render())
    assert caught.value.rc == 1


def test_become_as_root_runs_without_sudo() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    t = LocalTransport(become=True)
    assert t.run(["id", "-u"]).stdout.strip() == "0"
    assert t.round_trips == 1  # no sudo probe was needed


def test_meets_the_transport_protocol() -> None:
    t: Transport = LocalTransport()
    with LocalTransport() as local:
        assert local.host == "localhost"
    assert t.round_trips == 0
