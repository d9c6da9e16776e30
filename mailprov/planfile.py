"""Saved plans: `plan --out FILE` records what the plan was made from; `apply --plan-file FILE` refuses a
host that changed since.

A plan is a pure function of the site file and each host's facts, so the file keeps their digests, not
the plan's commands: no secret (not even a password hash) is ever written to disk. The readable plan is
kept beside them for review.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailprov.errors import ConfigError

FORMAT = 1


@dataclass(frozen=True)
class SavedPlan:
    site_digest: str
    fingerprints: dict[str, str]  # host → digest of its facts when the plan was made


def site_digest(site_path: str | Path) -> str:
    return hashlib.sha256(Path(site_path).read_bytes()).hexdigest()


def save(path: str | Path, site_path: str | Path, fingerprints: dict[str, str], readable: list[dict[str, Any]]) -> None:
    document = {
        "format": FORMAT,
        "site": str(Path(site_path).resolve()),
        "site_sha256": site_digest(site_path),
        "hosts": fingerprints,
        "plan": readable,
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def load(path: str | Path, site_path: str | Path) -> SavedPlan:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        saved = SavedPlan(str(document["site_sha256"]), {str(k): str(v) for k, v in document["hosts"].items()})
        if document.get("format") != FORMAT:
            raise ValueError(f"format {document.get('format')}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a mailprov plan file ({exc})") from None
    if saved.site_digest != site_digest(site_path):
        raise ConfigError(f"{site_path} changed since the plan {path} was made: run `mailprov plan` again")
    return saved
