"""DNS checks through the site's resolver, with real libraries: dnspython for the lookups, pyspf to
evaluate SPF for an address, dkimpy to check a DKIM signature against the key in DNS.

The resolver is `verify --resolver IP`, else the site's `dns.server` (its primary, asked directly), else
the first nameserver of /etc/resolv.conf. Lookups have one deadline each; a resolver that does not answer
is DnsUnavailable (the checks then skip, saying so), an answer without the record is a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver

from mailprov.config.model import Site
from mailprov.verify.dns import DnsUnavailable, system_nameserver

SYSTEM = "the system's resolver"


@dataclass(frozen=True)
class Resolver:
    server: str
    port: int = 53
    timeout: float = 3.0
    source: str = SYSTEM  # where it came from, for the check lines

    def ask(self, name: str, rtype: str) -> tuple[str, ...]:
        """The values at (name, rtype): TXT strings joined, names absolute and lower case; () when the
        name or the type does not exist. DnsUnavailable when the resolver does not answer usefully."""
        query = dns.message.make_query(name, rtype)  # recursion desired: a resolver, or the zone's primary
        try:
            response, _ = dns.query.udp_with_fallback(query, self.server, timeout=self.timeout, port=self.port)
        except dns.exception.Timeout:
            raise DnsUnavailable(f"no answer from {self.server} ({self.source}) within {self.timeout:g} s") from None
        except (OSError, dns.exception.DNSException) as exc:
            raise DnsUnavailable(f"{self.server} ({self.source}) cannot be asked: {exc}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return ()
        if rcode != dns.rcode.NOERROR:
            raise DnsUnavailable(
                f"{self.server} ({self.source}) answered {dns.rcode.to_text(rcode)} for {name} {rtype}"
            )
        wanted = dns.rdatatype.from_text(rtype)
        values: list[str] = []
        for rrset in response.answer:
            if rrset.rdtype != wanted:
                continue  # the CNAMEs on the way
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
                    values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
                else:
                    values.append(str(rdata.to_text()).lower())
        return tuple(values)

    def txt_bytes(self, name: str) -> bytes | None:
        """The first TXT record at name as bytes (dkimpy's `dnsfunc`)."""
        values = self.ask(name, "TXT")
        return values[0].encode() if values else None


def choose(site: Site, override: str | None, timeout: float) -> Resolver | None:
    """`--resolver`, else the site's dns.server, else the system's; None when there is none."""
    if override is not None:
        return Resolver(override, 53, timeout, "--resolver")
    if site.dns is not None:
        return Resolver(site.dns.server, site.dns.port, timeout, "the site's dns.server")
    server = system_nameserver()
    return Resolver(server, 53, timeout) if server is not None else None


# --- SPF, evaluated by pyspf ---------------------------------------------------------------------------

_SPF_LOCK = threading.Lock()  # pyspf looks names up through one module-level function


def spf_result(resolver: Resolver, address: str, sender: str, helo: str) -> tuple[str, str]:
    """pyspf's verdict (pass, fail, softfail, neutral, none, permerror, temperror) and its explanation
    for mail from `sender` sent by `address`, every lookup going to `resolver`."""
    import spf

    def lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: float = 30) -> list[tuple[Any, Any]]:
        return _spf_lookup(resolver, name, qtype)

    with _SPF_LOCK:
        saved: Callable[..., Any] = spf.DNSLookup
        spf.DNSLookup = lookup
        try:
            result, explanation = spf.check2(i=address, s=sender, h=helo, timeout=resolver.timeout * 5)
        finally:
            spf.DNSLookup = saved
    return str(result), str(explanation)


def _spf_lookup(resolver: Resolver, name: str, qtype: str) -> list[tuple[Any, Any]]:
    """pyspf's DNSLookup contract: [((name, type), value)], values typed as its dnspython lookup gives."""
    import spf

    try:
        values = resolver.ask(name, qtype)
    except DnsUnavailable as exc:
        raise spf.TempError(f"DNS {exc}") from None
    out: list[tuple[Any, Any]] = []
    for value in values:
        if qtype in ("TXT", "SPF"):
            data = value.encode()
            out.append(((name, qtype), [data[i : i + 255] for i in range(0, len(data), 255)]))
        elif qtype == "MX":
            preference, exchange = value.split()
            out.append(((name, qtype), (int(preference), dns.name.from_text(exchange))))
        elif qtype == "PTR":
            out.append(((name, qtype), value.rstrip(".")))
        else:
            out.append(((name, qtype), value))
    return out


# --- DMARC ---------------------------------------------------------------------------------------------


def dmarc_tags(text: str) -> dict[str, str]:
    """`v=DMARC1; p=reject; …` as tags (lower-case names, values stripped)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): strict is equal; relaxed shares the organizational
    domain, approximated here as: one is the other or a subdomain of it."""
    a, b = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return a == b
    return a == b or a.endswith("." + b) or b.endswith("." + a)


# --- DKIM, checked by dkimpy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DkimVerdict:
    ok: bool
    domain: str  # d= of the first signature, "" without one
    selector: str
    detail: str


def dkim_check(message: bytes, resolver: Resolver) -> DkimVerdict:
    """Verify the message's first DKIM-Signature against the key published in DNS (through resolver)."""
    import dkim

    signature = dkim_signature_tags(message)
    if not signature:
        return DkimVerdict(False, "", "", "the message has no DKIM-Signature header")
    domain, selector = signature.get("d", ""), signature.get("s", "")

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return resolver.txt_bytes(name.decode().rstrip("."))

    try:
        ok = bool(dkim.verify(message, dnsfunc=dnsfunc))
    except DnsUnavailable as exc:
        return DkimVerdict(False, domain, selector, f"the key could not be looked up: {exc}")
    except Exception as exc:  # dkimpy raises its own and library errors on malformed input
        return DkimVerdict(False, domain, selector, f"dkimpy: {type(exc).__name__}: {exc}")
    if ok:
        return DkimVerdict(True, domain, selector, f"signature d={domain} s={selector} verified against DNS")
    return DkimVerdict(False, domain, selector, f"signature d={domain} s={selector} does not verify against DNS")


def dkim_signature_tags(message: bytes) -> dict[str, str]:
    """The tags of the first DKIM-Signature header (unfolded), {} without one."""
    import email
    import email.policy

    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    header = parsed.get("DKIM-Signature")
    if header is None:
        return {}
    text = "".join(str(header).split())
    return {k: v for k, v in (part.partition("=")[::2] for part in text.split(";")) if k}
