"""Load site.yaml into a Site, with errors that name file, line and field.

ruamel.yaml keeps the line of every key and list item; pydantic's error locations are mapped back to
them, so the admin reads `site.yaml:42  users.0.login: … (did you mean …?)` and nothing else.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

from mailprov.config import model as model_module
from mailprov.config.model import Site, SiteRuleError
from mailprov.config.text import describe_char, printable
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


# YAML structure limits, checked on the event stream before anything is built: a site never needs more,
# and each of them stops a document that costs far more to load than its size (an alias bomb of a few
# hundred bytes expands to a billion nodes; an alias inside its own anchor is a cycle; thousands of `[`
# exhaust the recursion of every later step).
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000  # nodes that aliases add, counted as if each alias were written out


def parse_site(text: str, filename: str = "site.yaml") -> Site:
    # Aliases need the event scan before anything is built (a bomb is small as text, huge as values);
    # a site without `&` or `*` has none, and only its depth is checked, on what the fast loader built.
    if "&" in text or "*" in text:
        _check_structure(text, filename)
    # The fast (C, YAML 1.2) loader for the common case of a valid site; the round-trip loader, which
    # keeps line numbers, when there are errors to place. Both refuse duplicate keys. libyaml is stricter
    # than ruamel's own parser in corners (`2001:db8::/32` in a flow list): the round-trip loader decides.
    try:
        document = _load(text, filename, "safe")
    except ConfigError:
        _check_structure(text, filename)  # too deep for the loader: refused at its line
        document = _load(text, filename, "rt")
    if _deeper_than(document, MAX_DEPTH):
        _check_structure(text, filename)  # raises, naming the line
    if not isinstance(document, dict):
        raise ConfigError(f"{filename}:1  the site file must be a mapping (domain:, hosts:, …)")
    try:
        return Site.model_validate(_plain(document))
    except ValidationError as exc:
        located = _load(text, filename, "rt")
        problems = [_problem(located, err) for err in exc.errors()]
        raise ConfigError(format_problems(filename, problems)) from None


def _load(text: str, filename: str, typ: str) -> Any:
    yaml = YAML(typ=typ)
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except Exception as exc:  # ruamel raises several unrelated classes for malformed input
        raise _yaml_error(exc, text, filename) from None


def _yaml_error(exc: Exception, text: str, filename: str) -> ConfigError:
    """A YAML library error as `FILE:LINE  YAML: reason`, one line, nothing raw."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ":1"
        return ConfigError(f"{filename}{line}  YAML: {exc.problem or exc.context}")
    if isinstance(exc, ReaderError):
        position = exc.position if isinstance(exc.position, int) else 0
        number = text[:position].count("\n") + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return ConfigError(
            f"{filename}:{number}  YAML: the file holds {describe_char(char)}, which YAML does not allow: remove it"
        )
    if isinstance(exc, RecursionError):
        return ConfigError(f"{filename}:1  YAML: nested too deeply")
    reason = str(exc).split("\n", 1)[0]
    return ConfigError(f"{filename}:1  YAML: {reason}")


_LEADING_FIELD = re.compile(r"([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_.@+-]+)*)(?::\s*|\s+)")


def locate(error: ConfigError, site_path: str | Path) -> ConfigError:
    """error placed in the site file: `FILE:LINE  field.path: reason`.

    For refusals found after loading (a dialect lacking a field, an unreadable tls.files): the field is
    error.field, or else the dotted path the message starts with when that path exists in the file
    (`postfix.maillog_file needs Postfix 3.4 …`). An error that names no field comes back unchanged.
    """
    filename = str(site_path)
    reason = getattr(error, "reason", str(error))
    field = getattr(error, "field", None)
    try:
        document = _load(Path(site_path).read_text(encoding="utf-8"), filename, "rt")
    except (OSError, UnicodeDecodeError, ConfigError):
        return error
    if field is None:
        match = _LEADING_FIELD.match(reason)
        if match is None:
            return error
        loc = _split_rule_loc(document, match.group(1))
        if not _exists(document, loc):
            return error
        field, reason = match.group(1), reason[match.end() :]
    loc = _split_rule_loc(document, field)
    placed = ConfigError(
        format_problems(
            filename,
            [Problem(_line_of(document, loc), ".".join(_path_part(p) for p in loc), reason)],
            heading="does not fit this host",
        ),
        field=field,
    )
    return placed


def secret_problems(site: Site, site_path: str | Path) -> list[str]:
    """`FILE:LINE  field: reason` for every secret reference that cannot be read here and now (an unset
    variable, a missing or unfit file). `validate` warns with them; plan and apply refuse before
    connecting (require_secrets)."""
    from mailprov.config.secrets import resolve  # secrets imports the model, which this module loads

    refs: list[tuple[str, Any]] = [
        (f"hosts.{i}.ssh.sudo_password", h.ssh.sudo_password) for i, h in enumerate(site.hosts) if h.ssh.sudo_password
    ]
    refs += [(f"users.{i}.password", u.password) for i, u in enumerate(site.users) if u.password]
    if site.dns is not None:
        refs.append(("dns.tsig_key", site.dns.tsig_key))
    base_dir = Path(site_path).resolve().parent
    found: list[Problem] = []
    for field, ref in refs:
        try:
            resolve(ref, base_dir)
        except ConfigError as exc:
            found.append(Problem(None, field, exc.reason))
    if not found:
        return []
    try:
        document = _load(Path(site_path).read_text(encoding="utf-8"), str(site_path), "rt")
    except (OSError, UnicodeDecodeError, ConfigError):
        return [f"{site_path}  {p.field}: {p.message}" for p in found]
    lines = []
    for p in found:
        loc = _split_rule_loc(document, p.field)
        lines.append(f"{site_path}:{_line_of(document, loc)}  {p.field}: {p.message}")
    return lines


def require_secrets(site: Site, site_path: str | Path) -> None:
    """ConfigError listing every secret that cannot be read, before anything connects anywhere."""
    problems = secret_problems(site, site_path)
    if problems:
        count = f"{len(problems)} secret{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"{site_path}: {count} cannot be read:\n" + "\n".join(f"  {p}" for p in problems))


def _exists(document: Any, loc: tuple[Any, ...]) -> bool:
    node = document
    for part in loc:
        if not _has(node, part):
            return False
        node = node[part]
    return True


def _deeper_than(document: Any, limit: int) -> bool:
    """True when containers nest more than limit levels (iterative: any depth is safe to measure)."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _check_structure(text: str, filename: str) -> None:
    """Refuse deep nesting, alias cycles, and alias expansion beyond the budgets, with the line."""
    try:
        events = list(YAML(typ="safe").parse(text))
    except Exception:  # libyaml is stricter in corners: the round-trip parser decides (and names the error)
        try:
            events = list(YAML(typ="rt").parse(text))
        except Exception as exc:
            raise _yaml_error(exc, text, filename) from None
    sizes: dict[str, int] = {}  # anchor → nodes of the anchored value, aliases expanded
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes so far) of each open collection
    aliases = alias_nodes = 0

    def refuse(event: Any, reason: str) -> None:
        mark = getattr(event, "start_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{filename}{line}  YAML: {reason}")

    def add(count: int) -> None:
        if open_nodes:
            anchor, nodes = open_nodes[-1]
            open_nodes[-1] = (anchor, nodes + count)

    for event in events:
        kind = type(event).__name__
        if kind in ("MappingStartEvent", "SequenceStartEvent"):
            if len(open_nodes) >= MAX_DEPTH:
                refuse(event, f"nested more than {MAX_DEPTH} levels deep; a site file never needs that")
            open_nodes.append((event.anchor, 1))
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            anchor, nodes = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = nodes
            add(nodes)
        elif kind == "ScalarEvent":
            if event.anchor is not None:
                sizes[event.anchor] = 1
            add(1)
        elif kind == "AliasEvent":
            aliases += 1
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                refuse(event, f"the alias *{printable(event.anchor, keep='')} is inside its own anchor (a cycle)")
            if aliases > MAX_ALIASES:
                refuse(event, f"more than {MAX_ALIASES} aliases (`*name`); write the values out instead")
            size = sizes.get(event.anchor, 1)
            alias_nodes += size
            if alias_nodes > MAX_ALIAS_NODES:
                refuse(
                    event,
                    f"the aliases (`*name`) expand to more than {MAX_ALIAS_NODES:,} values; "
                    "write the values out instead",
                )
            add(size)


def format_problems(filename: str, problems: Sequence[Problem], heading: str = "is invalid") -> str:
    lines = [f"{filename} {heading} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
    for p in sorted(problems, key=lambda p: (p.line or 0, p.field)):
        where = f"{filename}:{p.line}" if p.line else filename
        # one line per problem, whatever a message quotes
        lines.append(f"  {where}  {p.field or '(top level)'}: {printable(p.message, keep='')}")
    return "\n".join(lines)


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers → plain dicts/lists/scalars for pydantic."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _problem(document: CommentedMap, err: Any) -> Problem:
    loc: tuple[Any, ...] = tuple(err["loc"])
    message: str = err["msg"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, SiteRuleError):
        loc = _split_rule_loc(document, cause.loc)
        message = cause.message
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    loc = _key_parts(document, loc)
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}" + _did_you_mean(str(loc[-1]))
    return Problem(_line_of(document, loc), ".".join(_path_part(p) for p in loc), message)


# Parts pydantic adds to loc that are no key: "[key]", validator names ("function-after[_hostname(), str]"),
# union members ("enum[AccessAction]", or "constrained-str" below a scalar).
_TAGGED_PART = re.compile(r"\[key\]|[a-z]+(-[a-z]+)*\[.*\]")
_MEMBER_PART = re.compile(r"[a-z]+(-[a-z]+)*")


def _key_parts(document: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """loc without pydantic's internal parts; a part that is a key in the document is always kept."""
    node, kept = document, []
    for part in loc:
        if _has(node, part):
            node = node[part]
        elif isinstance(part, str) and (
            _TAGGED_PART.fullmatch(part)
            or (_MEMBER_PART.fullmatch(part) and node is not None and not isinstance(node, CommentedMap))
        ):
            continue
        else:
            node = None
        kept.append(part)
    return tuple(kept)


def _split_rule_loc(document: Any, dotted: str) -> tuple[Any, ...]:
    """A SiteRuleError's dotted loc as keys; a key may itself hold dots (`aliases.j.smith`)."""
    parts, node, out = dotted.split("."), document, []
    i = 0
    while i < len(parts):
        step = 1
        if isinstance(node, CommentedMap):
            step = next((n for n in range(len(parts) - i, 0, -1) if ".".join(parts[i : i + n]) in node), 1)
        key: Any = ".".join(parts[i : i + step])
        if isinstance(node, CommentedSeq) and key.isdigit():
            key = int(key)
        out.append(key)
        node = node[key] if _has(node, key) else None
        i += step
    return tuple(out)


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, CommentedMap):
        return key in node
    return isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node)


def _path_part(part: Any) -> str:
    """A key as the admin wrote it, quoted when it is not a plain word (a hostile key may hold a newline)."""
    text = str(part)
    return text if re.fullmatch(r"[\w.@+-]+", text, re.ASCII) else repr(text)


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
