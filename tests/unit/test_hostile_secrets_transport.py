"""Issue 12, items 6, 9, 10 (secrets) and 11: a secret is one line of text from a small regular file or
the environment; the debug log never holds a script; accept-new never adds a key type for a known name."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest

from mailprov.config.model import SecretRef
from mailprov.config.secrets import resolve
from mailprov.errors import ConfigError, HostKeyError, TransportError
from mailprov.transport import LocalTransport, Script
from mailprov.transport.shell import Become, resolve_become, stdin_bytes
from mailprov.transport.ssh import _check_host_key, _Endpoint

PASSWORD = "Tr0ub4dor&3"

# --- 6. an env secret is one line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [f"{PASSWORD}\nid > /tmp/pwned", f"{PASSWORD}\r\nreboot", f"{PASSWORD}\u2028x", f"{PASSWORD}\x00"],
    ids=["newline", "crlf", "line separator", "NUL"],
)
def test_an_env_secret_with_a_line_break_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("MAILPROV_TEST_PW", value.replace("\x00", "\x01"))  # the environment holds no NUL
    with pytest.raises(ConfigError) as info:
        resolve(SecretRef(env="MAILPROV_TEST_PW"), tmp_path)
    message = str(info.value)
    assert "environment variable MAILPROV_TEST_PW" in message and "one line" in message
    assert PASSWORD not in message and "pwned" not in message and "reboot" not in message


def test_sudo_never_gets_a_password_with_a_line_break() -> None:
    with pytest.raises(TransportError, match="line break") as info:
        stdin_bytes(Become.SUDO_PASSWORD, f"{PASSWORD}\nid", b"script")
    assert PASSWORD not in str(info.value)
    ran: list[bytes | None] = []

    def probe(command: str, stdin: bytes | None) -> tuple[int, str]:
        ran.append(stdin)
        return (1, "sudo: a password is required") if stdin is None else (0, "")

    with pytest.raises(TransportError, match="line break"):
        resolve_become("mx1", "admin", f"{PASSWORD}\nid", probe)
    assert ran == [None]  # the probe that would have sent it never ran


# --- 10. secret files: small, regular, UTF-8; never hang, never show a byte -------------------------------


def test_a_fifo_secret_file_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            resolve(SecretRef(file="pw"), tmp_path)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the old code's open() so the test process can end
        with open(fifo, "w"):
            pass
        worker.join(5)
        pytest.fail("reading a FIFO secret file hangs")
    assert isinstance(outcome[0], ConfigError) and "not a regular file" in str(outcome[0])


def test_dev_zero_as_a_secret_file_is_refused_quickly() -> None:
    # In a child process with a memory limit: the old code read /dev/zero until memory ran out.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from pathlib import Path\n"
        "from mailprov.config.model import SecretRef\n"
        "from mailprov.config.secrets import resolve\n"
        "from mailprov.errors import ConfigError\n"
        "try:\n"
        "    resolve(SecretRef(file='/dev/zero'), Path('/'))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False, cwd="/"
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading /dev/zero as a secret file does not end")
    assert done.returncode == 0, done.stderr[-500:]
    assert "not a regular file" in done.stdout
    assert time.perf_counter() - started < 10


def test_a_huge_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"x" * (1024 * 1024) + b"\n")
    with pytest.raises(ConfigError, match="larger than"):
        resolve(SecretRef(file="pw"), tmp_path)


def test_a_non_utf8_secret_file_shows_no_byte(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"p\xe4ssword\n")
    with pytest.raises(ConfigError) as info:
        resolve(SecretRef(file="pw"), tmp_path)
    message = str(info.value)
    assert "not UTF-8" in message and "\\xe4" not in message and "0xe4" not in message and "ssword" not in message


@pytest.mark.parametrize("text", [f"{PASSWORD}\u2028\n", f"\x1b[2J{PASSWORD}\n"], ids=["U+2028", "escape"])
def test_a_secret_file_holds_safe_text(tmp_path: Path, text: str) -> None:
    (tmp_path / "pw").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="one line") as info:
        resolve(SecretRef(file="pw"), tmp_path)
    assert PASSWORD not in str(info.value)


def test_a_crlf_secret_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(PASSWORD.encode() + b"\r\n")
    assert resolve(SecretRef(file="pw"), tmp_path).reveal() == PASSWORD


@pytest.mark.parametrize("path", ["~nosuchuser/pw", "~root/pw", "pw\x00x", " pw"], ids=["~user", "~root", "NUL", "sp"])
def test_odd_local_paths_are_refused_by_the_model(path: str) -> None:
    with pytest.raises(ValueError):
        SecretRef(file=path)


# --- 9. the debug log never holds a script's text ---------------------------------------------------------

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def test_debug_logging_never_shows_the_script(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    script = Script().write_file(str(tmp_path / "mail.key"), KEY).run(["true"])
    with caplog.at_level(logging.DEBUG):
        LocalTransport("mx1").run_script(script.render(), secrets=["some-password"])
    assert (tmp_path / "mail.key").read_text() == KEY
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "mx1: script" in logged
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in logged and "BEGIN PRIVATE KEY" not in logged


# --- 11. --accept-new-host-keys never adds a key type for a name already known ----------------------------


def _endpoint(known: Path) -> _Endpoint:
    return _Endpoint(
        who="mx1",
        address="192.0.2.1",
        port=22,
        user="root",
        key_files=(),
        use_agent=False,
        host_key_name="192.0.2.1",
        known_hosts=(str(known),),
        known_hosts_write=str(known),
        keepalive=0,
        jumps=(),
        proxy_command=None,
    )


def test_accept_new_refuses_a_new_key_type_for_a_known_name(tmp_path: Path) -> None:
    known_key = paramiko.ECDSAKey.generate()
    offered_key = paramiko.RSAKey.generate(2048)
    known = tmp_path / "known_hosts"
    line = f"192.0.2.1 {known_key.get_name()} {known_key.get_base64()}\n"
    known.write_text(line)
    with pytest.raises(HostKeyError) as info:
        _check_host_key(_endpoint(known), offered_key, accept_new=True)
    message = str(info.value)
    assert "ecdsa-sha2-nistp256" in message and "Nothing was run" in message
    assert known.read_text() == line  # nothing recorded


def test_accept_new_still_records_a_key_for_an_unknown_name(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = paramiko.RSAKey.generate(2048)
    _check_host_key(_endpoint(known), key, accept_new=True)
    assert known.read_text() == f"192.0.2.1 ssh-rsa {key.get_base64()}\n"
