"""TEMPORARY stand-in for `mailprov apply`: provision one lab host by hand so `verify` has a server to prove.

It does what the guide does, in the order an admin would, over SSH as root (mailprov's own paramiko
transport, host key checked against the lab's known_hosts): install the packages from the host's local
apt repository, push the files `render_host` produces for the host's real platform, generate the
self-signed certificate, create the user with a password and a Maildir, build the maps, load the
firewall chain, enable and (re)start the services.

When `mailprov apply` exists, `tests/live/test_verify.py::provisioned` calls it instead and this file goes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailprov.config.loader import load_site
from mailprov.config.model import Site
from mailprov.config.secrets import resolve
from mailprov.facts.probe import ProbeRequest, parse_probe, probe_script
from mailprov.render import Rendered, render_host
from mailprov.transport import SshTarget, SshTransport, quote
from mailprov.transport.base import Transport

TEMPLATE = Path(__file__).parent / "data" / "verify-site.yaml"
PASSWORD_ENV = "MAILPROV_VERIFY_PASSWORD"
PACKAGES = (
    "postfix",
    "dovecot-imapd",
    "dovecot-pop3d",
    "postgrey",
    "openssl",
    "iptables",
    "iptables-persistent",
)


@dataclass(frozen=True)
class LabTarget:
    """The parts of a `mailprov.lab.LabHost` this module needs."""

    name: str  # bookworm-3
    address: str
    ssh_port: int
    root_key: str
    user: str
    known_hosts: str

    @property
    def fqdn(self) -> str:
        return f"{self.name}.example.test"


def write_site(lab: LabTarget, path: Path) -> Path:
    """The verify site for `lab`, written to `path`."""
    text = TEMPLATE.read_text(encoding="utf-8")
    for key, value in {
        "@HOSTNAME@": lab.fqdn,
        "@ADDRESS@": lab.address,
        "@SSH_USER@": lab.user,
        "@IDENTITY_FILE@": lab.root_key,
        "@KNOWN_HOSTS@": lab.known_hosts,
    }.items():
        text = text.replace(key, value)
    path.write_text(text, encoding="utf-8")
    return path


def root_transport(lab: LabTarget) -> SshTransport:
    target = SshTarget(
        host=lab.fqdn,
        address=lab.address,
        port=lab.ssh_port,
        user="root",
        identity_file=lab.root_key,
        known_hosts=lab.known_hosts,
        connect_timeout=10.0,
    )
    transport = SshTransport(target)
    transport.connect()
    return transport


def provision(lab: LabTarget, site_path: Path) -> Rendered:
    """Provision the site's only host on `lab`; idempotent enough to run again on the same host."""
    site = load_site(site_path)
    (host,) = site.hosts
    with root_transport(lab) as t:
        sh(t, "apt-get -q update", timeout=300)
        sh(
            t,
            "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold install "
            + " ".join(PACKAGES),
            timeout=900,
        )
        platform = parse_probe(t.run_script(probe_script(ProbeRequest()), timeout=120).stdout, host.name).platform
        rendered = render_host(site, host, platform, site_path.parent)
        d = rendered.dialect
        sh(t, f"echo {quote(host.name)} > /etc/mailname; hostname {quote(host.name.split('.')[0])} || true")
        for f in rendered.files:
            if f.block is not None:
                if not f.content.strip():
                    continue  # an empty managed block (no submission/smtps): the distribution's file stays
                raise NotImplementedError(f"{f.path}: managed blocks are apply's job (site without submission)")
            t.run(
                ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1.new" && chown "$2" "$1.new" && '
                 'chmod "$3" "$1.new" && mv "$1.new" "$1"', "sh", f.path, f"{f.owner}:{f.group}", f"{f.mode:o}"],
                stdin=f.content.encode(),
            )  # fmt: skip
        cert = rendered.certificate
        assert cert is not None
        new_certificate(t, cert.cert_path, cert.key_path, cert.subject, cert.key_bits, cert.generate_days or 365)
        create_users(t, site, site_path.parent)
        sh(t, "newaliases")
        if site.sender_access:
            sh(t, f"postmap {d.map_type}:{d.paths.sender_access}")
        for tool, path in (
            ("iptables", d.paths.firewall_v4),
            ("ip6tables", d.paths.firewall_v6),
        ):
            if any(f.path == path for f in rendered.files):
                sh(t, f"{tool} -F MAILPROV 2>/dev/null || true; {tool}-restore --noflush < {path} && "
                      f"({tool} -C INPUT -j MAILPROV 2>/dev/null || {tool} -I INPUT 1 -j MAILPROV)")  # fmt: skip
        if d.firewall_save:
            sh(t, " ".join(d.firewall_save) + " || true")
        # Postfix first: it creates /var/spool/postfix/private, where Dovecot puts its auth socket (trixie).
        for service in ("postgrey", "postfix", "dovecot"):
            sh(t, " ".join(quote(a) for a in d.enable_service_argv(service)))
            # `restart` fails for a stopped postgrey on Debian (its stop step exits 1): stop, then start.
            # Daemons keep inherited stdout open: their output goes to a file, shown when the start fails.
            log = f"/var/log/mailprov-{service}-start.log"
            sh(t, f"service {service} stop >/dev/null 2>&1 </dev/null || true; service {service} start "
                  f"</dev/null >{log} 2>&1 || {{ cat {log} >&2; exit 1; }}", timeout=120)  # fmt: skip
        return rendered


def new_certificate(t: Transport, cert_path: str, key_path: str, subject: str, bits: int, days: int) -> None:
    sh(
        t,
        f"openssl req -x509 -newkey rsa:{bits} -nodes -days {days} -subj {quote(subject)} "
        f"-keyout {quote(key_path)} -out {quote(cert_path)} 2>&1 && chmod 600 {quote(key_path)} && "
        f"chown root:root {quote(key_path)} && chmod 644 {quote(cert_path)}",
    )


def create_users(t: Transport, site: Site, base_dir: Path) -> None:
    for user in site.users:
        login = quote(user.login)
        sh(t, f"id -u {login} >/dev/null 2>&1 || useradd -m -s /bin/bash -c {quote(user.full_name)} {login}")
        if user.password is not None:
            password = resolve(user.password, base_dir).reveal()
            t.run(["chpasswd"], stdin=f"{user.login}:{password}\n".encode(), secrets=[password])
        sh(t, f'h=$(getent passwd {login} | cut -d: -f6) && mkdir -p "$h/Maildir/cur" "$h/Maildir/new" '
              f'"$h/Maildir/tmp" && chown -R {login}:{login} "$h/Maildir" && chmod -R 700 "$h/Maildir"')  # fmt: skip


def sh(t: Transport, script: str, *, timeout: float = 120.0, secrets: Sequence[str] = ()) -> str:
    """Run a script as root; raise CommandError (exit code and stderr tail) when it fails."""
    return t.run_script("set -e\n" + script + "\n", timeout=timeout, secrets=secrets).stdout


def ensure_password() -> str:
    """The test user's password: from the environment, or a fresh one put there for this run."""
    if not os.environ.get(PASSWORD_ENV):
        import secrets

        os.environ[PASSWORD_ENV] = "Vf-" + secrets.token_urlsafe(12)
    return os.environ[PASSWORD_ENV]
