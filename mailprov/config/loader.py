"""Load site.yaml into a Site, with errors that name file, line and field.

ruamel.yaml keeps the line of every key and list item; pydantic's error locations are mapped back to
them, so the admin reads `site.yaml:42  users.0.login: … (did you mean …?)` and nothing else.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from mailprov.config import model as model_module
from mailprov.config.model import Site, SiteRuleError
from mailprov.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    line: int | None
    field: str
    message: str


def load_site(path: str | Path) -> Site:
    """Read and validate a site file. Raises ConfigError listing every problem with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the site file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the site file is not UTF-8 text") from None
    return parse_site(text, str(path))


def parse_site(text: str, filename: str = "site.yaml") -> Site:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{filename}{line}  YAML: {exc.problem or exc.context}") from None
    except Exception as exc:  # ruamel raises several unrelated classes for malformed input
        raise ConfigError(f"{filename}  YAML: {exc}") from None
    if not isinstance(document, CommentedMap):
        raise ConfigError(f"{filename}:1  the site file must be a mapping (domain:, hosts:, …)")
    try:
        return Site.model_validate(_plain(document))
    except ValidationError as exc:
        problems = [_problem(document, err) for err in exc.errors()]
        raise ConfigError(format_problems(filename, problems)) from None


def format_problems(filename: str, problems: Sequence[Problem]) -> str:
    lines = [f"{filename} is invalid ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
    for p in sorted(problems, key=lambda p: (p.line or 0, p.field)):
        where = f"{filename}:{p.line}" if p.line else filename
        lines.append(f"  {where}  {p.field or '(top level)'}: {p.message}")
    return "\n".join(lines)


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers → plain dicts/lists/scalars for pydantic."""
    if isinstance(node, CommentedMap):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _problem(document: CommentedMap, err: Any) -> Problem:
    loc: tuple[Any, ...] = tuple(err["loc"])
    message: str = err["msg"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, SiteRuleError):
        loc = tuple(int(p) if p.isdigit() else p for p in cause.loc.split("."))
        message = cause.message
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    # pydantic adds the union member or validator name to loc for some types; drop non-key parts
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}" + _did_you_mean(str(loc[-1]))
    return Problem(_line_of(document, loc), ".".join(str(p) for p in loc), message)


def _line_of(document: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest part of loc that exists in the YAML document."""
    node = document
    line: int | None = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line if line is not None else 1


def _field_names() -> list[str]:
    names: set[str] = set()
    for obj in vars(model_module).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            names.update(obj.model_fields)
    return sorted(names)


_FIELDS = _field_names()


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, _FIELDS, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""
