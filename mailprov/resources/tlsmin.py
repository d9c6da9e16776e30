"""The site's TLS minimum (`tls.min_protocol`) in the syntax of the Postfix and Dovecot on the host, and
whether the host can enforce it at all.

What a host can do is rendered (so `mailprov render` shows it); where that is weaker than the site asks,
the plan is refused with the reason and the way out (resources raise `refusal` in `changes`), never
applied silently weaker. The limits: OpenSSL before 1.0.1 (EL5's 0.9.8e) has no TLS 1.1/1.2; Postfix
before 2.6 cannot restrict opportunistic STARTTLS (no smtpd_tls_protocols); RHEL 6's Postfix 2.6.6 knows
the TLSv1.1/TLSv1.2 names only from release 8 (before it, `!TLSv1.1` disables TLS at run time); Dovecot
1.x and 2.0 (without RHEL 6's backport) have no protocol setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailprov.config.model import Site
from mailprov.dialects import TLS_ORDER, Dialect
from mailprov.errors import ConfigError


@dataclass(frozen=True)
class Reach:
    value: str | None  # the setting's value (None: nothing to render)
    enforced: str | None  # the oldest protocol a client can still use (None: any, the daemon cannot restrict it)
    why: str = ""  # when enforced is older than the site's minimum: what limits this host

    def short(self, minimum: str) -> bool:
        return self.enforced is None or TLS_ORDER.index(self.enforced) < TLS_ORDER.index(minimum)


def _older(a: str, b: str) -> bool:
    return TLS_ORDER.index(a) < TLS_ORDER.index(b)


def _exclusions(d: Dialect, minimum: str, known_up_to: str, keep: str) -> tuple[list[str], str]:
    """Protocol names to exclude for `minimum`, from the names this daemon knows, never `keep` or newer (so
    the host's OpenSSL still speaks something); and the oldest protocol left."""
    known = TLS_ORDER[: TLS_ORDER.index(known_up_to) + 1]
    excluded = [p for p in known if _older(p, minimum) and _older(p, keep)]
    left = next(p for p in TLS_ORDER if p not in excluded)
    return excluded, left


def postfix(site: Site, d: Dialect) -> Reach:
    """smtpd_tls_(mandatory_)protocols for the site's minimum."""
    minimum = site.tls.min_protocol
    if d.tls_min_version_syntax:
        return Reach(f">={minimum}", minimum)
    if not d.tls_exclusion_syntax:  # 2.3/2.4: an inclusion list, for mandatory TLS only
        allowed = [p for p in TLS_ORDER[:3] if not _older(p, minimum)] or ["TLSv1"]
        return Reach(", ".join(allowed), None, _both(_library(d, minimum), _no_opportunistic(d)))
    # Without the TLSv1.1/1.2 names, TLSv1 is the newest one it knows: never exclude every name it knows.
    known = "TLSv1.2" if d.knows_tls11 else "TLSv1"
    excluded, left = _exclusions(d, minimum, known, d.tls_max if d.knows_tls11 else "TLSv1")
    value = ", ".join(f"!{p}" for p in excluded)
    if not d.has_tls_protocols:
        return Reach(value, None, _both(_library(d, minimum), _no_opportunistic(d)))
    why = ""
    if _older(left, minimum):
        why = _library(d, minimum) or (
            f"Postfix {d.postfix} here knows no TLSv1.1/TLSv1.2 protocol names (RHEL 6: from postfix-2.6.6-8, "
            "RHEL 6.9): it can refuse SSLv2 and SSLv3 only"
        )
    return Reach(value, left, why)


def dovecot(site: Site, d: Dialect) -> Reach:
    """ssl_min_protocol (2.3+) or an ssl_protocols exclusion list (2.1/2.2, RHEL 6's 2.0.9 backport)."""
    minimum = site.tls.min_protocol
    syntax = d.dovecot_syntax
    if syntax.min_protocol:
        best = minimum if d.tls_reaches(minimum) else d.tls_max
        return Reach(best, best, _library(d, minimum))
    if syntax.ssl_protocols:
        excluded, left = _exclusions(d, minimum, "TLSv1.2", d.tls_max)
        return Reach(" ".join(f"!{p}" for p in excluded), left, _library(d, minimum))
    return Reach(None, None, f"Dovecot {d.dovecot} has no setting for a minimum TLS version")


def _library(d: Dialect, minimum: str) -> str:
    if d.tls_reaches(minimum):
        return ""
    return f"the host's OpenSSL {d.openssl} speaks TLS up to {d.tls_max} only"


def _both(*reasons: str) -> str:
    return "; ".join(r for r in reasons if r)


def _no_opportunistic(d: Dialect) -> str:
    return (
        f"Postfix {d.postfix} cannot restrict opportunistic STARTTLS (smtpd_tls_protocols needs Postfix 2.6): "
        "clients may still use SSLv3"
    )


def note(daemon: str, site: Site, reach: Reach) -> list[str]:
    minimum = site.tls.min_protocol
    if not site.tls.enabled or not reach.short(minimum):
        return []
    return [f"{daemon} cannot enforce tls.min_protocol {minimum} here: {reach.why}"]


def refusal(daemon: str, site: Site, reach: Reach) -> ConfigError | None:
    """The plan's refusal when `daemon` cannot enforce the site's minimum (None: it can)."""
    minimum = site.tls.min_protocol
    if not site.tls.enabled or not reach.short(minimum):
        return None
    way_out = (
        f"set tls.min_protocol: {reach.enforced} for this site (the most this host enforces), or upgrade the host"
        if reach.enforced and reach.enforced in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
        else "this host cannot enforce any TLS minimum: upgrade it (or serve the site from a newer host)"
    )
    return ConfigError(
        f"tls.min_protocol {minimum} cannot be met by {daemon} on this host: {reach.why}. mailprov does not "
        f"configure weaker TLS than the site asks for: {way_out}",
        field="tls.min_protocol",
    )
