"""Tiny real runs (a few steps of MADE on the embedded digits) and the hand-written JSON files that
``unsup eval``, ``probe``, ``ood`` and ``compress`` would leave beside them."""

import json
import shutil
from pathlib import Path

import pytest

from unsup.cli import main


def train(out: Path, *options: str) -> Path:
    code = main(["train", "made", "--data", "digits", "--steps", "20", "--eval-every", "10",
                 "--no-progress", "--samples", "16", "--hidden", "32", "--out", str(out), *options])
    assert code == 0, f"unsup train into {out} failed"
    return out


def eval_json(bpd: float, kid: float, precision: float, seconds: float, n: int = 100) -> dict:
    """What `unsup eval DIR --importance-samples 50 --sample-quality N` writes, figures chosen."""
    return {"model": "made", "data": "digits", "representation": "native", "split": "test", "n": 359,
            "step": 20, "nll_nats": bpd * 64 * 0.6931471805599453, "bpd": bpd, "exact": False,
            "likelihood": "bound", "nats_per_dim": bpd * 0.6931471805599453, "nll_se": 0.25,
            "bpd_se": 0.0081, "importance_samples": 50,
            "sample_quality": {
                "n": n, "seed": 0, "features": "the digits classifier's pooled features (256-d): FD, not FID",
                "classifier": {"file": "digits.safetensors", "test_accuracy": 0.98},
                "samples": {"fd": 40.0, "kid": kid, "kid_sd": 0.01, "precision": precision, "recall": 0.5,
                            "density": 0.9, "coverage": 0.6, "n_real": n, "n_fake": n,
                            "classifier_score": 5.0, "classifier_score_sd": 0.2},
                "floor": {"fd": 20.0, "kid": 0.001, "kid_sd": 0.002, "precision": 0.9, "recall": 0.9,
                          "density": 1.0, "coverage": 0.95, "n_real": n, "n_fake": n},
                "sampling_seconds": seconds, "sampling_cpu_seconds": seconds * 1.5, "batch_size": 64}}


PROBE = {"run": "r", "model": "vae", "step": 20, "data": "digits", "representation": "native",
         "labels": "10%", "seed": 0, "labelled": 129, "classes": 10, "n": 359, "chance": 0.1,
         "features": {"run": {"dim": 16, "linear": {"accuracy": 0.81}, "knn": {"accuracy": 0.77}},
                      "pca": {"dim": 16, "linear": {"accuracy": 0.7}, "knn": {"accuracy": 0.72}}}}
OOD = {"run": "r", "model": "made", "step": 20, "data": "digits", "representation": "native",
       "likelihood": "exact", "entropy_bpd": 3.1,
       "metrics": {"likelihood": {"noise": {"auroc": 0.99, "aupr": 0.98, "fpr95": 0.01}},
                   "typicality": {"noise": {"auroc": 0.93, "aupr": 0.9, "fpr95": 0.2}}},
       "directions": {"likelihood": "bits/dim; higher = more outlying"}}
COMPRESS = {"bytes": 9689, "payload_bits": 73536, "container_bits": 3976, "nll_bits": 73528.9,
            "count": 359, "dims": 22976, "bits_per_dim": 3.3736, "overhead": 0.0542,
            "out": "t.unsupz", "nll_bits_per_dim": 3.2003}


def write(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2))


@pytest.fixture(scope="session")
def base_run(tmp_path_factory) -> Path:
    """One tiny real run, trained once; tests copy it before adding files."""
    return train(tmp_path_factory.mktemp("base") / "made")


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory, base_run) -> list[Path]:
    """Two real runs with every file a report reads; run "a" has the better bits/dim, run "b" the
    better KID, precision and sampling time."""
    root = tmp_path_factory.mktemp("two")
    a, b = root / "a", root / "b"
    shutil.copytree(base_run, a)
    train(b, "--seed", "1")
    write(a / "eval.json", eval_json(bpd=1.0, kid=0.10, precision=0.5, seconds=2.0))
    write(b / "eval.json", eval_json(bpd=2.0, kid=0.05, precision=0.7, seconds=1.0))
    for run, auroc in ((a, 0.99), (b, 0.6)):
        write(run / "probe.json", PROBE)
        write(run / "ood.json", {**OOD, "metrics": {"likelihood": {"noise": {"auroc": auroc}}}})
        write(run / "compress.json", COMPRESS)
    return [a, b]
