import pytest
import torch


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path_factory):
    """No test writes to the user's cache or depends on another test's RNG."""
    monkeypatch.setenv("UNSUP_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)
