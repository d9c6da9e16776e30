"""Capture the fact probe's output on converged lab hosts, for the unit tests (root, Linux):

    MAILPROV_JOHN_PASSWORD=Live-john-pw-42 .venv/bin/python tests/data/capture_probes.py [--more]

Brings up bookworm-1 and trixie-1, converges them with tests/data/lab-site.yaml (`mailprov apply`), then
saves the one speculative probe each host gets as tests/data/probe-<distro>.txt. With --more: bullseye-31
and forky-31 with tests/data/lab-site-more.yaml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mailprov import lab
from mailprov.config.loader import load_site
from mailprov.facts.probe import parse_probe, probe_script
from mailprov.orchestrate import RunOptions, host_context, speculative_reads, target_for
from mailprov.plan import reads
from mailprov.transport.ssh import SshTransport

DATA = Path(__file__).resolve().parent
SITE = DATA / "lab-site.yaml"


def main() -> int:
    if "--more" in sys.argv[1:]:
        site_path, distros = DATA / "lab-site-more.yaml", ("bullseye", "forky")
        for distro in distros:
            lab.up_at(distro, [31], fresh=True)
    else:
        site_path, distros = SITE, ("bookworm", "trixie")
        lab.up("bookworm", 1)
        lab.up("trixie", 1)
    mailprov = Path(sys.executable).parent / "mailprov"
    subprocess.run([str(mailprov), "apply", "--yes", str(site_path)], check=True)
    site = load_site(site_path)
    for host, distro in zip(site.hosts, distros, strict=True):
        with SshTransport(target_for(host, RunOptions(), DATA)) as transport:
            script = probe_script(speculative_reads(site, host, DATA), nonce="0")
            output = transport.run_script(script, check=True).stdout
            # The second round trip, as read_facts makes it when the host's dialect needs a read the
            # speculative probe did not make (forky's .cdb maps): saved beside the first.
            facts = parse_probe(output, host.name)
            missing = [r for r in reads(host_context(site, host, facts.platform, DATA)) if not facts.has(r.key)]
            if missing:
                second = transport.run_script(probe_script(missing, platform=False, nonce="0"), check=True).stdout
                (DATA / f"probe-{distro}-2.txt").write_text(second, encoding="utf-8")
        (DATA / f"probe-{distro}.txt").write_text(output, encoding="utf-8")
        print(f"{distro}: {len(output)} bytes, {len(missing)} more reads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
