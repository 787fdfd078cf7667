"""Headless Chromium for the report tests and the screenshot script: Debian's ``chromium`` and
``chromium-driver`` (``bash install.sh``) driven by Selenium 4, offline.

Without them a test is skipped, except under CI (``$CI`` set), where install.sh has installed them and
their absence is a failure, never a silent skip (the rule of the ``espeak_ng`` fixture).
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMEDRIVER = ("chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUM = ("chromium", "chromium-browser", "/usr/lib/chromium/chromium")


def find(candidates: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, candidates) if p), None)


def missing() -> str | None:
    """What is missing to run headless Chromium, or ``None``."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'selenium>=4.15', part of the dev extra)"
    if find(CHROMIUM) is None or find(CHROMEDRIVER) is None:
        return "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
    return None


def require_browser() -> None:
    """Skip the calling test without a browser; fail under CI."""
    problem = missing()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}, but CI ($CI is set) must run the browser tests of `unsup report`: run "
                    f"`bash install.sh` first", pytrace=False)
    pytest.skip(f"{problem}; `bash install.sh` installs them")


def start_chromium(width: int = 1280, height: int = 1600):
    """A headless Chromium WebDriver that logs the browser console; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver is named, so Selenium Manager never looks for (or downloads) one
    return webdriver.Chrome(service=Service(executable_path=find(CHROMEDRIVER)), options=options)
