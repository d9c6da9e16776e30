"""Execute a HostPlan on its host: one sh script, one round trip, in a safe order.

Order (Ansible's copy, for a whole tree): lock → packages → users → certificates → stage every new
file beside its target → validate the staged Postfix tree and Dovecot config with the host's own
programs → back up → atomic rename → maps → handlers once each → health check → on any failure after
the switch, restore the backups and reload. Nothing here decides *what* to change: the plan did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from mailprov.dialects import Dialect
from mailprov.facts.probe import APPLIED_STATE, file_md5
from mailprov.plan import Change, Command, Handler, HostPlan, Phase, dovecot_check_argv
from mailprov.render import RenderedFile, Role
from mailprov.transport.base import Transport
from mailprov.transport.shell import heredoc, join, quote

STATE = "/var/lib/mailprov"
KEEP_BACKUPS = 5
MARK = "@@MP"
FIREWALLD_RULES = "/etc/mailprov/firewalld.rules"


@dataclass(frozen=True)
class ApplyResult:
    host: str
    ok: bool
    steps: tuple[str, ...]  # steps that ran, in order
    failed_step: str | None = None
    message: str = ""
    rolled_back: bool = False
    output_tail: str = ""


def handler_commands(handler: Handler, plan: HostPlan) -> list[str]:
    """Shell lines for one handler, in the host's dialect (also shown by `plan`)."""
    d = plan.rendered.dialect
    if handler is Handler.NEWALIASES:
        return ["newaliases"]
    if handler is Handler.POSTMAP:
        return [join(["postmap", f"{d.map_type}:{d.paths.sender_access}"])]
    if handler is Handler.FIREWALL and d.platform.firewall.value == "firewalld":
        rules = quote(FIREWALLD_RULES)
        # Each line of the rules file is one firewall-cmd argument (a rich rule is a single word).
        return [
            f'grep -v -e "^#" -e "^$" {rules} | while read -r rule; do'
            ' firewall-cmd --permanent --zone=public "$rule" || exit 1; done',
            "firewall-cmd --reload",
        ]
    if handler is Handler.FIREWALL:
        lines = []
        for tool, path in (("iptables", d.paths.firewall_v4), ("ip6tables", d.paths.firewall_v6)):
            if any(f.path == path for f in plan.rendered.files):
                lines.append(f"{tool}-restore --noflush < {quote(path)}")
                lines.append(f"{tool} -C INPUT -j MAILPROV 2>/dev/null || {tool} -I INPUT 1 -j MAILPROV")
        if d.firewall_save:
            lines.append(f"if command -v {d.firewall_save[0]} >/dev/null; then {join(d.firewall_save)}; fi")
        return lines
    if handler is Handler.POSTGREY:
        return [d.restart_line("postgrey")]
    if handler is Handler.DOVECOT:
        return [d.restart_line("dovecot")]
    if handler is Handler.POSTFIX_RESTART:
        return [d.restart_line("postfix")]
    return [f"postfix reload 2>/dev/null || {join(d.service_argv('postfix', 'start'))}"]


def build_script(plan: HostPlan, stamp: str) -> str:
    d = plan.rendered.dialect
    files = [c.file for c in plan.changes if c.file is not None]
    changed_roles = {f.role for f in files}
    out: list[str] = [
        "umask 022",
        f"STATE={STATE}; STAMP={quote(stamp)}; BACKUP=$STATE/backup/$STAMP; STAGE=$STATE/stage",
        f'step() {{ CURRENT="$1"; echo "{MARK} step $1"; }}',
        f'fail() {{ echo "{MARK} fail $CURRENT $*"; tail -n 20 "${{LOG:-/dev/null}}"; exit 1; }}',
        "mkdir -p $STATE/backup || fail cannot create $STATE",
        # Command output goes to a log, never to the SSH channel: a daemon started by a handler would
        # otherwise hold the channel open. The log's tail is shown on failure.
        "LOG=$STATE/apply.log; : > $LOG",
        # The lock holds the PID of its apply; a lock whose process is gone (a killed run) is taken over.
        "if ! mkdir $STATE/lock 2>/dev/null; then"
        ' if kill -0 "$(cat $STATE/lock/pid 2>/dev/null)" 2>/dev/null; then'
        f' echo "{MARK} fail lock another apply (PID $(cat $STATE/lock/pid)) holds $STATE/lock"; exit 3; fi; fi',
        "echo $$ > $STATE/lock/pid",
        # Staged files that were not switched in (a failed validation) are removed on the way out.
        "STAGED=; SWITCHED=",
        "trap 'for f in $STAGED; do rm -f \"$f\"; done; rm -rf $STATE/lock $STAGE' EXIT",
        _rollback_function(plan, files),
    ]
    for phase in (Phase.PACKAGES, Phase.USERS, Phase.CERTS):
        for change in (c for c in plan.changes if c.phase is phase):
            out.append(f"step {quote(change.key)}")
            out += [_logged(_command_line(cmd)) + " || fail" for cmd in change.commands]
    if files:
        out.append("step stage")
        for f in files:
            staged = f"{f.path}.mailprov-new"
            out.append(f"mkdir -p {quote(str(PurePosixPath(f.path).parent))} || fail")
            out.append(f'STAGED="$STAGED {staged}"')
            if f.block is not None:
                # Merge on the host: the file came with a package installed earlier in this run.
                begin, end = f.block
                out.append(
                    f"{{ sed -e {quote(f'/^{begin}$/,/^{end}$/d')} {quote(f.path)};"
                    f" {heredoc(begin + chr(10) + f.content + end + chr(10))}; }} > {quote(staged)} || fail"
                )
            else:
                out.append(f"{heredoc(f.content)} > {quote(staged)} || fail cannot write {quote(staged)}")
            out.append(
                f"chown {quote(f.owner)}:{quote(f.group)} {quote(staged)} && chmod {f.mode:04o} {quote(staged)} || fail"
            )
        out += _validation(d, files, changed_roles)
        out.append("step switch")
        out.append("mkdir -p $BACKUP")
        for f in files:
            p = quote(f.path)
            out.append(f'if [ -f {p} ]; then mkdir -p "$BACKUP$(dirname {p})" && cp -p {p} "$BACKUP{f.path}"; fi')
        for f in files:
            p = quote(f.path)
            out.append(f'mv -f {quote(f.path + ".mailprov-new")} {p} && SWITCHED="$SWITCHED {f.path}" || rollback')
        out.append("sync 2>/dev/null || true")
        out.append(_record_applied([f for f in files if f.block is None]))
        out.append(
            f"ls -1d $STATE/backup/*/ 2>/dev/null | sort | head -n -{KEEP_BACKUPS} | while read -r old; do"
            ' rm -rf "$old"; done'
        )
    for change in (c for c in plan.changes if c.phase is Phase.SERVICES):
        out.append(f"step {quote(change.key)}")
        out += [_logged(_command_line(cmd)) + " || fail" for cmd in change.commands]
    for handler in plan.handlers:
        out.append(f"step handler:{handler.name.lower()}")
        out += [_logged(f"( {line} )") + " || rollback" for line in handler_commands(handler, plan)]
    if plan.handlers:
        out.append("step health")
        out.append(_health_check(plan) + " || rollback")
    out.append(f'echo "{MARK} done"')
    return "\n".join(out) + "\n"


def _logged(line: str) -> str:
    return f"{{ {line} ; }} >>$LOG 2>&1 </dev/null"


def _command_line(cmd: Command) -> str:
    line = join(cmd.argv)
    if cmd.stdin is not None:
        return f"{heredoc(cmd.stdin)} | {line}"
    return line


def _validation(d: Dialect, files: list[RenderedFile], roles: set[Role]) -> list[str]:
    lines: list[str] = []
    if roles & {Role.POSTFIX, Role.MAP, Role.ALIASES, Role.CERT}:
        lines += [
            "step validate-postfix",
            "rm -rf $STAGE && mkdir -p $STAGE/postfix",
            f'for f in {d.paths.postfix_dir}/*; do [ -f "$f" ] && cp -p "$f" $STAGE/postfix/; done; true',
        ]
        for f in files:
            if f.path.startswith(d.paths.postfix_dir + "/") and f.path.endswith(".cf"):
                name = PurePosixPath(f.path).name
                lines.append(f"cp -p {quote(f.path + '.mailprov-new')} $STAGE/postfix/{quote(name)}")
        lines += [
            # Postfix re-reads a config file younger than a second until it settles (~2 s): backdate the copies.
            "touch -t 200001010000 $STAGE/postfix/* 2>/dev/null || true",
            "OUT=$(postfix -c $STAGE/postfix check 2>&1) || fail postfix check: $OUT",
            # Debian's postfix-script reports copying chroot files ("updating /etc/hosts => …"): not a problem.
            'case "$OUT" in *arning*|*atal*|*rror*) fail postfix check: $OUT;; esac',
            "OUT=$(postconf -c $STAGE/postfix -n 2>&1 >/dev/null)",
            '[ -z "$OUT" ] || fail postconf: $OUT',
        ]
    dovecot = next((f for f in files if f.role is Role.DOVECOT), None)
    if dovecot is not None or Role.CERT in roles:
        conf = (dovecot.path if dovecot else d.paths.dovecot_conf) + (".mailprov-new" if dovecot else "")
        lines += [
            "step validate-dovecot",
            f"OUT=$({join(dovecot_check_argv(d, conf))} 2>&1 >/dev/null) || fail doveconf: $OUT",
            'case "$OUT" in *arning*|*rror*) fail doveconf: $OUT;; esac',
        ]
    return lines


def _rollback_function(plan: HostPlan, files: list[RenderedFile]) -> str:
    """Restore every switched file from the backup (or remove it if it was new), then reload."""
    restore = []
    for f in files:
        p = quote(f.path)
        restore.append(
            f'case " $SWITCHED " in *" {f.path} "*) if [ -f "$BACKUP{f.path}" ]; then cp -p "$BACKUP{f.path}" {p};'
            f" else rm -f {p}; fi;; esac"
        )
    reload = []
    roles = {f.role for f in files}
    if Role.ALIASES in roles:
        reload.append("newaliases")
    if Role.MAP in roles:
        reload += handler_commands(Handler.POSTMAP, plan)
    reload += handler_commands(Handler.DOVECOT, plan) + handler_commands(Handler.POSTFIX, plan)
    body = "\n  ".join([*restore, *(f"( {r} ) >>$LOG 2>&1 </dev/null" for r in reload)])
    return (
        "rollback() {\n"
        f'  FAILED="$CURRENT"; CURRENT=rollback; echo "{MARK} rollback $FAILED"\n'
        f'  for f in {" ".join(quote(f.path + ".mailprov-new") for f in files) or ":"}; do rm -f "$f"; done\n'
        f"  {body or ':'}\n"
        f'  echo "{MARK} fail $FAILED (previous configuration restored)"; tail -n 20 $LOG; exit 1\n'
        "}"
    )


def _record_applied(files: list[RenderedFile]) -> str:
    """Remember what mailprov wrote (md5 and path), so a later hand edit shows as drift."""
    switched = " ".join(f.path for f in files)
    lines = "".join(f"{file_md5(f.content)} {f.path}\n" for f in files)
    keep_others = f'awk -v skip={quote(" " + switched + " ")} \'index(skip, " " $2 " ") == 0\' {APPLIED_STATE}'
    return (
        f"{{ [ -f {APPLIED_STATE} ] && {keep_others}; {heredoc(lines)}; }} > {APPLIED_STATE}.new"
        f" && mv -f {APPLIED_STATE}.new {APPLIED_STATE}"
    )


def _health_check(plan: HostPlan) -> str:
    """Postfix's master and Dovecot up and listening, within 15 s."""
    dovecot = next((f for f in plan.rendered.files if f.role is Role.DOVECOT), None)
    ports = ["25"] + (["993"] if dovecot and "port = 993" in dovecot.content else ["995"])
    listening = " && ".join(
        f"{{ ss -ltn 2>/dev/null || netstat -ltn 2>/dev/null; }} | grep -q '[:.]{p}[[:space:]]'" for p in ports
    )
    master = "kill -0 $(sed -n 1p /var/spool/postfix/pid/master.pid 2>/dev/null | tr -d ' ') 2>/dev/null"
    return (
        "( i=0; while [ $i -lt 30 ]; do "
        f"if {master} && {listening}; then exit 0; fi; "
        "i=$((i+1)); sleep 0.5; done; "
        f"echo 'health: Postfix or Dovecot is not running or not listening on {', '.join(ports)}'; exit 1 )"
    )


def parse_result(host: str, rc: int, output: str) -> ApplyResult:
    steps: list[str] = []
    failed: str | None = None
    message = ""
    rolled = False
    done = False
    for line in output.splitlines():
        if not line.startswith(MARK + " "):
            continue
        parts = line.split(" ", 3)
        kind = parts[1] if len(parts) > 1 else ""
        if kind == "step" and len(parts) > 2:
            steps.append(parts[2])
        elif kind == "fail":
            failed = parts[2] if len(parts) > 2 else "?"
            message = parts[3] if len(parts) > 3 else ""
        elif kind == "rollback":
            rolled = True
        elif kind == "done":
            done = True
    tail = "\n".join(line for line in output.splitlines()[-15:] if not line.startswith(MARK))
    ok = rc == 0 and done and failed is None
    if not ok and failed is None:
        failed = steps[-1] if steps else "start"
        message = f"exit {rc}"
    return ApplyResult(host, ok, tuple(steps), failed, message, rolled, tail)


def secrets_of(changes: tuple[Change, ...]) -> list[str]:
    return [s for c in changes for cmd in c.commands for s in cmd.secrets]


def execute(plan: HostPlan, transport: Transport, stamp: str) -> ApplyResult:
    """Run the plan on its host. An empty plan runs nothing at all."""
    if plan.empty:
        return ApplyResult(plan.host, True, ())
    script = build_script(plan, stamp)
    secrets = secrets_of(plan.changes)
    result = transport.run_script(script, check=False, timeout=1800, secrets=secrets)
    return parse_result(plan.host, result.rc, result.stdout + ("\n" + result.stderr if result.stderr else ""))
