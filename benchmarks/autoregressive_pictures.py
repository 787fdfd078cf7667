"""What a class-conditional autoregressive image model can draw: samples per class, samples across
temperatures and completions of occluded images, each measured (issue #23).

    python benchmarks/autoregressive_pictures.py            # train 5 min, draw, measure, write JSON
    python benchmarks/autoregressive_pictures.py --no-train # reuse the run

One ``unsup train gated-pixelcnn --conditional`` run on 8-bit Fashion-MNIST, 5 minutes of one pinned
core and one thread, seed 0. Then, on the same core:

- **per class**: 8 samples of each of the 10 classes (one row per class,
  ``docs/figures/ar-classes.png``) and, over 50 samples per class, how often the shipped
  Fashion-MNIST classifier (test accuracy printed beside) names the class each was drawn for;
- **temperature**: the logits divided by ``T`` for ``T`` in 0.5 ... 1.2 (one row per ``T``, the same
  seed, so a column is the same random draws, ``docs/figures/ar-temperature.png``), with the KID and
  FD of 200 samples per ``T`` against 200 test images and the class accuracy: low ``T`` trades
  diversity for typicality;
- **completion**: the bottom half of 8 test images hidden and sampled by the model given the top
  half and the image's class (``unsup sample RUN --complete 8``, rows original | occluded |
  completion, ``docs/figures/ar-completions.png``); as a number, the bits/dim of the hidden half
  given the top half (the model's exact conditional likelihood of those pixels) beside the
  unconditional bits/dim of the whole image.

Writes ``benchmarks/results/autoregressive-pictures.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch
from pinned import provenance  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUN = Path("runs/ar-pictures/gated-conditional")
RESULT = ROOT / "benchmarks" / "results" / "autoregressive-pictures.json"
FIGURES = ROOT / "docs" / "figures"
TRAIN = ["unsup", "train", "gated-pixelcnn", "--data", "fashion-mnist", "--conditional", "--time", "5m",
         "--batch-size", "32", "--eval-time", "1m", "--eval-every", "250", "--eval-batches", "10",
         "--samples", "64", "--no-progress", "--seed", "0", "--out", str(RUN)]
COMPLETE = ["unsup", "sample", str(RUN), "--complete", "8", "--out", str(FIGURES / "ar-completions.png")]
TEMPERATURES = (0.5, 0.7, 0.85, 1.0, 1.2)
PER_CLASS, PER_TEMPERATURE = 50, 200


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def draw(model, y: torch.Tensor, temperature: float, seed: int) -> tuple[torch.Tensor, float]:
    """Samples for the classes ``y`` in batches of 50, and their CPU seconds."""
    torch.manual_seed(seed)
    start = cpu()
    x = torch.cat([model.sample(len(yb), y=yb, temperature=temperature).cpu() for yb in y.split(50)])
    return x, cpu() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-train", action="store_true", help="reuse the run in runs/ar-pictures")
    args = ap.parse_args()
    doc = provenance("benchmarks/autoregressive_pictures.py", sys.argv[1:])
    doc["pinned"] = "taskset -c 0, OMP_NUM_THREADS=1 (the script re-runs itself so)"
    if os.environ.get("OMP_NUM_THREADS") != "1":  # one pinned core and one thread throughout
        os.execvpe("taskset", ["taskset", "-c", "0", sys.executable, *sys.argv],
                   {**os.environ, "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    doc["threads"] = torch.get_num_threads()
    if not args.no_train:
        subprocess.run(TRAIN, cwd=ROOT, check=True)
    doc["train_command"] = " ".join(TRAIN)

    from unsup.data.args import DataArgs
    from unsup.plots import image_grid
    from unsup.quality import features, load_classifier, score_samples
    from unsup.train import load_run

    model, meta = load_run(ROOT / RUN)
    model.eval()
    train = json.loads((ROOT / RUN / "train.json").read_text())
    test = json.loads((ROOT / RUN / "test.json").read_text())
    doc["run"] = {"steps": train.get("steps"), "train_seconds": train.get("train_seconds"),
                  "test_bpd": test.get("bpd"), "test_examples": test.get("n")}
    data = DataArgs.from_dict(meta["data"])  # the run's own splits
    clf, clf_meta = load_classifier("fashion-mnist")
    doc["classifier_test_accuracy"] = clf_meta["test_accuracy"]
    spec = model.spec

    # samples per class: a picture of 8 each, the classifier's verdict on 50 each
    classes = model.num_classes
    y = torch.arange(classes).repeat_interleave(PER_CLASS)
    x, seconds = draw(model, y, 1.0, seed=0)
    _, logits = features(clf, x, spec)
    named = logits.argmax(1) == y
    doc["per_class"] = {"samples_per_class": PER_CLASS, "cpu_seconds": seconds,
                        "class_accuracy": float(named.double().mean()),
                        "by_class": {str(c): float(named[y == c].double().mean()) for c in range(classes)}}
    first = torch.cat([x[y == c][:8] for c in range(classes)])
    image_grid(first, spec.levels, ncol=8).save(FIGURES / "ar-classes.png")

    # temperature: the same draws' seed at every T; a picture row per T, KID/FD of 200 each
    doc["temperature"] = {}
    rows = []
    y = torch.arange(PER_TEMPERATURE) % classes
    for t in TEMPERATURES:
        x, seconds = draw(model, y, t, seed=1)
        rows.append(x[:10])
        scored = score_samples(x, data, seed=0, asked=y)
        s = scored["samples"]
        doc["temperature"][str(t)] = {"kid": s["kid"], "kid_sd": s["kid_sd"], "fd": s["fd"],
                                      "class_accuracy": s["class_accuracy"], "cpu_seconds": seconds,
                                      "floor": {"kid": scored["floor"]["kid"], "fd": scored["floor"]["fd"]}}
        print(f"T = {t}: KID {s['kid']:.4f} ± {s['kid_sd']:.4f}, FD {s['fd']:.1f}, "
              f"class accuracy {s['class_accuracy']:.3f}", flush=True)
    image_grid(torch.cat(rows), spec.levels, ncol=10).save(FIGURES / "ar-temperature.png")

    # completion: the picture, and the exact bits/dim of the hidden half given the top half
    subprocess.run(COMPLETE, cwd=ROOT, check=True)
    doc["completion_command"] = " ".join(COMPLETE)
    test_set = data.load("test")
    n = 1000
    batch = test_set.batch(torch.arange(n))
    with torch.no_grad():
        inputs = model.scale(batch["x"])
        logp = torch.log_softmax(model.logits(inputs, batch["y"]), -1)  # (B, C, H, W, L)
        per_pixel = -logp.gather(-1, batch["x"].unsqueeze(-1)).squeeze(-1)  # nats (B, C, H, W)
    h = spec.shape[1]
    bottom, top = per_pixel[:, :, h // 2:], per_pixel[:, :, :h // 2]
    doc["completion"] = {"test_examples": n, "rows_hidden": f"{h - h // 2} of {h}",
                         "bpd_hidden_half_given_top": float(bottom.mean() / math.log(2)),
                         "bpd_top_half": float(top.mean() / math.log(2)),
                         "bpd_whole": float(per_pixel.mean() / math.log(2))}
    doc["figures"] = {k: f"docs/figures/ar-{k}.png" for k in ("classes", "temperature", "completions")}
    RESULT.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in ("run", "per_class", "completion")}, indent=1))
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
