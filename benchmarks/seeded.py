"""Comparisons the results ranked from one seed, rerun at 3 seeds and one equal budget (issue #23).

    python benchmarks/seeded.py pixel-models        # train rows x 3 seeds, score, write JSON
    python benchmarks/seeded.py pixel-models --collect   # only read the runs into the JSON
    python benchmarks/seeded.py --list              # the comparisons
    python benchmarks/seeded.py cifar-methods --rows cpc-image   # train one (new) row, collect all

Each comparison is a few rows, each row one ``unsup train`` command, run with seeds 0, 1 and 2 for
the same wall-clock budget, two at a time, each on its own pinned core with one thread, then
scored by ``unsup`` itself:

- ``pixel-models``: plain against Gated PixelCNN, and PixelSNAIL, on binarised Fashion-MNIST
  (``x/255 > 0.5``), each with its CPU defaults at batch 32 (the course's architecture table), 5
  minutes; the exact test NLL on the whole test split.
- ``architectures``: the rest of the course's architecture table at ``pixel-models``' settings
  exactly (binarised Fashion-MNIST, batch 32, 5 minutes, exact NLL on the whole test split), so
  that the two comparisons read as one: MADE (its defaults), the LSTM over pixels (one layer of
  128) and the WaveNet-style stack (one stack, learned positions), as in the table's recipes.
- ``sparse-attention``: the transformer (2 layers, d_model 64, batch 32, as in that table) with
  dense causal attention against the Sparse Transformer's ``strided`` pattern (stride one image
  row, 28), on the same data, 3 minutes; exact test NLL, and the CPU seconds of
  one training step (batch 32, sequence length 784) timed after training on one pinned core with
  the other idle, median of repeats.
- ``rotation-angles``: RotNet with 2, 4 or 8 angles on Fashion-MNIST, 3 minutes, batch 64; the
  kept checkpoint's linear and kNN probe at 10 % of the labels (``unsup probe``, seed = run seed).
- ``flow-init``: Glow's two initialisations ablated on 8-bit Fashion-MNIST, defaults at batch
  32 (as the flows' recipes), 3 minutes: the defaults (actnorm initialised from the first batch,
  couplings' last layer at zero), ``--no-actnorm-init``, ``--no-zero-init``; the dequantised
  test bits/dim (a bound) on the whole test split. A run that diverges counts as diverged.
- ``flow-masks``: the course's coupling-mask ablation: RealNVP (its defaults, the flows' recipes'
  settings, batch 32) with checkerboard and channel masks against the same with the checkerboard
  replaced by a fixed random half of the pixels, 5 minutes; the dequantised test bits/dim (a
  bound) on the whole test split.
- ``generative-codes``: the codes of generative models as representations, beside a plain
  autoencoder and SimCLR, on 8-bit Fashion-MNIST, batch 64, 4 minutes: the conv VAE's posterior
  mean, the same with beta = 4, VQ-VAE's pre-quantisation encoder output, Glow's latents; the
  probes of ``rotation-angles``.
- ``context-adversarial``: the context encoder with the L2 loss alone against L2 plus the
  adversarial loss at the paper's weight (``--adversarial 0.001``), on the JPEG copy of CIFAR-10
  (colour: where inpainting has something to show), the representation recipes' settings (batch
  64, 4 minutes); the probes of ``rotation-angles``. The inpaintings of seed 0 of each row are
  drawn by ``python benchmarks/representation.py pictures``.
- ``cifar-methods``: the CIFAR-10 (JPEG copy) methods the representation section ranks from one
  seed (split-brain, rotation, SimCLR, MoCo; then instance discrimination with a memory bank and CPC,
  added with ``--rows``), at that table's settings (batch 64, 4 minutes); the probes of
  ``rotation-angles``.
- ``cpc-negatives``: CPC on speech (the ``cpc-audio-*`` recipes' data and model: 8 espeak-ng
  voices reading 200 bible sentences, batch 16) with negatives drawn from all clips, from clips of
  the same speaker or from the same clip, 10 minutes of one core each (the recipes had 30 minutes
  of wall clock, about 20 of a core); speaker identification by the probes of ``rotation-angles``
  on the mean context vector of each test clip.
- ``toy-2d-image``: the histogram (one logit per cell), MADE and PixelCNN on 2-D pixel positions
  drawn from the camera image, batch 256, 1 minute (the section-1 recipes' settings); exact test
  NLL, beside the NLL of the same test points under the true density (the floor).
- ``label-efficiency``: SimCLR, MoCo (v2), rotation and the autoencoder on Fashion-MNIST (the
  four whose fine-tuning sections 6 and 7 report) at the representation recipes' settings (batch
  64, 4 minutes), then with 1 % of the labels (540 images, class-stratified): the linear probe of
  the frozen features, the network fine-tuned from the run (500 steps of 128 images) and the same
  network trained from scratch on those labels for as long (``unsup probe --finetune-steps
  500``; its seed draws the labelled subset and the scratch network's weights, so within a seed
  all rows share the scratch figure).
- ``vae-posterior``: the VAE against the VAE with an IAF posterior (2 steps, its defaults), on
  binarised Fashion-MNIST, 3 minutes, batch 64; the 100-sample importance-weighted bound on the
  test NLL (an upper bound in expectation) over the whole test split, and the ELBO (K = 1).

Every figure is a mean with its 95 % t-interval over the seeds (``pinned.interval``); the text of
``docs/results.md`` ranks two rows only where their intervals do not overlap. Writes
``benchmarks/results/seeded-NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pinned import (  # benchmarks/: on sys.path
    Job,
    interval,
    percent,
    provenance,
    run_jobs,
    train_here,
    trained_at,
    write_result,
)
from recipes import CIFAR_DIR  # benchmarks/: on sys.path; the JPEG CIFAR-10 beside the repository

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
BINARY = ["--data", "fashion-mnist", "--represent", "binary"]
CIFAR = ["--data", "cifar10-jpeg", *CIFAR_DIR]
QUIET = ["--eval-every", "250", "--eval-batches", "5", "--no-progress"]
PROBE_10 = ["--labels", "10%", "--probes", "linear,knn", "--no-baselines", "--no-tsne"]  # linear + kNN, 10 %
FINETUNE_1 = ["--labels", "1%", "--probes", "linear", "--no-baselines", "--no-tsne",
              "--finetune-steps", "500"]


@dataclass(frozen=True)
class Comparison:
    """Rows of ``unsup train`` arguments (model first) sharing ``common``, and how they are scored:
    ``likelihood`` (the run's test.json), ``probe`` (``unsup probe``: linear and kNN), ``finetune``
    (``unsup probe --finetune-steps``: linear, fine-tuned, from scratch) or ``importance`` (the
    run's test.json at ``--eval-samples`` and ``unsup eval --importance-samples 1``)."""

    rows: dict[str, list[str]]
    common: list[str]
    score: str
    step_time: bool = False  # also time one training step per row (CPU seconds, pinned, idle)
    probe: list[str] = field(default_factory=list)
    reference: Callable[[Path], float] | None = None  # a run's test NLL under the true density


def camera_density_nll(run: Path) -> float:
    """Test NLL (nats per example) of ``toy-2d-image`` under the distribution it is drawn from:
    the camera image's normalised intensities (``unsup.data.toy.image_density``)."""
    import torch

    from unsup.data.toy import image_density
    from unsup.train.checkpoint import read_metadata
    from unsup.train.runs import run_data

    meta = read_metadata(run / "best.safetensors")["meta"]  # the run's data and spec, no weights
    x = run_data(meta, "test").x  # (N, 2): (column, d - 1 - row)
    d = meta["spec"]["levels"]
    p = torch.from_numpy(image_density(d))
    return float(-torch.log(p[d - 1 - x[:, 1], x[:, 0]]).mean())


COMPARISONS = {
    "pixel-models": Comparison(
        rows={"pixelcnn": ["pixelcnn"], "gated-pixelcnn": ["gated-pixelcnn"], "pixelsnail": ["pixelsnail"]},
        common=[*BINARY, "--batch-size", "32", "--time", "5m", "--eval-time", "full", "--samples", "16",
                *QUIET],
        score="likelihood"),
    "architectures": Comparison(
        rows={"made": ["made"], "lstm": ["lstm", "--hidden", "128", "--num-layers", "1"],
              "wavenet": ["wavenet", "--positions", "--num-stacks", "1"]},
        common=[*BINARY, "--batch-size", "32", "--time", "5m", "--eval-time", "full", "--samples", "16",
                *QUIET],
        score="likelihood"),
    "sparse-attention": Comparison(
        rows={p: ["transformer", "--attention", p] for p in ("full", "strided")},
        common=[*BINARY, "--d-model", "64", "--num-layers", "2", "--batch-size", "32", "--time", "3m",
                "--eval-time", "full", "--samples", "16", *QUIET],
        score="likelihood", step_time=True),
    "rotation-angles": Comparison(
        rows={str(a): ["rotation", "--angles", str(a)] for a in (2, 4, 8)},
        common=["--data", "fashion-mnist", "--represent", "native", "--batch-size", "64", "--time", "3m",
                "--samples", "0", *QUIET],
        score="probe", probe=PROBE_10),
    "flow-init": Comparison(
        rows={"default": ["glow"], "no-actnorm-init": ["glow", "--no-actnorm-init"],
              "no-zero-init": ["glow", "--no-zero-init"]},
        common=["--data", "fashion-mnist", "--batch-size", "32", "--time", "3m", "--eval-time", "full",
                "--samples", "16", *QUIET],
        score="likelihood"),
    "flow-masks": Comparison(
        rows={"checkerboard": ["realnvp"], "random": ["realnvp", "--mask", "random"]},
        common=["--data", "fashion-mnist", "--batch-size", "32", "--time", "5m", "--eval-time", "full",
                "--samples", "16", *QUIET],
        score="likelihood"),
    "generative-codes": Comparison(
        rows={"vae": ["vae", "--arch", "conv"], "beta-vae": ["vae", "--arch", "conv", "--beta", "4"],
              "vqvae": ["vqvae"], "glow": ["glow"], "autoencoder": ["autoencoder"], "simclr": ["simclr"]},
        common=["--data", "fashion-mnist", "--represent", "native", "--batch-size", "64", "--time", "4m",
                "--samples", "0", *QUIET],
        score="probe", probe=PROBE_10),
    "context-adversarial": Comparison(
        rows={"l2": ["context-encoder"], "l2+adversarial": ["context-encoder", "--adversarial", "0.001"]},
        common=[*CIFAR, "--represent", "native", "--batch-size", "64", "--time", "4m", "--samples", "0",
                *QUIET],
        score="probe", probe=PROBE_10),
    "cifar-methods": Comparison(
        rows={m: [m] for m in ("split-brain", "rotation", "simclr", "moco", "instance-discrimination",
                               "cpc-image")},
        common=[*CIFAR, "--represent", "native", "--batch-size", "64", "--time", "4m", "--samples", "0",
                *QUIET],
        score="probe", probe=PROBE_10),
    "label-efficiency": Comparison(
        rows={m: [m] for m in ("simclr", "moco", "rotation", "autoencoder")},
        common=["--data", "fashion-mnist", "--represent", "native", "--batch-size", "64", "--time", "4m",
                "--samples", "0", *QUIET],
        score="finetune", probe=FINETUNE_1),
    "cpc-negatives": Comparison(
        rows={m: ["cpc-audio", "--negatives", m] for m in ("all", "speaker", "clip")},
        common=["--data", "speech", "--data-opt", "sentences=200", "--batch-size", "16", "--time", "10m",
                "--eval-every", "200", "--eval-batches", "0", "--samples", "0", "--no-progress"],
        score="probe", probe=PROBE_10),
    "toy-2d-image": Comparison(
        rows={"histogram": ["histogram", "--lr", "0.05"], "made": ["made"], "pixelcnn": ["pixelcnn"]},
        common=["--data", "toy-2d-image", "--batch-size", "256", "--time", "1m", "--eval-every", "200",
                "--samples", "0", "--no-progress"],
        score="likelihood", reference=camera_density_nll),
    "vae-posterior": Comparison(
        rows={"vae": ["vae"], "vae-iaf": ["vae-iaf"]},
        common=[*BINARY, "--batch-size", "64", "--time", "3m", "--eval-samples", "100", "--samples", "16",
                *QUIET],
        score="importance"),
}


def runs(name: str) -> Path:
    return Path("runs/seeded") / name


def train_command(name: str, row: str, seed: int) -> list[str]:
    c = COMPARISONS[name]
    model, *options = c.rows[row]
    return ["unsup", "train", model, *c.common, *options, "--seed", str(seed),
            "--out", str(runs(name) / f"{row}-s{seed}")]


def score_command(name: str, row: str, seed: int) -> list[str] | None:
    """The command that scores a trained run beyond its own test.json, or None."""
    c, run = COMPARISONS[name], str(runs(name) / f"{row}-s{seed}")
    if c.score in ("probe", "finetune"):
        return ["unsup", "probe", run, *c.probe, "--seed", str(seed), "--json"]
    if c.score == "importance":
        return ["unsup", "eval", run, "--importance-samples", "1", "--seed", str(seed), "--json"]
    return None


def step_seconds(run: Path, batch: int = 32, warmup: int = 2, repeats: int = 7) -> dict:
    """CPU seconds of one training step (loss, backward) of ``run``'s model on ``batch`` test
    examples, on this process's core with one thread: the median of ``repeats`` after ``warmup``."""
    import torch

    from unsup.train import load_run
    from unsup.train.runs import run_data

    os.sched_setaffinity(0, {0})  # one core, idle once the training jobs are done
    torch.set_num_threads(1)
    model, meta = load_run(run)
    model.train()
    x = run_data(meta, "test").x[:batch]
    times = []
    for i in range(warmup + repeats):
        start = time.process_time()
        model.zero_grad(set_to_none=True)
        model.loss({"x": x})["loss"].backward()
        if i >= warmup:
            times.append(time.process_time() - start)
    return {"median_seconds": statistics.median(times), "seconds": times, "batch": batch}


def read_seed(name: str, row: str, seed: int) -> dict:
    c, run = COMPARISONS[name], ROOT / runs(name) / f"{row}-s{seed}"
    commands = [train_command(name, row, seed)] + [s for s in [score_command(name, row, seed)] if s]
    out = {"commands": [" ".join(["OMP_NUM_THREADS=1 taskset -c CORE", *cmd]) for cmd in commands]}
    if not (run / "test.json").exists():  # the training command failed: its error, from run_jobs
        return {**out, "failed": json.loads((run / "job.json").read_text())["error"]}
    train, test = (json.loads((run / f).read_text()) for f in ("train.json", "test.json"))
    out.update(steps=train["steps"], train_seconds=train["train_seconds"])
    if c.score in ("likelihood", "importance"):
        out.update(test_nll_nats=test["nll_nats"], bpd=test["bpd"], n=test["n"], exact=test["exact"],
                   dims=round(test["nll_nats"] / test["bpd"] / math.log(2)))
    if c.score == "importance":
        elbo = json.loads((run / "score-stdout.json").read_text())
        out.update(importance_samples=int(c.common[c.common.index("--eval-samples") + 1]),
                   elbo_nll_nats=elbo["nll_nats"], elbo_n=elbo["n"],
                   kl_nats=test["latent"]["kl"], active_units=test["latent"]["active_units"],
                   latent_dims=test["latent"]["latent_dims"])
    if c.score in ("probe", "finetune"):
        probe = json.loads((run / "probe.json").read_text())
        features = probe["features"]["run"]
        out.update(step_kept=probe["step"], pretext_test_loss=test.get("loss"),
                   pretext_test_reconstruction=test.get("reconstruction"),  # e.g. inpainting MSE
                   labelled=probe["labelled"],
                   **{p: features[p]["accuracy"] for p in ("linear", "knn") if p in features})
    if c.score == "finetune":
        tuned = probe["finetune"]
        out.update(finetuned=tuned["run"]["accuracy"], scratch=tuned["scratch"]["accuracy"],
                   finetune_steps=tuned["run"]["steps"])
    return out


def collect(name: str, doc: dict) -> dict:
    c = COMPARISONS[name]
    keys = {"likelihood": ["test_nll_nats", "bpd"], "importance": ["test_nll_nats", "elbo_nll_nats"],
            "probe": ["linear", "knn"], "finetune": ["linear", "finetuned", "scratch"]}[c.score]
    rows = {}
    for r in c.rows:
        seeds = {str(s): read_seed(name, r, s) for s in SEEDS}
        done = [v for v in seeds.values() if "failed" not in v]  # intervals over the runs that finished
        rows[r] = {"seeds": seeds, "failed": len(seeds) - len(done)}
        if done:
            rows[r].update(steps=interval([float(v["steps"]) for v in done]),
                           **{k: interval([v[k] for v in done]) for k in keys})
        if c.step_time:
            rows[r]["step_cpu_seconds"] = step_seconds(ROOT / runs(name) / f"{r}-s0")
    doc["rows"] = rows
    if c.reference is not None:
        doc["reference"] = {"row": "the true density", "test_nll_nats": interval(
            [c.reference(ROOT / runs(name) / f"{next(iter(c.rows))}-s{s}") for s in SEEDS])}
    return doc


def table(doc: dict) -> str:
    """The comparison's table: mean [95 % interval] over the seeds per row."""
    score, rows = doc["score"], doc["rows"]

    def num(i: dict, digits: int) -> str:
        return f"{i['mean']:.{digits}f} [{i['ci95'][0]:.{digits}f}, {i['ci95'][1]:.{digits}f}]"

    failed = {r: f" ({e['failed']} of {len(e['seeds'])} seeds failed)" if e.get("failed") else ""
              for r, e in rows.items()}
    rows = {r: e for r, e in rows.items() if e.get("failed", 0) < len(e["seeds"])}

    if score == "probe":
        lines = ["| row | steps | linear % | kNN % | step kept |", "|---|---|---|---|---|"]
        for r, e in rows.items():
            kept = ", ".join(str(v["step_kept"]) for v in e["seeds"].values())
            lines.append(f"| {r}{failed[r]} | {e['steps']['mean']:.0f} | {percent(e['linear'])} | "
                         f"{percent(e['knn'])} | {kept} |")
    elif score == "finetune":
        lines = ["| row | steps | labelled | linear probe % | fine-tuned % | from scratch % | "
                 "fine-tuned - scratch, points |", "|---|---|---|---|---|---|---|"]
        for r, e in rows.items():
            done = [v for v in e["seeds"].values() if "failed" not in v]
            gain = interval([100 * (v["finetuned"] - v["scratch"]) for v in done])
            lines.append(f"| {r}{failed[r]} | {e['steps']['mean']:.0f} | {done[0]['labelled']} | "
                         f"{percent(e['linear'])} | {percent(e['finetuned'])} | {percent(e['scratch'])} | "
                         f"{num(gain, 1)} |")
    elif score == "importance":
        lines = ["| row | steps | bound K = 1 (-ELBO), nats | bound K = 100, nats | K = 100 tighter by | "
                 "KL, nats | active units |", "|---|---|---|---|---|---|---|"]
        for r, e in rows.items():
            done = [v for v in e["seeds"].values() if "failed" not in v]
            gain = interval([v["elbo_nll_nats"] - v["test_nll_nats"] for v in done])
            active = ", ".join(f"{v['active_units']}/{v['latent_dims']}" for v in done)
            lines.append(f"| {r}{failed[r]} | {e['steps']['mean']:.0f} | {num(e['elbo_nll_nats'], 2)} | "
                         f"{num(e['test_nll_nats'], 2)} | {num(gain, 2)} | "
                         f"{num(interval([v['kl_nats'] for v in done]), 2)} | {active} |")
    else:
        timed = any("step_cpu_seconds" in e for e in rows.values())
        exact = all(v.get("exact") is not False for e in rows.values() for v in e["seeds"].values())
        lines = [f"| row | steps | test NLL, nats/example ({'exact' if exact else 'bound'}) | bits/dim |"
                 + (" CPU s per step (batch 32) |" if timed else ""),
                 "|---|---|---|---|" + ("---|" if timed else "")]
        for r, e in rows.items():
            cell = f" {e['step_cpu_seconds']['median_seconds']:.3f} |" if timed else ""
            lines.append(f"| {r}{failed[r]} | {e['steps']['mean']:.0f} | {num(e['test_nll_nats'], 2)} | "
                         f"{num(e['bpd'], 4)} |{cell}")
        if "reference" in doc:  # the data's own distribution on the same test splits: the floor
            ref, dims = doc["reference"]["test_nll_nats"], next(iter(rows.values()))["seeds"]["0"]
            bpd = interval([v / math.log(2) / dims["dims"] for v in ref["values"]])
            lines.append(f"| {doc['reference']['row']} | - | {num(ref, 2)} | {num(bpd, 4)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", choices=sorted(COMPARISONS), help="the comparison to run")
    ap.add_argument("--collect", action="store_true", help="only read the trained runs")
    ap.add_argument("--list", action="store_true", help="print the comparisons and their commands")
    ap.add_argument("--rows", default=None,
                    help="train only these rows (comma-separated; e.g. a row added to a comparison whose "
                         "other rows are trained), then collect them all")
    args = ap.parse_args()
    if args.list or args.name is None:
        for name in COMPARISONS:
            print(name, *(" ".join(train_command(name, r, 0)) for r in COMPARISONS[name].rows), sep="\n  ")
        return
    name, c = args.name, COMPARISONS[args.name]
    doc = provenance("benchmarks/seeded.py", sys.argv[1:])
    doc.update(comparison=name, score=c.score, threads={"train": 1, "score": 1})
    rows = list(c.rows) if args.rows is None else args.rows.split(",")
    if unknown := [r for r in rows if r not in c.rows]:
        ap.error(f"{name} has no row(s) {', '.join(unknown)}; its rows: {', '.join(c.rows)}")
    if not args.collect:
        jobs = [Job(f"{r}-s{s}", train_command(name, r, s),
                    record=ROOT / runs(name) / f"{r}-s{s}" / "job.json") for s in SEEDS for r in rows]
        jobs += [Job(f"score {r}-s{s}", cmd, after=(f"{r}-s{s}",),
                     stdout=ROOT / runs(name) / f"{r}-s{s}" / "score-stdout.json")
                 for s in SEEDS for r in rows if (cmd := score_command(name, r, s))]
        if args.rows is None:
            train_here(ROOT / runs(name), doc["git_commit"], jobs)
        else:  # the folder's TRAINED_AT stays the other rows'; each run's job.json has its own commit
            run_jobs(jobs)
    doc["trained_git_commit"] = trained_at(ROOT / runs(name))
    doc["trained_git_commit_by_row"] = {  # from each run's job.json: rows may be trained at different commits
        r: sorted({json.loads(p.read_text())["git_commit"] for s in SEEDS
                   if (p := ROOT / runs(name) / f"{r}-s{s}" / "job.json").exists()}) for r in c.rows}
    write_result(ROOT / "benchmarks" / "results" / f"seeded-{name}.json", collect(name, doc), table)


if __name__ == "__main__":
    main()
