"""`mailprov verify`: prove from the outside, with real clients, that each host works and is safe.

Per host, in order: where this client stands, SMTP (banner, STARTTLS, AUTH, certificate, old TLS),
IMAPS/POP3S TLS, relaying, restrictions, ports, plaintext logins, checks on the host (testinfra over
SSH), a real delivery read back over IMAPS and POP3S, and DNS. Every check ends as pass, fail or skip
with its reason; every detail is masked for the test user's password before it leaves this module.
"""

from __future__ import annotations

import email.policy
import functools
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mailprov.config.model import Host, Mailbox, Site, check_public_address
from mailprov.config.secrets import Secret, local_path, read_small_file, resolve
from mailprov.errors import ConfigError, MailprovError
from mailprov.transport.base import Transport
from mailprov.verify import dns, expect, probes, records
from mailprov.verify.certs import CertificateError, CertTrust, certificate_names_host, parse_certificate
from mailprov.verify.dns import DNS_TIMEOUT
from mailprov.verify.probes import Credentials, Endpoint, ProbeError
from mailprov.verify.results import CheckResult, Status, masked

if TYPE_CHECKING:
    from mailprov.resources.base import DnsRecord, HostContext

TransportFactory = Callable[[Host], Transport]
T = TypeVar("T")

_OLD_TLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_TLS_SUFFIX = {"TLSv1": "tls1_0", "TLSv1.1": "tls1_1", "TLSv1.2": "tls1_2"}
_POLL = 0.5
_TLS_STATUS: dict[str, Status] = {
    "refused": "pass",
    "accepted": "fail",
    "untestable": "skip",
    "error": "fail",
}


DNS_NAMES = ("dns.mx", "dns.a", "dns.ptr")
SENDING_NAMES = ("dns.spf", "dns.dmarc", "dns.host_records", "dkim.signature")


@dataclass(frozen=True)
class VerifyOptions:
    from_outside: bool = False  # this client is outside mynetworks: relay and restrictions are judged
    host_checks: bool = True  # log in over SSH for the on-host checks (and the Maildir delivery check)
    dns: bool = True
    resolver: str | None = (
        None  # `--resolver IP`: the DNS checks ask it (else the site's dns.server, else the system's)
    )
    delivery_timeout: float = 20.0  # how long to wait for a test message to arrive
    connect_timeout: float = probes.CONNECT_TIMEOUT
    dns_timeout: float = DNS_TIMEOUT
    workers: int = 4  # hosts verified at once


def probe_address(host: Host) -> str:
    """Where the network probes go: the host's public address (hosts[].public_address, else ssh.address,
    else its name), which `--address` replaces for one run (see with_address)."""
    return host.public()


def with_address(hosts: Sequence[Host], address: str | None) -> tuple[Host, ...]:
    """The hosts with `address` (`verify --address`) as the public address of the one host selected."""
    if address is None:
        return tuple(hosts)
    if len(hosts) != 1:
        names = ", ".join(h.name for h in hosts)
        raise ConfigError(
            f"--address {address} is one host's address, but {len(hosts)} hosts are selected ({names}): "
            "add --host NAME for the host it belongs to (or set hosts[].public_address in the site)"
        )
    try:
        value = check_public_address(address)
    except ValueError as exc:
        raise ConfigError(f"--address: {exc}") from None
    return (hosts[0].model_copy(update={"public_address": value}),)


def verify_site(
    site: Site,
    hosts: Sequence[Host],
    options: VerifyOptions,
    base_dir: Path,
    transport_factory: TransportFactory | None = None,
) -> dict[str, list[CheckResult]]:
    """Every host's results, by host name in the order given; hosts run in parallel (options.workers)."""

    def one(host: Host) -> list[CheckResult]:
        return verify_host(site, host, options, base_dir, transport_factory)

    if len(hosts) <= 1:
        return {h.name: one(h) for h in hosts}
    with ThreadPoolExecutor(max_workers=max(1, min(options.workers, len(hosts)))) as pool:
        return dict(zip((h.name for h in hosts), pool.map(one, hosts), strict=True))


def verify_host(
    site: Site,
    host: Host,
    options: VerifyOptions,
    base_dir: Path,
    transport_factory: TransportFactory | None = None,
) -> list[CheckResult]:
    """Every check for one host. transport_factory opens the SSH session for the on-host checks
    (default: the site's ssh settings, host keys checked strictly)."""
    run = HostVerification(site, host, options, base_dir)
    # SSH first (results are added in their usual place below): the certificate read from the host is
    # what a server must present before it is sent the test user's password.
    transport = run.open_host(transport_factory) if options.host_checks else None
    try:
        run.trust_certificates(transport)
        run.client_position()
        run.smtp()
        run.implicit_tls()
        run.relay()
        run.restrictions()
        run.ports()
        run.plaintext_logins()
        if options.host_checks:
            run.on_host(transport)
        else:
            run.add("host.ssh", "skip", "the on-host checks were turned off")
        run.delivery(transport)
        run.alias_delivery(transport)
    finally:
        if transport is not None:
            transport.close()
    if options.dns:
        run.dns()
    else:
        run.skip_group((*DNS_NAMES, *SENDING_NAMES), "DNS checks were turned off")
    return masked(run.results, run.secrets)


def default_transport_factory(base_dir: Path) -> TransportFactory:
    """An SSH session per host from the site's ssh settings (the same target `plan` and `apply` use)."""

    def factory(host: Host) -> Transport:
        from mailprov.orchestrate import RunOptions, target_for
        from mailprov.transport import connect

        return connect(target_for(host, RunOptions(), base_dir))

    return factory


class HostVerification:
    def __init__(self, site: Site, host: Host, options: VerifyOptions, base_dir: Path) -> None:
        self.site = site
        self.host = host
        self.options = options
        self.base_dir = base_dir
        self.endpoint = Endpoint(probe_address(host), host.name, options.connect_timeout)
        self.results: list[CheckResult] = []
        self.secrets: list[str] = []
        self.trusted = not options.from_outside
        self.position = "outside" if options.from_outside else "lan"
        self.local_address: str | None = None
        self.smtp_up = False
        self.port_plan = {p.service: p for p in expect.port_expectations(site, from_outside=options.from_outside)}
        self.domain = expect.mail_domain(site, host)
        self.external = expect.external_domain(site, host)
        user = expect.test_user(site)
        self.user = user
        self.creds: Credentials | None = None
        self.host_error: tuple[Status, str] | None = None
        self.ctx: HostContext | None = None  # this host's dialect, once read over SSH
        self.facts_error = ""
        self.published: tuple[DnsRecord, ...] | None = None  # what the host's resources publish (DKIM keys)
        self.published_error = "no SSH session to read what the host publishes (see host.ssh)"
        self.no_creds = "the site has no user with a `password` secret reference (password_hash cannot log in)"
        if user is not None and user.password is not None:
            try:
                self.creds = Credentials(user.login, resolve(user.password, base_dir))
                self.secrets.extend(self.creds.encoded_forms())
            except MailprovError as exc:
                self.no_creds = f"no password for {user.login}: {exc}"
        self.recipient = (
            expect.delivery_recipient(site, host, user) if user is not None else f"postmaster@{self.domain}"
        )

    # -- bookkeeping ------------------------------------------------------------------------------------

    def add(self, name: str, status: Status, detail: str) -> None:
        self.results.append(CheckResult(self.host.name, name, status, detail))

    def judge(self, name: str, ok: bool, good: str, bad: str) -> None:
        self.add(name, "pass" if ok else "fail", good if ok else bad)

    def skip_group(self, names: Sequence[str], reason: str) -> None:
        for name in names:
            self.add(name, "skip", reason)

    def attempt(self, name: str, call: Callable[[], T]) -> T | None:
        """Run a probe; a ProbeError becomes a failed check named `name`."""
        try:
            return call()
        except ProbeError as exc:
            self.add(name, "fail", str(exc))
            return None

    # -- where this client stands -----------------------------------------------------------------------

    def client_position(self) -> None:
        self.local_address = _source_address(self.endpoint.address)
        nets = self.site.mynetworks
        inside = self.local_address is not None and _in_networks(self.local_address, nets)
        claimed = "outside mynetworks (--from-outside)" if self.options.from_outside else "inside mynetworks"
        seen = f"this machine's address toward {self.endpoint.address} is {self.local_address or 'unknown'}"
        if inside == self.trusted:
            self.add("client.position", "pass", f"judging as a client {claimed}; {seen}")
        else:
            self.add(
                "client.position",
                "skip",
                f"judging as a client {claimed}, but {seen}, which is {'in' if inside else 'not in'} "
                f"mynetworks ({', '.join(nets)}): unless a NAT changes it, "
                + ("run without --from-outside" if inside else "run with --from-outside"),
            )

    # -- SMTP on port 25 --------------------------------------------------------------------------------

    def smtp(self) -> None:
        site = self.site
        names = [
            "smtp.banner_names_host",
            "smtp.starttls_offered",
            "smtp.starttls_handshake",
            "smtp.auth_before_tls",
            "smtp.auth_offered_after_tls",
            "smtp.auth_valid_password",
            "smtp.auth_wrong_password",
            "smtp.cert_names_host",
            "smtp.cert_expiry",
            *self._old_tls_names("smtp"),
            "smtp.local_recipient_accepted",
        ]
        session = self.attempt("smtp.connect", lambda: probes.smtp_session(self.endpoint))
        if session is None:
            self.skip_group(names, "port 25 cannot be reached (see smtp.connect)")
            return
        self.smtp_up = session.banner.code == 220
        self.judge(
            "smtp.connect",
            self.smtp_up,
            f"port 25: {session.banner}",
            f"port 25 greeted with {session.banner}",
        )
        if not self.smtp_up:
            self.skip_group(names, "the SMTP server did not greet with 220")
            return
        announced = probes.banner_name(session.banner.text)
        self.judge(
            "smtp.banner_names_host",
            announced.lower() == self.host.name,
            f"the banner names {announced}",
            f"the banner names {announced or 'nothing'}, not {self.host.name} (myhostname / smtpd_banner)",
        )

        if not site.tls.enabled:
            self.skip_group(names[1:-1], "the site has TLS disabled (tls.enabled: false)")
        else:
            self._smtp_tls(session)
        self._local_recipient()

    def _smtp_tls(self, session: probes.SmtpSession) -> None:
        site = self.site
        offered = session.ehlo.offers("STARTTLS")
        self.judge("smtp.starttls_offered", offered, "EHLO offers STARTTLS", "EHLO does not offer STARTTLS")
        if session.tls is not None:
            self.add("smtp.starttls_handshake", "pass", f"{session.tls.version}, {session.tls.cipher}")
        else:
            self.add(
                "smtp.starttls_handshake",
                "fail" if offered else "skip",
                session.tls_error or (f"STARTTLS answered {session.starttls}" if offered else "STARTTLS not offered"),
            )

        before = session.ehlo.auth_mechanisms
        if not site.sasl.enabled:
            self.judge(
                "smtp.auth_before_tls",
                not before,
                "no AUTH offered (SASL is off in the site)",
                f"AUTH {' '.join(sorted(before))} offered although the site has SASL off",
            )
        elif not site.tls.auth_only:
            self.add("smtp.auth_before_tls", "skip", "tls.auth_only is false: the site allows AUTH without TLS")
        else:
            self.judge(
                "smtp.auth_before_tls",
                not before,
                "EHLO before STARTTLS offers no AUTH",
                f"AUTH {' '.join(sorted(before))} offered before STARTTLS: passwords can cross the "
                "network in clear (smtpd_tls_auth_only)",
            )

        self._smtp_auth(session)
        self._certificate("smtp", session.tls, expiry=True)
        self._old_tls("smtp", lambda version: probes.smtp_tls_attempt(self.endpoint, version))

    def _smtp_auth(self, session: probes.SmtpSession) -> None:
        site = self.site
        auth_names = ("smtp.auth_offered_after_tls", "smtp.auth_valid_password", "smtp.auth_wrong_password")
        if not site.sasl.enabled:
            self.skip_group(auth_names, "SASL is off in the site (sasl.enabled: false)")
            return
        if session.ehlo_tls is None:
            self.skip_group(auth_names, "no TLS session (see smtp.starttls_handshake)")
            return
        if not site.sasl.on_port_25:
            offered = session.ehlo_tls.auth_mechanisms
            self.judge(
                auth_names[0],
                not offered,
                "after STARTTLS: no AUTH on port 25 (sasl.on_port_25: false; users log in on submission)",
                f"port 25 offers AUTH {' '.join(sorted(offered))} although the site has sasl.on_port_25: false",
            )
            self.skip_group(auth_names[1:], "no AUTH on port 25 (sasl.on_port_25: false)")
            return
        wanted = {m.upper() for m in site.sasl.mechanisms}
        offered = session.ehlo_tls.auth_mechanisms
        missing = wanted - offered
        self.judge(
            "smtp.auth_offered_after_tls",
            not missing,
            f"after STARTTLS: AUTH {' '.join(sorted(offered))}",
            f"after STARTTLS the server offers AUTH {' '.join(sorted(offered)) or 'nothing'}; "
            f"missing {' '.join(sorted(missing))}",
        )
        if self.creds is None:
            self.skip_group(auth_names[1:], self.no_creds)
            return
        mechanism = "PLAIN" if "PLAIN" in wanted else "LOGIN"
        creds = self.creds
        reply = self.attempt("smtp.auth_valid_password", lambda: probes.smtp_auth(self.endpoint, mechanism, creds))
        if reply is not None:
            self.judge(
                "smtp.auth_valid_password",
                reply.code == 235,
                f"AUTH {mechanism} as {creds.user}: {reply}",
                f"AUTH {mechanism} as {creds.user} with the site's password: {reply}",
            )
        wrong = Credentials(creds.user, Secret(_wrong_password(creds)), creds.trust)
        reply = self.attempt("smtp.auth_wrong_password", lambda: probes.smtp_auth(self.endpoint, mechanism, wrong))
        if reply is not None:
            self.judge(
                "smtp.auth_wrong_password",
                reply.code == 535,
                f"AUTH {mechanism} as {creds.user} with a wrong password: {reply}",
                f"a wrong password for {creds.user} was answered {reply}, not 535",
            )

    def _certificate(self, prefix: str, tls: probes.TlsInfo | None, *, expiry: bool) -> None:
        names = [f"{prefix}.cert_names_host", *([f"{prefix}.cert_expiry"] if expiry else [])]
        if tls is None or not tls.cert_der:
            self.skip_group(names, "no TLS session to read a certificate from")
            return
        try:
            cert = parse_certificate(tls.cert_der)
        except CertificateError as exc:
            self.skip_group(names, str(exc))
            return
        shown = ", ".join(cert.names()) or cert.subject or "no name"
        kind = "self-signed, " if cert.self_signed else ""
        self.judge(
            names[0],
            certificate_names_host(cert, self.host.name),
            f"{kind}issued to {shown}",
            f"the certificate names {shown}, not {self.host.name}",
        )
        if expiry:
            days = cert.days_left()
            until = cert.not_after.date().isoformat()
            if cert.not_before > datetime.now(UTC):
                self.add(names[1], "fail", f"not valid before {cert.not_before.isoformat()}")
            else:
                self.judge(names[1], days >= 0, f"{days} days left (until {until})", f"expired on {until}")

    def _old_tls_names(self, prefix: str) -> list[str]:
        minimum = _OLD_TLS.index(self.site.tls.min_protocol)
        return [f"{prefix}.tls_refuses_{_TLS_SUFFIX[v]}" for v in _OLD_TLS[:minimum]]

    def _old_tls(self, prefix: str, attempt: Callable[[str], probes.TlsAttempt]) -> None:
        minimum = _OLD_TLS.index(self.site.tls.min_protocol)
        for version in _OLD_TLS[:minimum]:
            name = f"{prefix}.tls_refuses_{_TLS_SUFFIX[version]}"
            result = attempt(version)
            status = _TLS_STATUS[result.outcome]
            why = f" (the site's minimum is {self.site.tls.min_protocol})" if result.outcome == "accepted" else ""
            self.add(name, status, f"{version}: {result.detail}{why}")

    def _local_recipient(self) -> None:
        """RCPT to a local user without DATA: a mail server must take its own domain's mail."""
        name = "smtp.local_recipient_accepted"
        sender = f"verify@{self.external}"
        tx = self.attempt(name, lambda: probes.smtp_transaction(self.endpoint, sender=sender, recipient=self.recipient))
        if tx is None:
            return
        if tx.accepted:
            self.add(name, "pass", f"RCPT TO:<{self.recipient}> from <{sender}>: {tx.final}")
        elif tx.final.temporary:
            self._deferred(name, f"mail to <{self.recipient}> from <{sender}>", tx)
        else:
            self.add(name, "fail", f"mail to <{self.recipient}> from <{sender}> is refused: {tx.describe()}")

    def _deferred(self, name: str, what: str, tx: probes.Transaction) -> None:
        """A 4xx where mail is due: a pass only when it is greylisting and the site greylists this
        client; any other 4xx (`451 4.3.5 Server configuration problem`) means no mail gets in."""
        greylisting = expect.greylisting_reach(self.site, trusted=self.trusted)
        if expect.is_greylisting(tx.final.text) and greylisting.applies:
            self.add(name, "pass", f"{what}: greylisted ({tx.describe()}): a real sender retries")
        elif expect.is_greylisting(tx.final.text):
            self.add(
                name,
                "fail",
                f"{what}: greylisted ({tx.describe()}), but greylisting should not apply here: {greylisting.reason}",
            )
        else:
            self.add(
                name,
                "fail",
                f"{what}: deferred ({tx.describe()}): a 4xx that is not greylisting means the server cannot "
                "take mail now (a policy service, a lookup table, its DNS or the configuration is broken): "
                "senders retry and then bounce",
            )

    # -- IMAPS / POP3S ----------------------------------------------------------------------------------

    def implicit_tls(self) -> None:
        for service, prefix in (("imaps", "imaps"), ("pop3s", "pop3s")):
            plan = self.port_plan[service]
            names = [f"{prefix}.cert_names_host", *self._old_tls_names(prefix)]
            if not self.site.tls.enabled:
                self.skip_group(names, "the site has TLS disabled")
                continue
            if not plan.expect_open:
                self.skip_group(names, f"port {plan.port} is not expected to answer from here ({plan.reason})")
                continue
            port = plan.port
            info = self.attempt(names[0], functools.partial(probes.implicit_tls, self.endpoint, port))
            if info is None:
                self.skip_group(names[1:], f"no TLS session on port {port}")
                continue
            self._certificate(prefix, info, expiry=False)
            self._old_tls(prefix, functools.partial(probes.implicit_tls_attempt, self.endpoint, port))

    # -- relaying ---------------------------------------------------------------------------------------

    def relay(self) -> None:
        variants = expect.relay_variants(self.host, self.external)
        if self.trusted:
            self.skip_group(
                [name for name, _ in variants],
                f"this client ({self.local_address or '?'}) is judged inside mynetworks, where relaying is "
                "allowed by design: run with --from-outside from an untrusted address to test relaying",
            )
            return
        sender = f"verify@{self.domain}"
        for name, recipient in variants:
            tx = self.attempt(
                name,
                functools.partial(probes.smtp_transaction, self.endpoint, sender=sender, recipient=recipient),
            )
            if tx is None:
                continue
            if tx.accepted:
                self.add(
                    name,
                    "fail",
                    f"OPEN RELAY: RCPT TO:<{recipient}> accepted without authentication: {tx.final}",
                )
            elif tx.final.permanent:
                self.add(name, "pass", f"<{recipient}> refused at {tx.describe()}")
            else:
                self.add(
                    name,
                    "fail",
                    f"<{recipient}> deferred, not refused ({tx.describe()}): a retry may be relayed",
                )

    # -- restrictions -----------------------------------------------------------------------------------

    def restrictions(self) -> None:
        self._helo_required()
        sender_ok = f"verify@{self.domain}"
        self._restriction(
            "restrictions.non_fqdn_helo",
            ("reject_non_fqdn_helo_hostname",),
            helo="mailprov-verify",
            sender=sender_ok,
            marker="helo",
        )
        self._restriction(
            "restrictions.non_fqdn_sender",
            ("reject_non_fqdn_sender",),
            helo=probes.PROBE_HELO,
            sender="verify@nofqdn",
            marker="sender",
        )
        rejecting = expect.rejecting_sender(self.site, self.external)
        if rejecting is None:
            self.add("restrictions.sender_access_reject", "skip", "sender_access has no REJECT entry")
        else:
            address, entry = rejecting
            self._restriction(
                "restrictions.sender_access_reject",
                ("check_sender_access",),
                helo=probes.PROBE_HELO,
                sender=address,
                marker="",
                entry=entry.line(),
            )

    def _helo_required(self) -> None:
        name = "restrictions.helo_required"
        if not self.site.restrictions.helo_required:
            self.add(name, "skip", "restrictions.helo_required is false")
            return
        if not self.smtp_up:
            self.add(name, "skip", "port 25 cannot be reached")
            return

        def mail_without_helo() -> probes.SmtpReply:
            with probes.SmtpClient(self.endpoint) as smtp:
                return smtp.command("MAIL", f"FROM:<verify@{self.domain}>")

        reply = self.attempt(name, mail_without_helo)
        if reply is not None:
            self.judge(
                name,
                reply.permanent,
                f"MAIL before HELO refused: {reply}",
                f"MAIL before HELO answered {reply} (smtpd_helo_required)",
            )

    def _restriction(
        self, name: str, restriction: tuple[str, ...], *, helo: str, sender: str, marker: str, entry: str = ""
    ) -> None:
        reach = expect.restriction_reach(self.site, restriction, trusted=self.trusted)
        if not reach.applies:
            hint = "" if self.options.from_outside else "; run with --from-outside to judge untrusted clients"
            self.add(name, "skip", f"does not apply to this client: {reach.reason}{hint}")
            return
        if not self.smtp_up:
            self.add(name, "skip", "port 25 cannot be reached")
            return
        tx = self.attempt(
            name,
            lambda: probes.smtp_transaction(self.endpoint, helo=helo, sender=sender, recipient=self.recipient),
        )
        if tx is None:
            return
        what = f"HELO {helo}, MAIL FROM:<{sender}>" + (f" (sender_access: {entry})" if entry else "")
        if tx.final.permanent and marker in tx.final.text.lower():
            self.add(name, "pass", f"{what}: refused at {tx.describe()}")
        elif tx.final.permanent:
            self.add(name, "fail", f"{what}: refused, but not by this restriction: {tx.describe()}")
        elif (
            tx.final.temporary
            and expect.is_greylisting(tx.final.text)
            and expect.greylisting_reach(self.site, trusted=self.trusted).applies
        ):
            self.add(
                name,
                "skip",
                f"{what}: greylisting answered first ({tx.describe()}), so a single attempt cannot see "
                "this restriction: list check_policy_service postgrey after it",
            )
        elif tx.final.temporary:
            self.add(
                name,
                "fail",
                f"{what}: deferred, not refused ({tx.describe()}): a 4xx that is not greylisting means the "
                f"server cannot take mail now; {reach.reason}",
            )
        else:
            self.add(name, "fail", f"{what}: not refused ({tx.describe()}); {reach.reason}")

    # -- ports ------------------------------------------------------------------------------------------

    def ports(self) -> None:
        plans = list(self.port_plan.values())
        with ThreadPoolExecutor(max_workers=len(plans)) as pool:
            states = list(pool.map(lambda p: probes.tcp_port(self.endpoint, p.port), plans))
        for plan, state in zip(plans, states, strict=True):
            name = f"ports.{plan.service}_from_{self.position}"
            is_open = state.state == "open"
            if state.state == "unreachable":
                self.add(name, "fail", f"port {plan.port}: host unreachable ({state.detail})")
            elif plan.expect_open:
                self.judge(
                    name,
                    is_open,
                    f"port {plan.port} open ({plan.reason})",
                    f"port {plan.port} {state.state}: {state.detail}; expected open ({plan.reason})",
                )
            else:
                self.judge(
                    name,
                    not is_open,
                    f"port {plan.port} {state.state} ({plan.reason})",
                    f"port {plan.port} is OPEN from here; expected refused or filtered ({plan.reason})",
                )

    # -- plaintext logins -------------------------------------------------------------------------------

    def plaintext_logins(self) -> None:
        for service, name, call in (
            ("imap", "imap.plaintext_login_refused", probes.imap_plaintext_login),
            ("pop3", "pop3.plaintext_login_refused", probes.pop3_plaintext_login),
        ):
            plan = self.port_plan[service]
            if not plan.expect_open:
                self.add(name, "skip", f"port {plan.port} is not expected to answer from here ({plan.reason})")
                continue
            trusted_by_dovecot = self._dovecot_trusts_us()
            if trusted_by_dovecot:
                self.add(name, "skip", trusted_by_dovecot)
                continue
            login = self.attempt(name, functools.partial(call, self.endpoint))
            if login is None:
                continue
            caps = " ".join(sorted(login.capabilities)) or "none"
            self.judge(
                name,
                login.refused,
                f"login without TLS on port {plan.port} refused: {login.reply}",
                f"port {plan.port} accepts a login without TLS (capabilities: {caps}; reply: {login.reply}): "
                "passwords can cross the network in clear",
            )

    def _dovecot_trusts_us(self) -> str:
        """Why Dovecot would treat this client as secured (empty when it would not)."""
        ours = self.local_address
        if ours is None:
            return ""
        if ours == self.endpoint.address or ipaddress.ip_address(ours).is_loopback:
            return f"this client ({ours}) is the server's own address, which Dovecot treats as secured"
        trusted = str(self.site.dovecot.extra.get("login_trusted_networks", "")).replace(",", " ").split()
        if _in_networks(ours, trusted):
            return f"this client ({ours}) is in Dovecot's login_trusted_networks, which counts as secured"
        return ""

    # -- on the host ------------------------------------------------------------------------------------

    def open_host(self, factory: TransportFactory | None) -> Transport | None:
        """SSH in, read the platform and render what the host should have; results wait for on_host."""
        from mailprov.facts.probe import parse_probe, probe_script
        from mailprov.facts.traits import TRAITS_READ, parse_traits
        from mailprov.resources.base import HostContext

        try:
            import mailprov.verify.hostchecks  # noqa: F401 (testinfra: needed for the on-host checks)
        except ImportError as exc:
            self.host_error = ("skip", f"pytest-testinfra is needed for the on-host checks: {exc}")
            return None
        make = factory or default_transport_factory(self.base_dir)
        try:
            transport = make(self.host)
        except MailprovError as exc:
            self.host_error = ("fail", str(exc))
            return None
        try:
            probe = transport.run_script(probe_script((TRAITS_READ,)), check=True, timeout=120)
            facts = parse_probe(probe.stdout, self.host.name)
            self.ctx = HostContext.of(self.site, self.host, facts.platform, self.base_dir, parse_traits(facts.sections))
        except MailprovError as exc:
            self.facts_error = str(exc)
        if self.options.dns and self.ctx is not None:
            from mailprov.orchestrate import read_facts
            from mailprov.plan import host_records

            try:
                self.published = host_records(*read_facts(self.site, self.host, transport, self.base_dir))
            except MailprovError as exc:
                self.published_error = f"what the host publishes could not be read: {exc}"
        return transport

    def trust_certificates(self, transport: Transport | None) -> None:
        """The certificates the test user's password may be sent to: the site's own tls.files (cert
        pinned, ca as issuer) and the certificate read from the host over the checked SSH session.
        With none, the checks that need the password are skipped, saying why."""
        trust = CertTrust()
        notes: list[str] = []
        files = self.site.tls.files
        if files is not None:
            for name, kind in ((files.cert, "pinned"), (files.ca, "ca")):
                if name is None:
                    continue
                try:
                    pem = read_small_file(local_path(name, self.base_dir), what="tls.files", max_bytes=1 << 20)
                    ders = CertTrust.der_certificates(pem.encode())
                except (MailprovError, CertificateError) as exc:
                    notes.append(str(exc))
                    continue
                trust = trust.merged(
                    CertTrust(frozenset(ders), source="the site's tls.files.cert")
                    if kind == "pinned"
                    else CertTrust(cas=ders)
                )
        from mailprov.resources.certificate import locate

        cert = locate(self.ctx) if self.ctx is not None else None
        if transport is not None and cert is not None:
            try:
                pem = transport.run(["cat", cert.cert_path], check=True, timeout=30).stdout
                ders = CertTrust.der_certificates(pem.encode())
                trust = trust.merged(
                    CertTrust(
                        frozenset(ders), source=f"the one in {cert.cert_path} on {self.host.name} (read over SSH)"
                    )
                )
            except (MailprovError, CertificateError) as exc:
                notes.append(f"cannot read {cert.cert_path} over SSH: {exc}")
        if trust.pinned or trust.cas:
            if self.creds is not None:
                self.creds = replace(self.creds, trust=trust)
            return
        if self.creds is not None:
            why = "; ".join(notes) or (
                "the on-host checks are off or SSH failed" if transport is None else "the site has no TLS"
            )
            self.creds = None
            self.no_creds = (
                "the password is sent only to a server whose certificate matches the one read from the host "
                f"over SSH (or issued by tls.files.ca), and there is none to compare: {why}"
            )

    def on_host(self, transport: Transport | None) -> None:
        """The on-host checks over the session open_host opened."""
        if transport is None or self.host_error is not None:
            failure: tuple[Status, str] = self.host_error or ("fail", "no SSH session")
            self.add("host.ssh", *failure)
            return
        from mailprov.verify.hostchecks import host_checks

        self.add("host.ssh", "pass", f"logged in over SSH to {self.host.ssh.address or self.host.name}")
        if self.ctx is None:
            self.add("host.facts", "fail", self.facts_error)
            return
        try:
            self.results.extend(host_checks(self.ctx, transport))
        except MailprovError as exc:
            self.add("host.facts", "fail", str(exc))

    # -- a real delivery --------------------------------------------------------------------------------

    def delivery(self, transport: Transport | None) -> None:
        names = ("delivery.smtp_accepted", "delivery.maildir", "delivery.imaps_read", "delivery.pop3s_read")
        if not self.smtp_up:
            self.skip_group(names, "port 25 cannot be reached")
            return
        user = self.user
        if user is None:
            self.skip_group(names, "the site has no user to deliver to")
            return
        auth, no_auth = self._sending_auth()
        if no_auth:
            self.skip_group(names, no_auth)
            return
        recipient_domain = self.recipient.rsplit("@", 1)[1]
        if recipient_domain not in expect.local_domains(self.site, self.host):
            self.skip_group(names, f"{recipient_domain} is not a local domain of {self.host.name}")
            return
        token = f"mailprov-verify-{secrets.token_hex(8)}"
        sender = f"{user.login}@{self.domain}"
        message = _test_message(sender, self.recipient, token, self.host.name)
        tx = self.attempt(
            names[0],
            lambda: probes.smtp_transaction(
                self.endpoint,
                sender=sender,
                recipient=self.recipient,
                starttls=self.site.tls.enabled,
                auth=auth,
                message=message,
            ),
        )
        if tx is None or not tx.accepted:
            if tx is not None:
                self.add(names[0], "fail", f"message to <{self.recipient}> not accepted: {tx.describe()}")
            self.skip_group(names[1:], "the test message was not accepted")
            return
        how = "authenticated" if auth else "as a trusted client"
        self.add(names[0], "pass", f"<{self.recipient}> ({how}): {tx.final}")
        deadline = time.monotonic() + self.options.delivery_timeout
        self._maildir(transport, user.login, token, deadline)
        self._read_back(token, deadline)

    def _sending_auth(self) -> tuple[tuple[str, Credentials] | None, str]:
        """How a test message is sent: (AUTH mechanism and credentials, or None inside mynetworks) and
        an empty string, or the reason it cannot be sent from here."""
        if self.trusted:
            return None, ""
        if not self.site.sasl.enabled:
            return None, "from outside, sending to a user needs SASL, which the site has off"
        if not self.site.sasl.on_port_25:
            return None, ""  # port 25 takes mail for local users from anyone, and offers no AUTH here
        if self.creds is None:
            return None, self.no_creds
        return ("PLAIN" if "plain" in self.site.sasl.mechanisms else "LOGIN", self.creds), ""

    def alias_delivery(self, transport: Transport | None) -> None:
        """A message to an alias of the site's `aliases:` map (e.g. root: [john]) is found in the Maildir
        of every site user it reaches, then removed from there."""
        names = ("delivery.site_alias_accepted", "delivery.site_alias_maildir")
        probe = expect.alias_probe(self.site)
        if probe is None:
            why = (
                "the site has no aliases: map"
                if not self.site.aliases
                else "no alias of the aliases: map reaches a site user without also forwarding off the site "
                "(a test message is never sent beyond the site)"
            )
            self.skip_group(names, why)
            return
        if self.site.mailbox is not Mailbox.MAILDIR:
            self.skip_group(names, "the site delivers to mbox: the alias message could not be read back")
            return
        if transport is None:
            self.skip_group(names, "no SSH session to read the alias message back (see host.ssh)")
            return
        if not self.smtp_up:
            self.skip_group(names, "port 25 cannot be reached")
            return
        auth, no_auth = self._sending_auth()
        if no_auth:
            self.skip_group(names, no_auth)
            return
        recipient = f"{probe.alias}@{self.domain}"
        token = f"mailprov-verify-{secrets.token_hex(8)}"
        sender = f"{self.user.login}@{self.domain}" if self.user is not None else f"postmaster@{self.domain}"
        message = _test_message(sender, recipient, token, self.host.name)
        tx = self.attempt(
            names[0],
            lambda: probes.smtp_transaction(
                self.endpoint,
                sender=sender,
                recipient=recipient,
                starttls=self.site.tls.enabled,
                auth=auth,
                message=message,
            ),
        )
        if tx is None or not tx.accepted:
            if tx is not None:
                self.add(names[0], "fail", f"message to the alias <{recipient}> not accepted: {tx.describe()}")
            self.skip_group(names[1:], "the alias test message was not accepted")
            return
        targets = ", ".join(probe.logins)
        self.add(names[0], "pass", f"<{recipient}> (aliases: {probe.alias} → {targets}): {tx.final}")
        from mailprov.verify.hostchecks import find_in_maildir, remove_files

        deadline = time.monotonic() + self.options.delivery_timeout
        started = time.monotonic()
        found: dict[str, list[str]] = {}
        try:
            for login in probe.logins:
                found[login] = _poll(functools.partial(find_in_maildir, transport, login, token), deadline)
        except MailprovError as exc:
            self.add(names[1], "fail", str(exc))
            return
        took = time.monotonic() - started
        leftovers = [path for paths in found.values() for path in paths]
        removed = "removed again"
        if leftovers:
            try:
                remove_files(transport, leftovers)
            except MailprovError as exc:
                removed = f"not removed: {exc}"
        missing = [login for login, paths in found.items() if not paths]
        self.judge(
            names[1],
            not missing,
            f"mail to {probe.alias} reached {targets}'s Maildir after {took:.1f} s ({removed})",
            f"mail to {probe.alias} is not in {', '.join(missing)}'s Maildir after "
            f"{self.options.delivery_timeout:g} s (aliases: {probe.alias} → {targets}; is the aliases map "
            "compiled? see host.map_fresh.aliases)",
        )

    def _maildir(self, transport: Transport | None, login: str, token: str, deadline: float) -> None:
        name = "delivery.maildir"
        if self.site.mailbox is not Mailbox.MAILDIR:
            self.add(name, "skip", "the site delivers to mbox")
            return
        if transport is None:
            self.add(name, "skip", "no SSH session to look into the Maildir (see host.ssh)")
            return
        from mailprov.verify.hostchecks import find_in_maildir

        started = time.monotonic()
        try:
            found = _poll(lambda: find_in_maildir(transport, login, token), deadline)
        except MailprovError as exc:
            self.add(name, "fail", str(exc))
            return
        took = time.monotonic() - started
        self.judge(
            name,
            bool(found),
            f"in {found[0] if found else ''} after {took:.1f} s",
            f"not in {login}'s Maildir after {self.options.delivery_timeout:g} s",
        )

    def _read_back(self, token: str, deadline: float) -> None:
        creds = self.creds
        protocols = self.site.dovecot.protocols
        for proto, name, service in (
            ("imap", "delivery.imaps_read", "imaps"),
            ("pop3", "delivery.pop3s_read", "pop3s"),
        ):
            plan = self.port_plan[service]
            if proto not in protocols:
                self.add(name, "skip", f"{proto} is not in dovecot.protocols")
                continue
            if creds is None:
                self.add(name, "skip", self.no_creds)
                continue
            if not plan.expect_open:
                self.add(name, "skip", f"port {plan.port} is not expected to answer from here")
                continue
            # The last reader deletes the message, so a production mailbox keeps no test mail.
            delete = proto == "pop3" or "pop3" not in protocols
            finder = probes.imap_find if proto == "imap" else probes.pop3_find
            search = functools.partial(finder, self.endpoint, creds, token, delete=delete)

            def found(search: Callable[[], probes.MailboxSearch] = search) -> probes.MailboxSearch | None:
                result = search()
                return result if result.found or not result.logged_in else None

            try:
                result = _poll(found, deadline)
            except ProbeError as exc:
                self.add(name, "fail", str(exc))
                continue
            if result is None:
                self.add(name, "fail", f"the test message did not show up over {service} as {creds.user}")
            else:
                self.judge(
                    name,
                    result.found,
                    f"found as {creds.user} over {service}: {result.detail}",
                    f"{service} as {creds.user}: {result.detail}",
                )

    # -- DNS --------------------------------------------------------------------------------------------

    def dns(self) -> None:
        resolver = records.choose(self.site, self.options.resolver, self.options.dns_timeout)
        if resolver is not None and resolver.source != records.SYSTEM:
            # The site's own server (or --resolver) is asked directly: it need not resolve the public DNS.
            self._dns_through(resolver)
            self._sending(resolver)
            return
        unusable = self._dns_system()
        if unusable is not None or resolver is None:
            self.skip_group(SENDING_NAMES, unusable or "no nameserver in /etc/resolv.conf")
            return
        self._sending(resolver)

    def _dns_system(self) -> str | None:
        """MX, A and PTR through the system's resolver (the stub); the reason it is unusable, or None."""
        needed = dns.needed_records(self.site, self.host)
        names = DNS_NAMES
        server = dns.system_nameserver()
        if server is None:
            self.skip_group(names, "no nameserver in /etc/resolv.conf; the site needs: " + " ; ".join(needed))
            return "no nameserver in /etc/resolv.conf (or give --resolver IP)"
        timeout = self.options.dns_timeout
        try:
            dns.check_resolver(server, timeout)
            mx = dns.lookup(self.site.domain, "MX", server, timeout)
        except dns.DnsUnavailable as exc:
            for name, record in zip(names, [*needed, ""], strict=False):
                self.add(name, "skip", f"{exc}; needed: {record}" if record else f"{exc}; no address to check")
            return f"{exc} (or give --resolver IP)"
        targets = [v.split()[-1].lower().rstrip(".") for v in mx.values("MX")]
        self.judge(
            "dns.mx",
            self.host.name in targets,
            f"{needed[0]} (MX: {', '.join(mx.values('MX'))})",
            f"{self.site.domain} MX is {', '.join(mx.values('MX')) or mx.rcode}; add: {needed[0]}",
        )
        address = dns.ip_literal(self.endpoint.address)
        rtype = "AAAA" if address and ":" in address else "A"
        try:
            a = dns.lookup(self.host.name, rtype, server, timeout)
            values = a.values(rtype)
            ok = address in values if address else bool(values)
            self.judge(
                "dns.a",
                ok,
                f"{needed[1]} ({rtype}: {', '.join(values)})",
                f"{self.host.name} {rtype} is {', '.join(values) or a.rcode}; add: {needed[1]}",
            )
        except dns.DnsUnavailable as exc:
            self.add("dns.a", "skip", f"{exc}; needed: {needed[1]}")
        if address is None:
            self.add(
                "dns.ptr",
                "skip",
                f"no IP address for {self.host.name} to check a PTR for: set hosts[].public_address "
                "(or pass --address)",
            )
            return None
        reverse = ipaddress.ip_address(address).reverse_pointer
        try:
            ptr = dns.lookup(reverse, "PTR", server, timeout)
            names_back = [v.lower().rstrip(".") for v in ptr.values("PTR")]
            self.judge(
                "dns.ptr",
                self.host.name in names_back,
                needed[2],
                f"{reverse} PTR is {', '.join(names_back) or ptr.rcode}; add: {needed[2]}",
            )
        except dns.DnsUnavailable as exc:
            self.add("dns.ptr", "skip", f"{exc}; needed: {needed[2]}")
        return None

    def _dns_through(self, resolver: records.Resolver) -> None:
        """MX, A/AAAA and forward-confirmed PTR, asked of the site's server (or --resolver)."""
        needed = dns.needed_records(self.site, self.host)
        via = f"via {resolver.server} ({resolver.source})"
        address = dns.ip_literal(self.endpoint.address)
        rtype = "AAAA" if address and ":" in address else "A"
        try:
            mx = resolver.ask(self.site.domain, "MX")
            targets = [v.split()[-1].rstrip(".") for v in mx]
            self.judge(
                "dns.mx",
                self.host.name in targets,
                f"{self.site.domain} MX {', '.join(mx)} {via}",
                f"{self.site.domain} MX is {', '.join(mx) or 'missing'} {via}; add: {needed[0]}",
            )
            forward = resolver.ask(self.host.name, rtype)
            self.judge(
                "dns.a",
                address in forward if address else bool(forward),
                f"{self.host.name} {rtype} {', '.join(forward)} {via}",
                f"{self.host.name} {rtype} is {', '.join(forward) or 'missing'} {via}; add: {needed[1]}",
            )
            if address is None:
                self.add("dns.ptr", "skip", f"no IP address for {self.host.name}: set hosts[].public_address")
                return
            reverse = ipaddress.ip_address(address).reverse_pointer
            back = [v.rstrip(".") for v in resolver.ask(reverse, "PTR")]
            confirmed = self.host.name in back and address in forward
            self.judge(
                "dns.ptr",
                confirmed,
                f"{reverse} PTR {self.host.name}, whose {rtype} is {address} again (forward-confirmed) {via}",
                f"{reverse} PTR is {', '.join(back) or 'missing'} {via}"
                + ("" if address in forward else f" and {self.host.name} {rtype} is not {address}")
                + f"; the network owner sets: {needed[2]}",
            )
        except dns.DnsUnavailable as exc:
            for name, record in zip(DNS_NAMES, needed, strict=False):
                if not any(r.name == name for r in self.results):
                    self.add(name, "skip", f"{exc} (ask a recursive resolver with --resolver IP); needed: {record}")

    def _sending(self, resolver: records.Resolver) -> None:
        """What receivers check of mail from the site: SPF for this host's address, the DMARC policy, the
        host's own records (its DKIM keys) as published, and a message sent through submission whose DKIM
        signature verifies against DNS."""
        via = f"via {resolver.server} ({resolver.source})"
        try:
            self._spf(resolver, via)
            self._dmarc(resolver, via)
            self._host_records(resolver, via)
        except dns.DnsUnavailable as exc:
            for name in SENDING_NAMES[:3]:
                if not any(r.name == name for r in self.results):
                    self.add(name, "skip", str(exc))
        self._dkim_signature(resolver)

    def _spf(self, resolver: records.Resolver, via: str) -> None:
        if not self.site.spf.enabled:
            self.add("dns.spf", "skip", "the site publishes no SPF record (spf.enabled: false)")
            return
        address = dns.ip_literal(self.endpoint.address)
        if address is None:
            self.add("dns.spf", "skip", f"no IP address for {self.host.name}: set hosts[].public_address")
            return
        sender = f"postmaster@{self.site.domain}"
        result, explanation = records.spf_result(resolver, address, sender, self.host.name)
        from mailprov.resources.dns import spf_text

        self.judge(
            "dns.spf",
            result == "pass",
            f"SPF pass for {address} sending as {self.site.domain} {via}",
            f"SPF {result} for {address} sending as {self.site.domain} {via} ({explanation}); "
            f'publish: {self.site.domain}. TXT "{spf_text(self.site)}"',
        )

    def _dmarc(self, resolver: records.Resolver, via: str) -> None:
        if not self.site.dmarc.enabled:
            self.add("dns.dmarc", "skip", "the site publishes no DMARC record (dmarc.enabled: false)")
            return
        from mailprov.resources.dns import dmarc_text

        name = f"_dmarc.{self.site.domain}"
        found = [v for v in resolver.ask(name, "TXT") if v.lower().startswith("v=dmarc1")]
        wanted = records.dmarc_tags(dmarc_text(self.site))
        tags = records.dmarc_tags(found[0]) if len(found) == 1 else {}
        same = bool(tags) and all(tags.get(k, "").lower() == v.lower() for k, v in wanted.items())
        d = self.site.dmarc
        # The identities verify's mail uses: From and MAIL FROM at the mail domain, DKIM d= the site's domain.
        in_line = records.aligned(self.site.domain, self.domain, d.adkim) and records.aligned(
            self.site.domain, self.domain, d.aspf
        )
        self.judge(
            "dns.dmarc",
            same and in_line,
            f"{name} TXT {found[0] if found else ''}; From {self.domain} aligned with {self.site.domain} {via}",
            (f"{name} has {len(found)} DMARC record(s): {'; '.join(found) or 'none'} {via}" if not same else "")
            + ("" if in_line else f"From {self.domain} does not align with {self.site.domain}")
            + f'; publish: {name}. TXT "{dmarc_text(self.site)}"',
        )

    def _host_records(self, resolver: records.Resolver, via: str) -> None:
        if self.published is None:
            self.add("dns.host_records", "skip", self.published_error)
            return
        if not self.published:
            self.add("dns.host_records", "pass", "the host's resources publish no record of their own (no DKIM)")
            return
        from mailprov.resources.dns import canonical, rdata_text

        missing = []
        for record in self.published:
            values = resolver.ask(record.name, record.rtype)
            if canonical(record.rtype, record.value) not in {canonical(record.rtype, v) for v in values}:
                shown = rdata_text(record.rtype, record.value)
                missing.append(f"{record.name}. {record.rtype} {shown[:60]}… ({record.why or 'from the host'})")
        whats = ", ".join(dict.fromkeys(r.why or r.name for r in self.published))
        self.judge(
            "dns.host_records",
            not missing,
            f"{len(self.published)} record(s) as on the host ({whats}) {via}",
            f"not published as on the host {via}: " + "; ".join(missing),
        )

    def _dkim_signature(self, resolver: records.Resolver) -> None:
        name = "dkim.signature"
        keys = [r for r in self.published or () if "._domainkey." in r.name and r.rtype == "TXT"]
        if self.published is not None and not keys:
            self.add(name, "skip", "the host publishes no DKIM key: the site signs nothing (dkim: not set)")
            return
        if not self.site.postfix.submission:
            self.add(name, "skip", "the site has no submission port 587 (postfix.submission: false)")
            return
        user = self.user
        if user is None or self.creds is None:
            self.add(name, "skip", self.no_creds)
            return
        if "imap" not in self.site.dovecot.protocols:
            self.add(name, "skip", "imap is not in dovecot.protocols: the message cannot be read back")
            return
        token = f"mailprov-verify-{secrets.token_hex(8)}"
        sender = f"{user.login}@{self.domain}"
        message = _test_message(sender, self.recipient, token, self.host.name)
        auth = ("PLAIN" if "plain" in self.site.sasl.mechanisms else "LOGIN", self.creds)
        tx = self.attempt(
            name,
            lambda: probes.smtp_transaction(
                self.endpoint,
                sender=sender,
                recipient=self.recipient,
                starttls=True,
                auth=auth,
                message=message,
                port=587,
            ),
        )
        if tx is None:
            return
        if not tx.accepted:
            self.add(name, "fail", f"submission on 587 did not take the message: {tx.describe()}")
            return
        creds = self.creds
        deadline = time.monotonic() + self.options.delivery_timeout
        try:
            raw = _poll(lambda: probes.imap_fetch(self.endpoint, creds, token, delete=True), deadline)
        except ProbeError as exc:
            self.add(name, "fail", f"reading the message back over IMAPS: {exc}")
            return
        if raw is None:
            self.add(
                name,
                "fail",
                f"the message sent on 587 did not show up over IMAPS within {self.options.delivery_timeout:g} s",
            )
            return
        verdict = records.dkim_check(raw, resolver)
        in_line = verdict.domain != "" and records.aligned(verdict.domain, self.domain, self.site.dmarc.adkim)
        self.judge(
            name,
            verdict.ok and in_line,
            f"sent on 587 as {sender}, read back over IMAPS: {verdict.detail}, aligned with From {self.domain}",
            f"sent on 587 as {sender}, read back over IMAPS: {verdict.detail}"
            + ("" if in_line or not verdict.domain else f"; d={verdict.domain} does not align with From {self.domain}"),
        )


# --- helpers ---------------------------------------------------------------------------------------------


def _source_address(address: str) -> str | None:
    """This machine's address on the route to `address` (a UDP connect sends no packet)."""
    try:
        infos = socket.getaddrinfo(address, 25, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)
            return str(sock.getsockname()[0])
    except (OSError, IndexError):
        return None


def _in_networks(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def _wrong_password(creds: Credentials) -> str:
    while True:
        candidate = f"wrong-{secrets.token_hex(8)}"
        if candidate != creds.password.reveal():
            return candidate


def _test_message(sender: str, recipient: str, token: str, host: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"mailprov verify {token}"
    msg["Message-ID"] = f"<{token}@{host}>"
    msg["Date"] = formatdate(localtime=False)
    msg.set_content("Sent by `mailprov verify` to prove delivery; it deletes this message after reading it.\n")
    return msg.as_bytes(policy=email.policy.SMTP)


def _poll(call: Callable[[], T], deadline: float) -> T:
    """Call until the result is truthy or the deadline passes; the last result either way."""
    while True:
        result = call()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(_POLL)
