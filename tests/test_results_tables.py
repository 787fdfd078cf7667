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


def test_update_replaces_the_stale_row_under_the_same_header_only():
    sys.path.insert(0, str(REPORT.parent))
    try:
        import report
    finally:
        sys.path.remove(str(REPORT.parent))
    header = "| recipe | bits/dim |\n|---|---|\n"
    report_text = f"## A\n\n{header}| made | 0.19 |\n| new | 1.0 |\n"
    document = (f"text\n\n{header}| made | 0.25 |\n| other | 2.0 |\n\n"
                "| recipe | steps |\n|---|---|\n| made | 14786 |\n")
    updated, unplaced = report.update_rows(report_text, document)
    assert updated == document.replace("| made | 0.25 |", "| made | 0.19 |")  # the other table's row kept
    assert unplaced == ["| new | 1.0 |"]  # a row with nothing to replace is left to paste by hand
    assert report.update_rows(report_text, updated)[0] == updated  # idempotent
