"""Everything mailprov says to a POSIX sh: the one place where quoting happens.

Targets may be CentOS 5 (bash 3.2, coreutils 5.97: no base64) or minimal Debian (dash, no Python), so
every construct here is plain POSIX sh: single quotes, quoted here-documents, `printf '%s'`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Final

from mailprov.errors import TransportError

# Words that need no quoting; `~` (tilde expansion) and `=` at the start of a command are handled apart.
_SAFE_WORD: Final = re.compile(r"[A-Za-z0-9_@%+=:,./-]+", re.ASCII)
# A first word that is safe as a command name: no `=` (it would be an assignment) and no reserved word
# (the symbolic ones such as `!` and `{` fail the pattern anyway).
_SAFE_COMMAND: Final = re.compile(r"[A-Za-z0-9_@%+:,./-]+", re.ASCII)
_RESERVED: Final = frozenset(
    {"case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in", "select", "then"}
    | {"time", "until", "while", "coproc"}
)
_HEREDOC_MARK: Final = "MAILPROV_EOF"
MASK: Final = "***"


def quote(s: str) -> str:
    """Quote one word for POSIX sh so that the shell sees exactly `s`."""
    return s if _SAFE_WORD.fullmatch(s) else _quote_always(s)


def join(argv: Sequence[str]) -> str:
    """One shell command line that runs argv verbatim (argv[0] is always taken as a command name)."""
    if not argv:
        raise ValueError("an empty argv is not a command")
    first = argv[0]
    head = first if _SAFE_COMMAND.fullmatch(first) and first not in _RESERVED else _quote_always(first)
    return " ".join([head, *(quote(a) for a in argv[1:])])


def _quote_always(s: str) -> str:
    if "\0" in s:
        raise ValueError("a shell word cannot contain a NUL byte")
    return "'" + s.replace("'", "'\\''") + "'"


def heredoc(content: str) -> str:
    """A brace group that writes `content` to stdout byte-exactly; append `> path` or `| cmd` to use it.

    The body is a quoted here-document (no expansion of `$`, backticks or backslashes) whose delimiter
    is chosen so that no line of the content equals it. A here-document always ends with a newline,
    so a last line without one is written separately with `printf '%s'` (a builtin in bash and dash).
    """
    if "\0" in content:
        raise ValueError("a shell script cannot carry NUL bytes; content must be text")
    cut = content.rfind("\n") + 1
    body, tail = content[:cut], content[cut:]
    parts: list[str] = []
    if body:
        mark = _delimiter(body.split("\n"))
        parts.append(f"cat <<'{mark}'\n{body}{mark}")
    if tail:
        parts.append(f"printf '%s' {_quote_always(tail)}")
    if not parts:
        parts.append(":")
    return "{\n" + "\n".join(parts) + "\n}"


def _delimiter(lines: Iterable[str]) -> str:
    taken = set(lines)
    mark, n = _HEREDOC_MARK, 0
    while mark in taken:
        n += 1
        mark = f"{_HEREDOC_MARK}_{n}"
    return mark


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text` with ***, also where it appears inside single quotes."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.add(secret)
            forms.add(secret.replace("'", "'\\''"))
    for form in sorted(forms, key=len, reverse=True):  # longest first: no half-masked overlaps
        text = text.replace(form, MASK)
    return text


class Script:
    """A sh script built from argv commands (quoted here) and raw lines (trusted shell text)."""

    def __init__(self, *, errexit: bool = True) -> None:
        self.errexit = errexit
        self._lines: list[str] = []

    def run(self, argv: Sequence[str]) -> Script:
        self._lines.append(join(argv))
        return self

    def raw(self, line: str) -> Script:
        self._lines.append(line)
        return self

    def write_file(self, path: str, content: str) -> Script:
        """Write `content` to `path` byte-exactly (no owner/mode/atomicity: resources add those)."""
        self._lines.append(f"{heredoc(content)} > {quote(path)}")
        return self

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(self._lines)

    def render(self) -> str:
        head = ["set -e"] if self.errexit else []
        return "\n".join([*head, *self._lines]) + "\n"

    def __str__(self) -> str:
        return self.render()


# What every command gets, whatever the login shell's setup: C messages for the fact parsers, and the
# sbin directories, which RHEL 5's sudo (no secure_path) and non-root logins leave out of PATH.
PREAMBLE: Final = (
    "LC_ALL=C; export LC_ALL; "
    "PATH=${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH"
)


class Become(Enum):
    """How commands gain root on a host, decided once per connection."""

    NONE = "none"  # already root, or become not asked for
    SUDO = "sudo"  # sudo -n (NOPASSWD)
    SUDO_PASSWORD = "sudo-password"  # sudo -S, password fed on stdin


SUDO_PROBE: Final = ("sudo", "-n", "true")
SUDO_PASSWORD_PROBE: Final = ("sudo", "-k", "-S", "-p", "", "true")


def _sudo_prefix(become: Become) -> str:
    if become is Become.SUDO:
        return "sudo -n -- "
    # -k: ignore cached credentials, so sudo always reads the password line and it never reaches the
    # command's stdin.
    return "sudo -k -S -p '' -- "


def command_line(argv: Sequence[str], become: Become) -> str:
    """The string for exec_command / `sh -c` that runs argv with the preamble, as root when becoming."""
    inner = f"{PREAMBLE}; {join(argv)}"
    if become is Become.NONE:
        return inner
    return _sudo_prefix(become) + "sh -c " + quote(inner)


def script_command(become: Become) -> str:
    """The command that reads a script on stdin (see script_text)."""
    if become is Become.NONE:
        return "sh -s"
    return _sudo_prefix(become) + "sh -s"


def script_text(script: str) -> str:
    """Wrap a script for `sh -s`: a brace group is parsed whole before any of it runs, so a script cut
    short in transit runs nothing, and `</dev/null` keeps its commands from eating the rest of it."""
    body = script if script.endswith("\n") else script + "\n"
    return f"{PREAMBLE}\n{{\n{body}}} </dev/null\n"


def stdin_bytes(become: Become, password: str | None, stdin: bytes | None) -> bytes | None:
    """What to send on the command's stdin: with sudo -S, the password line comes first."""
    if become is not Become.SUDO_PASSWORD:
        return stdin
    if password is None:
        raise ValueError("Become.SUDO_PASSWORD needs the password")
    return password_line(password) + (stdin or b"")


def password_line(password: str) -> bytes:
    """The sudo password as the one line sudo -S reads. A line break in it would leave the rest on stdin,
    where the root shell that runs the script reads it as commands: refused, without showing it."""
    if "\n" in password or "\r" in password:
        raise TransportError("the sudo password holds a line break: sudo reads one line (nothing was run)")
    return password.encode() + b"\n"


# Runs one command line as the login user (no become), feeding stdin; returns (rc, stderr).
ProbeRunner = Callable[[str, bytes | None], tuple[int, str]]


def resolve_become(host: str, user: str, password: str | None, probe: ProbeRunner) -> Become:
    """Decide, once per connection, how to become root as `user`; fail fast when sudo cannot work."""
    rc, stderr = probe(command_line(SUDO_PROBE, Become.NONE), None)
    if rc == 0:
        return Become.SUDO
    if rc == 127 or "not found" in stderr:
        raise TransportError(f"{host}: become is set but sudo is not installed (logged in as {user})")
    if "must have a tty" in stderr:
        raise TransportError(
            f"{host}: sudo requires a tty ('Defaults requiretty' in sudoers); "
            f"add 'Defaults:{user} !requiretty' with visudo, or log in as root"
        )
    if password is None:
        raise TransportError(
            f"sudo on {host} requires a password for {user}; set sudo_password for the host "
            f"or give {user} NOPASSWD in sudoers (sudo said: {stderr.strip() or f'exit {rc}'})"
        )
    rc, stderr = probe(command_line(SUDO_PASSWORD_PROBE, Become.NONE), password_line(password))
    if rc != 0:
        said = "; ".join(ln.strip() for ln in mask(stderr, [password]).splitlines() if ln.strip())
        raise TransportError(
            f"{host}: sudo rejected the password for {user}, or {user} may not run commands as root "
            f"(sudo said: {said or f'exit {rc}'})"
        )
    return Become.SUDO_PASSWORD


def script_display(script: str, secrets: Iterable[str]) -> str:
    """A one-line, masked summary of a script for results and errors and the debug log (never the full text)."""
    lines = [ln.strip() for ln in script.splitlines()]
    lines = [ln for ln in lines if ln and ln != "set -e" and not ln.startswith("#")]
    first = mask(lines[0], secrets) if lines else ""  # mask before cutting: no half secret survives
    if len(first) > 100:
        first = first[:100] + "..."
    more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
    return f"sh -s: {first}{more}"


def ssh_option_path(path: str) -> str:
    """A file path as the value of an OpenSSH `-o Name=value` option (ssh_config syntax, not sh): `%`
    doubled (ssh expands `%h`-style tokens in paths), double quotes around a path with blanks. A path
    holding a double quote or a line break cannot be written there: refused."""
    if any(c in path for c in '"\n\r\0'):
        raise TransportError(f"the path {path!r} cannot be given to ssh (it holds a quote or a line break)")
    value = path.replace("%", "%%")
    return f'"{value}"' if any(c.isspace() for c in value) else value
