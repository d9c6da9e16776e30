#!/bin/sh
# The test command: installs what it needs, then runs every test — unit tests, and, as root on Linux,
# the live tests against real Debian 12/13 lab hosts and the conformance suite (tests/conformance) on
# bullseye-30, bookworm-30, trixie-30 and forky-30 (base images are built on first use and cached in
# /var/cache/mailprov-lab). The lab is brought down at the end (tests/live/test_zz_lab_down.py runs last,
# after the conformance tests too; then `lab down` below).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
export MAILPROV_JOHN_PASSWORD="${MAILPROV_JOHN_PASSWORD:-lab-John-pw-7}"
status=0
.venv/bin/pytest -q "$@" || status=$?
.venv/bin/mailprov lab down >/dev/null 2>&1 || true
exit $status
