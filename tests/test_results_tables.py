"""docs/results.md holds exactly the tables ``benchmarks/report.py`` renders from the JSONs.

The measured figures are never typed by hand: ``benchmarks/report.py`` renders them (with what
kind of likelihood each is and the commit it was measured at) from ``benchmarks/results/*.json``,
and ``--check`` lists every table line it prints that the document lacks. Run here, it keeps the
document from drifting from the JSONs: a refreshed result, or a changed table, fails this test
until the report's tables are pasted into the document. It reads only JSON and markdown: fast.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "report.py"


def test_results_md_has_every_table_line_of_the_report():
    done = subprocess.run([sys.executable, str(REPORT), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, (
        "docs/results.md lacks these lines of `python benchmarks/report.py` (paste its tables there):\n"
        + done.stdout + done.stderr)
