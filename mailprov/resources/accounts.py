"""Mail users: system accounts with their full name and password (SHA-512-crypt, set with chpasswd -e,
the hash only ever on stdin), and their Maildir (owned by the user, 0700). Accounts are never deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from mailprov.config.model import Mailbox, User
from mailprov.config.secrets import Secret, new_salt, resolve, sha512_crypt, verify_sha512_crypt
from mailprov.errors import ConfigError
from mailprov.facts.probe import Facts, Read, lines_of
from mailprov.resources.base import Change, Command, Desired, HostCheck, HostContext, Phase, Resource
from mailprov.resources.checks import FAIL, PASS
from mailprov.transport.shell import quote

NAME = "accounts"
MAILDIR_PARTS = ("", "/cur", "/new", "/tmp")


@dataclass(frozen=True)
class DirState:
    path: str
    owner: str
    group: str
    mode: int


@dataclass(frozen=True)
class Account:
    login: str
    uid: int
    home: str
    full_name: str = ""
    shadow_hash: Secret = field(default=Secret(""), repr=False)
    dirs: tuple[DirState, ...] = ()

    def dir(self, path: str) -> DirState | None:
        return next((d for d in self.dirs if d.path == path), None)


@dataclass(frozen=True)
class Accounts(Desired):
    users: tuple[User, ...] = ()
    maildir: bool = True


def _read(login: str) -> Read:
    q = quote(login)
    return Read(
        f"user {login}",
        f"getent passwd {q} && getent shadow {q} && "
        f'h=$(getent passwd {q} | cut -d: -f6) && for d in "$h/Maildir" "$h/Maildir/cur" '
        f'"$h/Maildir/new" "$h/Maildir/tmp"; do [ -d "$d" ] && stat -c "dir %U %G %a %n" "$d"; done',
    )


def parse_account(login: str, body: str) -> Account | None:
    """getent passwd + shadow lines and the Maildir's stat lines; None when there is no such user."""
    account: Account | None = None
    shadow = ""
    dirs = []
    for line in lines_of(body):
        if line.startswith("dir "):
            parts = line.split(" ", 4)
            if len(parts) == 5:
                dirs.append(DirState(parts[4], parts[1], parts[2], int(parts[3], 8)))
            continue
        fields = line.split(":")
        if fields[0] != login:
            continue
        if account is None and len(fields) >= 7:
            account = Account(login, int(fields[2]), fields[5], fields[4].split(",")[0])
        elif account is not None and len(fields) >= 2:
            shadow = fields[1]
    if account is None:
        return None
    return Account(account.login, account.uid, account.home, account.full_name, Secret(shadow), tuple(dirs))


class AccountsResource(Resource[Accounts]):
    name = NAME

    def reads(self, ctx: HostContext) -> Sequence[Read]:
        return [_read(u.login) for u in ctx.site.users]

    def desired(self, ctx: HostContext) -> Accounts:
        return Accounts(users=ctx.site.users, maildir=ctx.site.mailbox is Mailbox.MAILDIR)

    def changes(self, ctx: HostContext, desired: Accounts, facts: Facts) -> Sequence[Change]:
        out = []
        for user in desired.users:
            current = parse_account(user.login, facts.section(_read(user.login).key))
            if current is not None and (
                current.uid < ctx.dialect.dovecot_syntax.first_valid_uid or not current.home.startswith("/")
            ):
                raise ConfigError(
                    f"{user.login} exists on {ctx.host.name} as a system account (uid {current.uid}, home "
                    f"{current.home or '(none)'}): mail users must be ordinary accounts; choose another login, "
                    "or an alias to reach that account",
                    field=f"users.{desired.users.index(user)}.login",
                )
            commands, parts = _user_commands(ctx, user, current, desired.maildir)
            if commands:
                out.append(
                    Change(
                        f"user:{user.login}",
                        Phase.PREPARE,
                        "create" if current is None else "update",
                        f"user {user.login}: {', '.join(parts)}",
                        commands=tuple(commands),
                    )
                )
        return out

    def checks(self, ctx: HostContext) -> Sequence[HostCheck]:
        if ctx.site.mailbox is not Mailbox.MAILDIR:
            return ()
        return tuple(HostCheck(f"host.maildir.{u.login}", partial(_maildir, login=u.login)) for u in ctx.site.users)


def _user_commands(
    ctx: HostContext, user: User, current: Account | None, maildir: bool
) -> tuple[list[Command], list[str]]:
    commands: list[Command] = []
    parts: list[str] = []
    if current is None:
        argv = ["useradd", "-m", "-c", user.full_name]
        if user.uid is not None:
            argv += ["-u", str(user.uid)]
        commands.append(Command((*argv, user.login)))
        parts.append("create")
    elif current.full_name != user.full_name:
        commands.append(Command(("usermod", "-c", user.full_name, user.login)))
        parts.append(f"full name {current.full_name!r} → {user.full_name!r}")
    new_hash = _password_hash(ctx, user, current.shadow_hash.reveal() if current else "")
    if new_hash is not None:
        stdin = Secret(f"{user.login}:{new_hash.reveal()}\n")
        commands.append(Command(("chpasswd", "-e"), stdin=stdin, secrets=(new_hash,)))
        parts.append("password changed (redacted)" if current else "password set (redacted)")
    home = current.home if current else f"/home/{user.login}"
    paths = [f"{home}/Maildir{sub}" for sub in MAILDIR_PARTS]
    if maildir and any(
        (s := current.dir(p) if current else None) is None or s.owner != user.login or s.mode != 0o700 for p in paths
    ):
        commands += [
            Command(("mkdir", "-p", *paths)),
            Command(("chown", f"{user.login}:", *paths)),
            Command(("chmod", "0700", *paths)),
            # SELinux: a Maildir made over SSH gets the label of its parent, not the mail home label.
            *([Command((*ctx.dialect.relabel, "-R", paths[0]))] if ctx.dialect.relabel else []),
        ]
        parts.append("Maildir 0700")
    return commands, parts


def _password_hash(ctx: HostContext, user: User, current_hash: str) -> Secret | None:
    """The hash to set, or None when the host already has the right password."""
    if user.password_hash is not None:
        return None if current_hash == user.password_hash else Secret(user.password_hash)
    if user.password is None:
        return None
    secret = resolve(user.password, ctx.base_dir)
    if current_hash and verify_sha512_crypt(secret.reveal(), current_hash):
        return None
    return Secret(sha512_crypt(secret.reveal(), new_salt()))


def _maildir(h: object, login: str) -> tuple[str, str]:
    user = h.user(login)  # type: ignore[attr-defined]
    if not user.exists:
        return FAIL, f"user {login} does not exist"
    path = f"{user.home}/Maildir"
    top = h.file(path)  # type: ignore[attr-defined]
    if not top.is_directory:
        return FAIL, f"{path} is not a directory"
    problems = []
    if top.user != login:
        problems.append(f"owned by {top.user}, not {login}")
    if top.mode != 0o700:
        problems.append(f"mode {top.mode:04o}, not 0700")
    for sub in ("cur", "new", "tmp"):
        f = h.file(f"{path}/{sub}")  # type: ignore[attr-defined]
        if f.exists and f.user != login:
            problems.append(f"{sub}/ owned by {f.user}")
    if problems:
        return FAIL, f"{path}: " + ", ".join(problems)
    return PASS, f"{path}: {top.user}:{top.group} 0700"
