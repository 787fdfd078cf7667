"""Fixtures for every test: an isolated cache and seed, and the guard of tests that need espeak-ng."""

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

# The shared test helpers (cli_helpers, idx_files, model_checks) import by name from any test directory.
for _helpers in (Path(__file__).parent, Path(__file__).parent / "models"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path_factory):
    """No test writes to the user's cache or depends on another test's RNG."""
    monkeypatch.setenv("UNSUP_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def espeak_ng() -> str:
    """The ``espeak-ng`` executable the speech tests need.

    Session-scoped, so that it is set up before the module fixtures that synthesise speech. Without
    espeak-ng the test is skipped, except under CI (``$CI`` set): CI installs it (install.sh), so
    there its absence is a failure, never a silent skip.
    """
    path = shutil.which("espeak-ng")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("espeak-ng is not installed, but CI ($CI is set) must run the speech tests: "
                        "run `bash install.sh` (or `apt-get install -y espeak-ng`) first",
                        pytrace=False)
        pytest.skip("espeak-ng not installed (apt-get install -y espeak-ng)")
    return path
