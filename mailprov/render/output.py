"""Write a rendered host to a directory, for review or for packaging (`mailprov render`)."""

from __future__ import annotations

import json
from pathlib import Path

from mailprov.render import Rendered

MANIFEST = "manifest.json"


def write_tree(rendered: Rendered, out: Path) -> list[Path]:
    """Files at their host paths below `out` (a managed block as PATH.mailprov-block), plus a manifest."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest = []
    for f in rendered.files:
        if f.block and not f.text():
            continue  # an empty managed block: nothing to add to the distribution's file
        relative = f.path.lstrip("/") + (".mailprov-block" if f.block else "")
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text(), encoding="utf-8")
        target.chmod(0o600 if f.secret else 0o644)
        written.append(target)
        manifest.append(
            {
                "path": f.path,
                "file": relative,
                "owner": f.owner,
                "group": f.group,
                "mode": f"{f.mode:04o}",
                "role": f.role,
                "managed_block": list(f.block) if f.block else None,
            }
        )
    if rendered.certificate:
        c = rendered.certificate
        manifest.append(
            {
                "path": c.key_path,
                "file": None,
                "owner": "root",
                "group": "root",
                "mode": "0600",
                "role": "cert",
                "managed_block": None,
            }
        )
    (out / MANIFEST).write_text(
        json.dumps(
            {
                "host": rendered.host.name,
                "platform": rendered.dialect.platform.to_json(),
                "files": manifest,
                "notes": list(rendered.notes),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return written
