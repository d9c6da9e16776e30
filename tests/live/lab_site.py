"""The verify test's lab site and root access to its host: the site file written for a lab host, a root
SSH session (host key checked against the lab's known_hosts) for breaking and restoring it by hand, and the
test user's password. Provisioning itself is `mailprov apply`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailprov.transport import SshTarget, SshTransport
from mailprov.transport.base import Transport

TEMPLATE = Path(__file__).parent / "data" / "verify-site.yaml"
PASSWORD_ENV = "MAILPROV_VERIFY_PASSWORD"


@dataclass(frozen=True)
class LabTarget:
    """The parts of a `mailprov.lab.LabHost` this module needs."""

    name: str  # bookworm-3
    address: str
    ssh_port: int
    root_key: str
    user: str
    known_hosts: str
    outside_address: str = ""  # the host's address on the "outside" network (10.232.x.y)

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


def sh(t: Transport, script: str, *, timeout: float = 120.0, secrets: Sequence[str] = ()) -> str:
    """Run a script as root; raise CommandError (exit code and stderr tail) when it fails."""
    return t.run_script("set -e\n" + script + "\n", timeout=timeout, secrets=secrets).stdout


def ensure_password() -> str:
    """The test user's password: from the environment, or a fresh one put there for this run."""
    if not os.environ.get(PASSWORD_ENV):
        import secrets

        os.environ[PASSWORD_ENV] = "Vf-" + secrets.token_urlsafe(12)
    return os.environ[PASSWORD_ENV]
