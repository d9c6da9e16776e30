#!/bin/sh
# The demo: from nothing to a provisioned and verified mail host. Root on Debian 12.
# A lab host (Debian 12 in a network namespace, reached over SSH) gets the guide's whole site from
# inventories/lab.yaml: packages, users, aliases, restrictions, SASL, TLS, firewall. Then mailprov
# shows that a second plan is empty and verifies the server from the outside.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
export MAILPROV_JOHN_PASSWORD="${MAILPROV_JOHN_PASSWORD:-demo-John-pw-1}"
MP=.venv/bin/mailprov
$MP lab up --distro bookworm
$MP validate inventories/lab.yaml
$MP apply inventories/lab.yaml --host mx1.example.test --yes
$MP plan inventories/lab.yaml --host mx1.example.test
# From the trusted LAN (this machine), then from the lab's outside network, where relaying must be
# refused and IMAP/POP3 on 143/110 closed.
$MP verify inventories/lab.yaml --host mx1.example.test
ip netns exec "$(.venv/bin/python -c 'from mailprov import lab; print(lab.outside_netns())')" \
    $MP verify inventories/lab.yaml --host mx1.example.test --from-outside --no-host-checks
echo "The lab host stays up: ssh -i /var/lib/mailprov-lab/id_ed25519 admin@10.231.1.1; 'mailprov lab down' removes it."
