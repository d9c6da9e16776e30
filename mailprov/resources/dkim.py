"""DKIM signing with OpenDKIM, a milter Postfix calls for mail it receives (smtpd_milters) and mail posted
on the host (non_smtpd_milters); Postfix's part of the wiring is in templates/postfix/main.cf.j2.

The private key is generated on the host (`openssl genrsa` under umask 077, then 0600 owned by the
signer) and never leaves it: the probe reads only the public half (`openssl rsa -pubout`), so no plan,
output or log can hold the private key. A key present is never made again. A new selector makes a new
key and signs with it; the old keys stay (and are published by `records`) until listed in `dkim.retire`.

Each host makes its own key, so in a site of several hosts each host signs with a selector of its own,
`<selector>-<first label of the host name>` (mail-mx1, mail-mx2): one key per DNS name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mailprov.config.model import Dkim
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.paths import STAGED_SUFFIX
from mailprov.render import render_template
from mailprov.resources import files
from mailprov.resources.base import (
    Change,
    Command,
    Daemon,
    Desired,
    DnsRecord,
    Gate,
    Handler,
    HandlerStep,
    HostCheck,
    HostContext,
    ManagedFile,
    Phase,
    Resource,
)
from mailprov.resources.checks import verdict
from mailprov.transport.shell import quote

NAME = "opendkim"
RESTART = Handler(NAME, "restart")
KEY_MODE = 0o600
PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
PEM_END = "-----END PUBLIC KEY-----"

# A milter option negotiation (SMFIC_OPTNEG, protocol version 6) and its answer: the filter is up and
# speaks milter, not merely a port that accepts connections.
SHELL = r"""
mp_milter_answers() {
  perl -MIO::Socket::INET -e '
    my ($h, $p) = $ARGV[0] =~ /^inet:(.+):(\d+)$/ or exit 1;
    my $s = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p, Timeout => 5) or exit 1;
    $SIG{ALRM} = sub { exit 1 }; alarm 5;
    syswrite $s, pack("NaNNN", 13, "O", 6, 0x1ff, 0x1fffff);
    my $n = sysread $s, my $buf, 5;
    exit(defined $n && $n == 5 && substr($buf, 4, 1) eq "O" ? 0 : 1)' "$1"
}
"""


@dataclass(frozen=True)
class DkimKey:
    """A key on the host as the probe saw it: never the private part."""

    selector: str
    owner: str
    group: str
    mode: int
    public: str  # base64 of the DER SubjectPublicKeyInfo; "" when openssl could not read the key


@dataclass(frozen=True)
class DkimWish(Desired):
    dkim: Dkim | None = None
    domain: str = ""
    key_dir: str = ""  # <keys_dir>/<domain>

    def key_file(self, selector: str) -> str:
        return f"{self.key_dir}/{selector}.private"


def key_dir(ctx: HostContext) -> str:
    return f"{ctx.dialect.opendkim.keys_dir}/{ctx.site.domain}"


def host_selector(ctx: HostContext, selector: str) -> str:
    """The selector this host signs with: the site's, plus the host's first label when several hosts sign."""
    if len(ctx.site.hosts) == 1:
        return selector
    return f"{selector}-{ctx.host.name.split('.')[0]}"


def _keys_read(directory: str) -> Read:
    d = quote(directory)
    return Read(
        f"dkim keys {directory}",
        f'for f in {d}/*.private; do [ -f "$f" ] || continue; s=${{f##*/}}; s=${{s%.private}};'
        ' echo "key $s $(stat -c \'%U %G %a\' "$f")"; openssl rsa -in "$f" -pubout 2>/dev/null; done',
    )


def parse_keys(body: str) -> tuple[DkimKey, ...]:
    """`key SELECTOR OWNER GROUP MODE` lines, each followed by the key's public half in PEM (SPKI)."""
    keys: list[DkimKey] = []
    head: list[str] | None = None
    pem: list[str] = []
    inside = False

    def done() -> None:
        if head is not None:
            selector, owner, group, mode = head
            keys.append(DkimKey(selector, owner, group, int(mode, 8), "".join(pem)))

    for line in lines_of(body):
        line = line.strip()
        if line.startswith("key ") and not inside:
            done()
            parts = line.split()
            head, pem = (parts[1:5] if len(parts) == 5 else None), []
        elif line == PEM_BEGIN:
            inside = True
        elif line == PEM_END:
            inside = False
        elif inside:
            pem.append(line)
    done()
    return tuple(keys)


def txt_value(public: str) -> str:
    return f"v=DKIM1; k=rsa; p={public}"


class OpenDkimResource(Resource[DkimWish]):
    name = NAME
    shell = (SHELL,)

    def packages(self, ctx: HostContext) -> tuple[str, ...]:
        return ctx.dialect.opendkim.packages if ctx.site.dkim else ()

    def services(self, ctx: HostContext) -> tuple[Daemon, ...]:
        return (Daemon(NAME, r"(^|/)opendkim( |$)"),) if ctx.site.dkim else ()

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        if ctx.site.dkim is None:
            return ()
        return (*files.reads([ctx.dialect.opendkim.conf]), _keys_read(key_dir(ctx)))

    def desired(self, ctx: HostContext) -> DkimWish:
        dkim = ctx.site.dkim
        if dkim is None:
            return DkimWish()
        o = ctx.dialect.opendkim
        wish = DkimWish(dkim=dkim, domain=ctx.site.domain, key_dir=key_dir(ctx))
        internal = ["127.0.0.1", "::1", *(str(n) for n in ctx.lan(4))]
        notes = []
        if ctx.lan(6):
            notes.append("OpenDKIM signs IPv6 mynetworks clients only when they log in (InternalHosts: IPv4 only)")
        selector = host_selector(ctx, dkim.selector)
        text = render_template(
            "opendkim/opendkim.conf.j2",
            o=o,
            dkim=dkim,
            selector=selector,
            domain=ctx.site.domain,
            key_file=wish.key_file(selector),
            internal_hosts=internal,
        )
        return DkimWish(files=(ManagedFile(o.conf, text, NAME),), notes=tuple(notes), dkim=dkim,
                        domain=wish.domain, key_dir=wish.key_dir)  # fmt: skip

    def changes(self, ctx: HostContext, desired: DkimWish, facts: Facts) -> Sequence[Change]:
        dkim = desired.dkim
        if dkim is None:
            return ()
        out = list(files.changes(desired.files, facts, files.notifying(RESTART)))
        present = {k.selector: k for k in parse_keys(facts.section(_keys_read(desired.key_dir).key))}
        user = ctx.dialect.opendkim.user
        selector = host_selector(ctx, dkim.selector)
        path = desired.key_file(selector)
        key = present.get(selector)
        if key is None:
            out.append(
                Change(
                    f"dkim-key:{path}",
                    Phase.PREPARE,
                    "generate",
                    f"DKIM key {selector}._domainkey.{desired.domain}: {dkim.bits}-bit RSA, generated on the host"
                    + (
                        "; its TXT record is published after the hosts' applies"
                        if ctx.site.dns is not None
                        else "; publish its TXT record (mailprov dns SITE prints it)"
                    ),
                    commands=_generate(desired.key_dir, path, dkim.bits, user),
                    notifies=frozenset({RESTART}),
                )
            )
        elif (key.owner, key.group, key.mode) != (user, user, KEY_MODE):
            out.append(
                Change(
                    f"dkim-key:{path}",
                    Phase.PREPARE,
                    "set",
                    f"{path}: owner/mode {key.owner}:{key.group} {key.mode:04o} → {user}:{user} 0600",
                    commands=(Command(("chown", f"{user}:{user}", path)), Command(("chmod", "0600", path))),
                    notifies=frozenset({RESTART}),
                )
            )
        for retired in (host_selector(ctx, r) for r in dkim.retire):
            if retired in present:
                old = desired.key_file(retired)
                out.append(
                    Change(
                        f"dkim-key:{old}",
                        Phase.FINISH,
                        "remove",
                        f"retired DKIM key {retired}._domainkey.{desired.domain}: deleted (unpublish its record)",
                        commands=(Command(("rm", "-f", old)),),
                    )
                )
        return out

    def handle(self, ctx: HostContext, actions: frozenset[str]) -> Sequence[HandlerStep]:
        return (HandlerStep("opendkim restart", (Command(ctx.dialect.services.restart(NAME)),)),)

    def gates(self, ctx: HostContext, changed: frozenset[str]) -> Sequence[Gate]:
        conf = ctx.dialect.opendkim.conf
        if ctx.site.dkim is None or conf not in changed:
            return ()
        return (Gate("validate-opendkim", Command(("opendkim", "-n", "-x", conf + STAGED_SUFFIX))),)

    def health(self, ctx: HostContext) -> Sequence[Command]:
        if ctx.site.dkim is None:
            return ()
        milter = ctx.dialect.opendkim.milter
        return (Command(("mp_wait", f"opendkim does not answer milter requests at {milter}", "mp_milter_answers",
                         milter)),)  # fmt: skip

    def records(self, ctx: HostContext, facts: Facts) -> Sequence[DnsRecord]:
        if ctx.site.dkim is None:
            return ()
        directory = key_dir(ctx)
        return tuple(
            DnsRecord(
                f"{k.selector}._domainkey.{ctx.site.domain}",
                "TXT",
                txt_value(k.public),
                why=f"DKIM key of selector {k.selector}, read on {ctx.host.name}",
            )
            for k in parse_keys(facts.section(_keys_read(directory).key))
            if k.public
        )

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        dkim = ctx.site.dkim
        if dkim is None:
            return ()
        path = f"{key_dir(ctx)}/{host_selector(ctx, dkim.selector)}.private"
        return (HostCheck("host.dkim_key_private", partial(_private_key, path=path, user=ctx.dialect.opendkim.user)),)


def _generate(directory: str, path: str, bits: int, user: str) -> tuple[Command, ...]:
    parent = directory.rsplit("/", 1)[0]
    return (
        Command(("mkdir", "-p", directory)),
        Command(("chown", f"{user}:{user}", parent, directory)),
        Command(("chmod", "0750", parent, directory)),
        # umask 077: the key is never readable by others, not even for a moment; a key already there
        # (an earlier run cut after this step) is kept, never made again.
        Command(("sh", "-c", '[ -e "$1" ] && exit 0; umask 077 && openssl genrsa -out "$1.new" "$2" 2>/dev/null'
                 ' && mv "$1.new" "$1"', "sh", path, str(bits))),
        Command(("chown", f"{user}:{user}", path)),
        Command(("chmod", "0600", path)),
    )  # fmt: skip


def _private_key(h: object, path: str, user: str) -> tuple[str, str]:
    key = h.file(path)  # type: ignore[attr-defined]
    if not key.exists:
        return verdict(False, f"{path} does not exist")
    ok = key.user == user and key.mode & 0o077 == 0
    hint = "" if ok else f" (must be owned by {user}, readable by it only: 0600)"
    return verdict(ok, f"{path}: {key.user}:{key.group} {key.mode:04o}{hint}")
