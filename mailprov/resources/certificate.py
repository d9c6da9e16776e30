"""The TLS certificate and key Postfix and Dovecot serve: generated on the host with openssl (self-signed,
renewed before it expires) or pushed from the admin's files. The private key is created 0600 root and is
never read back, printed or put in a plan (it travels as a `Secret`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from mailprov.config.secrets import Secret, local_path, read_small_file
from mailprov.errors import ConfigError
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.resources import files
from mailprov.resources.base import (
    Change,
    Command,
    Desired,
    Handler,
    HostCheck,
    HostContext,
    ManagedFile,
    Phase,
    Resource,
)
from mailprov.resources.checks import verdict
from mailprov.transport.shell import quote

NAME = "certificate"
# Both daemons read the certificate at start: a new one needs a Postfix reload and a Dovecot restart.
SERVED_BY = frozenset({Handler("postfix", "reload"), Handler("dovecot", "restart")})


@dataclass(frozen=True)
class Certificate:
    """Where the TLS certificate and key live on the host, and how they get there."""

    cert_path: str
    key_path: str
    ca_path: str | None
    generate_days: int | None  # generated with openssl on the host when set
    renew_before_days: int
    subject: str
    key_bits: int


@dataclass(frozen=True)
class CertState:
    exists: bool
    subject: str = ""
    not_after: str = ""
    expiring: bool = True


@dataclass(frozen=True)
class CertificateWish(Desired):
    certificate: Certificate | None = None


def locate(ctx: HostContext) -> Certificate | None:
    """The site's certificate on this host (None when TLS is off). Postfix and Dovecot render its paths."""
    tls, d = ctx.site.tls, ctx.dialect
    if not tls.enabled:
        return None
    name = ctx.host.name
    generate = tls.generate
    return Certificate(
        cert_path=tls.cert_path or f"{d.paths.cert_dir}/{name}{d.paths.cert_suffix}",
        key_path=tls.key_path or f"{d.paths.key_dir}/{name}.key",
        ca_path=f"{d.paths.cert_dir}/{name}-ca.pem" if tls.files and tls.files.ca else None,
        generate_days=generate.days if generate else None,
        renew_before_days=generate.renew_before_days if generate else 0,
        subject=(generate.subject if generate and generate.subject else f"/CN={name}"),
        key_bits=generate.key_bits if generate else 2048,
    )


def _cert_read(cert: Certificate) -> Read:
    c = quote(cert.cert_path)
    seconds = cert.renew_before_days * 86400
    # One openssl run: subject, end date and whether it outlives the renewal window (its exit status).
    return Read(
        f"cert {cert.cert_path} {seconds}",
        f"[ -f {c} ] && {{ out=$(openssl x509 -in {c} -noout -subject -enddate -checkend {seconds});"
        ' rc=$?; echo "$out"; [ $rc = 0 ] && echo fresh=1 || echo fresh=0; }',
    )


def parse_cert(body: str) -> CertState:
    lines = lines_of(body)
    if not any(line.startswith("subject") for line in lines):
        return CertState(exists=False)
    subject = next((ln.split("=", 1)[1].strip() for ln in lines if ln.startswith("subject")), "")
    not_after = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("notAfter")), "")
    return CertState(True, subject, not_after, expiring="fresh=1" not in lines)


class CertificateResource(Resource[CertificateWish]):
    name = NAME

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        cert = locate(ctx)
        if cert is None:
            return ()
        if cert.generate_days is not None:
            return [_cert_read(cert), *files.reads([], [cert.key_path])]
        plain = [cert.cert_path, *([cert.ca_path] if cert.ca_path else [])]
        return files.reads(plain, [cert.key_path])

    def desired(self, ctx: HostContext) -> CertificateWish:
        cert = locate(ctx)
        if cert is None or ctx.site.tls.files is None:
            return CertificateWish(certificate=cert)
        return CertificateWish(files=tuple(_pushed(ctx, cert)), certificate=cert)

    def changes(self, ctx: HostContext, desired: CertificateWish, facts: Facts) -> Sequence[Change]:
        cert = desired.certificate
        if cert is None:
            return ()
        if cert.generate_days is None:
            return files.changes(desired.files, facts, files.notifying(*SERVED_BY))
        key = files.state(facts, cert.key_path, secret=True)
        current = parse_cert(facts.section(_cert_read(cert).key))
        if current.exists and not current.expiring and key.exists:
            return ()
        reason = "missing" if not current.exists else ("key missing" if not key.exists else "expiring")
        return (
            Change(
                f"cert:{cert.cert_path}",
                Phase.PREPARE,
                "generate",
                f"self-signed certificate {cert.subject}, {cert.generate_days} days ({reason})",
                commands=_generate(cert, ctx.dialect.relabel),
                notifies=SERVED_BY,
            ),
        )

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        cert = locate(ctx)
        if cert is None:
            return ()
        return (HostCheck("host.tls_key_private", lambda h: _private_key(h, cert.key_path)),)


def _generate(cert: Certificate, relabel: tuple[str, ...]) -> tuple[Command, ...]:
    """openssl writes both files in place; on SELinux hosts they get their policy label (cert_t, or the
    label of a custom path) rather than whatever their directory passed on."""
    return (
        Command(("mkdir", "-p", str(PurePosixPath(cert.cert_path).parent), str(PurePosixPath(cert.key_path).parent))),
        # umask 077: the key is never readable by others, not even for a moment.
        Command(("sh", "-c", 'umask 077 && exec "$@"', "openssl", "openssl", "req", "-x509", "-newkey",
                 f"rsa:{cert.key_bits}", "-nodes", "-sha256", "-days", str(cert.generate_days), "-subj",
                 cert.subject, "-keyout", cert.key_path, "-out", cert.cert_path)),
        Command(("chown", "root:root", cert.key_path)),
        Command(("chmod", "0600", cert.key_path)),
        Command(("chmod", "0644", cert.cert_path)),
        *((Command((*relabel, cert.cert_path, cert.key_path)),) if relabel else ()),
    )  # fmt: skip


def _pushed(ctx: HostContext, cert: Certificate) -> list[ManagedFile]:
    tls_files = ctx.site.tls.files
    assert tls_files is not None
    sources = [(tls_files.cert, cert.cert_path, False), (tls_files.key, cert.key_path, True)]
    if tls_files.ca and cert.ca_path:
        sources.append((tls_files.ca, cert.ca_path, False))
    out = []
    fields = {False: "tls.files.cert", True: "tls.files.key"}
    for source, target, secret in sources:
        field = "tls.files.ca" if target == cert.ca_path else fields[secret]
        # Never blocks on a FIFO, never reads a device whole, never shows a byte of a key in a message.
        content = read_small_file(local_path(source, ctx.base_dir), what=field, max_bytes=1 << 20, encoding="ascii")
        if "-----BEGIN" not in content:
            raise ConfigError(f"{field}: {source} is not a PEM file", field=field)
        out.append(ManagedFile(target, Secret(content) if secret else content, "cert", mode=0o600 if secret else 0o644))
    return out


def _private_key(h: object, path: str) -> tuple[str, str]:
    key = h.file(path)  # type: ignore[attr-defined]
    if not key.exists:
        return verdict(False, f"{path} does not exist")
    ok = key.user == "root" and key.mode & 0o077 == 0
    hint = "" if ok else " (must be owned by root, readable by root only: 0600)"
    return verdict(ok, f"{path}: {key.user}:{key.group} {key.mode:04o}{hint}")
