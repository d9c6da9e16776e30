"""shell.py: quoting and here-documents checked against real shells, not against expected strings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailprov.errors import TransportError
from mailprov.transport import shell
from mailprov.transport.shell import Become, Script, heredoc, join, mask, quote

SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]

HOSTILE = [
    "",
    "plain",
    "two words",
    "it's",
    "'",
    "''",
    '"double" quotes',
    "back\\slash\\",
    "$(touch /tmp/mailprov-pwned)",
    "`id`",
    "${HOME}",
    "$HOME",
    "a; rm -rf /",
    "a && b || c | d & e",
    "line1\nline2\n",
    "\n",
    "tab\there",
    "glob * ? [abc]",
    "~root",
    "-n",
    "--",
    "héllo wörld ✉ 日本",
    "#comment",
    "!event",
    "a=b",
    "{a,b}",
    "trailing space ",
    "\r\n",
]


def sh(shell_name: str, script: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([shell_name, "-c", script], input=stdin, capture_output=True, timeout=10)


@pytest.mark.parametrize("shell_name", SHELLS)
@pytest.mark.parametrize("word", HOSTILE)
def test_quote_round_trips_through_the_shell(shell_name: str, word: str) -> None:
    result = sh(shell_name, "printf '%s' " + quote(word))
    assert result.returncode == 0, result.stderr
    assert result.stdout == word.encode()


@pytest.mark.parametrize("shell_name", SHELLS)
def test_join_keeps_every_argument_whole(shell_name: str) -> None:
    result = sh(shell_name, join(["printf", "[%s]", *HOSTILE]))
    assert result.stdout.decode() == "".join(f"[{w}]" for w in HOSTILE)
    assert not Path("/tmp/mailprov-pwned").exists()


def test_safe_words_stay_readable() -> None:
    assert join(["postmap", "hash:/etc/postfix/virtual"]) == "postmap hash:/etc/postfix/virtual"
    assert quote("it's") == "'it'\\''s'"


@pytest.mark.parametrize("first", ["FOO=1", "time", "if", "while"])
def test_first_word_is_always_a_command_name(first: str) -> None:
    # Unquoted, `FOO=1 true` would be an assignment and `if ...` a syntax: both must be a command lookup.
    result = sh("sh", join([first, "x"]))
    assert result.returncode == 127, (join([first, "x"]), result.stderr)


def test_join_refuses_empty_argv() -> None:
    with pytest.raises(ValueError):
        join([])


CONTENTS = [
    "",
    "\n",
    "one line\n",
    "no trailing newline",
    "two\nlines without end",
    "MAILPROV_EOF\nthe would-be delimiter above\n",
    "MAILPROV_EOF\nMAILPROV_EOF_1\nMAILPROV_EOF",
    ".\n.\n",
    "back\\slash \\n \\\\\n",
    "$HOME ${PATH} $(id) `id` $'x'\n",
    "'single' \"double\"\n",
    "\ttabs\t\n  leading spaces\ntrailing spaces   \n",
    "crlf\r\nline\r\n",
    "unicode ✉ héllo\n",
    "\n\n\nblank lines\n\n",
    "}\n{\nEOF\n",
    "x" * 5000 + "\n" + "y" * 3000,
]


@pytest.mark.parametrize("shell_name", SHELLS)
@pytest.mark.parametrize("content", CONTENTS)
def test_heredoc_round_trips_byte_exactly_through_sh_s(shell_name: str, content: str) -> None:
    result = subprocess.run(
        [shell_name, "-s"], input=heredoc(content).encode() + b"\n", capture_output=True, timeout=10
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == content.encode()


@pytest.mark.parametrize("content", CONTENTS)
def test_write_file_writes_exact_bytes(tmp_path: Path, content: str) -> None:
    target = tmp_path / "it's a file"
    script = Script().write_file(str(target), content).render()
    result = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == content.encode()


def test_heredoc_refuses_nul() -> None:
    with pytest.raises(ValueError):
        heredoc("a\0b")


def test_script_errexit_stops_at_first_failure() -> None:
    script = Script().run(["echo", "before"]).run(["false"]).run(["echo", "after"]).render()
    result = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, timeout=10)
    assert (result.returncode, result.stdout) == (1, b"before\n")
    loose = Script(errexit=False).run(["false"]).raw("echo after").render()
    result = subprocess.run(["sh", "-s"], input=loose.encode(), capture_output=True, timeout=10)
    assert (result.returncode, result.stdout) == (0, b"after\n")


def test_script_text_is_parsed_whole_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    full = shell.script_text(f"touch {quote(str(marker))}\necho done\n")
    cut = full[: full.index("echo done")]  # a script cut short in transit
    result = subprocess.run(["sh", "-s"], input=cut.encode(), capture_output=True, timeout=10)
    assert result.returncode != 0
    assert not marker.exists()


def test_script_commands_do_not_eat_the_script() -> None:
    # `cat` reads stdin; without the </dev/null guard it would swallow the rest of the script.
    text = shell.script_text("cat\necho still here\n")
    result = subprocess.run(["sh", "-s"], input=text.encode(), capture_output=True, timeout=10)
    assert result.stdout == b"still here\n"


def test_preamble_gives_c_locale_and_sbin() -> None:
    result = sh("sh", shell.command_line(["sh", "-c", 'echo "$LC_ALL:$PATH"'], Become.NONE))
    locale, path = result.stdout.decode().strip().split(":", 1)
    assert locale == "C"
    assert "/usr/sbin" in path.split(":")
    assert "" not in path.split(":")  # no empty entry: that would put the current directory on PATH


def test_sudo_wrapping() -> None:
    assert shell.command_line(["id"], Become.SUDO).startswith("sudo -n -- sh -c ")
    assert shell.script_command(Become.SUDO_PASSWORD) == "sudo -k -S -p '' -- sh -s"
    assert shell.stdin_bytes(Become.SUDO_PASSWORD, "pw", b"data") == b"pw\ndata"
    assert shell.stdin_bytes(Become.SUDO, "pw", b"data") == b"data"


def test_become_fails_fast_when_sudo_needs_a_password() -> None:
    def probe(command: str, stdin: bytes | None) -> tuple[int, str]:
        return 1, "sudo: a password is required\n"

    with pytest.raises(TransportError, match="sudo on mx1 requires a password for alice"):
        shell.resolve_become("mx1", "alice", None, probe)


def test_become_with_password_is_checked_once_and_never_shown() -> None:
    seen: list[tuple[str, bytes | None]] = []

    def probe(command: str, stdin: bytes | None) -> tuple[int, str]:
        seen.append((command, stdin))
        return (1, "sudo: a password is required") if len(seen) == 1 else (1, "Sorry, try again. s3cret")

    with pytest.raises(TransportError) as caught:
        shell.resolve_become("mx1", "alice", "s3cret", probe)
    assert "s3cret" not in str(caught.value)
    assert seen[1][1] == b"s3cret\n"
    assert "s3cret" not in seen[1][0]  # the password travels on stdin, never in the command line


@pytest.mark.parametrize(
    ("rc", "stderr", "expected"),
    [
        (0, "", Become.SUDO),
        (127, "sh: sudo: not found", "not installed"),
        (1, "sorry, you must have a tty", "tty"),
    ],
)
def test_become_probe_outcomes(rc: int, stderr: str, expected: Become | str) -> None:
    def probe(command: str, stdin: bytes | None) -> tuple[int, str]:
        return rc, stderr

    if isinstance(expected, Become):
        assert shell.resolve_become("mx1", "alice", None, probe) is expected
    else:
        with pytest.raises(TransportError, match=expected):
            shell.resolve_become("mx1", "alice", None, probe)


def test_mask_replaces_every_secret() -> None:
    assert mask("user=bob pass=hunter2 again hunter2", ["hunter2"]) == "user=bob pass=*** again ***"
    assert mask("nothing", ["", "x"]) == "nothing"
    # the longer secret wins where they overlap
    assert mask("abcdef", ["abc", "abcdef"]) == "***"


def test_mask_catches_a_secret_inside_single_quotes() -> None:
    secret = "it's secret"
    line = join(["mysql", "--password=" + secret])
    assert secret not in mask(line, [secret])
    assert "it" not in mask(line, [secret]).split("--password=")[1]


def test_script_display_is_masked_and_short() -> None:
    script = Script().run(["chpasswd", "alice:hunter2" + "x" * 200]).raw("echo two").render()
    display = shell.script_display(script, ["hunter2" + "x" * 200])
    assert "hunter2" not in display
    assert display == "sh -s: chpasswd alice:*** (+1 more lines)"


def test_quote_refuses_nul() -> None:
    with pytest.raises(ValueError):
        quote("a\0b")
