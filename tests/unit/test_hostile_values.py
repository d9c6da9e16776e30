"""No value in a site file can inject a config line or a shell command.

For every string field that reaches a config file or a command, and every hostile class of character,
the example site is rewritten with that one value made hostile, and `mailprov validate` must answer
exit 2 with `FILE:LINE  field.path: …` (never a traceback), and `mailprov render` must write nothing.

A field may legitimately accept a class (a space in a full name): that is listed per field in `allowed`,
with the reason, and tested the other way round: the value validates and lands on one line.
`test_every_string_field_is_covered` walks the model, so a new string field without cases fails here.
"""

from __future__ import annotations

import itertools
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union

import pytest
from click.testing import CliRunner
from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mailprov.cli import main
from mailprov.config.model import Site
from mailprov.config.restrictions import Restriction
from mailprov.config.secrets import sha512_crypt

# --- hostile classes: a payload appended to a valid value ---------------------------------------------

HOSTILE: dict[str, str] = {
    "trailing newline": "\n",
    "newline + line": "\ninjected = yes",
    "carriage return": "\rinjected = yes",
    "NUL": "\x00",
    "escape sequence": "\x1b[2J",
    "tab": "\tx",
    "DEL": "\x7f",
    "comment #": "#x",
    "space": " x",
    "comma": ",x",
    "semicolon": ";reboot",
    "$(…)": "$(reboot)",
    "backticks": "`reboot`",
    "pipe": "|reboot",
    "ampersand": "&reboot",
    "double quote": '"x',
    "single quote": "'x",
    "braces": "{x}",
}
CONTROL = frozenset({"trailing newline", "newline + line", "carriage return", "NUL", "escape sequence", "tab", "DEL"})
SHELL = frozenset({"semicolon", "$(…)", "backticks", "pipe", "ampersand"})
QUOTES = frozenset({"double quote", "single quote"})

# Why a class is fine in a field (see Field.allowed).
TEXT_LINE = frozenset(HOSTILE) - CONTROL
CONFIG_VALUE = frozenset({"space", "comma"} | SHELL | QUOTES)


@dataclass(frozen=True)
class Field:
    """One string field of the model, at one place in the example site."""

    name: str  # as the model walk names it: list items `*`, mapping keys `<key>`, mapping values `*`
    path: tuple[str | int, ...]  # where in the site YAML
    base: str  # a valid value there; the hostile value is base + payload
    key: bool = False  # the value is the mapping key at path[-1]
    reported: tuple[str | int, ...] | None = None  # where the error points, when not at path
    setup: tuple[tuple[tuple[str | int, ...], Any], ...] = ()  # other values the case needs
    drop: tuple[tuple[str | int, ...], ...] = ()
    allowed: frozenset[str] = frozenset()
    why: str = ""  # why the allowed classes are safe
    rendered_in: str | None = None  # file (under --out) where the value lands

    @property
    def id(self) -> str:
        return f"{self.name}={self.base}"


HASH = sha512_crypt("correct horse", "saltsalt")
RBL = ("restrictions", "recipient", 7)
POLICY = ("restrictions", "recipient", 9)
TABLE = ("restrictions", "recipient", 6)

DNS_SETUP = (
    (("dns", "server"), "192.0.2.53"),
    (("dns", "zone"), "example.com"),
    (("dns", "tsig_key", "env"), "MAILPROV_TSIG"),
)

FIELDS: list[Field] = [
    Field("domain", ("domain",), "example.com"),
    Field("hosts.*.name", ("hosts", 0, "name"), "mail.example.com"),
    Field("hosts.*.ssh.address", ("hosts", 0, "ssh", "address"), "192.168.0.10"),
    Field("hosts.*.ssh.address", ("hosts", 0, "ssh", "address"), "gw.example.com"),
    Field("hosts.*.ssh.address", ("hosts", 0, "ssh", "address"), "fe80::1%eth0"),
    Field("hosts.*.public_address", ("hosts", 0, "public_address"), "203.0.113.10"),
    Field("hosts.*.public_address", ("hosts", 0, "public_address"), "2001:db8::10"),
    Field("hosts.*.ssh.user", ("hosts", 0, "ssh", "user"), "root"),
    Field("hosts.*.ssh.sudo_password.env", ("hosts", 0, "ssh", "sudo_password", "env"), "MAILPROV_SUDO"),
    Field("myorigin", ("myorigin",), "$mydomain"),
    Field("mydestination.*", ("mydestination", 0), "$myhostname"),
    Field("mydestination.*", ("mydestination", 2), "localhost"),
    Field("mynetworks.*", ("mynetworks", 0), "192.168.0.0/24"),
    Field("mynetworks.*", ("mynetworks", 0), "2001:db8::/32"),
    Field("relay_domains.*", ("relay_domains", 0), "example.net"),
    Field("mailbox", ("mailbox",), "maildir"),
    Field("users.*.login", ("users", 0, "login"), "john"),
    Field(
        "users.*.full_name",
        ("users", 0, "full_name"),
        "John Smith",
        allowed=frozenset({"space", "single quote"}),
        why="a name such as John O'Brien; it goes to useradd -c as one argv word, and /etc/passwd "
        "separates fields with `:` and `,` (refused)",
    ),
    Field("users.*.password_hash", ("users", 0, "password_hash"), HASH, drop=(("users", 0, "password"),)),
    Field("users.*.password.env", ("users", 0, "password", "env"), "MAILPROV_JOHN_PASSWORD"),
    Field("users.*.aliases.*", ("users", 0, "aliases", 0), "jsmith"),
    Field("aliases.<key>", ("aliases", "root"), "root", key=True),
    Field("aliases.*.*", ("aliases", "root", 0), "john"),
    Field("aliases.*.*", ("aliases", "root", 0), "john@example.net"),
    # restrictions: a name, or the argument of each kind (table, DNS list, policy, seconds)
    Field(
        "restrictions.client.*",
        ("restrictions", "client", 0, "sleep"),
        "1",
        reported=("restrictions", "client", 0),
    ),
    Field(
        "restrictions.client.*",
        ("restrictions", "client", 0, "check_policy_service"),
        "inet:127.0.0.1:12525",
        reported=("restrictions", "client", 0),
    ),
    Field(
        "restrictions.client.*",
        ("restrictions", "client", 0, "check_policy_service"),
        "unix:private/policy",
        reported=("restrictions", "client", 0),
    ),
    Field("restrictions.helo.*", ("restrictions", "helo", 1), "reject_non_fqdn_helo_hostname"),
    Field(
        "restrictions.helo.*",
        ("restrictions", "helo", 1, "reject_rhsbl_helo"),
        "dbl.spamhaus.org",
        reported=("restrictions", "helo", 1),
    ),
    Field(
        "restrictions.sender.*",
        ("restrictions", "sender", 1, "reject_rhsbl_sender"),
        "dbl.spamhaus.org",
        reported=("restrictions", "sender", 1),
    ),
    Field("restrictions.relay.*", ("restrictions", "relay", 0), "permit_mynetworks"),
    Field("restrictions.recipient.*", (*RBL, "reject_rbl_client"), "zen.spamhaus.org", reported=RBL),
    Field("restrictions.recipient.*", (*RBL, "reject_rbl_client"), "zen.spamhaus.org=127.0.0.2", reported=RBL),
    Field("restrictions.recipient.*", (*POLICY, "check_policy_service"), "postgrey", reported=POLICY),
    Field("restrictions.recipient.*", (*TABLE, "check_sender_access"), "sender_access", reported=TABLE),
    Field("restrictions.data.*", ("restrictions", "data", 0), "reject_unauth_pipelining"),
    Field("sender_access.*.pattern", ("sender_access", 0, "pattern"), "myfriend@example.com"),
    Field("sender_access.*.pattern", ("sender_access", 4, "pattern"), "deals.marketing.com"),
    Field("sender_access.*.action", ("sender_access", 1, "action"), "REJECT"),
    Field("sender_access.*.action", ("sender_access", 1, "action"), "550"),
    Field(
        "sender_access.*.text",
        ("sender_access", 1, "text"),
        "go away",
        allowed=TEXT_LINE,
        why="the SMTP reply after REJECT is the rest of its line in the access table; Postfix reads `#` "
        "as a comment only at the start of a line and never gives the text to a shell",
        rendered_in="etc/postfix/sender_access",
    ),
    Field("sasl.mechanisms.*", ("sasl", "mechanisms", 0), "plain"),
    Field(
        "tls.generate.subject",
        ("tls", "generate", "subject"),
        "/C=US/O=Example/CN=mail.example.com",
        allowed=frozenset({"space", "comma", "single quote"}),
        why="an X.509 name such as /O=O'Reilly, Inc.; it goes to openssl req -subj as one argv word",
    ),
    Field("tls.cert_path", ("tls", "cert_path"), "/etc/pki/tls/certs/mail.pem"),
    Field("tls.key_path", ("tls", "key_path"), "/etc/pki/tls/private/mail.key"),
    Field("tls.security_level", ("tls", "security_level"), "may"),
    Field("tls.min_protocol", ("tls", "min_protocol"), "TLSv1.2"),
    Field("dovecot.protocols.*", ("dovecot", "protocols", 0), "imap"),
    Field(
        "dovecot.extra.<key>",
        ("dovecot", "extra", "login_greeting"),
        "login_greeting",
        key=True,
        setup=((("dovecot", "extra", "login_greeting"), "Mail ready"),),
    ),
    Field(
        "dovecot.extra.*",
        ("dovecot", "extra", "login_greeting"),
        "Mail ready",
        allowed=CONFIG_VALUE,
        why="a dovecot.conf value is the rest of its line: spaces separate list items, `$name` refers to "
        "another setting, and the file is never given to a shell",
        rendered_in="etc/dovecot/dovecot.conf",
    ),
    Field("postfix.inet_interfaces", ("postfix", "inet_interfaces"), "all"),
    Field("postfix.inet_interfaces", ("postfix", "inet_interfaces"), "192.168.0.10"),
    Field("postfix.inet_protocols", ("postfix", "inet_protocols"), "all"),
    Field("postfix.maillog_file", ("postfix", "maillog_file"), "/var/log/postfix.log"),
    Field(
        "postfix.extra.<key>",
        ("postfix", "extra", "smtpd_banner"),
        "smtpd_banner",
        key=True,
        setup=((("postfix", "extra", "smtpd_banner"), "$myhostname ESMTP"),),
    ),
    Field(
        "postfix.extra.*",
        ("postfix", "extra", "smtpd_banner"),
        "$myhostname ESMTP",
        allowed=CONFIG_VALUE,
        why="a main.cf value is the rest of its line: lists split on spaces and commas, `$name` and "
        "`$(name)` are Postfix's own parameter expansion, and main.cf is never given to a shell",
        rendered_in="etc/postfix/main.cf",
    ),
    Field("dkim.selector", ("dkim", "selector"), "mail2026"),
    Field("dkim.retire.*", ("dkim", "retire", 0), "mail2025"),
    Field("firewall.open.*", ("firewall", "open", 0), "smtp"),
    Field("firewall.lan_only.*", ("firewall", "lan_only", 0), "imap"),
    Field("firewall.ssh_from.*", ("firewall", "ssh_from", 0), "192.168.0.0/24"),
    Field("repositories.epel_baseurl", ("repositories", "epel_baseurl"), "http://mirror.example.net/epel/7/"),
    Field("repositories.archive_baseurl", ("repositories", "archive_baseurl"), "http://mirror.example.net/c7"),
    Field("spf.mechanisms.*", ("spf", "mechanisms", 0), "ip4:203.0.113.10"),
    Field("spf.mechanisms.*", ("spf", "mechanisms", 0), "include:_spf.example.net"),
    Field("spf.all", ("spf", "all"), "-all"),
    Field("dmarc.policy", ("dmarc", "policy"), "reject"),
    Field("dmarc.subdomain_policy", ("dmarc", "subdomain_policy"), "quarantine"),
    Field("dmarc.rua.*", ("dmarc", "rua", 0), "dmarc@example.com"),
    Field("dmarc.adkim", ("dmarc", "adkim"), "s"),
    Field("dmarc.aspf", ("dmarc", "aspf"), "s"),
    Field("dns.server", ("dns", "server"), "192.0.2.53", setup=DNS_SETUP),
    Field("dns.zone", ("dns", "zone"), "example.com", setup=DNS_SETUP),
    Field("dns.reverse_zones.*", ("dns", "reverse_zones", 0), "2.0.192.in-addr.arpa", setup=DNS_SETUP),
    Field("dns.tsig_key.env", ("dns", "tsig_key", "env"), "MAILPROV_TSIG", setup=DNS_SETUP),
]

# String fields that never reach a host: paths on the admin's machine that mailprov itself opens.
LOCAL_ONLY: dict[str, str] = {
    "hosts.*.ssh.identity_file": "SSH key file on the admin's machine, opened by paramiko",
    "hosts.*.ssh.known_hosts": "known_hosts file on the admin's machine, read by mailprov",
    "hosts.*.ssh.transport": "a choice (paramiko | openssh) mailprov reads; any other value is refused",
    "hosts.*.ssh.sudo_password.file": "secret file on the admin's machine; the secret itself never prints",
    "users.*.password.file": "secret file on the admin's machine; the password is hashed before use",
    "tls.files.cert": "read on the admin's machine; the host path is tls.cert_path",
    "tls.files.key": "read on the admin's machine; the host path is tls.key_path",
    "tls.files.ca": "read on the admin's machine; the host path is derived from the host name",
    "dns.tsig_key.file": "secret file on the admin's machine; the TSIG secret itself never prints",
}


# --- building the site file ----------------------------------------------------------------------------

SENTINEL = "HOSTILE-VALUE-GOES-HERE"
_yaml = YAML(typ="rt")
_yaml.width = 4096


def _yaml_string(value: str) -> str:
    """A YAML double-quoted scalar for any text (JSON escapes are YAML escapes; DEL must be escaped)."""
    return json.dumps(value).replace("\x7f", "\\u007f")


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, CommentedMap):
        return part in node
    return isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)


def _put(node: Any, part: str | int, value: Any) -> None:
    if isinstance(node, CommentedSeq) and part == len(node):
        node.append(value)
    else:
        node[part] = value


def _set(doc: CommentedMap, path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for part, following in itertools.pairwise(path):
        if not _has(node, part) or not isinstance(node[part], CommentedMap | CommentedSeq):
            _put(node, part, CommentedSeq() if isinstance(following, int) else CommentedMap())
        node = node[part]
    _put(node, path[-1], value)


def _template(example_text: str, f: Field) -> str:
    """The example as YAML text with SENTINEL where the field's value (or key) goes."""
    doc = _yaml.load(example_text)
    for path, value in f.setup:
        _set(doc, path, value)
    for path in f.drop:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    if f.key:
        parent: Any = doc
        for part in f.path[:-1]:
            parent = parent[part]
        position = list(parent).index(f.path[-1])
        parent.insert(position, SENTINEL, parent.pop(f.path[-1]))
    else:
        _set(doc, f.path, SENTINEL)
    lines: list[str] = []
    _yaml.dump(doc, _Lines(lines))
    text = "".join(lines)
    assert text.count(SENTINEL) == 1
    return text


class _Lines:
    def __init__(self, out: list[str]) -> None:
        self.out = out

    def write(self, data: str | bytes) -> None:
        self.out.append(data.decode() if isinstance(data, bytes) else data)


@dataclass
class SiteFile:
    path: Path
    line: int  # where the value is


def _site_file(tmp_path: Path, template: str, value: str) -> SiteFile:
    text = template.replace(SENTINEL, _yaml_string(value))
    line = next(n for n, content in enumerate(template.splitlines(), 1) if SENTINEL in content)
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return SiteFile(path, line)


def _expected_path(f: Field, value: str) -> str:
    if f.key:
        return ".".join(str(p) for p in f.path[:-1]) + "." + repr(value)
    return ".".join(str(p) for p in (f.reported or f.path))


@pytest.fixture(scope="module")
def templates() -> dict[str, str]:
    example = (Path(__file__).resolve().parents[2] / "inventories" / "example.com.yaml").read_text("utf-8")
    return {f.id: _template(example, f) for f in FIELDS}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# --- the matrix ----------------------------------------------------------------------------------------

REJECTED = [pytest.param(f, cls, id=f"{f.id}:{cls}") for f in FIELDS for cls in HOSTILE if cls not in f.allowed]
# render refuses through the same loader: every field, with a config-line and a command injection
RENDERED = [p for p in REJECTED if p.values[1] in ("newline + line", "$(…)")]
ALLOWED = [pytest.param(f, cls, id=f"{f.id}:{cls}") for f in FIELDS for cls in sorted(f.allowed)]


@pytest.mark.parametrize("f", FIELDS, ids=[f.id for f in FIELDS])
def test_the_valid_value_validates(tmp_path: Path, templates: dict[str, str], f: Field) -> None:
    """Each case starts from a valid site, so a refusal below is the payload's doing."""
    site = _site_file(tmp_path, templates[f.id], f.base)
    result = _cli("validate", str(site.path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("f", "cls"), REJECTED)
def test_hostile_value_is_refused_with_file_line_and_field(
    tmp_path: Path, templates: dict[str, str], f: Field, cls: str
) -> None:
    value = f.base + HOSTILE[cls]
    site = _site_file(tmp_path, templates[f.id], value)
    result = _cli("validate", str(site.path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    expected = f"{site.path}:{site.line}  {_expected_path(f, value)}: "
    assert expected in result.output, result.output
    # the offending characters are shown escaped, never raw on the terminal
    for ch in "\n\r\x00\x1b\x7f":
        if ch in HOSTILE[cls]:
            assert all(ch not in line for line in result.output.split("\n")[1:]), repr(result.output)


@pytest.mark.parametrize(("f", "cls"), RENDERED)
def test_render_writes_nothing_for_a_hostile_value(
    tmp_path: Path, templates: dict[str, str], f: Field, cls: str
) -> None:
    site = _site_file(tmp_path, templates[f.id], f.base + HOSTILE[cls])
    out = tmp_path / "out"
    result = _cli("render", str(site.path), "--facts", "debian12", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.rglob("*"))


@pytest.mark.parametrize(("f", "cls"), ALLOWED)
def test_allowed_class_is_accepted_and_stays_on_one_line(
    tmp_path: Path, templates: dict[str, str], f: Field, cls: str
) -> None:
    assert f.why, f"{f.name}: say why {sorted(f.allowed)} are safe there"
    value = f.base + HOSTILE[cls]
    site = _site_file(tmp_path, templates[f.id], value)
    result = _cli("validate", str(site.path))
    assert result.exit_code == 0, result.output
    if f.rendered_in is None:
        return
    (tmp_path / "base").mkdir()
    base_site = _site_file(tmp_path / "base", templates[f.id], f.base)
    outputs = {}
    for name, path in (("base", base_site.path), ("hostile", site.path)):
        result = _cli("render", str(path), "--facts", "debian12", "--out", str(tmp_path / name / "out"))
        assert result.exit_code == 0, result.output
        outputs[name] = (tmp_path / name / "out" / f.rendered_in).read_text("utf-8").splitlines()
    assert len(outputs["hostile"]) == len(outputs["base"])
    assert sum(value in line for line in outputs["hostile"]) == 1


# --- coverage: every string field of the model has cases ------------------------------------------------


def _string_fields(tp: Any, path: str) -> Iterator[str]:
    """Dotted names of the string leaves below type tp (list items `*`, keys `<key>`, values `*`)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        yield from _string_fields(typing.get_args(tp)[0], path)
    elif origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from _string_fields(arg, path)
    elif origin is Literal:
        if any(isinstance(a, str) for a in typing.get_args(tp)):
            yield path
    elif origin is tuple:
        yield from _string_fields(typing.get_args(tp)[0], f"{path}.*")
    elif origin is dict:
        key, value = typing.get_args(tp)
        yield from _string_fields(key, f"{path}.<key>")
        yield from _string_fields(value, f"{path}.*")
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            yield from _string_fields(info.annotation, f"{path}.{name}" if path else name)
    elif tp is str or tp is Restriction or (isinstance(tp, type) and issubclass(tp, Enum)):
        yield path


def test_every_string_field_is_covered() -> None:
    in_model = set(_string_fields(Site, ""))
    covered = {f.name for f in FIELDS} | set(LOCAL_ONLY)
    assert in_model - covered == set(), "string fields without hostile-value cases"
    assert covered - in_model == set(), "cases for fields the model no longer has"
    assert {
        "users.*.full_name",
        "postfix.extra.<key>",
        "restrictions.recipient.*",
    } <= in_model  # the walk works


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("mynetworks", 0), "fe80::%eth0/64"),  # ipaddress accepts any zone text: `fe80::%$(reboot)/64`
        (("mynetworks", 0), "fe80::%$(reboot)/64"),
        (("firewall", "ssh_from", 0), "fe80::%x;reboot/64"),
        (("hosts", 0, "ssh", "address"), "fe80::1%$(reboot)"),
        (("hosts", 0, "ssh", "address"), "fe80::1%eth0|reboot"),
        (("users", 0, "aliases", 0), "jsmith\n"),  # a literal backslash-n is no newline, but still no name
        (("domain",), "example.com."),
        (("tls", "cert_path"), "/etc/pki/../../root/.ssh/authorized_keys"),
        (("restrictions", "recipient", 9, "check_policy_service"), "inet:127.0.0.1:10023\nx"),
    ],
    ids=str,
)
def test_tricky_values_are_refused(tmp_path: Path, example_text: str, path: tuple[str | int, ...], value: str) -> None:
    f = Field("n/a", path, value)
    site = _site_file(tmp_path, _template(example_text, f), value)
    result = _cli("validate", str(site.path))
    assert result.exit_code == 2, result.output
    assert f"{site.path}:{site.line}  " in result.output, result.output
