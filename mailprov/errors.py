"""One error hierarchy for mailprov.

Messages are written for the admin: they say what is wrong and, where we know it, what to do.
Nothing here prints; the CLI maps these to output and exit codes.
"""

from __future__ import annotations


class MailprovError(Exception):
    """Base of every error mailprov raises on purpose."""

    exit_code = 1


class ConfigError(MailprovError):
    """The site file (or another input) is invalid. Nothing was changed anywhere."""

    exit_code = 2


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
