#!/bin/sh
# Prepare a fresh Debian 12 machine to run mailprov and its tests: system packages (real Postfix and
# Dovecot for validating rendered configs, sshd for transport tests, the lab's tools) and a virtualenv.
# Idempotent. Run as root for the system packages; without root only the virtualenv is made.
set -eu
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES="postfix dovecot-core dovecot-imapd dovecot-pop3d openssl openssh-server openssh-client sudo python3-venv shellcheck knot knot-dnsutils"

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for package in $SYSTEM_PACKAGES; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        # Preseed so that installing Postfix on the runner never asks and never starts it.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
    fi
    sh scripts/lab-prereqs.sh
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
