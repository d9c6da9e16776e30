"""Constrained string types for the site model.

Every value that reaches a config file or a command line passes one of these checks, so no value can
inject a config line (newline, control characters, `#`, list-splitting whitespace) or a command. Each
starts from safe_text (mailprov.config.text), the one definition of the characters a value may hold.
Each validator raises ValueError with a sentence the admin can act on.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

from mailprov.config.text import safe_text

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LOCAL_PART = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}$")
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_ABS_PATH = re.compile(r"^/[A-Za-z0-9._+@/-]*$")
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _token(value: str) -> str:
    """One word in a Postfix/Dovecot list: no whitespace, commas, `#` or quotes."""
    safe_text(value)
    if not value:
        raise ValueError("must not be empty")
    if re.search(r"[\s,#\"'`;|&$<>(){}\\]", value):
        raise ValueError("must be a single word without spaces, commas, quotes, `#` or shell characters")
    return value


def _selector(value: str) -> str:
    """A DKIM selector: one DNS label (it names <selector>._domainkey.<domain> and a key file)."""
    safe_text(value)
    value = value.lower()
    if not _SELECTOR.match(value):
        raise ValueError(
            f"{value!r} is not a DKIM selector: one DNS label of letters, digits and inner hyphens, e.g. mail2026"
        )
    return value


def _hostname(value: str) -> str:
    safe_text(value)
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a valid host name (letters, digits, hyphens and dots)")
    return value.lower()


def _fqdn(value: str) -> str:
    value = _hostname(value)
    if "." not in value:
        raise ValueError(f"{value!r} must be a fully qualified name such as mail.example.com")
    return value


def _address(value: str) -> str:
    """A host name or an IP address (SSH target)."""
    safe_text(value)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _hostname(value)
    # ipaddress accepts any characters after `%` in an IPv6 zone index ("fe80::1%$(reboot)")
    zone = address.scope_id if isinstance(address, ipaddress.IPv6Address) else None
    if zone is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", zone):
        raise ValueError(f"{value!r}: the zone after `%` must be an interface name such as eth0")
    return str(address)


def _login(value: str) -> str:
    safe_text(value)
    if not _LOGIN.match(value):
        raise ValueError(
            f"{value!r} is not a valid login: lower-case letters, digits, `_` and `-`, starting with a letter"
        )
    return value


def _local_part(value: str) -> str:
    safe_text(value)
    if not _LOCAL_PART.match(value):
        raise ValueError(f"{value!r} is not a valid local name: lower-case letters, digits, `.`, `_`, `+`, `-`")
    return value


def _email(value: str) -> str:
    safe_text(value)
    local, sep, domain = value.partition("@")
    if not sep:
        raise ValueError(f"{value!r} is not an e-mail address (local@domain)")
    _local_part(local.lower())
    _fqdn(domain)
    return f"{local.lower()}@{domain.lower()}"


def _cidr(value: str) -> str:
    safe_text(value)
    if "%" in value:  # ipaddress accepts an IPv6 zone index with any characters; a network has none
        raise ValueError(f"{value!r}: a network has no `%zone` part")
    try:
        return str(ipaddress.ip_network(value))
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 network (e.g. 192.168.0.0/24)") from None
    raise ValueError(f"{value!r} has host bits set; did you mean {loose}?")


def _destination(value: str) -> str:
    """An item of mydestination: a host name or one of Postfix's own $myhostname/$mydomain forms."""
    safe_text(value)
    if re.fullmatch(r"\$(myhostname|mydomain)|localhost\.\$mydomain", value):
        return value
    return _hostname(value)


def _param_name(value: str) -> str:
    if not _PARAM_NAME.fullmatch(value):  # not match(): `$` would accept a trailing newline
        raise ValueError(f"{value!r} is not a valid parameter name (lower-case letters, digits and `_`)")
    return value


def _config_value(value: str) -> str:
    """A value for one config line: one line, no comment character, no block syntax."""
    safe_text(value)
    if "#" in value:
        raise ValueError("must not contain `#` (the config file would read it as a comment)")
    if re.search(r"[{}]", value) or value.lstrip().startswith("!"):
        raise ValueError("must not contain `{`, `}` or start with `!` (config block or include syntax)")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _dovecot_value(value: str) -> str:
    """A Dovecot setting value: a config value that Dovecot reads literally."""
    _config_value(value)
    if value.startswith("<"):
        raise ValueError(
            "must not start with `<` (Dovecot would read the named file into the setting): "
            "write the value itself, not a file to read it from"
        )
    if value.endswith("\\"):
        raise ValueError("must not end with `\\` (Dovecot would join the next config line to it)")
    return value


def _local_path(value: str) -> str:
    """A path on the admin's machine (secret files, keys, known_hosts): one line; `~/` but not `~user`."""
    safe_text(value)
    if not value:
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    if value.startswith("~") and not (value == "~" or value.startswith("~/")):
        raise ValueError(f"{value!r}: `~user/` paths are not expanded here: write the full path (or `~/…`)")
    return value


def _text(value: str) -> str:
    """Free text such as a full name or a reject message: printable, one line."""
    safe_text(value)
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _gecos(value: str) -> str:
    _text(value)
    if re.search(r"[:,=\\]", value):
        raise ValueError("must not contain `:`, `,`, `=` or `\\` (they are field separators in /etc/passwd)")
    if re.search(r"[;|&$`<>\"#(){}]", value):
        raise ValueError('must not contain shell characters (; | & $ ` < > " # parentheses or braces)')
    return value


def _abs_path(value: str) -> str:
    safe_text(value)
    if not _ABS_PATH.match(value) or "/../" in value or value.endswith("/.."):
        raise ValueError(f"{value!r} must be an absolute path of letters, digits and `._+@/-`")
    return value


def _x509_subject(value: str) -> str:
    safe_text(value)
    if not re.fullmatch(r"(/[A-Za-z]+=[A-Za-z0-9 .,@_'-]+)+", value):
        raise ValueError(
            "write an X.509 subject such as /C=US/O=Example/CN=mail.example.com "
            "(each part /KEY=value; values of letters, digits, spaces and . , @ _ ' -)"
        )
    return value


def _env_name(value: str) -> str:
    safe_text(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("an environment variable name: letters, digits and `_`, e.g. MAILPROV_ALICE_PASSWORD")
    return value


def _inet_interfaces(value: str) -> str:
    safe_text(value)
    if value in ("all", "loopback-only", "localhost"):
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("write `all`, `loopback-only`, `localhost` or one IP address (no `%zone`)") from None
    if "%" in value:
        raise ValueError("write `all`, `loopback-only`, `localhost` or one IP address (no `%zone`)")
    return value


_REPO_URL = re.compile(r"^(https?|ftp|file)://[A-Za-z0-9._~:/%@+=-]+$")


def _repo_url(value: str) -> str:
    """A package repository's base URL (http, https, ftp or file), written into a .repo file: one token,
    no quotes or shell characters. `$basearch` and `$releasever` are yum's own variables."""
    safe_text(value)
    if not _REPO_URL.match(value.replace("$basearch", "").replace("$releasever", "")):
        raise ValueError(f"{value!r} is not a repository URL such as http://mirror.example.net/epel/7/$basearch/")
    return value


def _crypt_hash(value: str) -> str:
    if not re.fullmatch(r"\$6\$(rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}", value):
        raise ValueError("must be a SHA-512-crypt hash ($6$salt$…), e.g. from `openssl passwd -6`")
    return value


Destination = Annotated[str, AfterValidator(_destination)]
Token = Annotated[str, AfterValidator(_token)]
Hostname = Annotated[str, AfterValidator(_hostname)]
DkimSelector = Annotated[str, AfterValidator(_selector)]
Fqdn = Annotated[str, AfterValidator(_fqdn)]
Address = Annotated[str, AfterValidator(_address)]
Login = Annotated[str, AfterValidator(_login)]
LocalPart = Annotated[str, AfterValidator(_local_part)]
Email = Annotated[str, AfterValidator(_email)]
Cidr = Annotated[str, AfterValidator(_cidr)]
ParamName = Annotated[str, AfterValidator(_param_name)]
ConfigValue = Annotated[str, AfterValidator(_config_value)]
DovecotValue = Annotated[str, AfterValidator(_dovecot_value)]
LocalPath = Annotated[str, AfterValidator(_local_path)]
Text = Annotated[str, AfterValidator(_text)]
Gecos = Annotated[str, AfterValidator(_gecos)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
CryptHash = Annotated[str, AfterValidator(_crypt_hash)]
X509Subject = Annotated[str, AfterValidator(_x509_subject)]
EnvName = Annotated[str, AfterValidator(_env_name)]
InetInterfaces = Annotated[str, AfterValidator(_inet_interfaces)]
RepoUrl = Annotated[str, AfterValidator(_repo_url)]
