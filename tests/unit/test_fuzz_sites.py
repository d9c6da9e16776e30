"""A property-based fuzzer of site files (issue 12): no site file can hurt the server, the admin's laptop
or a credential.

Every scalar, key and container of four seed sites (the example, the minimal one and two "every field"
sites) is mutated with hostile values: control and format characters, shell and config metacharacters,
YAML tricks, huge and wrong-typed values. Each mutated site goes through `load_site` and, when accepted,
`render_host` for five presets; then every rendered file is read the way its daemon reads it:

- main.cf: one logical line per parameter (continuations joined), every restriction list a sequence of
  known restriction names each followed by exactly its one argument, no name the site did not write
  (besides mailprov's own defaults), and no permit before reject_unauth_destination;
- dovecot.conf: balanced sections, every line a `name = value`, a section or a brace, no continuation,
  no `<file` include outside the certificate settings, one setting per name per section;
- aliases and sender_access: one entry per line, one line per entry of the site;
- the firewall: only the site's ports and networks;
- every file: nothing but safe text and newlines.

A refusal must read `FILE:LINE  field.path: reason` (or `FILE:LINE  YAML: …`), including refusals
found at render time (placed with loader.locate). Anything else — a traceback, a hang, an injection —
fails the test with the smallest site hypothesis finds.

The CI run is bounded and derandomized (a few seconds); benchmarks/fuzz_bench.py runs the same
properties for as long as it is asked to and prints figures.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from mailprov.config.loader import load_site, locate
from mailprov.config.model import Site
from mailprov.config.restrictions import SIMPLE, WITH_ARGUMENT
from mailprov.config.text import unsafe_char
from mailprov.errors import ConfigError, MailprovError
from mailprov.facts.platform import PRESETS
from mailprov.render import PORTS, Rendered, render_host

REPO = Path(__file__).resolve().parents[2]
FIVE_PRESETS = ("centos5", "centos7", "rocky9", "debian12", "ubuntu2404")
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"

EVERY_FIELD = """\
domain: example.net
hosts:
  - name: mx1.example.net
    public_address: 198.51.100.10
    mx_priority: 5
    ssh: {address: 192.0.2.10, port: 2222, user: admin, identity_file: ~/.ssh/id_ed25519,
          known_hosts: known_hosts, become: true, sudo_password: {env: MAILPROV_SUDO},
          transport: openssh, legacy_algorithms: true}
  - name: mx2.example.net
    ssh: {address: 'fe80::1%eth0'}
myorigin: $myhostname
mydestination: [$myhostname, localhost.$mydomain, localhost, $mydomain, example.net]
mynetworks: [127.0.0.0/8, 192.0.2.0/24, '2001:db8::/32']
relay_domains: [relay.example.net]
mailbox: mbox
users:
  - login: alice
    full_name: Alice O'Brien
    password: {file: secrets/alice}
    uid: 2001
    aliases: [al, a.liddell]
  - login: bob
    password_hash: $6$saltsalt$ZO3Eh/7iD9X2FA7U2DMN1kIGh5QKzOZlyzyTd1gNWE4Q6l1b4B2p4ohvS/ZwSGxA9gHLNaYUdFh3GXxXEk8b40
aliases:
  root: [alice]
  abuse: [alice, bob, someone@example.org]
restrictions:
  delay_reject: false
  helo_required: true
  client: [{sleep: 1}, permit_mynetworks, {reject_rbl_client: 'zen.spamhaus.org=127.0.0.[2..11]'}]
  helo: [permit_mynetworks, reject_invalid_helo_hostname, {reject_rhsbl_helo: dbl.spamhaus.org}]
  sender: [reject_non_fqdn_sender, {reject_rhsbl_sender: dbl.spamhaus.org}, {check_sender_access: sender_access}]
  relay: [permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination]
  recipient:
    - reject_unauth_pipelining
    - permit_mynetworks
    - reject_unauth_destination
    - {check_policy_service: 'inet:127.0.0.1:10023'}
    - {check_policy_service: 'unix:private/policy'}
    - {check_policy_service: postgrey}
  data: [reject_unauth_pipelining]
sender_access:
  - {pattern: friend@example.org, action: OK}
  - {pattern: spam.example, action: 550, text: go away}
  - {pattern: marketing@, action: DISCARD}
greylisting: {enabled: true, delay: 60}
sasl: {enabled: true, mechanisms: [plain], broken_clients: true, on_port_25: false}
tls:
  enabled: true
  generate: {days: 90, renew_before_days: 10, subject: '/C=US/O=Example, Inc./CN=mx1.example.net', key_bits: 3072}
  cert_path: /etc/pki/mail.pem
  key_path: /etc/pki/mail.key
  security_level: encrypt
  auth_only: false
  loglevel: 2
  session_cache: false
  session_cache_timeout: 600
  min_protocol: TLSv1.3
dovecot:
  protocols: [imap]
  plaintext_ports: false
  extra: {login_greeting: Mail ready, login_trusted_networks: 192.0.2.0/24}
postfix:
  inet_interfaces: all
  inet_protocols: ipv4
  submission: true
  smtps: true
  maillog_file: /var/log/postfix.log
  message_size_limit: 20480000
  extra: {smtpd_banner: $myhostname ESMTP, disable_vrfy_command: 'yes'}
firewall:
  enabled: true
  open: [smtp, submission, smtps, imaps]
  lan_only: [imap]
  ssh_from: [192.0.2.0/24]
repositories:
  epel: true
  archived: true
  epel_baseurl: http://mirror.example.net/epel/7/$basearch/
  archive_baseurl: http://mirror.example.net/centos-vault/7.9.2009
dkim: {selector: mail2026, bits: 3072, retire: [mail]}
spf: {enabled: true, mechanisms: [mx, 'ip4:198.51.100.0/24', '~include:_spf.example.org'], all: ~all}
dmarc: {enabled: true, policy: reject, subdomain_policy: quarantine, rua: [dmarc@example.net], pct: 50, adkim: s,
        aspf: s}
mta_sts: {enabled: false}
tls_rpt: {enabled: false}
dns: {server: 192.0.2.53, port: 5353, zone: example.net, reverse_zones: [100.51.198.in-addr.arpa],
      tsig_key: {file: secrets/tsig}, ttl: 600}
"""

PUSHED = """\
domain: example.com
hosts: [{name: mail.example.com, ssh: {become: true, sudo_password: {file: secrets/alice}}}]
users: [{login: carol, password: {env: MAILPROV_CAROL}}]
aliases: {postmaster: [carol]}
tls: {files: {cert: mail.pem, key: mail.key, ca: ca.pem}}
firewall: {enabled: false}
dns: {server: '2001:db8::53', zone: example.com, tsig_key: {env: MAILPROV_TSIG}}
"""


def _seeds() -> dict[str, Any]:
    yaml = YAML(typ="safe")
    texts = {
        "example": (REPO / "inventories/example.com.yaml").read_text(),
        "minimal": (REPO / "inventories/minimal.yaml").read_text(),
        "every": EVERY_FIELD,
        "pushed": PUSHED,
    }
    return {name: yaml.load(text) for name, text in texts.items()}


SEEDS = _seeds()

# --- hostile values ---------------------------------------------------------------------------------------

PAYLOADS = [
    "\n", "\ninjected = yes", "\r", "\x00", "\x1b[2J", "\t", "\x7f", "\x85", "\u2028", "\u2029", "\x9b31m",
    "\u202e", "\u2066", "\u200b", "\ufeff", "\u00ad", "\ud800", "#", " ", ",", ", permit", " permit", ";reboot",
    "$(reboot)", "`id`", "|", "&", '"', "'", "{", "}", "<", "</etc/shadow", "\\", "!include /etc/shadow", "%",
    "%lo", "%,", ":", "=", "/../", "..", "~", "~root/", "*", "[", "]", "@", "$", "${x}", "%{env:HOME}", "\u0130",
    "é", "\u3000", "\u00a0", "x" * 300, "-", ".", "..", "0", "-1",
]  # fmt: skip
WRONG_TYPES: list[Any] = [
    None, True, False, 0, -1, 1 << 70, 3.5, float("nan"), float("inf"), [], {}, [None], {"a": 1}, "", " ",
    ["x"] * 50, "y" * 100_000,
]  # fmt: skip

VALID_VALUES: list[Any] = []  # filled below, from the seeds

any_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_characters="\ufffe\uffff"),
    max_size=12,
)
# Printable text (letters, digits, punctuation, symbols, spaces of any script): often accepted, so the
# render checks see it.
printable_text = st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=12)
hostile_fragment = st.one_of(st.sampled_from(PAYLOADS), any_text, printable_text)


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, child in node.items():
            yield key
            yield from _leaves(child)
    elif isinstance(node, list):
        for child in node:
            yield from _leaves(child)
    else:
        yield node


VALID_VALUES.extend(sorted({repr(v): v for seed in SEEDS.values() for v in _leaves(seed)}.values(), key=repr))


@st.composite
def hostile_string(draw: st.DrawFn, base: object) -> object:
    """A hostile value in place of `base`: base with a fragment inserted, a fragment alone, or a wrong type."""
    how = draw(st.sampled_from(["insert", "insert", "insert", "replace", "wrong type", "another valid value"]))
    if how == "wrong type":
        return draw(st.sampled_from(WRONG_TYPES))
    if how == "another valid value":  # a value valid somewhere else: right type, wrong place
        return draw(st.sampled_from(VALID_VALUES))
    fragment = draw(hostile_fragment)
    if how == "replace" or not isinstance(base, str) or not base:
        return fragment
    at = draw(st.sampled_from([0, len(base) // 2, len(base)]))
    return base[:at] + fragment + base[at:]


# --- the site tree: every place a mutation can go ---------------------------------------------------------

Path_ = tuple[Any, ...]


def places(node: Any, path: Path_ = ()) -> Iterator[tuple[str, Path_]]:
    """("value", path) for every node (containers too), ("key", path) for every mapping key."""
    yield "value", path
    if isinstance(node, dict):
        for key, child in node.items():
            yield "key", (*path, key)
            yield from places(child, (*path, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from places(child, (*path, i))


def get(node: Any, path: Path_) -> Any:
    for part in path:
        node = node[part]
    return node


def copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [copy(v) for v in node]
    return node


@st.composite
def mutated_site(draw: st.DrawFn) -> tuple[str, Any]:
    seed = draw(st.sampled_from(sorted(SEEDS)))
    doc = copy(SEEDS[seed])
    spots = list(places(doc))
    for _ in range(draw(st.integers(1, 3))):
        kind, path = draw(st.sampled_from(spots))
        if not path:
            continue
        try:
            parent = get(doc, path[:-1])
            current = get(doc, path)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        if not isinstance(parent, dict | list):
            continue
        if kind == "key" and isinstance(parent, dict):
            new_key = draw(hostile_string(path[-1]))
            if isinstance(new_key, str | int | bool) or new_key is None:
                parent[new_key] = parent.pop(path[-1])
        elif isinstance(current, dict):
            choice = draw(st.sampled_from(["unknown key", "wrong type", "empty"]))
            if choice == "unknown key":
                key = draw(hostile_string("key"))
                if isinstance(key, str | int | float | bool) or key is None:
                    current[key] = draw(hostile_string("value"))
            elif choice == "empty":
                current.clear()
            else:
                parent[path[-1]] = draw(hostile_string(None))
        elif isinstance(current, list):
            choice = draw(st.sampled_from(["append", "wrong type", "empty", "many"]))
            if choice == "append":
                current.append(draw(hostile_string(current[0] if current else "x")))
            elif choice == "empty":
                current.clear()
            elif choice == "many":
                current.extend(current * 20)
            else:
                parent[path[-1]] = draw(hostile_string(None))
        else:
            parent[path[-1]] = draw(hostile_string(current))
    return seed, doc


def dump(doc: Any) -> str:
    """The document as a YAML file an admin could have written (non-ASCII as \\u escapes)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_unicode = False
    yaml.width = 1 << 20
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


# --- reading rendered files as the daemons do ------------------------------------------------------------


class Injection(AssertionError):
    """A rendered file says something the site did not."""


def main_cf_parameters(text: str) -> dict[str, str]:
    """main.cf as Postfix reads it: a line starting with whitespace continues the previous one."""
    params: dict[str, str] = {}
    current: list[str] | None = None
    logical: list[list[str]] = []
    for line in text.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # Postfix: comments and blank lines end nothing (a comment is a whole line)
        if line[0] in " \t":
            if current is None:
                raise Injection(f"main.cf: a continuation line before any parameter: {line!r}")
            current.append(line.strip())
        else:
            current = [line]
            logical.append(current)
    for parts in logical:
        match = re.fullmatch(r"([a-z][A-Za-z0-9_]*) = ?(.*)", parts[0])
        if match is None:
            raise Injection(f"main.cf: not a `name = value` line: {parts[0]!r}")
        name = match.group(1)
        if name in params:
            raise Injection(f"main.cf: {name} is set twice (the second wins)")
        params[name] = " ".join([match.group(2), *parts[1:]]).strip()
    return params


RESTRICTION_PARAMS = {
    "smtpd_client_restrictions": "client",
    "smtpd_helo_restrictions": "helo",
    "smtpd_sender_restrictions": "sender",
    "smtpd_relay_restrictions": "relay",
    "smtpd_recipient_restrictions": "recipient",
    "smtpd_data_restrictions": "data",
}
# Names mailprov adds itself: the derived relay list, and reject_unauth_pipelining moved on old Postfix.
DEFAULT_NAMES = {
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "reject_unauth_destination",
    "reject_unauth_pipelining",
}


def restriction_items(value: str) -> list[tuple[str, str | None]]:
    """A restriction list as smtpd reads it: split on whitespace and commas; a name that takes an argument
    takes the next word."""
    words = [w for w in re.split(r"[\s,]+", value) if w]
    items: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        name = words[i]
        if name in SIMPLE:
            items.append((name, None))
            i += 1
        elif name in WITH_ARGUMENT:
            if i + 1 >= len(words) or words[i + 1] in SIMPLE or words[i + 1] in WITH_ARGUMENT:
                raise Injection(f"{name} without its argument in {value!r}")
            items.append((name, words[i + 1]))
            i += 2
        else:
            raise Injection(f"{name!r} is no restriction (in {value!r})")
    return items


def check_main_cf(site: Site, text: str) -> None:
    params = main_cf_parameters(text)
    rendered: dict[str, int] = {}
    for param, value in params.items():
        if param not in RESTRICTION_PARAMS:
            continue
        items = restriction_items(value)
        for name, _ in items:
            rendered[name] = rendered.get(name, 0) + 1
        if param in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions"):
            names = [n for n, _ in items]
            guard = next((i for i, n in enumerate(names) if n.endswith("_unauth_destination")), None)
            if guard is not None and any(n in ("permit", "permit_auth_destination") for n in names[:guard]):
                raise Injection(f"{param}: a permit before reject_unauth_destination: open relay")
    wrote: dict[str, int] = {}
    r = site.restrictions
    for items in (r.client, r.helo, r.sender, r.relay or (), r.recipient, r.data):
        for item in items:
            wrote[item.name] = wrote.get(item.name, 0) + 1
    for name, count in rendered.items():
        if name not in DEFAULT_NAMES and count != wrote.get(name, 0):
            raise Injection(f"main.cf has {count} x {name}, the site wrote it {wrote.get(name, 0)} x")
    for name, value in site.postfix.extra.items():
        if params.get(name) != value:
            raise Injection(f"main.cf: postfix.extra.{name} reads {params.get(name)!r}, not {value!r}")


def check_dovecot_conf(site: Site, text: str) -> None:
    scopes: list[set[str]] = [set()]
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            raise Injection(f"dovecot.conf:{number}: a trailing backslash joins the next line")
        if line == "}":
            scopes.pop()
            if not scopes:
                raise Injection(f"dovecot.conf:{number}: `}}` closes nothing")
            continue
        if re.fullmatch(r"[a-z_][a-z0-9_-]*( [^{}=\s]+)? \{", line):
            scopes.append(set())
            continue
        match = re.fullmatch(r"([a-z_][a-z0-9_]*) = ?(.*)", line)
        if match is None:
            raise Injection(f"dovecot.conf:{number}: not a setting, section or brace: {line!r}")
        name, value = match.groups()
        if value.startswith("<") and not name.startswith("ssl"):
            raise Injection(f"dovecot.conf:{number}: {name} reads a file: {value!r}")
        if "{" in value or "}" in value:
            raise Injection(f"dovecot.conf:{number}: braces in a value: {line!r}")
        if name in scopes[-1]:
            raise Injection(f"dovecot.conf:{number}: {name} is set twice in one section")
        scopes[-1].add(name)
    if len(scopes) != 1:
        raise Injection("dovecot.conf: a section is never closed")
    top = dict(re.findall(r"(?m)^([a-z_][a-z0-9_]*) = ?(.*)$", text))
    for name, value in site.dovecot.extra.items():
        if top.get(name) != value:
            raise Injection(f"dovecot.conf: dovecot.extra.{name} reads {top.get(name)!r}, not {value!r}")


def entries(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.strip() and not ln.startswith("#")]


def check_aliases(site: Site, text: str) -> None:
    names: list[str] = []
    for line in entries(text):
        match = re.fullmatch(r"([a-z0-9][a-z0-9._+-]*): ([a-z0-9._+@-]+(, [a-z0-9._+@-]+)*)", line)
        if match is None:
            raise Injection(f"aliases: not one `name: targets` entry: {line!r}")
        names.append(match.group(1))
    if len(names) != len(set(names)):
        raise Injection(f"aliases: a name is defined twice: {names}")
    expected = set(site.aliases) | {a for u in site.users for a in u.aliases}
    if "postmaster" not in site.local_names():
        expected.add("postmaster")
    if set(names) != expected:
        raise Injection(f"aliases: {sorted(names)} is not the site's {sorted(expected)}")


def check_sender_access(site: Site, text: str) -> None:
    lines = entries(text)
    if len(lines) != len(site.sender_access):
        raise Injection(f"sender_access: {len(lines)} entries for the site's {len(site.sender_access)}")
    for line, entry in zip(lines, site.sender_access, strict=True):
        if line.split()[:2] != [entry.pattern, str(entry.action)]:
            raise Injection(f"sender_access: {line!r} is not {entry.pattern} {entry.action}")


def check_firewall(site: Site, text: str) -> None:
    # every service mailprov knows, and the hosts' SSH ports (always open: mailprov never closes SSH)
    allowed_ports = set(PORTS.values()) | {h.ssh.port for h in site.hosts if h.ssh.port}
    sources = set(site.mynetworks) | set(site.firewall.ssh_from)
    for line in entries(text):
        for port in re.findall(r"(?:--dport |port=\"|--add-port=)(\d+)", line):
            if int(port) not in allowed_ports:
                raise Injection(f"firewall: port {port} the site never named: {line!r}")
        for source in re.findall(r"(?:-s |source address=\")([^\s\"]+)", line):
            if source not in sources:
                raise Injection(f"firewall: source {source} is not in the site: {line!r}")


def check_rendered(site: Site, rendered: Rendered) -> None:
    for f in rendered.files:
        bad = unsafe_char(f.text().replace("\n", "").replace("\t", ""))
        if bad is not None:
            raise Injection(f"{f.path}: holds U+{ord(bad):04X}")
        if f.path.endswith("/main.cf"):
            check_main_cf(site, f.text())
        elif "dovecot" in f.path and f.path.endswith(".conf"):
            check_dovecot_conf(site, f.text())
        elif f.path.endswith("/aliases"):
            check_aliases(site, f.text())
        elif f.path.endswith("/sender_access"):
            check_sender_access(site, f.text())
        elif "/mailprov/firewall" in f.path:
            check_firewall(site, f.text())


# --- the real postconf, where installed: does Postfix read main.cf as the checks above do? ------------------

POSTCONF = Path("/usr/sbin/postconf")
SYSTEM_MASTER_CF = Path("/etc/postfix/master.cf")


def real_postconf_agrees(main_cf: str, workdir: Path, extra: dict[str, str] | None = None) -> None:
    """Postfix's own reading of main.cf (`postconf -c DIR -n`) has the parameters main_cf_parameters
    found, with the same restriction lists, and no warning but those the site's postfix.extra asks for
    (the escape hatch: apply's on-host postconf check refuses them): `unused parameter` for a name this
    Postfix does not know, `undefined parameter` for a `$name` in a value that names none."""
    extra = extra or {}
    conf = workdir / "postconf"
    conf.mkdir(exist_ok=True)
    (conf / "main.cf").write_text(main_cf)
    (conf / "master.cf").write_text(SYSTEM_MASTER_CF.read_text())
    past = time.time() - 60  # postfix waits for a config file younger than a second to "cool down"
    for path in conf.iterdir():
        os.utime(path, (past, past))
    done = subprocess.run(
        [str(POSTCONF), "-c", str(conf), "-n"], capture_output=True, text=True, timeout=60, check=False
    )

    def asked_for(line: str) -> bool:
        unused = re.search(r"unused parameter: ([A-Za-z0-9_]+)=", line)
        undefined = re.search(r"undefined parameter: ([A-Za-z0-9_]+)", line)
        return bool(
            (unused and unused[1] in extra)
            or (undefined and any(f"${undefined[1]}" in v or f"${{{undefined[1]}" in v for v in extra.values()))
        )

    warnings = [line for line in done.stderr.split("\n") if line.strip() and not asked_for(line)]
    if done.returncode != 0 or warnings:
        raise Injection(f"postconf: exit {done.returncode}: {' | '.join(warnings)[:300]}")
    real = {m[1]: m[2] for m in re.finditer(r"(?m)^([A-Za-z0-9_]+) =[ ]?(.*)$", done.stdout)}
    real.pop("config_directory", None)  # postconf -c reports the directory it was given
    ours = main_cf_parameters(main_cf)
    for name in set(re.findall(r"unused parameter: ([A-Za-z0-9_]+)=", done.stderr)) & set(extra):
        ours.pop(name, None)  # postconf -n leaves out what it does not know
    if set(real) != set(ours):
        raise Injection(f"postconf reads parameters {sorted(set(real) ^ set(ours))} differently")
    for name in RESTRICTION_PARAMS:
        if name in ours and restriction_items(real[name]) != restriction_items(ours[name]):
            raise Injection(f"postconf reads {name} as {real[name]!r}")


DOVECONF = Path("/usr/bin/doveconf")
_TEST_CERT: dict[str, tuple[str, str]] = {}


def _test_certificate() -> tuple[str, str]:
    """A real self-signed certificate and key (PEM), made once: doveconf reads the files it names."""
    if not _TEST_CERT:
        import datetime as dt

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.example")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        _TEST_CERT["pem"] = (
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
        )
    return _TEST_CERT["pem"]


def real_doveconf_agrees(site: Site, rendered: Rendered, workdir: Path) -> None:
    """Dovecot's own reading (`doveconf -n -c FILE`) accepts dovecot.conf without a message, and reads
    each dovecot.extra setting with exactly the site's value."""
    conf_file = next(f for f in rendered.files if "dovecot" in f.path and f.path.endswith(".conf"))
    content = conf_file.text()
    cert_pem, key_pem = _test_certificate()
    if rendered.certificate is not None:  # point the certificate settings at files that exist here
        (workdir / "dovecot-cert.pem").write_text(cert_pem)
        (workdir / "dovecot-key.pem").write_text(key_pem)
        content = content.replace(rendered.certificate.cert_path, str(workdir / "dovecot-cert.pem"))
        content = content.replace(rendered.certificate.key_path, str(workdir / "dovecot-key.pem"))
    path = workdir / "dovecot.conf"
    path.write_text(content)
    done = subprocess.run(
        [str(DOVECONF), "-n", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    messages = [line for line in done.stderr.split("\n") if line.strip()]
    unknown = [m for m in messages if any(f"Unknown setting: {name}" in m for name in site.dovecot.extra)]
    if unknown:
        return  # a dovecot.extra name this Dovecot does not know: the site's escape hatch, refused on the host
    if done.returncode != 0 or messages:
        raise Injection(f"doveconf: exit {done.returncode}: {' | '.join(messages)[:300]}")
    real = dict(re.findall(r"(?m)^([a-z_][a-z0-9_]*) = ?(.*)$", done.stdout))
    for name, value in site.dovecot.extra.items():
        if name in real and real[name] != value:
            raise Injection(f"doveconf reads dovecot.extra.{name} as {real[name]!r}, not {value!r}")


# --- one mutated site, end to end ------------------------------------------------------------------------

PROBLEM_LINE = re.compile(r"  (?P<file>.+?):(?P<line>\d+)  (?P<field>\S.*?): (?P<reason>.+)")
YAML_LINE = re.compile(r"(?P<file>.+?):(?P<line>\d+)  (YAML|the site file must be a mapping)")


def check_refusal(message: str, path: Path) -> None:
    """Every refusal names the file, a line and a field (or is a YAML error with a line)."""
    assert "Traceback" not in message, message
    assert "\x1b" not in message and unsafe_char(message.replace("\n", "")) is None, repr(message)
    if YAML_LINE.match(message) and str(path) in message.split("  ")[0]:
        return
    first, *rest = message.split("\n")
    assert first.startswith(f"{path} ") and rest, f"no file:line in: {message!r}"
    for line in rest:
        match = PROBLEM_LINE.fullmatch(line)
        assert match is not None and match["file"] == str(path), f"not `FILE:LINE  field: reason`: {line!r}"


@dataclass
class Outcome:
    accepted: bool
    renders: int = 0
    render_refusals: int = 0
    real_checks: int = 0
    seconds: float = 0.0


def run_site(
    text: str, workdir: Path, presets: tuple[str, ...] = FIVE_PRESETS, *, real_postconf: bool = False
) -> Outcome:
    """load_site, then render for each preset; AssertionError on any breach of the properties."""
    started = time.perf_counter()
    path = workdir / "site.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        site = load_site(path)
    except ConfigError as exc:
        check_refusal(str(exc), path)
        return Outcome(False, seconds=time.perf_counter() - started)
    outcome = Outcome(True)
    for preset in presets:
        for host in site.hosts:
            try:
                rendered = render_host(site, host, PRESETS[preset], workdir)
            except ConfigError as exc:
                outcome.render_refusals += 1
                placed = str(locate(exc, path))
                assert re.search(rf"(?m)^  {re.escape(str(path))}:\d+  \S", placed), f"not placed: {placed!r}"
                check_refusal(placed, path)
                continue
            except MailprovError as exc:  # FactsError for an unsupported Postfix: not the site's doing
                raise AssertionError(f"{preset}: {type(exc).__name__}: {exc}") from None
            outcome.renders += 1
            check_rendered(site, rendered)
            if real_postconf and preset == "debian12" and host == site.hosts[0]:
                main_cf = rendered.file("/etc/postfix/main.cf").text()
                real_postconf_agrees(main_cf, workdir, dict(site.postfix.extra))
                if DOVECONF.exists():
                    real_doveconf_agrees(site, rendered, workdir)
                outcome.real_checks += 1
    outcome.seconds = time.perf_counter() - started
    return outcome


def workdir() -> tempfile.TemporaryDirectory[str]:
    """A folder holding the site and the local files its seeds name (secrets, certificates)."""
    tmp = tempfile.TemporaryDirectory(prefix="mailprov-fuzz-")
    base = Path(tmp.name)
    (base / "secrets").mkdir()
    (base / "secrets" / "alice").write_text("Tr0ub4dor&3\n")
    (base / "mail.pem").write_text(CERT)
    (base / "ca.pem").write_text(CERT)
    (base / "mail.key").write_text(KEY)
    return tmp


# --- the CI run -------------------------------------------------------------------------------------------

CI = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def test_the_seed_sites_render_cleanly() -> None:
    with workdir() as tmp:
        for doc in SEEDS.values():
            outcome = run_site(dump(doc), Path(tmp))
            assert outcome.accepted and outcome.renders > 0


@CI
@given(mutated_site())
def test_no_mutated_site_breaks_the_properties(case: tuple[str, Any]) -> None:
    _, doc = case
    with workdir() as tmp:
        outcome = run_site(dump(doc), Path(tmp))
    assert outcome.seconds < 10, f"{outcome.seconds:.1f}s for one site"


@st.composite
def yaml_trick(draw: st.DrawFn) -> str:
    """Raw text edits no dumper makes: anchors and aliases, deep nesting, odd bytes and tags."""
    text = dump(copy(SEEDS[draw(st.sampled_from(sorted(SEEDS)))]))
    lines = text.split("\n")
    at = draw(st.integers(0, len(lines) - 1))
    trick = draw(
        st.sampled_from(
            [
                "x: &a [1, *a]",
                "x: &a {k: *a}",
                "x: " + "[" * 300 + "]" * 300,
                "x: " + "{a: " * 100 + "1" + "}" * 100,
                "x: *nope",
                "x: !!python/object:os.system [id]",
                "x: !!binary aGVsbG8=",
                "<<: {domain: evil.example}",
                "? [a, b]\n: c",
                "--- \n",
                "x: &a ["
                + ", ".join(["lol"] * 10)
                + "]\ny: &b ["
                + ", ".join(["*a"] * 10)
                + "]\nz: ["
                + ", ".join(["*b"] * 10)
                + "]",
                "\t- tab",
                "domain: example.com",
                "%YAML 1.1",
                "x: 0o777",
                "x: 1_000",
                "x: .inf",
            ]
        )
        | hostile_fragment
    )
    lines.insert(at, trick)
    return "\n".join(lines)


@CI
@given(yaml_trick())
def test_no_yaml_trick_gives_a_traceback_or_a_hang(text: str) -> None:
    with workdir() as tmp:
        try:
            outcome = run_site(text, Path(tmp), presets=("debian12",))
        except UnicodeEncodeError:
            pytest.skip("a lone surrogate cannot be written to a file")  # pragma: no cover
    assert outcome.seconds < 10


@pytest.mark.skipif(not (POSTCONF.exists() and SYSTEM_MASTER_CF.exists()), reason="Postfix is not installed here")
@settings(CI, max_examples=25)
@given(mutated_site())
def test_postfix_reads_accepted_sites_as_the_checks_do(case: tuple[str, Any]) -> None:
    with workdir() as tmp:
        run_site(dump(case[1]), Path(tmp), ("debian12",), real_postconf=True)


def _model_fields(model: type[Any], prefix: str = "") -> Iterator[str]:
    """Every field of the model as a dotted path (list items and mapping values collapsed)."""
    import types
    import typing

    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        stack = [info.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                yield from _model_fields(tp, f"{path}.")
            elif typing.get_origin(tp) is typing.Annotated:
                stack.append(typing.get_args(tp)[0])
            elif typing.get_origin(tp) in (typing.Union, types.UnionType, tuple, dict):
                stack.extend(a for a in typing.get_args(tp) if a is not Ellipsis)


def _seed_paths() -> set[str]:
    paths: set[str] = set()
    for doc in SEEDS.values():
        for kind, path in places(doc):
            if kind == "key":
                paths.add(".".join(str(p) for p in path if not isinstance(p, int)))
    return paths


def test_the_seeds_hold_every_field_of_the_model() -> None:
    """So every field gets hostile values: a new model field without a seed value fails here."""
    seeded = _seed_paths()
    open_keys = ("aliases.", "dovecot.extra.", "postfix.extra.", "restrictions.")  # keys are values there
    missing = [f for f in _model_fields(Site) if f not in seeded and not f.startswith(open_keys)]
    assert missing == []
