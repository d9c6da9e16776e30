"""The example site rendered for each preset, compared byte for byte with tests/golden/<preset>/.

A change in output must be a decision: regenerate with
    MAILPROV_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py
which runs `mailprov render inventories/example.com.yaml --facts PRESET --out tests/golden/PRESET`,
then read the diff before committing it.
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailprov.cli import main
from mailprov.facts.platform import PRESETS

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("MAILPROV_UPDATE_GOLDEN") == "1"


def _render(site: Path, preset: str, out: Path) -> None:
    result = CliRunner().invoke(main, ["render", str(site), "--facts", preset, "--out", str(out)])
    assert result.exit_code == 0, result.output


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_example_matches_golden(tmp_path: Path, example_path: Path, preset: str) -> None:
    golden = GOLDEN / preset
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        _render(example_path, preset, golden)
    assert golden.is_dir(), f"no golden files for {preset}: run with MAILPROV_UPDATE_GOLDEN=1"
    _render(example_path, preset, tmp_path)
    want, got = _files(golden), _files(tmp_path)
    assert sorted(got) == sorted(want), "a different set of files was rendered"
    for name, content in want.items():
        if got[name] != content:
            old, new = content.decode().splitlines(), got[name].decode().splitlines()
            diff = difflib.unified_diff(old, new, f"golden/{preset}/{name}", name, lineterm="")
            pytest.fail(f"{name} differs from the golden file:\n" + "\n".join(diff))


def test_every_preset_has_golden_files() -> None:
    assert {p.name for p in GOLDEN.iterdir() if p.is_dir()} == set(PRESETS)
