"""The guide's mail server (what inventories/lab.yaml describes) as a pyinfra deploy, for peer_bench.py.

The configuration files are the ones `mailprov render` writes for the host (data `files_dir`); this deploy
puts them and manages what mailprov manages around them: packages (and no other MTA), the user with his
password and Maildir, the self-signed certificate, the compiled maps, the firewall chain (loaded, hooked
into INPUT, persisted) and the services (running, started at boot), with the same follow-ups when
something changed (postfix reload, dovecot/postgrey restart, newaliases, postmap, firewall reload).

    pyinfra -y ADDRESS deploy.py --data files_dir=DIR --data mail_hostname=mxN.example.test \\
        --data john_hash='$6$…'
"""

from pathlib import Path

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.facts.sysvinit import InitdStatus
from pyinfra.operations import apt, files, server, sysvinit

FILES = Path(host.data.files_dir)
NAME = host.data.mail_hostname
CERT = f"/etc/ssl/certs/{NAME}.pem"
KEY = f"/etc/ssl/private/{NAME}.key"
PACKAGES = [
    "postfix",
    "dovecot-core",
    "openssl",
    "dovecot-imapd",
    "dovecot-pop3d",
    "iptables",
    "iptables-persistent",
    "postgrey",
]
OTHER_MTAS = ["exim4-daemon-light", "exim4-daemon-heavy", "sendmail-bin"]
MAILDIR = ["/home/john/Maildir", "/home/john/Maildir/cur", "/home/john/Maildir/new", "/home/john/Maildir/tmp"]
PRESEED = (
    "postfix postfix/main_mailer_type select No configuration\n"
    "iptables-persistent iptables-persistent/autosave_v4 boolean false\n"
    "iptables-persistent iptables-persistent/autosave_v6 boolean false\n"
)


def rule_count(relative: str) -> int:
    return sum(1 for line in (FILES / relative).read_text().splitlines() if line.startswith("-A "))


if "postfix" not in host.get_fact(DebPackages):
    server.shell(name="Preseed debconf", commands=[f"printf '%s' '{PRESEED}' | debconf-set-selections"])
apt.packages(name="Mail packages", packages=PACKAGES)
apt.packages(name="No other MTA", packages=OTHER_MTAS, present=False)

server.user(
    name="User john", user="john", comment="John Smith", password=host.data.john_hash, home="/home/john",
    create_home=True,
)  # fmt: skip
for directory in MAILDIR:
    files.directory(name=f"Maildir {directory}", path=directory, user="john", group="john", mode="700")

cert_ok = host.get_fact(
    Command,
    f"test -f {KEY} && openssl x509 -checkend 2592000 -noout -in {CERT} >/dev/null 2>&1 && echo ok || echo no",
)
new_cert = cert_ok != "ok"
if new_cert:
    server.shell(
        name="Self-signed certificate",
        commands=[
            "mkdir -p /etc/ssl/certs /etc/ssl/private",
            "umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 365"
            f" -subj /CN={NAME} -keyout {KEY} -out {CERT}",
        ],
    )
files.file(name="Certificate mode", path=CERT, user="root", group="root", mode="644")
key = files.file(name="Key mode", path=KEY, user="root", group="root", mode="600")


def put(relative: str, mode: str = "644"):  # type: ignore[no-untyped-def]
    return files.put(
        name=f"/{relative}", src=str(FILES / relative), dest=f"/{relative}", user="root", group="root", mode=mode
    )


main_cf = put("etc/postfix/main.cf")
aliases = put("etc/aliases")
sender_access = put("etc/postfix/sender_access")
dovecot_conf = put("etc/dovecot/dovecot.conf")
postgrey_defaults = put("etc/default/postgrey")
firewall_v4 = put("etc/mailprov/firewall.v4", "600")
firewall_v6 = put("etc/mailprov/firewall.v6", "600")

aliases_db = host.get_fact(File, path="/etc/aliases.db") is not None
sender_access_db = host.get_fact(File, path="/etc/postfix/sender_access.db") is not None
live = host.get_fact(
    Command,
    "echo $(iptables -S MAILPROV 2>/dev/null | grep -c '^-A')"
    " $(ip6tables -S MAILPROV 2>/dev/null | grep -c '^-A')"
    " $(iptables -C INPUT -j MAILPROV 2>/dev/null && echo 1 || echo 0)"
    " $(ip6tables -C INPUT -j MAILPROV 2>/dev/null && echo 1 || echo 0)",
)
firewall_live = live == f"{rule_count('etc/mailprov/firewall.v4')} {rule_count('etc/mailprov/firewall.v6')} 1 1"

# Daemons are started with their output sent away: on the lab's hosts (no init), a daemon started by
# /etc/init.d/... holds pyinfra's SSH channel open otherwise, and the run never ends.
running = host.get_fact(InitdStatus)
for service in ("postfix", "dovecot", "postgrey"):
    sysvinit.service(name=f"{service} started at boot", service=service, running=None, enabled=True)
    if not running.get(service):
        server.shell(name=f"Start {service}", commands=[f"service {service} start >/dev/null 2>&1"])

server.shell(
    name="newaliases",
    commands=["newaliases"],
    _if=lambda: aliases.did_change() or not aliases_db,
)
server.shell(
    name="postmap sender_access",
    commands=["postmap hash:/etc/postfix/sender_access"],
    _if=lambda: sender_access.did_change() or not sender_access_db,
)
server.shell(
    name="Load the firewall",
    commands=[
        "iptables-restore --noflush < /etc/mailprov/firewall.v4",
        "iptables -C INPUT -j MAILPROV 2>/dev/null || iptables -I INPUT 1 -j MAILPROV",
        "ip6tables-restore --noflush < /etc/mailprov/firewall.v6",
        "ip6tables -C INPUT -j MAILPROV 2>/dev/null || ip6tables -I INPUT 1 -j MAILPROV",
        "netfilter-persistent save",
    ],
    _if=lambda: firewall_v4.did_change() or firewall_v6.did_change() or not firewall_live,
)
server.shell(
    name="Reload postfix",
    commands=["postfix reload >/dev/null 2>&1 || service postfix start >/dev/null 2>&1"],
    _if=lambda: new_cert or main_cf.did_change() or sender_access.did_change() or key.did_change(),
)
server.shell(
    name="Restart dovecot",
    commands=["service dovecot restart >/dev/null 2>&1"],
    _if=lambda: new_cert or dovecot_conf.did_change() or key.did_change(),
)
server.shell(
    name="Restart postgrey",
    commands=["service postgrey restart >/dev/null 2>&1 || service postgrey start >/dev/null 2>&1"],
    _if=postgrey_defaults.did_change,
)
