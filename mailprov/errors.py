"""One error hierarchy for mailprov.

Messages are written for the admin: they say what is wrong and, where we know it, what to do.
Nothing here prints; the CLI maps these to output and exit codes.
"""

from __future__ import annotations

from mailprov.config.text import printable


class MailprovError(Exception):
    """Base of every error mailprov raises on purpose.

    The message is made printable here, once: a value from a site file, a host or a command's output
    that holds an escape sequence, a bidi override or a line separator is shown escaped (`\\x1b`), never
    sent to the admin's terminal as is. Newlines are kept: they separate the lines of a message.
    """

    exit_code = 1

    def __init__(self, *args: object) -> None:
        super().__init__(*(printable(a) if isinstance(a, str) else a for a in args))


class ConfigError(MailprovError):
    """The site file (or another input) is invalid. Nothing was changed anywhere.

    `field` is the dotted path of the site field at fault when it is known but its line is not yet (a
    refusal found after loading, e.g. by a dialect): `mailprov.config.loader.locate` turns it into
    `file:line  field: reason`.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.reason = printable(message)


class FactsError(MailprovError):
    """A host's facts could not be read or do not describe a supported system."""


class TransportError(MailprovError):
    """A host could not be reached, or the SSH session failed."""


class HostKeyError(TransportError):
    """The host's SSH key is unknown or differs from known_hosts."""


class CommandError(TransportError):
    """A remote command exited with an unexpected status."""

    def __init__(self, host: str, command: str, rc: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        super().__init__(f"{host}: command failed (exit {rc}): {command}" + (f"\n{tail}" if tail else ""))
        self.host = host
        self.command = command
        self.rc = rc
        self.stderr = stderr


class ApplyError(MailprovError):
    """Applying a plan failed on a host (the report says whether it was rolled back)."""


class LabError(MailprovError):
    """The lab could not build, start or stop a host."""
