"""The lab's receiver: a mail server nobody here wrote (Postfix + rspamd) that judges what lab sites send.

    mplab-receiver (netns)
      eth0 10.232.0.25/16  ── veth mpor-out ── br-out in mplab-outside (where lab hosts' outside addresses are)

mx.receiver.test accepts mail for any address @receiver.test (and relays nothing), passes every message
through rspamd as a milter, and delivers it to one Maildir that the runner reads directly (a runner folder
bind-mounted into the box). rspamd checks SPF, DKIM and DMARC against the lab DNS (10.232.0.53) and adds an
Authentication-Results header; it never rejects or greylists (actions off, no Redis), and treats no
network as local, so mail from the lab's 10.x addresses is judged like any other.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import LabError
from mailprov.lab.commands import run
from mailprov.lab.dns import DNS_OUTSIDE_ADDRESS, RECEIVER_ADDRESS, RECEIVER_DOMAIN, RECEIVER_HOST
from mailprov.lab.mounts import remove_tree
from mailprov.lab.network import OUTSIDE_BRIDGE, OUTSIDE_NETNS, PREFIX_LENGTH, fixed_mac, netns_exists
from mailprov.lab.paths import LabPaths
from mailprov.lab.services import Box, boot_box, box_is_running, console_tail, stop_box

RECEIVER_BOX = Box(name="receiver", netns="mplab-receiver", hostname=RECEIVER_HOST)
MAILBOX_IN_BOX = "/srv/receiver"
MAIL_UID = 5000  # owner of the delivered files (virtual delivery; no account needed)
MILTER = "inet:127.0.0.1:11332"
CONFIG_DIR = "/srv/mailprov-lab"
TLDS = ("test", "arpa", "com", "net", "org", "de", "uk", "co.uk", "eu", "io")
READY_TIMEOUT = 60.0
_OUTSIDE_VETH = "mpor-out"

_INIT_SCRIPT = f"""\
set -eu
src=/srv/mailprov-lab
install -m 0644 "$src/resolv.conf" /etc/resolv.conf
echo {RECEIVER_HOST} > /etc/mailname
install -m 0644 "$src/main.cf" /etc/postfix/main.cf
test -f /etc/postfix/master.cf || install -m 0644 /usr/share/postfix/master.cf.dist /etc/postfix/master.cf
postconf -F '*/*/chroot = n'
test -f /etc/ssl/private/ssl-cert-snakeoil.key || make-ssl-cert generate-default-snakeoil
for file in "$src"/rspamd/*; do
    install -m 0644 "$file" /etc/rspamd/local.d/
done
install -d -o _rspamd -g _rspamd -m 0755 /run/rspamd /var/lib/rspamd /var/log/rspamd
rspamadm configtest
rspamd -u _rspamd -g _rspamd
tries=0
until ss -Hltn | grep -q '127.0.0.1:11332 '; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo 'rspamd did not listen on 11332' >&2; exit 1; fi
    sleep 0.1
done
postfix check
postfix start
exec sleep infinity
"""

RSPAMD_LOCAL = {
    "worker-proxy.inc": (
        'bind_socket = "127.0.0.1:11332";\nmilter = yes;\ntimeout = 120s;\n'
        'upstream "local" {\n  default = yes;\n  self_scan = yes;\n}\n'
    ),
    "options.inc": (
        "# No network is local: mail from the lab's 10.x addresses is judged like any other.\n"
        'local_addrs = ["127.0.0.0/8"];\n'
        "# The full public suffix list takes rspamd ~50 s to compile at every start; the lab needs these few.\n"
        f'url_tld = "{CONFIG_DIR}/tld.dat";\n'
        f'dns {{\n  nameserver = ["{DNS_OUTSIDE_ADDRESS}"];\n  timeout = 1s;\n  retransmits = 2;\n}}\n'
    ),
    "milter_headers.conf": (
        'use = ["authentication-results", "x-spamd-result"];\nskip_local = false;\nskip_authenticated = false;\n'
    ),
    # Add headers only: no action rejects, greylists or rewrites.
    "actions.conf": "reject = null;\nadd_header = null;\nrewrite_subject = null;\ngreylist = null;\n",
    "greylist.conf": "enabled = false;\n",
    "spf.conf": "check_local = true;\ncheck_authed = true;\n",
    "dkim.conf": "check_local = true;\ncheck_authed = true;\n",
    "dmarc.conf": "check_local = true;\ncheck_authed = true;\n",
}


@dataclass(frozen=True)
class LabReceiver:
    address: str
    domain: str
    maildir: Path  # on the runner: <maildir>/new and <maildir>/cur hold the delivered messages

    def messages(self) -> list[bytes]:
        """Every delivered message, raw, oldest first."""
        folders = [self.maildir / sub for sub in ("new", "cur") if (self.maildir / sub).is_dir()]
        files = [path for folder in folders for path in folder.iterdir()]
        files.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
        return [path.read_bytes() for path in files]

    def clear(self) -> None:
        """Delete every delivered message (the Maildir itself stays)."""
        for sub in ("new", "cur", "tmp"):
            folder = self.maildir / sub
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink(missing_ok=True)


# --- pure: configuration ---------------------------------------------------------------------------------


def render_main_cf() -> str:
    """The receiver's main.cf: one virtual domain, every address to one Maildir, rspamd as milter."""
    settings = [
        ("compatibility_level", "3.6"),
        ("myhostname", RECEIVER_HOST),
        ("mydomain", RECEIVER_DOMAIN),
        ("myorigin", "$mydomain"),
        ("mydestination", "localhost"),
        ("inet_interfaces", "all"),
        ("inet_protocols", "ipv4"),
        ("mynetworks", "127.0.0.0/8"),
        ("smtpd_banner", "$myhostname ESMTP"),
        ("biff", "no"),
        ("alias_maps", ""),
        ("alias_database", ""),
        ("smtpd_relay_restrictions", "permit_mynetworks, reject_unauth_destination"),
        ("virtual_mailbox_domains", RECEIVER_DOMAIN),
        ("virtual_mailbox_base", MAILBOX_IN_BOX),
        ("virtual_mailbox_maps", "static:Maildir/"),
        ("virtual_uid_maps", f"static:{MAIL_UID}"),
        ("virtual_gid_maps", f"static:{MAIL_UID}"),
        ("smtpd_milters", MILTER),
        ("milter_default_action", "tempfail"),  # never deliver a message rspamd did not judge
        ("milter_protocol", "6"),
        ("smtpd_tls_security_level", "may"),
        ("smtpd_tls_cert_file", "/etc/ssl/certs/ssl-cert-snakeoil.pem"),
        ("smtpd_tls_key_file", "/etc/ssl/private/ssl-cert-snakeoil.key"),
        ("maillog_file", "/var/log/mail.log"),
    ]
    return "# mailprov lab receiver (written by `mailprov lab`)\n" + "".join(
        f"{name} = {value}\n" for name, value in settings
    )


def box_files() -> dict[str, str]:
    files = {
        "init.sh": _INIT_SCRIPT,
        "main.cf": render_main_cf(),
        "resolv.conf": f"nameserver {DNS_OUTSIDE_ADDRESS}\n",
        "tld.dat": "".join(f"{tld}\n" for tld in TLDS),
    }
    files.update({f"rspamd/{name}": text for name, text in RSPAMD_LOCAL.items()})
    return files


# --- the running receiver --------------------------------------------------------------------------------


def mail_dir(paths: LabPaths) -> Path:
    """The runner folder the box sees as /srv/receiver."""
    return paths.state / "receiver"


def lab_receiver(paths: LabPaths) -> LabReceiver:
    return LabReceiver(address=RECEIVER_ADDRESS, domain=RECEIVER_DOMAIN, maildir=mail_dir(paths) / "Maildir")


def is_running() -> bool:
    return box_is_running(RECEIVER_BOX)


def ensure_receiver(paths: LabPaths, image: Path) -> LabReceiver:
    """Start the receiver unless it runs (the caller holds the lab lock and has the DNS box up)."""
    if not box_is_running(RECEIVER_BOX):
        stop(paths)
        mail = mail_dir(paths)
        mail.mkdir(parents=True)
        os.chown(mail, MAIL_UID, MAIL_UID)
        mail.chmod(0o700)
        _create_network()
        boot_box(paths, RECEIVER_BOX, image, box_files(), binds=((mail, MAILBOX_IN_BOX),))
        _wait_ready(paths)
    return lab_receiver(paths)


def stop(paths: LabPaths) -> None:
    stop_box(paths, RECEIVER_BOX)
    if netns_exists(OUTSIDE_NETNS):
        run(["ip", "-n", OUTSIDE_NETNS, "link", "delete", _OUTSIDE_VETH], what="delete mpor-out", check=False)
    remove_tree(mail_dir(paths))


def _wait_ready(paths: LabPaths) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not box_is_running(RECEIVER_BOX):
            break
        listening = run(
            ["ip", "netns", "exec", RECEIVER_BOX.netns, "ss", "-Hltn"], what="list receiver sockets", check=False
        ).stdout
        if f"{RECEIVER_ADDRESS}:25 " in listening or "0.0.0.0:25 " in listening:
            return
        time.sleep(0.2)
    raise LabError(
        f"lab receiver: Postfix did not listen on {RECEIVER_ADDRESS}:25\n{console_tail(paths, RECEIVER_BOX)}"
    )


def _create_network() -> None:
    ns = RECEIVER_BOX.netns
    run(["ip", "netns", "add", ns], what=f"create {ns}")
    run(["ip", "-n", ns, "link", "set", "lo", "up"], what=f"bring up lo in {ns}")
    run(["ip", "-n", OUTSIDE_NETNS, "link", "delete", _OUTSIDE_VETH], what="delete a stale mpor-out", check=False)
    run(
        ["ip", "-n", OUTSIDE_NETNS, "link", "add", _OUTSIDE_VETH, "type", "veth", "peer", "name", "eth0", "netns", ns],
        what="create eth0 of the lab receiver",
    )
    run(
        ["ip", "-n", OUTSIDE_NETNS, "link", "set", _OUTSIDE_VETH, "master", OUTSIDE_BRIDGE, "up"],
        what=f"attach {_OUTSIDE_VETH}",
    )
    run(
        ["ip", "-n", ns, "link", "set", "dev", "eth0", "address", fixed_mac(RECEIVER_ADDRESS)],
        what="MAC of the lab receiver",
    )
    run(
        ["ip", "-n", ns, "addr", "add", f"{RECEIVER_ADDRESS}/{PREFIX_LENGTH}", "dev", "eth0"],
        what="address the lab receiver",
    )
    run(["ip", "-n", ns, "link", "set", "eth0", "up"], what="bring up eth0 of the lab receiver")
