"""Start exactly one lab host, `<distro>-<index>`, and nothing else.

`lab.up(distro, count)` starts hosts 1..count: a module that owns host 40 would boot 39 hosts it never
uses (and the shared ones, 1-6). This helper boots only the one host with the lab's own steps (image,
lease, key, networks, boot, inventory), under the lab's lock; it changes nothing in mailprov.lab.

    python tests/live/one_host.py bookworm 40     # from a shell, before a test run
"""

from __future__ import annotations

import sys

from mailprov.lab import api, images
from mailprov.lab.commands import exclusive_lock
from mailprov.lab.hosts import is_running
from mailprov.lab.network import ensure_lab_networks, host_network
from mailprov.lab.paths import LabPaths
from mailprov.lab.users import register_user


def one_host(distro: str, index: int) -> api.LabHost:
    paths = LabPaths.from_env()
    image = images.ensure_image(distro, None, paths)
    net = host_network(distro, index)
    with exclusive_lock(paths.lock):
        register_user(paths)
        api._ensure_lab_key(paths)
        ensure_lab_networks()
        if not is_running(paths, net):
            failures = api._start_all(paths, [net], image)
            if failures:
                raise RuntimeError("\n".join(failures))
        api._write_inventory(paths)
        return api._lab_host(paths, net)


if __name__ == "__main__":
    print(one_host(sys.argv[1], int(sys.argv[2])))
