"""Shared fixtures: the two inventories every site test starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def example_path() -> Path:
    """The seed guide's site (inventories/example.com.yaml)."""
    return REPO / "inventories" / "example.com.yaml"


@pytest.fixture
def minimal_path() -> Path:
    return REPO / "inventories" / "minimal.yaml"


@pytest.fixture
def example_text(example_path: Path) -> str:
    return example_path.read_text(encoding="utf-8")
