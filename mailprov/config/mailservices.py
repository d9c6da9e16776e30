"""The mail services a site can run: one table of names, ports, daemons and TLS modes that rendering,
the firewall, the apply health check and verify all read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailprov.config.model import Site


class Tls(StrEnum):
    IMPLICIT = "implicit"  # TLS from the first byte (465, 993, 995)
    STARTTLS = "starttls"
    NONE = "none"


@dataclass(frozen=True)
class MailService:
    name: str  # the site's name for it (firewall.open, firewall.lan_only)
    port: int
    daemon: str  # postfix, dovecot or sshd
    protocol: str  # smtp, imap, pop3, ssh
    tls: Tls


SERVICES: tuple[MailService, ...] = (
    MailService("ssh", 22, "sshd", "ssh", Tls.NONE),
    MailService("smtp", 25, "postfix", "smtp", Tls.STARTTLS),
    MailService("submission", 587, "postfix", "smtp", Tls.STARTTLS),
    MailService("smtps", 465, "postfix", "smtp", Tls.IMPLICIT),
    MailService("imap", 143, "dovecot", "imap", Tls.STARTTLS),
    MailService("imaps", 993, "dovecot", "imap", Tls.IMPLICIT),
    MailService("pop3", 110, "dovecot", "pop3", Tls.STARTTLS),
    MailService("pop3s", 995, "dovecot", "pop3", Tls.IMPLICIT),
)
BY_NAME = {s.name: s for s in SERVICES}
PORTS = {s.name: s.port for s in SERVICES}
MAIL_SERVICES = tuple(s.name for s in SERVICES if s.daemon != "sshd")


def listening(site: Site) -> tuple[MailService, ...]:
    """The mail services the site makes its daemons listen on."""
    out = [BY_NAME["smtp"]]
    if site.postfix.submission:
        out.append(BY_NAME["submission"])
    if site.postfix.smtps:
        out.append(BY_NAME["smtps"])
    for proto in site.dovecot.protocols:
        if site.dovecot.plaintext_ports:
            out.append(BY_NAME[proto])
        if site.tls.enabled:
            out.append(BY_NAME[proto + "s"])
    return tuple(out)
