"""The page of `unsup report` in a real browser (headless Chromium): it loads from file:// with no
console error, every picture decodes, and the comparison table has a row per run.

Needs Debian's chromium and chromium-driver and selenium (``bash install.sh``): skipped without
them, failed under CI. ``python tests/report/screenshot.py RUN...`` saves the page as a PNG.
"""

from pathlib import Path

import pytest
from report_browser import require_browser, start_chromium

from unsup.report import collect_run, write_report


@pytest.fixture(scope="module")
def browser():
    require_browser()
    driver = start_chromium()
    yield driver
    driver.quit()


def test_the_two_run_page_loads_clean_with_every_image_decoded(browser, two_runs, tmp_path: Path):
    page = write_report([collect_run(r) for r in two_runs], tmp_path / "report.html")
    browser.get(page.resolve().as_uri())
    assert browser.title.startswith("unsup report")

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors: {severe}"

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0]);")
    assert len(images) >= 6
    undecoded = [alt for alt, ok in images if not ok]
    assert not undecoded, f"images that did not decode: {undecoded}"

    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#comparison-table tbody tr'))"
        ".map(r => r.cells[0].textContent.trim());")
    assert rows == [str(r) for r in two_runs]
    best = browser.execute_script("return document.querySelectorAll('#comparison-table td.best').length;")
    assert best > 0

    links = browser.execute_script("return Array.from(document.querySelectorAll('nav.toc a'))"
                                   ".map(a => a.getAttribute('href'));")
    assert links == ["#comparison", "#run-1", "#run-2"]
    assert all(browser.execute_script(f"return document.querySelector('{h}') !== null;") for h in links)
