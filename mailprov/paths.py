"""Where mailprov keeps its own state on a host: one place for every module that needs it."""

from __future__ import annotations

from typing import Final

STATE_DIR: Final = "/var/lib/mailprov"
APPLIED_STATE: Final = f"{STATE_DIR}/applied"  # "md5 path" of every file mailprov last wrote (drift)
BACKUP_DIR: Final = f"{STATE_DIR}/backup"  # one folder per apply, the last KEEP_BACKUPS kept
STAGE_DIR: Final = f"{STATE_DIR}/stage"  # scratch copies of config trees for validation
KEEP_BACKUPS: Final = 5
STAGED_SUFFIX: Final = ".mailprov-new"  # a new file waits beside its target until the switch
RUNS_DIR: Final = f"{STATE_DIR}/runs"  # each apply's script, log (.log, .out) and exit status (.rc)
LOCK: Final = f"{STATE_DIR}/apply.lock"  # flock'ed by the running apply (not `lock`: older versions' dir)
LOCK_INFO: Final = f"{STATE_DIR}/lock.info"  # who holds it, since when
JOURNAL: Final = f"{STATE_DIR}/journal"  # the handlers an apply owes, until its health check passes
GENERATION: Final = f"{STATE_DIR}/generation"  # changed by every apply that runs: a stale plan is refused
