"""Save a screenshot of the ``unsup report`` page of some runs (the figure in docs/figures).

    python tests/report/screenshot.py RUN [RUN ...] -o docs/figures/report-screenshot.png

made from two small runs (each about a minute on a CPU core)::

    unsup train made --data digits --steps 300 --out runs/made
    unsup eval runs/made --sample-quality 100
    unsup train pixelcnn --data digits --represent binary --steps 300 --out runs/pixelcnn
    unsup eval runs/pixelcnn --sample-quality 100

Needs chromium, chromium-driver (Debian) and selenium, as the browser test does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from report_browser import missing, start_chromium  # noqa: E402

from unsup.report import collect_run, write_report  # noqa: E402


def screenshot(runs: list[str], out: Path, width: int = 1280, max_height: int = 6000,
               title: str | None = None) -> Path:
    """Render ``runs`` and save the page, whole (up to ``max_height`` pixels tall), as a PNG."""
    with tempfile.TemporaryDirectory() as tmp:
        page = write_report([collect_run(r) for r in runs], Path(tmp) / "report.html", title)
        driver = start_chromium(width, 1600)
        try:
            driver.get(page.resolve().as_uri())
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(max(int(height), 1600), max_height))
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("-o", "--out", default="docs/figures/report-screenshot.png")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--max-height", type=int, default=6000)
    p.add_argument("--title", default=None)
    args = p.parse_args()
    if problem := missing():
        print(f"screenshot.py: {problem}", file=sys.stderr)
        return 2
    print(f"wrote {screenshot(args.runs, Path(args.out), args.width, args.max_height, args.title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
