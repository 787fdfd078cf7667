"""Every data test gets its own empty cache and no ``$UNSUP_DATA``: nothing touches ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNSUP_CACHE", str(cache))
    monkeypatch.delenv("UNSUP_DATA", raising=False)
    return cache
