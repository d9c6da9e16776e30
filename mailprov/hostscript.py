"""The one builder of the host script: a HostPlan's command values → one POSIX sh script, and the
script's marker lines → typed step results.

Order (Ansible's copy, for a whole tree): lock → PREPARE changes (packages, accounts, keys) → stage every
new file beside its target → gates (the host's own validators) → back up → atomic rename → FINISH
changes → handlers, each once → health → on any failure after the switch, restore the backups and run
the handlers again. Every argv is quoted here (mailprov.transport.shell); the only raw shell text is
this module's frame and the sh functions resources declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from mailprov.facts.files import file_md5
from mailprov.paths import APPLIED_STATE, BACKUP_DIR, KEEP_BACKUPS, STAGE_DIR, STAGED_SUFFIX, STATE_DIR
from mailprov.plan import HostPlan
from mailprov.resources.base import Command, ManagedFile, Phase
from mailprov.transport.shell import heredoc, join, quote

MARK = "@@MP"

# The frame's helpers. Command output goes to the log, never to the SSH channel (a daemon started by a
# handler would hold the channel open); the last lines of a failed command's output become its message.
FRAME = rf"""
step() {{ CURRENT="$1"; echo "{MARK} step $1"; }}
fail() {{ echo "{MARK} fail $CURRENT $*"; tail -n 20 "$LOG"; exit 1; }}
run() {{ "$@" >"$OUT" 2>&1; rc=$?; cat "$OUT" >>"$LOG"; return $rc; }}
why() {{ tail -n 3 "$OUT" | tr '\n' ' '; }}
mp_listening() {{ {{ ss -ltn 2>/dev/null || netstat -ltn 2>/dev/null; }} | grep -q "[:.]$1[[:space:]]"; }}
mp_wait() {{
  what=$1; shift; i=0
  while [ $i -lt 30 ]; do "$@" && return 0; i=$((i+1)); sleep 0.5; done
  echo "health: $what is not up after 15 s"; return 1
}}
"""


@dataclass(frozen=True)
class ApplyResult:
    host: str
    ok: bool
    steps: tuple[str, ...]  # steps that ran, in order
    failed_step: str | None = None
    message: str = ""
    rolled_back: bool = False
    output_tail: str = ""


def build_script(plan: HostPlan, stamp: str) -> str:
    files = plan.files
    out: list[str] = [
        "umask 022",
        f"STATE={STATE_DIR}; STAMP={quote(stamp)}; BACKUP={BACKUP_DIR}/$STAMP",
        "mkdir -p $STATE/backup || { echo '" + MARK + " fail start cannot create '$STATE; exit 1; }",
        "LOG=$STATE/apply.log; OUT=$STATE/apply.out",
        FRAME,
        plan.shell,
        # The lock holds the PID of its apply; a lock whose process is gone (a killed run) is taken over.
        "if ! mkdir $STATE/lock 2>/dev/null; then"
        ' if kill -0 "$(cat $STATE/lock/pid 2>/dev/null)" 2>/dev/null; then'
        f' echo "{MARK} fail lock another apply (PID $(cat $STATE/lock/pid)) holds $STATE/lock"; exit 3; fi; fi',
        "echo $$ > $STATE/lock/pid",
        ": > $LOG",  # only the lock's holder starts a new log
        # Staged files that were not switched in (a refused change) are removed on the way out.
        "STAGED=; SWITCHED=",
        f"trap 'for f in $STAGED; do rm -f \"$f\"; done; rm -rf $STATE/lock {STAGE_DIR}' EXIT",
        _rollback(plan, files),
    ]
    for change in (c for c in plan.changes if c.phase is Phase.PREPARE):
        out.append(f"step {quote(change.key)}")
        out += [_run(cmd, "fail") for cmd in change.commands]
    if files:
        out.append("step stage")
        out += [line for f in files for line in _stage(f)]
        for gate in plan.gates:
            out.append(f"step {quote(gate.step)}")
            out.append(_run(gate.command, "fail"))
        out.append("step switch")
        out.append('mkdir -p "$BACKUP"')
        for f in files:
            p = quote(f.path)
            out.append(f'if [ -f {p} ]; then mkdir -p "$BACKUP$(dirname {p})" && cp -p {p} "$BACKUP"{p}; fi')
        for f in files:
            p = quote(f.path)
            out.append(f'mv -f {quote(f.path + STAGED_SUFFIX)} {p} && SWITCHED="$SWITCHED {f.path}" || rollback')
        out.append("sync 2>/dev/null || true")
        out.append(_record_applied([f for f in files if f.block is None]))
        out.append(
            f"ls -1d {BACKUP_DIR}/*/ 2>/dev/null | sort | head -n -{KEEP_BACKUPS} | while read -r old; do"
            ' rm -rf "$old"; done'
        )
    for change in (c for c in plan.changes if c.phase is Phase.FINISH):
        out.append(f"step {quote(change.key)}")
        out += [_run(cmd, "rollback") for cmd in change.commands]
    for handler in plan.handlers:
        out.append(f"step {quote('handler:' + handler.name)}")
        out += [_run(cmd, "rollback") for cmd in handler.commands]
    if plan.health:
        out.append("step health")
        out += [_run(cmd, "rollback") for cmd in plan.health]
    out.append(f'echo "{MARK} done"')
    return "\n".join(out) + "\n"


def _run(cmd: Command, on_failure: str) -> str:
    """One command, its output logged; on failure `fail` or `rollback` with its last lines."""
    line = f"run {join(cmd.argv)}"
    stdin = cmd.stdin_text()
    line = f"{heredoc(stdin)} | {line}" if stdin is not None else f"{line} </dev/null"
    return f'{line} || {on_failure} "$(why)"'


def _stage(f: ManagedFile) -> list[str]:
    staged = quote(f.path + STAGED_SUFFIX)
    lines = [
        f"mkdir -p {quote(str(PurePosixPath(f.path).parent))} || fail",
        f'STAGED="$STAGED {f.path + STAGED_SUFFIX}"',
    ]
    # Secret files are created with their final mode before a byte is written.
    lines.append(f"rm -f {staged} && (umask 077 && : > {staged}) || fail cannot write {staged}")
    if f.block is not None:
        # Merge on the host: the file came with a package installed earlier in this run.
        begin, end = f.block
        merge = f"sed -e {quote(f'/^{begin}$/,/^{end}$/d')} {quote(f.path)}"
        lines.append(f"{{ {merge}; {heredoc(begin + chr(10) + f.text() + end + chr(10))}; }} >> {staged} || fail")
    else:
        lines.append(f"{heredoc(f.text())} >> {staged} || fail cannot write {staged}")
    lines.append(f"chown {quote(f.owner)}:{quote(f.group)} {staged} && chmod {f.mode:04o} {staged} || fail")
    return lines


def _rollback(plan: HostPlan, files: tuple[ManagedFile, ...]) -> str:
    """Restore every switched file from the backup (or remove it if it was new), then run the handlers
    again so the daemons serve the previous configuration."""
    restore = [
        f'case " $SWITCHED " in *" {f.path} "*) if [ -f "$BACKUP"{quote(f.path)} ]; then'
        f' cp -p "$BACKUP"{quote(f.path)} {quote(f.path)}; else rm -f {quote(f.path)}; fi;; esac'
        for f in files
    ]
    again = [f"run {join(cmd.argv)} </dev/null" for h in plan.handlers for cmd in h.commands]
    staged = " ".join(quote(f.path + STAGED_SUFFIX) for f in files) or ":"
    body = "\n  ".join([*restore, *again]) or ":"
    return (
        "rollback() {\n"
        f'  FAILED="$CURRENT"; WHY="$*"; CURRENT=rollback; echo "{MARK} rollback $FAILED"\n'
        f'  for f in {staged}; do rm -f "$f"; done\n'
        f"  {body}\n"
        f'  echo "{MARK} fail $FAILED $WHY (previous configuration restored)"; tail -n 20 "$LOG"; exit 1\n'
        "}"
    )


def _record_applied(files: list[ManagedFile]) -> str:
    """Remember what mailprov wrote (md5 and path), so a later hand edit shows as drift."""
    switched = " ".join(f.path for f in files)
    lines = "".join(f"{file_md5(f.text())} {f.path}\n" for f in files)
    keep_others = f'awk -v skip={quote(" " + switched + " ")} \'index(skip, " " $2 " ") == 0\' {APPLIED_STATE}'
    return (
        f"{{ [ -f {APPLIED_STATE} ] && {keep_others}; {heredoc(lines)}; }} > {APPLIED_STATE}.new"
        f" && mv -f {APPLIED_STATE}.new {APPLIED_STATE}"
    )


def parse_result(host: str, rc: int, output: str) -> ApplyResult:
    steps: list[str] = []
    failed: str | None = None
    message = ""
    rolled = False
    done = False
    lines = output.split("\n")
    for line in lines:
        if not line.startswith(MARK + " "):
            continue
        parts = line.split(" ", 3)
        kind = parts[1] if len(parts) > 1 else ""
        if kind == "step" and len(parts) > 2:
            steps.append(parts[2])
        elif kind == "fail":
            failed = parts[2] if len(parts) > 2 else "?"
            message = parts[3].strip() if len(parts) > 3 else ""
        elif kind == "rollback":
            rolled = True
        elif kind == "done":
            done = True
    tail = "\n".join(line for line in lines[-15:] if line and not line.startswith(MARK))
    ok = rc == 0 and done and failed is None
    if not ok and failed is None:
        failed = steps[-1] if steps else "start"
        message = f"exit {rc}"
    return ApplyResult(host, ok, tuple(steps), failed, message, rolled, tail)
