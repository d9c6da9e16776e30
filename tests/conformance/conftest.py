"""The conformance suite's site: a user's own (`--site PATH`), or the lab's four Debian releases.

    pytest tests/conformance --site my-site.yaml    every host of my-site.yaml (the user's own boxes)
    pytest tests/conformance                        the lab: bullseye-30, bookworm-30, trixie-30, forky-30,
                                                    started fresh (root on Linux; skipped otherwise)

Environment for the lab run:
    MAILPROV_CONFORMANCE_TRANSPORT   paramiko (default) | openssh: the lab site's `hosts[].ssh.transport`
    MAILPROV_CONFORMANCE_INDEX       the lab hosts' index (default 30)
    MAILPROV_CONFORMANCE_DISTROS     which lab releases, comma-separated (default all four)
    MAILPROV_CONFORMANCE_PASSWORD    the test user's password (default: a fresh one for this run)
    MAILPROV_LAB_KEEP=1              keep the lab up at the end (as for tests/live)
    MAILPROV_CONFORMANCE_CUT         ssh (default: mailprov's SSH session is killed) | host (the run on the host)

The suite changes the site's hosts: it applies the site, variants of it (a bigger message size limit; a
value the running smtpd refuses), and kills applies half-way. Run it against boxes made for testing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.config.model import Site

HERE = Path(__file__).resolve().parent
LAB_DISTROS = ("bullseye", "bookworm", "trixie", "forky")
TRANSPORT_ENV = "MAILPROV_CONFORMANCE_TRANSPORT"
PASSWORD_ENV = "MAILPROV_CONFORMANCE_PASSWORD"
INDEX_ENV = "MAILPROV_CONFORMANCE_INDEX"
DISTROS_ENV = "MAILPROV_CONFORMANCE_DISTROS"

LAB_SITE = """\
# The conformance suite's lab site (written by tests/conformance/conftest.py for this run).
domain: example.test
hosts:
{hosts}
mydestination: [$myhostname, localhost.$mydomain, localhost, $mydomain]
mynetworks: [10.231.0.0/16, 127.0.0.0/8]
users:
  - login: john
    full_name: John Smith
    password: {{env: {password_env}}}
    aliases: [jsmith]
aliases:
  root: [john]
restrictions:
  helo_required: true
  recipient:
    - reject_unauth_pipelining
    - permit_mynetworks
    - permit_sasl_authenticated
    - reject_unauth_destination
    - check_policy_service: postgrey
    - permit
greylisting: {{enabled: true, delay: 300}}
sasl: {{enabled: true}}
tls:
  generate: {{days: 365}}
  min_protocol: TLSv1.2
dovecot:
  protocols: [imap, pop3]
firewall:
  enabled: true
  open: [smtp, imaps, pop3s]
  lan_only: [imap, pop3]
"""

LAB_HOST = """\
  - name: {name}.example.test
    ssh:
      address: {address}
      user: admin
      become: true
      identity_file: {key}
      known_hosts: {known}{transport}
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--site",
        action="store",
        default=None,
        metavar="PATH",
        help="conformance suite: run against every host of this site file (default: the lab's hosts)",
    )


def site_option(config: pytest.Config) -> str | None:
    try:
        value = config.getoption("--site")
    except ValueError:  # this conftest was not loaded at start-up (e.g. `pytest tests`): no --site given
        return None
    return str(value) if value else None


def why_no_lab() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"the conformance suite's lab run needs Linux (this is {sys.platform}); or give --site PATH"
    if os.geteuid() != 0:
        return "the conformance suite's lab run needs root (lab hosts); or give --site PATH"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if site_option(config) is not None:
        return
    reason = why_no_lab()
    if reason is None:
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


def lab_transport() -> str:
    transport = os.environ.get(TRANSPORT_ENV, "paramiko")
    if transport not in ("paramiko", "openssh"):
        raise pytest.UsageError(f"{TRANSPORT_ENV} must be paramiko or openssh, not {transport!r}")
    return transport


def write_lab_site(path: Path, hosts: list[tuple[str, str]], key: str, known: str, transport: str) -> Path:
    """The lab site for (name, address) pairs; the transport key only when not the default (paramiko)."""
    if not os.environ.get(PASSWORD_ENV):
        import secrets

        os.environ[PASSWORD_ENV] = "Conf-" + secrets.token_urlsafe(12)
    extra = "" if transport == "paramiko" else f"\n      transport: {transport}"
    block = "".join(
        LAB_HOST.format(name=name, address=address, key=key, known=known, transport=extra) for name, address in hosts
    )
    path.write_text(LAB_SITE.format(hosts=block.rstrip("\n"), password_env=PASSWORD_ENV), encoding="utf-8")
    return path


def _lab_site(directory: Path) -> Iterator[Path]:
    from mailprov import lab
    from mailprov.lab.users import release

    index = int(os.environ.get(INDEX_ENV, "30"))
    transport = lab_transport()
    try:
        distros = os.environ.get(DISTROS_ENV, ",".join(LAB_DISTROS)).split(",")
        hosts = [lab.up_at(distro.strip(), [index], fresh=True)[0] for distro in distros]
        yield write_lab_site(
            directory / "lab-site.yaml",
            [(host.name, host.address) for host in hosts],
            hosts[0].root_key,
            hosts[0].known_hosts,
            transport,
        )
    finally:
        release()
        if os.environ.get("MAILPROV_LAB_KEEP") != "1" and not lab.in_use_by_others():
            lab.down()


@pytest.fixture(scope="session")
def site_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The site under test: --site PATH, else a lab site for this run."""
    given = site_option(request.config)
    if given is not None:
        path = Path(given).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--site {given}: no such file")
        yield path
        return
    reason = why_no_lab()
    if reason is not None:
        pytest.skip(reason)
    yield from _lab_site(tmp_path_factory.mktemp("conformance"))


@pytest.fixture(scope="session")
def site(site_path: Path) -> Site:
    return load_site(site_path)
