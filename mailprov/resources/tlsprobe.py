"""Health on the host after the handlers, for the resources that serve mail: the protocol, not the port.
A client there is only the shell and `openssl s_client` (a base package), so the checks are sh functions:
a STARTTLS or implicit-TLS handshake that ends with a cipher and, for implicit TLS, the server's
greeting. A daemon that dies on its configuration at run time (smtpd on a bad number, Dovecot on an
unknown TLS version) fails here, and the apply rolls back."""

from __future__ import annotations

from mailprov.config.mailservices import MailService, Tls
from mailprov.resources.base import Command, HostContext

SHELL = r"""
mp_tls_starttls() {
  mp_timeout 5 openssl s_client -connect "$1" -starttls "$2" </dev/null 2>&1 | grep -q "Cipher is [^(]"
}
mp_tls_greets() {
  out=$( (sleep 1) | mp_timeout 5 openssl s_client -connect "$1" 2>&1 )
  case "$out" in *"Cipher is ("*) return 1;; esac
  printf '%s\n' "$out" | grep -q "^$2"
}
"""

_GREETING = {"smtp": "220", "imap": r"\* OK", "pop3": r"+OK"}


def local_address(ctx: HostContext, port: int) -> str:
    """Where a client on the host reaches the daemons: loopback unless they listen on one address only."""
    listen = ctx.site.postfix.inet_interfaces
    if listen not in ("all", "loopback-only", "localhost"):
        return f"[{listen}]:{port}" if ":" in listen else f"{listen}:{port}"
    return f"[::1]:{port}" if ctx.site.postfix.inet_protocols == "ipv6" else f"127.0.0.1:{port}"


def serves(ctx: HostContext, service: MailService, daemon: str) -> Command:
    """Wait (20 s at most) until `service` completes a TLS handshake (and greets, for implicit TLS)."""
    where = local_address(ctx, service.port)
    what = f"{daemon} {service.name} on {where} does not complete a TLS handshake"
    if not ctx.site.tls.enabled or service.tls is Tls.NONE:
        return Command(("mp_wait", f"{daemon} is not listening on port {service.port}", "mp_listening",
                        str(service.port)))  # fmt: skip
    if service.tls is Tls.STARTTLS:
        return Command(("mp_wait", what, "mp_tls_starttls", where, service.protocol))
    return Command(("mp_wait", f"{what} and greeting", "mp_tls_greets", where, _GREETING[service.protocol]))
