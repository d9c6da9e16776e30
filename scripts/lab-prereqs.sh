#!/bin/sh
# Install what `mailprov lab` needs on a Debian 12 (bookworm) runner. Idempotent: installs only what is
# missing and changes nothing else. Needs root and the Debian mirror (for apt and, later, debootstrap).
set -eu

# debootstrap        builds the base images          dpkg-dev        dpkg-scanpackages for the local repo
# debian-archive-keyring  verifies bookworm/trixie   iproute2        ip netns / link / addr / route
# openssh-client     ssh-keygen (lab and host keys)  iptables        firewall tests in host namespaces
# util-linux, mount  unshare, setsid, mount          procps          sysctl (rp_filter in host namespaces)
PACKAGES="debootstrap dpkg-dev debian-archive-keyring iproute2 openssh-client iptables util-linux mount procps"

if [ "$(id -u)" -ne 0 ]; then
    echo "lab-prereqs: run as root (sudo $0)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "lab-prereqs: this script is for Debian (apt-get not found)" >&2
    exit 1
fi

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -n "$missing" ]; then
    echo "lab-prereqs: installing:$missing"
    apt-get update -q
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
else
    echo "lab-prereqs: all packages present:" $PACKAGES
fi

# overlayfs: the hosts' root filesystems. Debian kernels load it on demand, so only warn.
if ! grep -qw overlay /proc/filesystems && ! modprobe -n overlay >/dev/null 2>&1; then
    echo "lab-prereqs: warning: no overlayfs in this kernel (the lab needs it)" >&2
fi
# Route guard (the lab adds it too, and keeps it after `down`): traffic for the lab's ranges fails locally
# whenever the lab bridge is absent, instead of leaving through the default route for the real network.
for lab_range in 10.231.0.0/16 10.232.0.0/16; do
    ip route replace unreachable "$lab_range" metric 4242
done
echo "lab-prereqs: ok"
