"""The one builder of the host script: a HostPlan's command values → one POSIX sh script, and the
script's marker lines → typed step results.

The script runs detached from the SSH session (`setsid`, output to a per-apply log under
/var/lib/mailprov/runs): a dropped connection cannot stop it half-way, and mailprov reads the log
afterwards. Order (Ansible's copy, for a whole tree): lock (flock: the kernel releases it with its
holder) → journal of the handlers this apply owes → PREPARE changes (packages, accounts, keys) → stage
every new file beside its target → gates (the host's own validators) → back up → atomic rename → FINISH
changes → handlers, each once → health (the protocols, not the ports) → journal cleared. On any failure
after the switch: restore the backups, run the handlers again, check health again.

Every argv is quoted here (mailprov.transport.shell); the only raw shell text is this module's frame and
the small sh functions resources declare.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from mailprov.facts.files import file_md5
from mailprov.paths import (
    APPLIED_STATE,
    BACKUP_DIR,
    GENERATION,
    JOURNAL,
    KEEP_BACKUPS,
    LOCK,
    LOCK_INFO,
    RUNS_DIR,
    STAGE_DIR,
    STAGED_SUFFIX,
    STATE_DIR,
)
from mailprov.plan import HostPlan
from mailprov.resources.base import Command, ManagedFile, Phase
from mailprov.transport.shell import heredoc, join, quote

MARK = "@@MP"
LOCKED_EXIT = 3

# The frame's helpers. Command output goes to the run's log (a daemon started by a handler inherits it,
# never the SSH channel); the last lines of a failed command's output become its message. fd 9 holds
# the lock: commands run without it, so no daemon a handler starts keeps the lock.
FRAME = rf"""
step() {{ CURRENT="$1"; echo "{MARK} step $1 $(date -u +%H:%M:%S)"; }}
fail() {{ echo "{MARK} fail $CURRENT $*"; tail -n 20 "$LOG"; [ -n "$SWITCHED" ] || rm -f {JOURNAL}; finish 1; }}
run() {{ "$@" >"$OUT" 2>&1 9>&-; rc=$?; cat "$OUT" >>"$LOG"; return "$rc"; }}
why() {{ tail -n 3 "$OUT" | tr '\n' ' '; }}
finish() {{ [ -d "$BACKUP" ] && cp "$LOG" "$BACKUP/apply.log"; echo "$1" > "$RUN.rc"; exit "$1"; }}
mp_listening() {{ {{ ss -ltn 2>/dev/null || netstat -ltn 2>/dev/null; }} | grep -q "[:.]$1[[:space:]]"; }}
mp_timeout() {{ if command -v timeout >/dev/null; then timeout "$@"; else shift; "$@"; fi; }}
mp_wait() {{
  what=$1; shift; end=$(( $(date +%s) + 20 ))
  while :; do "$@" && return 0; [ "$(date +%s)" -lt "$end" ] || break; sleep 0.5; done
  echo "health: $what"; return 1
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
    finished_at: str = ""  # the host's clock when the last step started (UTC)


def run_id(stamp: str, token: str) -> str:
    """The name of one apply's files under runs/: its script, log (.out) and exit status (.rc)."""
    return f"{RUNS_DIR}/{stamp}-{token}"


def launcher(script: str, run: str) -> str:
    """What is sent over SSH: write the run's script, start it in its own session, wait for it, print
    its log. If the connection drops, only this launcher dies; `follow` reads the outcome later."""
    return "\n".join(
        [
            "umask 077",
            f"mkdir -p {RUNS_DIR} || exit 1",
            f"{heredoc(script)} > {quote(run + '.sh')} || exit 1",
            f"setsid sh {quote(run + '.sh')} {quote(run)} </dev/null >{quote(run + '.out')} 2>&1 &",
            "wait $!",
            f"cat {quote(run + '.out')}",
            f'[ -f {quote(run + ".rc")} ] || echo "{MARK} died"',  # killed on the host before its last word
            f"exit $(cat {quote(run + '.rc')} 2>/dev/null || echo 1)",
        ]
    )


def follow(run: str) -> str:
    """A later look at a run whose launcher was cut off: wait while it runs (30 min at most), print its log;
    a run that died without its last word says so."""
    r, pid = quote(run + ".rc"), quote(run + ".pid")
    return (
        f'i=0; while [ ! -f {r} ] && kill -0 "$(cat {pid} 2>/dev/null)" 2>/dev/null && [ $i -lt 3600 ]; do'
        f" sleep 0.5; i=$((i+1)); done; cat {quote(run + '.out')};"
        f' [ -f {r} ] || echo "{MARK} died"; exit $(cat {r} 2>/dev/null || echo 1)'
    )


def build_script(plan: HostPlan, stamp: str, who: str = "mailprov") -> str:
    """The run's script; its first argument is the run's path prefix (runs/STAMP-TOKEN)."""
    files = plan.files
    owed = "".join(f"{h.owner} {h.action}\n" for h in plan.owed)
    out: list[str] = [
        # sh keeps reading its open script: removed at once, no secret stays on disk.
        'RUN="$1"; umask 022; rm -f "$RUN.sh"; echo $$ > "$RUN.pid"',
        f"STATE={STATE_DIR}; STAMP={quote(stamp)}; BACKUP={BACKUP_DIR}/$STAMP",
        'LOG="$RUN.log"; OUT="$RUN.cmd"; LOCKDIR=',
        FRAME,
        plan.shell,
        _lock(who),
        # Refused if another apply ran since this plan was made: its plan would undo or repeat that one.
        f'[ "$(cat {GENERATION} 2>/dev/null)" = {quote(plan.generation)} ] || {{ echo "{MARK} fail lock another'
        f' apply changed this host since this plan was made: nothing was done; plan again"; finish {LOCKED_EXIT}; }}',
        f'echo "$RUN" > {GENERATION}',
        f"ls -1 {RUNS_DIR}/*.rc 2>/dev/null | sort | head -n -{KEEP_BACKUPS * 4} | sed 's/\\.rc$//' |"
        ' while read -r old; do rm -f "$old".*; done',
        # What this apply owes, durably, before it changes anything: a cut run's handlers are run next time.
        *([_journal(stamp, owed)] if owed else []),
        # Staged files that were not switched in (a refused change) are removed on the way out.
        "STAGED=; SWITCHED=",
        f"trap 'for f in $STAGED; do rm -f \"$f\"; done; rm -rf {STAGE_DIR} $LOCKDIR' EXIT",
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
        if plan.relabel:
            # A renamed file keeps the label it was created with: give each its policy's (SELinux).
            out.append(_run(Command((*plan.relabel, *(f.path for f in files))), "rollback"))
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
    out.append(f"rm -f {JOURNAL}; sync")
    out.append(f'echo "{MARK} done $(date -u +%H:%M:%S)"')
    out.append("finish 0")
    return "\n".join(out) + "\n"


def _journal(stamp: str, owed: str) -> str:
    new = quote(JOURNAL + ".new")
    return f"{{ echo {quote('since ' + stamp)}; {heredoc(owed)}; }} > {new} && sync && mv {new} {JOURNAL}"


def _lock(who: str) -> str:
    """flock where the host has it (the kernel releases it when the holder dies, however it dies); else a
    directory whose PID is checked. A refused run says who holds it, and touches nothing else."""
    info, held = quote(LOCK_INFO), quote(LOCK + ".d")
    # The holder writes who it is just after taking the lock: give it up to 3 s to show a live PID there,
    # or the refusal could name the previous run (or no one).
    refuse = (
        f'n=0; while [ "$n" -lt 3 ] && ! kill -0 "$(cut -d " " -f 2 {info} 2>/dev/null)" 2>/dev/null; do'
        f" sleep 1; n=$((n + 1)); done;"
        f' echo "{MARK} fail lock another apply holds the lock: $(cat {info} 2>/dev/null || echo unknown);'
        f' it is released when that apply ends"; finish {LOCKED_EXIT}'
    )
    return "\n".join(
        [
            "if command -v flock >/dev/null; then",
            f"  exec 9>>{quote(LOCK)}; flock -n 9 || {{ {refuse}; }}",
            f'elif ! mkdir {held} 2>/dev/null && kill -0 "$(cat {held}/pid 2>/dev/null)" 2>/dev/null; then',
            f"  {refuse}",
            f"else mkdir -p {held}; echo $$ > {held}/pid; LOCKDIR={held}; fi",
            # Written whole, then renamed: a refused run never reads it half-written.
            f"echo \"PID $$ since $(date -u '+%Y-%m-%d %H:%M:%S UTC') by {who.replace(chr(34), '')}\""
            f" > {info}.$$ && mv -f {info}.$$ {info}",
        ]
    )


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
        # Created empty and private before a byte is written: a secret is never readable by others.
        f"rm -f {staged} && (umask 077 && : > {staged}) || fail cannot write {staged}",
    ]
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
    """Restore every switched file from the backup (or remove it if it was new), run the handlers again
    and check health again, so the report can say whether the previous configuration serves."""
    restore = [
        f'case " $SWITCHED " in *" {f.path} "*) if [ -f "$BACKUP"{quote(f.path)} ]; then'
        f' cp -p "$BACKUP"{quote(f.path)} {quote(f.path)}; else rm -f {quote(f.path)}; fi;; esac'
        for f in files
    ]
    again = [f"run {join(cmd.argv)} </dev/null" for h in plan.rollback for cmd in h.commands]
    health = " && ".join(f"run {join(cmd.argv)} </dev/null" for cmd in plan.health) or "true"
    staged = " ".join(quote(f.path + STAGED_SUFFIX) for f in files)
    body = "\n  ".join([*restore, *again]) or ":"
    return (
        "rollback() {\n"
        f'  FAILED="$CURRENT"; WHY="$*"; CURRENT=rollback; echo "{MARK} rollback $FAILED"\n'
        + (f"  rm -f {staged}\n" if staged else "")
        + f"  {body}\n"
        f"  if {health}; then rm -f {JOURNAL}; SERVING='previous configuration restored and serving';\n"
        f'  else SERVING="previous configuration restored, but not serving: $(why)"; fi\n'
        f'  echo "{MARK} fail $FAILED $WHY ($SERVING)"; tail -n 20 "$LOG"; finish 1\n'
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


def ended(output: str) -> bool:
    """Whether `output` holds a run's last word (done, or why it stopped)."""
    return any(line.startswith((f"{MARK} done", f"{MARK} fail ", f"{MARK} died")) for line in output.split("\n"))


def step_names(plan: HostPlan) -> list[str]:
    """The steps the run of `plan` announces, in order (progress, tests)."""
    return [shlex.split(line)[1] for line in build_script(plan, "x").split("\n") if line.startswith("step ")]


def parse_result(host: str, rc: int, output: str) -> ApplyResult:
    steps: list[str] = []
    failed: str | None = None
    message = ""
    rolled = False
    done = False
    clock = ""
    lines = output.split("\n")
    for line in lines:
        if not line.startswith(MARK + " "):
            continue
        parts = line.split(" ", 3)
        kind = parts[1] if len(parts) > 1 else ""
        if kind == "step" and len(parts) > 2:
            steps.append(parts[2])
            clock = parts[3] if len(parts) > 3 else clock
        elif kind == "fail":
            failed = parts[2] if len(parts) > 2 else "?"
            message = parts[3].strip() if len(parts) > 3 else ""
        elif kind == "rollback":
            rolled = True
        elif kind == "done":
            done = True
            clock = parts[2] if len(parts) > 2 else clock
        elif kind == "died":
            failed = steps[-1] if steps else "start"
            message = (
                f"the apply stopped on the host during {failed} without finishing (was it killed?): "
                "the next `mailprov plan` shows what it still owes"
            )
    tail = "\n".join(line for line in lines[-15:] if line and not line.startswith(MARK))
    ok = rc == 0 and done and failed is None
    if not ok and failed is None:
        failed = steps[-1] if steps else "start"
        message = f"exit {rc}"
    return ApplyResult(host, ok, tuple(steps), failed, message, rolled, tail, clock)
