"""mailprov's command line. Click only: parse arguments, call the core, print through report, exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mailprov import __version__
from mailprov.errors import MailprovError
from mailprov.report import Reporter

if TYPE_CHECKING:
    from mailprov.transport.base import TransportKind

F = TypeVar("F", bound=Callable[..., Any])


_DEBUG = {"on": False}


def _handle_errors(func: F) -> F:
    """Map errors to one message and an exit code. A mailprov error says what to do; anything else is a
    defect, reported in one line (where it happened) and exit 1; the traceback only with --debug."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MailprovError as exc:
            Reporter().error(str(exc))
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _DEBUG["on"]:
                raise
            Reporter().error(
                f"internal error: {type(exc).__name__}{_where(exc)}: {exc} (run with --debug to see the traceback)"
            )
            sys.exit(1)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def _where(exc: BaseException) -> str:
    """` at FILE:LINE` of the innermost frame (secrets never reach a message: they print as ***)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else ""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailprov")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def main(debug: bool) -> None:
    """Provision Postfix and Dovecot mail servers from one declarative site file."""
    _DEBUG["on"] = debug


@main.command()
@click.argument("site", type=click.Path(dir_okay=False))
@_handle_errors
def validate(site: str) -> None:
    """Check SITE (a site.yaml) and exit 0 when it is valid, 2 with every problem listed when not."""
    from mailprov.config.loader import load_site, secret_problems

    model = load_site(site)
    Reporter().ok(
        f"{site}: valid ({len(model.hosts)} host{'s' if len(model.hosts) != 1 else ''}, "
        f"{len(model.users)} user{'s' if len(model.users) != 1 else ''}, {len(model.aliases)} aliases)"
    )
    for problem in secret_problems(model, site):  # plan and apply refuse these before connecting
        Reporter().warn(problem)


@main.command()
@click.argument("site", type=click.Path(dir_okay=False))
@click.option("--host", "host_name", help="Render for this host only (default: every host).")
@click.option(
    "--facts",
    "facts",
    required=True,
    help="A preset (centos5, centos6, centos7, rocky8, rocky9, alma9, debian11, debian12, debian13, "
    "ubuntu2204, ubuntu2404) or a JSON facts file.",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@_handle_errors
def render(site: str, host_name: str | None, facts: str, out: str) -> None:
    """Write every file a host would get, plus manifest.json (path, owner, group, mode)."""
    from mailprov.config.loader import load_site, locate
    from mailprov.errors import ConfigError
    from mailprov.facts.platform import load_platform
    from mailprov.render import render_host
    from mailprov.render.output import write_tree

    model = load_site(site)
    platform = load_platform(facts)
    hosts = model.hosts
    if host_name:
        hosts = tuple(h for h in model.hosts if h.name == host_name)
        if not hosts:
            raise ConfigError(f"{site}: no host named {host_name!r} (hosts: {', '.join(h.name for h in model.hosts)})")
    reporter = Reporter()
    for host in hosts:
        try:
            rendered = render_host(model, host, platform, base_dir=Path(site).resolve().parent)
        except ConfigError as exc:
            raise locate(exc, site) from None
        target = Path(out) / host.name if len(hosts) > 1 else Path(out)
        written = write_tree(rendered, target)
        reporter.ok(f"{host.name}: {len(written)} files for {platform.describe()} in {target}")
        for note in rendered.notes:
            reporter.warn(f"{host.name}: {note}")


def _site_options(func: F) -> F:
    func = click.option("--host", "host_names", multiple=True, help="Only this host (repeatable).")(func)
    func = click.option(
        "--accept-new-host-keys",
        is_flag=True,
        help="Trust and record host keys not yet in known_hosts (like OpenSSH accept-new). Changed keys are "
        "always refused, and so is a key of a new type for a known name (stricter than OpenSSH).",
    )(func)
    func = click.option("--known-hosts", type=click.Path(dir_okay=False), help="Extra known_hosts file.")(func)
    func = _transport_option(func)
    return func


def _transport_option(func: F) -> F:
    return click.option(
        "--transport",
        type=click.Choice(["paramiko", "openssh"]),
        default=None,
        help="SSH implementation for every host of this run, over the site's ssh.transport: paramiko (built in) or "
        "openssh (the system ssh: your ~/.ssh/config, agent, FIDO keys, ProxyJump, certificates).",
    )(func)


@main.command()
@click.argument("site", type=click.Path(dir_okay=False))
@_site_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Save the plan for `apply --plan-file`.")
@_handle_errors
def plan(
    site: str,
    host_names: tuple[str, ...],
    accept_new_host_keys: bool,
    known_hosts: str | None,
    transport: TransportKind | None,
    as_json: bool,
    out: str | None,
) -> None:
    """Show exactly what apply would change on each host, and change nothing.

    Exit 0: no changes; 2: changes pending; 1: error.
    """
    from mailprov.config.loader import load_site, require_secrets
    from mailprov.orchestrate import RunOptions, plan_site, plan_site_resources, select_hosts
    from mailprov.report import plan_data, show_plan, show_site_plan, show_summary, site_data

    model = load_site(site)
    require_secrets(model, site)  # before connecting anywhere
    base_dir = Path(site).resolve().parent
    options = RunOptions(
        accept_new_host_keys=accept_new_host_keys, known_hosts=known_hosts, site_file=Path(site), transport=transport
    )
    outcomes = plan_site(model, select_hosts(model, host_names), options, base_dir)
    shared = plan_site_resources(model, outcomes, base_dir)
    reporter = Reporter()
    readable = [plan_data(o) for o in outcomes] + [site_data(s) for s in shared]
    if as_json:
        reporter.json(readable)
    else:
        for outcome in outcomes:
            show_plan(reporter, outcome)
        for one in shared:
            show_site_plan(reporter, one)
        show_summary(reporter, outcomes)
    if any(o.error for o in outcomes) or any(s.error for s in shared):
        sys.exit(1)
    if out:
        from mailprov import planfile

        planfile.save(out, site, {o.host: o.plan.fingerprint for o in outcomes if o.plan}, readable)
    changed = any(o.plan and o.plan.changes for o in outcomes) or any(s.plan and s.plan.changes for s in shared)
    sys.exit(2 if changed else 0)


@main.command()
@click.argument("site", type=click.Path(dir_okay=False))
@_site_options
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan and results.")
@click.option(
    "--plan-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Apply the plan saved by `plan --out` (reviewed already: no question); refuse hosts that changed since.",
)
@_handle_errors
def apply(
    site: str,
    host_names: tuple[str, ...],
    accept_new_host_keys: bool,
    known_hosts: str | None,
    transport: TransportKind | None,
    yes: bool,
    as_json: bool,
    plan_file: str | None,
) -> None:
    """Make every host match SITE: show the plan, ask, apply exactly that plan, report per host."""
    from mailprov.config.loader import load_site, require_secrets
    from mailprov.orchestrate import (
        HostOutcome,
        RunOptions,
        apply_site,
        apply_site_resources,
        plan_site_resources,
        select_hosts,
    )
    from mailprov.report import plan_data, show_plan, show_site_plan, show_summary, site_data

    model = load_site(site)
    require_secrets(model, site)  # before connecting anywhere
    options = RunOptions(
        accept_new_host_keys=accept_new_host_keys, known_hosts=known_hosts, site_file=Path(site), transport=transport
    )
    reporter = Reporter()
    expected = None
    if plan_file:
        from mailprov import planfile

        expected = planfile.load(plan_file, site).fingerprints
        yes = True

    base_dir = Path(site).resolve().parent

    def approve(planned: list[HostOutcome]) -> bool:
        shared = plan_site_resources(model, planned, base_dir)
        if not as_json:
            for outcome in planned:
                show_plan(reporter, outcome)
            for one in shared:
                show_site_plan(reporter, one)
        if not any(o.plan and o.plan.changes for o in planned) and not any(s.plan and s.plan.changes for s in shared):
            return True  # nothing to do: executing runs nothing
        if yes:
            return True
        if not sys.stdin.isatty():
            raise click.UsageError("apply needs --yes when standard input is not a terminal")
        return click.confirm("Apply these changes?", default=False)

    outcomes = apply_site(
        model,
        select_hosts(model, host_names),
        options,
        base_dir,
        approve,
        expected=expected,
        progress=None if as_json else reporter.line,
    )
    approved = any(o.result is not None for o in outcomes) or not any(o.plan for o in outcomes)
    # After the hosts: the site's records (DKIM keys generated by this apply are read back first).
    shared = apply_site_resources(model, outcomes, base_dir) if approved else []
    if as_json:
        reporter.json([plan_data(o) for o in outcomes] + [site_data(s) for s in shared])
    else:
        for one in shared:
            if one.error or one.applied:
                show_site_plan(reporter, one, diffs=False)  # the diffs were shown before the question
        show_summary(reporter, outcomes)
    failed = any(o.error or (o.result is not None and not o.result.ok) for o in outcomes)
    sys.exit(1 if failed or any(s.error for s in shared) else 0)


@main.command()
@click.argument("site", type=click.Path(dir_okay=False))
@click.option("--host", "host_names", multiple=True, help="Only this host (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results for CI.")
@click.option(
    "--from-outside",
    is_flag=True,
    help="This client is outside mynetworks: relay must be denied, LAN-only ports closed.",
)
@click.option(
    "--address",
    help="Probe the host at this IP address for this run (instead of hosts[].public_address / ssh.address); "
    "needs exactly one host selected (--host NAME).",
)
@click.option("--no-host-checks", is_flag=True, help="Skip the on-host checks over SSH.")
@click.option("--no-dns", is_flag=True, help="Skip the DNS checks.")
@click.option(
    "--resolver",
    help="Ask this DNS server (IP address) in the DNS checks (default: the site's dns.server, else the system's).",
)
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and record unknown host keys (on-host checks); a key of a new type for a known name is refused "
    "(stricter than OpenSSH).",
)
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="Extra known_hosts file.")
@_transport_option
@_handle_errors
def verify(
    site: str,
    host_names: tuple[str, ...],
    as_json: bool,
    from_outside: bool,
    address: str | None,
    no_host_checks: bool,
    no_dns: bool,
    resolver: str | None,
    accept_new_host_keys: bool,
    known_hosts: str | None,
    transport: TransportKind | None,
) -> None:
    """Prove from the network that each host works as a mail server and is safe. Exit 1 if a check fails."""
    from mailprov.config.loader import load_site
    from mailprov.config.model import Host
    from mailprov.orchestrate import RunOptions, select_hosts, target_for
    from mailprov.transport import Transport, connect
    from mailprov.verify import (
        VerifyOptions,
        any_failed,
        check_rows,
        needed_records,
        summary_lines,
        to_json,
        verify_site,
        with_address,
    )

    model = load_site(site)
    base_dir = Path(site).resolve().parent
    hosts = with_address(select_hosts(model, host_names), address)
    run_options = RunOptions(accept_new_host_keys=accept_new_host_keys, known_hosts=known_hosts, transport=transport)

    def transport_for(host: Host) -> Transport:
        return connect(target_for(host, run_options, base_dir))

    if resolver is not None:
        import ipaddress

        from mailprov.errors import ConfigError

        try:
            resolver = str(ipaddress.ip_address(resolver))
        except ValueError:
            raise ConfigError("--resolver takes the IP address of a DNS server, such as 192.0.2.53") from None
    options = VerifyOptions(
        from_outside=from_outside, host_checks=not no_host_checks, dns=not no_dns, resolver=resolver
    )
    results = verify_site(model, hosts, options, base_dir, transport_for)
    reporter = Reporter()
    if as_json:
        reporter.json(to_json(results))
    else:
        reporter.checks(check_rows(results))
        reporter.heading("DNS records the site needs (the guide's last step; every record: mailprov dns SITE):")
        for host in hosts:
            for record in needed_records(model, host):
                reporter.line(f"  {record}")
        for text, ok in summary_lines(results):
            (reporter.ok if ok else reporter.fail)(text)
    sys.exit(1 if any_failed(results) else 0)


# The lab's distros (mailprov.lab.images.DISTROS; a unit test keeps both equal): the lab is imported lazily.
LAB_DISTROS = ("bullseye", "bookworm", "trixie", "forky")


@main.command("dns")
@click.argument("site", type=click.Path(dir_okay=False))
@_site_options
@click.option(
    "--offline",
    is_flag=True,
    help="Do not connect to the hosts: the records the site alone decides (no DKIM keys, which are on the hosts).",
)
@_handle_errors
def dns_records(
    site: str,
    host_names: tuple[str, ...],
    accept_new_host_keys: bool,
    known_hosts: str | None,
    transport: TransportKind | None,
    offline: bool,
) -> None:
    """Print the DNS records SITE needs as a zone-file snippet, to paste at any DNS provider.

    The DKIM keys are read on the hosts (over SSH) unless --offline. Exit 1 if a host could not be read.
    """
    from mailprov.config.loader import load_site, require_secrets
    from mailprov.orchestrate import RunOptions, plan_site, select_hosts
    from mailprov.resources.dns import zone_snippet

    model = load_site(site)
    reporter = Reporter()
    outcomes = []
    if not offline:
        require_secrets(model, site)
        options = RunOptions(
            accept_new_host_keys=accept_new_host_keys,
            known_hosts=known_hosts,
            site_file=Path(site),
            transport=transport,
        )
        outcomes = plan_site(model, select_hosts(model, host_names), options, Path(site).resolve().parent)
        for outcome in outcomes:
            if outcome.error:
                reporter.error(f"{outcome.host}: {outcome.error} (its records, such as DKIM keys, are missing below)")
    for line in zone_snippet(model, tuple(r for o in outcomes for r in o.published())):
        reporter.line(line)
    sys.exit(1 if any(o.error for o in outcomes) else 0)


@main.group()
def lab() -> None:
    """Throwaway Debian 11/12/13/14 mail hosts on this machine (root, Linux) for trying a site."""


@lab.command("up")
@click.option("--distro", type=click.Choice(LAB_DISTROS), default="bookworm", show_default=True)
@click.option("--count", type=click.IntRange(1, 99), default=1, show_default=True)
@click.option(
    "--index",
    "indices",
    type=click.IntRange(1, 99),
    multiple=True,
    help="Start just <distro>-INDEX (repeatable) instead of hosts 1..COUNT.",
)
@click.option("--with-receiver", is_flag=True, help="Also start mx.receiver.test (Postfix + rspamd) at 10.232.0.25.")
@_handle_errors
def lab_up(distro: str, count: int, indices: tuple[int, ...], with_receiver: bool) -> None:
    """Start COUNT hosts of DISTRO (building the base image once) and the lab DNS server (always)."""
    from mailprov import lab as lab_api

    reporter = Reporter()
    if indices:
        hosts = lab_api.up_at(distro, indices, progress=reporter.line)
    else:
        hosts = lab_api.up(distro=distro, count=count, progress=reporter.line)
    _print_lab_hosts(reporter, hosts)
    dns = lab_api.dns_up(progress=reporter.line)
    reporter.line(f"DNS: {dns.address} / {dns.outside_address}, TSIG key {dns.tsig_key_file}")
    if with_receiver:
        receiver = lab_api.receiver_up(progress=reporter.line)
        reporter.line(f"receiver: {receiver.address} (@{receiver.domain}), Maildir {receiver.maildir}")


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_handle_errors
def lab_status(as_json: bool) -> None:
    """List lab hosts."""
    from dataclasses import asdict

    from mailprov import lab as lab_api

    hosts = lab_api.status()
    reporter = Reporter()
    if as_json:
        reporter.json([asdict(h) for h in hosts])
    else:
        _print_lab_hosts(reporter, hosts)


@lab.command("down")
@_handle_errors
def lab_down() -> None:
    """Stop every lab host and remove its network, mounts and processes."""
    from mailprov import lab as lab_api

    lab_api.down()
    Reporter().ok("lab is down")


def _print_lab_hosts(reporter: Reporter, hosts: Any) -> None:
    if not hosts:
        reporter.line("no lab hosts")
        return
    reporter.table(
        None,
        ["host", "distro", "address", "outside", "ssh", "state"],
        [
            [
                h.name,
                h.distro,
                h.address,
                h.outside_address,
                f"root@{h.address} -i {h.root_key}",
                "running" if h.running else "stopped",
            ]
            for h in hosts
        ],
    )


if __name__ == "__main__":
    main()
