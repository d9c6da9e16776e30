from __future__ import annotations

import pytest

from resources.helpers import PASSWORD


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROV_JOHN_PASSWORD", PASSWORD)
