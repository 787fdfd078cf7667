"""`unsup report`: the page holds every figure a run has, compares runs column by column with the
best marked, embeds valid PNGs only, tolerates missing files, refuses what is not a run, escapes text."""

import base64
import io
import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli_helpers import run
from conftest import COMPRESS, eval_json, train, write
from PIL import Image

from unsup.errors import ConfigError
from unsup.report import Run, collect_run, render
from unsup.report.metrics import best_runs, likelihood_kind, run_figures
from unsup.train.checkpoint import load_state


class Page(HTMLParser):
    """The parts of a page the tests look at: image sources, comparison rows, cells marked best."""

    def __init__(self, html: str):
        super().__init__()
        self.images, self.rows, self.best_cells = [], [], []
        self._table, self._in_body, self._cell, self._best, self._row = None, False, None, False, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "tbody" and self._table == "comparison-table":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell, self._best = [], "best" in (a.get("class") or "").split()

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            text = "".join(self._cell).strip()
            self._row.append(text)
            if self._best:
                self.best_cells.append((self._row[0], len(self._row) - 1))
            self._cell = None
        elif tag == "tbody":
            self._in_body, self._row = False, None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def headers(html: str) -> list[str]:
    """Labels of the comparison table's columns (without their direction line)."""
    head = html.split('id="comparison-table"')[1].split("</thead>")[0]
    return [h.split("<span")[0].split("</th")[0] for h in re.split(r"<th[^e][^>]*>", head)[1:]]


def report(capsys, tmp_path: Path, *runs: Path) -> str:
    out = tmp_path / "report.html"
    code, stdout, err = run(capsys, "report", *map(str, runs), "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}" in stdout
    return out.read_text()


def test_a_run_page_shows_its_model_data_curves_figures_and_pictures(two_runs, tmp_path, capsys):
    html = report(capsys, tmp_path, two_runs[0])
    for text in ("made", "digits", "checkpoint step", "steps reached", "training time",
                 "Training curves", "loss during training", "samples.png",
                 "upper bound", "50 importance samples", "± 0.250",  # NLL and its standard error
                 "Sample quality", "floor (train vs test)", "0.1000 ± 0.0100",  # KID mean ± s.d.
                 "0.0200 s per sample", "Probes (test accuracy)", "81.0 %",
                 "Outlier detection (AUROC)", "0.990", "Compression", "3.3736", "+5.42 %"):
        assert text in html, text
    assert 'id="comparison-table"' not in html  # a comparison needs two runs


def test_every_image_is_a_valid_png_data_uri(two_runs, tmp_path, capsys):
    page = Page(report(capsys, tmp_path, *two_runs))
    assert len(page.images) >= 6  # curves and samples of two runs, the trade-off charts
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        Image.open(io.BytesIO(png)).verify()  # raises on a damaged PNG


def test_comparison_has_a_row_per_run_and_marks_the_best_in_each_direction(two_runs, tmp_path, capsys):
    html = report(capsys, tmp_path, *two_runs)
    page, cols = Page(html), headers(html)
    assert [r[0] for r in page.rows] == [p.name for p in two_runs]
    best = {cols[i] for name, i in page.best_cells if name == two_runs[0].name}
    assert {"bits/dim", "NLL (nats)", "AUROC likelihood vs noise"} <= best  # lower bits/dim, higher AUROC
    best_b = {cols[i] for name, i in page.best_cells if name == two_runs[1].name}
    assert {"KID", "precision", "CPU s / sample"} <= best_b  # lower KID and time, higher precision
    # no direction (steps), or the same value in every run (recall, coded bits/dim): nothing is best
    assert not ({"steps", "recall", "coded bits/dim"} & (best | best_b))
    assert "bits/dim (lower is better) against CPU s / sample" in html  # a trade-off chart
    assert "different data" not in html


def test_the_best_is_marked_among_runs_of_the_same_data_only(two_runs, tmp_path, capsys):
    binary = train(tmp_path / "binary", "--represent", "binary")  # bits/dim of other data
    write(binary / "eval.json", eval_json(bpd=0.5, kid=0.01, precision=0.9, seconds=0.5))
    html = report(capsys, tmp_path, *two_runs, binary)
    page, cols = Page(html), headers(html)
    assert "different data: the best is marked among the runs of the same data only" in html
    best = {(name, cols[i]) for name, i in page.best_cells}
    assert (two_runs[0].name, "bits/dim") in best and (two_runs[1].name, "KID") in best
    assert not {c for name, c in best if name == binary.name}  # alone with its data: best of nothing
    assert [r[2] for r in page.rows] == ["digits", "digits", "digits · binary"]


def test_best_is_every_tied_extreme_and_nothing_without_a_direction():
    assert best_runs([2.0, 1.0, None, 1.0], "lower") == {1, 3}
    assert best_runs([0.2, 0.9, 0.5], "higher") == {1}
    assert best_runs([5.0, 1.0], None) == set()
    assert best_runs([5.0, None], "lower") == set()  # one value is best of nothing
    assert best_runs([0.5, 0.5, None], "higher") == set()  # nor is a value every run has


def test_likelihood_kind_is_what_the_json_states():
    assert likelihood_kind({"exact": True, "likelihood": "exact"}) == "exact"
    assert likelihood_kind({"exact": False, "likelihood": "bound"}) == "upper bound"
    assert likelihood_kind({"exact": False, "likelihood": "estimate"}) == "estimate"
    assert likelihood_kind({"exact": True}) == "exact"  # files older than the "likelihood" field
    assert likelihood_kind({"exact": False}) == "upper bound"


def test_the_test_evaluation_over_more_examples_is_the_one_compared():
    test = {"split": "test", "bpd": 3.0, "nll_nats": 1.0, "exact": True}
    ev = {**test, "bpd": 2.5}
    assert run_figures({"test": test, "eval": ev})["bpd"].value == 2.5
    assert run_figures({"test": test, "eval": {**ev, "split": "val"}})["bpd"].value == 3.0
    # `unsup eval --examples 64` after a test split of 359: the larger evaluation stays
    assert run_figures({"test": {**test, "n": 359}, "eval": {**ev, "n": 64}})["bpd"].value == 3.0
    assert run_figures({"test": {**test, "n": 64}, "eval": {**ev, "n": 359}})["bpd"].value == 2.5


def test_a_partial_evaluation_shows_the_subset_error_and_names_the_monte_carlo_one():
    partial = {"split": "test", "n": 192, "bpd": 3.4, "nll_nats": 1845.0, "nats_per_dim": 1845.0 / 784,
               "exact": False, "likelihood": "bound", "nll_se": 0.06, "bpd_se": 0.0001,
               "partial": {"n": 192, "of": 10000, "nll_se": 36.6}}
    bpd = run_figures({"test": partial})["bpd"]
    assert bpd.spread == "s.e. (subset)" and bpd.se == pytest.approx(36.6 / 784 / math.log(2))
    assert "on 192 of 10000" in bpd.note and "Monte-Carlo s.e. of the estimate 0.06 nats" in bpd.note
    whole = {k: v for k, v in partial.items() if k != "partial"}
    assert run_figures({"test": whole})["bpd"].se == 0.0001  # the whole split: the estimate's own error


def test_runs_are_named_as_short_as_tells_them_apart_and_many_get_a_short_title(tmp_path):
    from unsup.report.collect import short_names
    from unsup.report.html import default_title

    assert short_names([tmp_path / "x" / "made", tmp_path / "y" / "vae"]) == ["made", "vae"]
    assert short_names([tmp_path / "x" / "run", tmp_path / "y" / "run"]) == ["x/run", "y/run"]
    runs = [Run(path=tmp_path / "all" / f"r{i}", name=f"r{i}") for i in range(5)]
    assert default_title(runs) == f"unsup report: 5 runs in {(tmp_path / 'all').resolve()}"
    assert default_title(runs[:2]) == "unsup report: r0, r1"


def test_checkpoint_metadata_is_read_from_the_header_as_stored(base_run):
    r = collect_run(base_run)
    full = load_state(base_run / "best.safetensors")
    assert r.meta == full["meta"]
    assert r.model == "made" and r.checkpoint["step"] == full["step"]
    assert r.checkpoint["train_config"]["steps"] == 20
    assert r.checkpoint["model"] and all(v is None for v in r.checkpoint["model"].values())  # not read
    assert set(r.curves) >= {"loss", "bpd"} and r.images[0].name == "samples.png"


def test_runs_with_only_some_files_get_only_those_sections(tmp_path, capsys):
    only_eval, only_curves = tmp_path / "only-eval", tmp_path / "only-curves"
    only_eval.mkdir(), only_curves.mkdir()
    write(only_eval / "eval.json", eval_json(bpd=1.5, kid=0.1, precision=0.5, seconds=1.0))
    write(only_eval / "compress.json", COMPRESS)
    (only_curves / "metrics.csv").write_text("step,split,metric,value,time\n1,train,loss,3.0,0\n"
                                             "2,train,loss,2.0,0\n2,val,loss,2.5,0\n3,train,lo")
    html = report(capsys, tmp_path, only_eval, only_curves)
    assert "Sample quality" in html and "Compression" in html and "loss during training" in html
    assert len(Page(html).rows) == 2
    assert "Probes" not in html and "Outlier detection" not in html


def test_a_directory_that_is_not_a_run_is_refused_naming_what_was_expected(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    code, _, err = run(capsys, "report", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert code == 2
    assert err.startswith("unsup: error: ") and "is not a run directory" in err
    assert "best.safetensors" in err and "eval.json" in err and "unsup train --out" in err
    code, _, err = run(capsys, "report", str(tmp_path / "nowhere"))
    assert code == 2 and "no run directory at" in err
    assert not (tmp_path / "r.html").exists()


def test_a_damaged_json_file_is_named(tmp_path):
    (tmp_path / "eval.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"eval\.json is not valid JSON"):
        collect_run(tmp_path)


def test_odd_names_and_strings_are_escaped(base_run, tmp_path, capsys):
    odd = tmp_path / '<b>odd & "name"</b>'
    shutil.copytree(base_run, odd)
    test = json.loads((odd / "test.json").read_text())
    write(odd / "test.json", {**test, "split": "<script>alert(1)</script>"})
    html = render([collect_run(odd), collect_run(base_run)])
    assert "<script>" not in html and "<b>odd" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;odd &amp; &#34;name&#34;&lt;/b&gt;" in html


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as e:
        run(capsys, "report", "--help")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "self-contained" in out or "one file" in out
    assert "examples:" in out and "unsup report runs/" in out and "--out" in out
