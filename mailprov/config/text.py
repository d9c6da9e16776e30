"""Safe text: the one definition of which characters a value may hold.

Used by every string type of the site model (mailprov.config.types) and by every error message
(mailprov.errors), so a value never reaches a config file, a command or the admin's terminal holding a
character that ends a line for some reader, reorders what a reviewer sees, or cannot be encoded.
Standard library only: errors.py imports it.
"""

from __future__ import annotations

import unicodedata

# Unicode categories no value may hold: Cc (C0 and C1 controls, DEL, U+0085), Cf (format: bidi overrides
# and isolates, zero-width characters, BOM, soft hyphen …), Cs (lone surrogates: not encodable as UTF-8),
# Zl and Zp (U+2028, U+2029). Each of them either ends a line for some reader (Python's splitlines, a
# terminal, a log viewer), reorders what a reviewer sees, or cannot be written to a file at all.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def unsafe_char(value: str) -> str | None:
    """The first character of value that is not safe text, or None."""
    for char in value:
        if unicodedata.category(char) in UNSAFE_CATEGORIES:
            return char
    return None


def describe_char(char: str) -> str:
    """U+2028 (LINE SEPARATOR): a character named without printing it."""
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cs":
        name = "lone surrogate"
    elif not name and unicodedata.category(char) == "Cc":
        name = {"\n": "newline", "\r": "carriage return", "\t": "tab", "\x00": "NUL", "\x1b": "escape"}.get(
            char, "control character"
        )
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def printable(text: str, keep: str = "\n") -> str:
    """text with every unsafe character (except those in keep) shown as an escape, for messages."""
    if unsafe_char(text) is None:
        return text
    return "".join(
        char
        if char in keep or unicodedata.category(char) not in UNSAFE_CATEGORIES
        else (f"\\u{ord(char):04x}" if ord(char) > 0xFF else f"\\x{ord(char):02x}")
        for char in text
    )


def safe_text(value: str) -> str:
    """Refuse control, line-separator, format (bidi, zero-width) and surrogate characters."""
    char = unsafe_char(value)
    if char is not None:
        raise ValueError(
            f"must not contain {describe_char(char)}: newlines, control, bidi or other invisible "
            "format characters are never allowed"
        )
    return value
