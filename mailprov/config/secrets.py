"""Secrets: resolved from the admin's environment or files, carried as values that never print.

A `Secret` masks itself in str/repr, so a secret that slips into a log line, a traceback or a plan shows
as `***`. Code that really needs the value calls `reveal()`, and says why.
"""

from __future__ import annotations

import hashlib
import os
import secrets as _random
import stat
from dataclasses import dataclass, field
from pathlib import Path

from mailprov.config.model import SecretRef
from mailprov.config.text import unsafe_char
from mailprov.errors import ConfigError

MASK = "***"


@dataclass(frozen=True)
class Secret:
    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"


MAX_SECRET_BYTES = 64 * 1024


def resolve(ref: SecretRef, base_dir: Path) -> Secret:
    """Read a secret reference. Files are read relative to the site file's folder.

    A secret is one line of safe text: a newline in a sudo password would be run by the root shell after
    sudo read the first line, and would defeat masking (the parts are not the secret). Messages name the
    source and never a character of the value.
    """
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(f"secret {ref.describe()} is not set")
        _one_safe_line(value, f"secret {ref.describe()}", "export it without the newline")
        return Secret(value)
    assert ref.file is not None
    path = local_path(ref.file, base_dir)
    text = read_small_file(path, what="secret file", max_bytes=MAX_SECRET_BYTES)
    value = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if not value or "\n" in value or "\r" in value:
        raise ConfigError(f"secret file {path} must hold exactly one line")
    _one_safe_line(value, f"secret file {path}", "write the secret on one line")
    return Secret(value)


def local_path(value: str, base_dir: Path) -> Path:
    """A path of the site file (`~/…`, absolute, or relative to the site's folder) on the admin's machine."""
    path = Path(os.path.expanduser(value)) if value == "~" or value.startswith("~/") else Path(value)
    return path if path.is_absolute() else base_dir / path


def read_small_file(path: Path, *, what: str, max_bytes: int, encoding: str = "utf-8") -> str:
    """The text of a small regular file, or ConfigError: never blocks on a FIFO or a device, never reads
    more than max_bytes (/dev/zero), and never shows the content (it may be a secret)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None
    except ValueError:  # NUL in the path
        raise ConfigError(f"{what} {path!r} is not a valid path") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file (a pipe, device or directory): give a file")
        if info.st_size > max_bytes:
            raise ConfigError(f"{what} {path} is larger than {max_bytes // 1024} KiB: is it the right file?")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {path} is larger than {max_bytes // 1024} KiB: is it the right file?")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not {encoding.upper()} text: save it as {encoding.upper()}") from None


def _one_safe_line(value: str, where: str, fix: str) -> None:
    if unsafe_char(value) is not None:
        raise ConfigError(
            f"{where} holds a line break, control or invisible format character: a secret is one line of text ({fix})"
        )


# --- SHA-512-crypt ($6$), as glibc's crypt(3) computes it --------------------------------------------
# Implemented here because Python's crypt module is gone in 3.13 and the target may have no tool to hash.

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ROUNDS_DEFAULT = 5000


def new_salt() -> str:
    return "".join(_random.choice(_ALPHABET) for _ in range(16))


def sha512_crypt(password: str, salt: str, rounds: int | None = None) -> str:
    """Return `$6$[rounds=N$]salt$hash` for password (salt truncated to 16 characters)."""
    key = password.encode("utf-8")
    salt = salt[:16]
    salt_b = salt.encode("ascii")
    n = _ROUNDS_DEFAULT if rounds is None else max(1000, min(999_999_999, rounds))

    alt = hashlib.sha512(key + salt_b + key).digest()
    a = hashlib.sha512(key + salt_b)
    a.update(_repeat(alt, len(key)))
    length = len(key)
    while length:
        a.update(alt if length & 1 else key)
        length >>= 1
    digest = a.digest()

    p_bytes = _repeat(hashlib.sha512(key * len(key)).digest(), len(key))
    s_bytes = _repeat(hashlib.sha512(salt_b * (16 + digest[0])).digest(), len(salt_b))

    for i in range(n):
        c = hashlib.sha512()
        c.update(p_bytes if i & 1 else digest)
        if i % 3:
            c.update(s_bytes)
        if i % 7:
            c.update(p_bytes)
        c.update(digest if i & 1 else p_bytes)
        digest = c.digest()

    order = [
        (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
        (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
        (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
    ]  # fmt: skip
    out = "".join(_b64_from_24bit(digest[x], digest[y], digest[z], 4) for x, y, z in order)
    out += _b64_from_24bit(0, 0, digest[63], 2)
    prefix = "$6$" + (f"rounds={n}$" if rounds is not None else "")
    return f"{prefix}{salt}${out}"


def verify_sha512_crypt(password: str, hashed: str) -> bool:
    """True when `hashed` ($6$…) is the hash of password."""
    parts = hashed.split("$")
    if len(parts) < 4 or parts[1] != "6":
        return False
    rounds = None
    if parts[2].startswith("rounds="):
        rounds = int(parts[2][7:])
        salt = parts[3]
    else:
        salt = parts[2]
    return _random.compare_digest(sha512_crypt(password, salt, rounds), hashed)


def _repeat(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    chars = []
    for _ in range(n):
        chars.append(_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(chars)
