from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", "El-john-pw-42")
