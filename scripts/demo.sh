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
if $MP verify --help >/dev/null 2>&1; then
    $MP verify inventories/lab.yaml --host mx1.example.test
fi
echo "The lab host stays up: ssh -i /var/lib/mailprov-lab/id_ed25519 admin@10.231.1.1; 'mailprov lab down' removes it."
