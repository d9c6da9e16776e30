#!/bin/sh
# The test command: installs what it needs, then runs every test — unit tests, and, as root on Linux,
# the live tests against real Debian 12/13 lab hosts and the conformance suite (tests/conformance) on
# bullseye-30, bookworm-30, trixie-30 and forky-30 over paramiko, then over openssh (hosts 31) and against
# an old-style sshd (bookworm-32, trixie-32) (base images are built on first use and cached in
# /var/cache/mailprov-lab). The lab is brought down at the end (tests/live/test_zz_lab_down.py runs last,
# after the conformance tests too; then `lab down` below).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
export MAILPROV_JOHN_PASSWORD="${MAILPROV_JOHN_PASSWORD:-lab-John-pw-7}"
status=0
.venv/bin/pytest -q "$@" || status=$?
if [ $# -eq 0 ] && [ "$(id -u)" = 0 ]; then
    # The conformance suite again, as the issue asks: over the system ssh on the four releases, and against
    # an old-style sshd (ssh-rsa host key, SHA-1 key exchange only) with legacy_algorithms (hosts 31, 32).
    MAILPROV_CONFORMANCE_TRANSPORT=openssh MAILPROV_CONFORMANCE_INDEX=31 \
        .venv/bin/pytest -q -p no:cacheprovider tests/conformance || status=$?
    MAILPROV_CONFORMANCE_TRANSPORT=openssh MAILPROV_CONFORMANCE_SSHD=legacy MAILPROV_CONFORMANCE_INDEX=32 \
        MAILPROV_CONFORMANCE_DISTROS=bookworm,trixie .venv/bin/pytest -q -p no:cacheprovider tests/conformance \
        || status=$?
fi
.venv/bin/mailprov lab down >/dev/null 2>&1 || true
exit $status
