"""The lecture-8 table: every family on one dataset at one budget, measured on every axis (issue #24).

    python benchmarks/families.py              # train every row x 3 seeds, evaluate, write the JSON
    python benchmarks/families.py --evaluate   # only the evaluations of runs already trained
    python benchmarks/families.py --table      # print the markdown table of the JSON
    python benchmarks/families.py --smoke      # 3 steps per row into /tmp: does every command run?
    python benchmarks/families.py --seeds 0 --no-baselines --result benchmarks/results/families-page.json
                                               # seed 0 of every row only: the runs of one report page

The seeds' lecture 8 compares the families' strengths and weaknesses: likelihood, sample quality,
sampling speed, compression, representations and training stability. Here each row is one
``unsup train`` command on 8-bit Fashion-MNIST (binarised for MADE only: its 256-way output layer
over 784 pixels would have 10^8 weights), 2 minutes of wall-clock training on one pinned core with
one thread (``--time 2m``; VQ-VAE + prior: 2 minutes each), seeds 0, 1 and 2. Then, for each
row's seed-0 run (and seed 1 of the headline rows):

- **test bits/dim** from the run's own end-of-training evaluation (a uniform random subset of the
  test split within ``--eval-time``, with its standard error; exact for the autoregressive models,
  a bound for the latent-variable models, flows' dequantised bits/dim and DDPM, an estimate for
  flow matching's probability-flow ODE; none for GANs and the EBM);
- **sample quality**: ``unsup eval RUN --sample-quality 300`` (KID and FD in the shipped
  Fashion-MNIST classifier's features, beside the floor of 300 real training images against 300 real
  test images), and the **CPU seconds per sample** of drawing those 300 (batches of 64; DDPM by
  DDIM with 50 steps, stated);
- **representation**: a linear probe on 10 % of the training labels of whatever the model encodes
  (``unsup probe RUN --probes linear --labels 10%``), every seed: the VAE family's posterior mean,
  a flow's code ``z = f(x)``, a VQ-VAE's encoder output, a GAN's or EBM's discriminator features, a
  diffusion model's denoiser features (``Model.representation``); none for the autoregressive
  models, which have no code of ``x``;
- **compression**: ``unsup compress`` of the first 200 test images with the models that have a
  codec (autoregressive: range coding; VAE: bits-back with ANS), its bits/dim as a real file;
- **OOD AUROC** of the likelihood score against the 8x8 digits resized to 28x28
  (``unsup ood RUN --outliers digits --examples 500``), for the models with a likelihood (VQ-VAE +
  prior: the bound on the images that ``unsup ood`` scores through the VQ-VAE; flow
  matching's estimate by a fixed-grid RK4 solve of 8 steps and one Hutchinson probe,
  ``--estimator ode_method=rk4 ode_steps=8 likelihood_repeats=1``: its adaptive default takes
  minutes per batch);
- **stability**: how many of the 3 seeds ended with a non-finite loss or rolled back after one;
- parameters and training steps.

Everything runs two jobs at a time, each pinned to its own core with ``OMP_NUM_THREADS=1``; the
runs are kept in ``runs/families/``, so ``unsup report runs/families/*-s0 -o families.html``
shows them. Writes ``benchmarks/results/families.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from pinned import Job, interval, provenance, run_jobs, train_here, trained_at  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/families")
RESULT = ROOT / "benchmarks" / "results" / "families.json"
BUDGET = "2m"
SEEDS = (0, 1, 2)
HEADLINE = ("gated-pixelcnn", "glow", "vae", "dcgan", "ddpm")  # measured at a second seed too
COMMON = ["--data", "fashion-mnist", "--time", BUDGET, "--eval-time", "30s", "--eval-every", "250",
          "--eval-batches", "10", "--samples", "64", "--no-progress"]
ROWS: dict[str, list[str]] = {  # row: model and its options beside COMMON
    "made": ["made", "--represent", "binary"],
    "gated-pixelcnn": ["gated-pixelcnn", "--batch-size", "32"],
    "pixelcnn++": ["pixelcnn++", "--batch-size", "32"],
    "transformer": ["transformer", "--batch-size", "32"],
    "realnvp": ["realnvp", "--batch-size", "32"],
    "glow": ["glow", "--batch-size", "32"],
    "flow++": ["flow++", "--batch-size", "32"],
    "vae": ["vae", "--arch", "conv", "--batch-size", "64"],
    "iwae": ["iwae", "--arch", "conv", "--batch-size", "64"],
    "vqvae": ["vqvae", "--batch-size", "64"],
    "vqvae+prior": ["gated-pixelcnn", "--batch-size", "64"],  # over the codes of the vqvae run
    "pixelvae": ["pixelvae", "--batch-size", "32", "--eval-samples", "10"],
    "dcgan": ["gan", "--preset", "dcgan", "--lr", "2e-4"],
    "wgan-gp": ["gan", "--preset", "wgan-gp", "--lr", "1e-4"],
    "ebm": ["ebm", "--lr", "1e-4"],
    "ddpm": ["ddpm", "--batch-size", "64"],
    "flow-matching": ["flow-matching", "--batch-size", "64", "--no-test"],  # bits/dim: its eval job
}
QUALITY_N = 300
SLOW = ("pixelcnn++", "transformer", "pixelvae", "made")  # samplers of one network pass per pixel
SAMPLING = {"ddpm": ["--sampler", "ddim", "--steps", "50"]}
COMPRESS_N, OOD_N = 200, 500
BASELINES = ["unsup", "probe", str(RUNS / "vae-s0"), "--probes", "linear", "--labels", "10%",
             "--no-tsne", "--json", "--out", str(RUNS / "baselines")]  # pixels, PCA, k-means, untrained net
ESTIMATOR = {"flow-matching": ["--estimator", "ode_method=rk4", "ode_steps=8", "likelihood_repeats=1"]}


def run_dir(row: str, seed: int) -> Path:
    return RUNS / f"{row}-s{seed}"


def train_command(row: str, seed: int, smoke: bool = False) -> list[str]:
    model, *options = ROWS[row]
    data = ["--data", f"vq-codes:{run_dir('vqvae', seed)}"] if row == "vqvae+prior" else []
    budget = ["--steps", "3", "--eval-time", "5s"] if smoke else []
    common = [c for c in COMMON if not (data and c == "fashion-mnist")]
    if data:
        common.remove("--data")
    out = (Path("/tmp/families-smoke") if smoke else RUNS) / run_dir(row, seed).name
    if smoke and data:
        data = ["--data", f"vq-codes:{out.parent / f'vqvae-s{seed}'}"]
    return ["unsup", "train", model, *common, *data, *options, *budget, "--seed", str(seed),
            "--out", str(out)]


def capabilities(run: Path) -> dict:
    """What the run's model can be asked: an encoder to probe, a codec, a likelihood, samples."""
    from unsup.models import Model
    from unsup.train import load_run

    model, meta = load_run(ROOT / run)
    return {"model": meta["model"], "encodes": model.encodes, "samples": model.samples,
            "likelihood": callable(getattr(model, "log_prob", None)),
            "exact": getattr(model, "exact_likelihood", None),
            "codec": bool(getattr(model, "codes", False) or getattr(model, "bits_back", False)),
            "parameters": sum(p.numel() for p in model.parameters()),
            "is_model": isinstance(model, Model)}


def evaluation_jobs(row: str, seed: int, caps: dict) -> list[Job]:
    run = run_dir(row, seed)
    jobs = []
    if caps["samples"] and (seed == 0 or (seed == 1 and row in HEADLINE)):
        jobs.append(Job(f"quality {run.name}", ["unsup", "eval", *_eval_argv(row, run), "--json"]))
    if caps["encodes"]:  # every seed: the representation column has an interval
        jobs.append(Job(f"probe {run.name}", ["unsup", "probe", str(run), "--probes", "linear", "--labels",
                                              "10%", "--no-baselines", "--no-tsne", "--json"]))
    if seed != 0:
        return jobs
    if "--no-test" in ROWS[row] and not (ROOT / run / "samples.png").exists():  # trained before
        # `unsup train --no-test` drew samples: the grid of the report
        jobs.append(Job(f"grid {run.name}", ["unsup", "sample", str(run), "--n", "64", "--out",
                                             str(run / "samples.png")]))
    if caps["codec"] and row != "vqvae+prior":  # the prior's codec is of the code grids
        jobs.append(Job(f"compress {run.name}", ["unsup", "compress", str(run), "--examples",
                                                 str(COMPRESS_N), "-o", str(run / "test.unsupz"), "--json"],
                        stdout=ROOT / run / "compress.json"))
    if caps["likelihood"]:
        jobs.append(Job(f"ood {run.name}", ["unsup", "ood", str(run), "--outliers", "digits", "--examples",
                                            str(OOD_N), "--codec", "none", *ESTIMATOR.get(row, []),
                                            "--json"]))
    return jobs


OUTPUTS = {"quality": "eval.json", "probe": "probe.json", "ood": "ood.json", "compress": "compress.json",
           "grid": "samples.png"}


def evaluated(job: Job) -> bool:
    """Whether the output of an evaluation job exists and is newer than its run's checkpoint."""
    what, run = job.name.split(" ", 1)
    folder = ROOT / RUNS / run
    out = folder / OUTPUTS[what]
    checkpoint = ROOT / RUNS / ("vae-s0" if run == "baselines" else run) / "best.safetensors"
    if not (out.exists() and checkpoint.exists() and out.stat().st_mtime > checkpoint.stat().st_mtime):
        return False
    return what != "quality" or "sample_quality" in (read(out) or {})


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def diverged(run: Path) -> dict:
    """Whether a run ended with a non-finite training loss or rolled back after one."""
    import csv

    path = ROOT / run / "metrics.csv"
    last = {}  # the last value of every training loss (a GAN logs a critic and a generator loss)
    for r in (csv.DictReader(path.open()) if path.exists() else []):
        if r["split"] == "train" and r["metric"] != "lr":
            last[r["metric"]] = float(r["value"])
    job = read(ROOT / run / "job.json") or {}
    error = job.get("error", "")  # unsup's TrainingDiverged: "... loss is nan at step ...", "... not saved"
    stopped = bool(job.get("returncode")) and any(w in error for w in ("nan", "inf", "not saved", "finite"))
    finite = bool(last) and all(math.isfinite(v) for v in last.values())
    return {"diverged": stopped or not finite, "last_train": last,
            "returncode": job.get("returncode"), "error": error}


def _job(run: Path) -> dict | None:
    """The training job's record; its CPU seconds only when they are its own (records written
    before os.wait4 was used summed whatever child of either core ended meanwhile)."""
    job = read(ROOT / run / "job.json")
    if job is not None and "cpu_seconds_of" not in job:
        job.pop("cpu_seconds", None)
    return job


def collect(row: str, seed: int) -> dict:
    run = run_dir(row, seed)
    train, test = read(ROOT / run / "train.json") or {}, read(ROOT / run / "test.json")
    out = {"run": str(run), "train_command": " ".join(["OMP_NUM_THREADS=1 taskset -c CORE",
                                                         *train_command(row, seed)]),
           "steps": train.get("steps"), "train_seconds": train.get("train_seconds"),
           "stability": diverged(run), "test": test, "train_job": _job(run)}
    evaluated = read(ROOT / run / "eval.json")
    if evaluated:  # its likelihood figures, on the first 64 test examples
        out["eval"] = {k: v for k, v in evaluated.items() if k != "sample_quality"}
    if evaluated and "sample_quality" in evaluated:
        q = evaluated["sample_quality"]
        out["sample_quality"] = {"command": " ".join(["unsup", "eval", *map(str, _eval_argv(row, run))]),
                                 **q, "cpu_seconds_per_sample": q["sampling_cpu_seconds"] / q["n"]}
    for name, what in (("probe.json", "probe"), ("compress.json", "compress"), ("ood.json", "ood")):
        doc = read(ROOT / run / name)
        if doc is not None:
            out[what] = doc
    return out


def _eval_argv(row: str, run: Path) -> list[str]:
    return [str(run), "--sample-quality", str(QUALITY_N), "--examples", "64", *SAMPLING.get(row, [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluate", action="store_true", help="only evaluate the runs already trained")
    ap.add_argument("--table", action="store_true", help="print the table of the JSON")
    ap.add_argument("--collect", action="store_true", help="only read the runs' files into the JSON "
                    "(keeps the commit the runs were trained and evaluated at)")
    ap.add_argument("--smoke", action="store_true", help="3 training steps per row into /tmp, no JSON")
    ap.add_argument("--rows", nargs="*", default=list(ROWS), help="a subset of the rows")
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS),
                    help="which seeds (default: 0 1 2; the 3-seed columns need all three)")
    ap.add_argument("--result", type=Path, default=RESULT, help="the JSON to write (default: %(default)s)")
    ap.add_argument("--no-baselines", action="store_true",
                    help="skip the probe baselines (pixels, PCA, k-means, untrained VAE): data-only figures")
    ap.add_argument("--missing", action="store_true", help="with --evaluate: only the evaluations whose "
                    "output is missing or older than the run's checkpoint (an interrupted evaluation)")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.result.read_text())))
        return
    rows, seeds, result_path = args.rows, tuple(args.seeds), args.result
    doc = provenance("benchmarks/families.py", sys.argv[1:])
    doc["threads"] = {"train": 1, "eval": 1}
    doc.update(budget_minutes=2, seeds=list(seeds), headline=list(HEADLINE), quality_n=QUALITY_N,
               compress_n=COMPRESS_N, ood_n=OOD_N)
    if args.smoke:
        jobs = [Job(f"train {r}-s0", train_command(r, 0, smoke=True),
                    after=("train vqvae-s0",) if r == "vqvae+prior" else ()) for r in rows]
        run_jobs(jobs)
        sys.exit(1 if any(j.error for j in jobs) else 0)
    if not (args.evaluate or args.collect):
        # seed by seed, each prior after its VQ-VAE
        train_here(ROOT / RUNS, doc["git_commit"], [
            Job(f"train {r}-s{s}", train_command(r, s), record=ROOT / run_dir(r, s) / "job.json",
                after=(f"train vqvae-s{s}",) if r == "vqvae+prior" else ()) for s in seeds for r in rows])
    evaluations = []
    for r in ([] if args.collect else rows):
        for s in seeds:
            if (ROOT / run_dir(r, s) / "best.safetensors").exists():
                evaluations += evaluation_jobs(r, s, capabilities(run_dir(r, s)))
    # pixels, PCA, k-means and an untrained VAE, probed alike
    if not (args.collect or args.no_baselines) and "vae" in rows:
        evaluations.append(Job("probe baselines", BASELINES))
    if args.missing:
        evaluations = [j for j in evaluations if not evaluated(j)]
    # the longest first (naive autoregressive sampling of 300 images), so that the two cores end
    # together; the probes of seeds 1 and 2 last, the 3-seed interval of a column that has its seed 0
    evaluations.sort(key=lambda j: (j.name.startswith("probe") and not j.name.endswith("-s0"),
                                    not (j.name.startswith("quality") and any(
                                        j.name.endswith(f" {slow}-s{s}") for slow in SLOW for s in seeds))))
    old = read(result_path) or {}
    doc["trained_git_commit"] = trained_at(ROOT / RUNS)  # the commit the runs were trained at
    if args.collect:  # the figures are those of the last evaluation of these rows
        doc["evaluated_git_commit"] = old.get("evaluated_git_commit", old.get("git_commit"))
        if rows:
            doc["evaluated_git_commit"] = (old.get("rows", {}).get(rows[0]) or {}).get(
                "evaluated_git_commit", doc["evaluated_git_commit"])
        failed = old.get("failed", {})
    else:
        run_jobs(evaluations)
        failed = {k: v for k, v in old.get("failed", {}).items()  # other rows' failures stay
                  if k.split(" ", 1)[-1].rsplit("-s", 1)[0] not in rows}
        failed.update({j.name: j.error for j in evaluations if j.error})
        doc["evaluated_git_commit"] = doc["git_commit"]
    results = {}  # rows measured earlier keep the commits they were trained and evaluated at
    for r, entry in old.get("rows", {}).items():
        results[r] = {"trained_git_commit": old.get("trained_git_commit"),
                      "evaluated_git_commit": old.get("evaluated_git_commit"), "cpu": old.get("cpu"), **entry}
    for r in rows:
        caps = capabilities(run_dir(r, 0)) if (ROOT / run_dir(r, 0) / "best.safetensors").exists() else {}
        # the commit a run was trained at: its job record's (pinned.py writes it), else the folder's
        trained = (read(ROOT / run_dir(r, 0) / "job.json") or {}).get("git_commit", doc["trained_git_commit"])
        results[r] = {"trained_git_commit": trained, "evaluated_git_commit": doc["evaluated_git_commit"],
                      "cpu": doc["cpu"], "capabilities": caps, "seeds": {
                          str(s): collect(r, s) for s in seeds
                          if (ROOT / run_dir(r, s) / "job.json").exists()}}
    baselines = read(ROOT / RUNS / "baselines" / "probe.json")
    if baselines is not None:
        doc["probe_baselines"] = {"command": " ".join(BASELINES),
                                  "linear": {name: r["linear"]["accuracy"]
                                             for name, r in baselines["features"].items()}}
    elif old.get("probe_baselines"):
        doc["probe_baselines"] = old["probe_baselines"]
    doc.update(rows={r: results[r] for r in ROWS if r in results}, failed=failed)
    result_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {result_path}")
    print(table(doc))


def table(doc: dict) -> str:
    """The markdown table of ``doc``: one row per family, seed 0 (seed 1 beside it for the headline
    rows), the stability over all seeds."""
    head = ("| family | test bits/dim (kind) | bits/dim, 3 seeds: mean [95 % interval] | KID ×10³ (floor) | "
            "FD (floor) | CPU s / sample | "
            "linear probe 10 % (3 seeds: mean [95 % interval]) | coded bits/dim | OOD AUROC vs digits | "
            "diverged | params | steps |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for row, entry in doc["rows"].items():
        seeds = entry["seeds"]
        s0 = seeds.get("0", {})
        caps = entry.get("capabilities", {})

        def both(get, seeds=seeds) -> str:  # seed 0, and seed 1 where it was measured
            values = [get(seeds[s]) for s in ("0", "1") if s in seeds and get(seeds[s]) is not None]
            return " / ".join(values) if values else "—"

        def bpd(e: dict) -> str | None:
            t = e.get("test") if (e.get("test") or {}).get("bpd") is not None else e.get("eval")
            if not t or t.get("bpd") is None:
                return None
            if "image_bpd_bound" in t:  # a prior over codes: the images' bound, not the codes' bits
                return f"{t['image_bpd_bound']:.3f} (bound)"
            se = None  # the standard error of the test subset's mean (none: the whole split)
            if (t.get("partial") or {}).get("nll_se") is not None:
                se = t["partial"]["nll_se"] / (t["nll_nats"] / t["nats_per_dim"]) / math.log(2)
            err = f" ± {se:.3f}" if se is not None else ""
            return f"{t['bpd']:.3f}{err} ({t.get('likelihood') or ('exact' if t.get('exact') else 'bound')})"

        def kid(e: dict) -> str | None:
            q = e.get("sample_quality")
            if not q:
                return None
            s, f = q["samples"], q["floor"]
            return f"{1e3 * s['kid']:.1f} ± {1e3 * s['kid_sd']:.1f} ({1e3 * f['kid']:.1f})"

        def fd(e: dict) -> str | None:
            q = e.get("sample_quality")
            return f"{q['samples']['fd']:.1f} ({q['floor']['fd']:.1f})" if q else None

        def speed(e: dict) -> str | None:
            q = e.get("sample_quality")
            return f"{q['cpu_seconds_per_sample']:.3g}" if q else None

        accuracies = [a for e in seeds.values() if (a := _find(e.get("probe") or {}, "linear")) is not None]
        probe_s = "—"
        if len(accuracies) >= 3:
            i = interval([100 * a for a in accuracies])
            probe_s = f"{i['mean']:.1f} [{i['ci95'][0]:.1f}, {i['ci95'][1]:.1f}] %"
        elif accuracies:
            probe_s = f"{100 * accuracies[0]:.1f} %"
        comp = s0.get("compress")
        comp_s = f"{comp['bits_per_dim']:.3f}" if comp else "—"
        ood = s0.get("ood")
        ood_s = "—"
        if ood:
            auroc = _auroc(ood)
            ood_s = f"{auroc:.3f}" if auroc is not None else "—"
        div = sum(bool(e.get("stability", {}).get("diverged")) for e in seeds.values())
        lines.append(f"| {row} | {both(bpd)} | {_three(seeds)} | {both(kid)} | {both(fd)} | {both(speed)} | "
                     f"{probe_s} | "
                     f"{comp_s} | {ood_s} | {div} of {len(seeds)} | "
                     f"{caps.get('parameters', 0) / 1e6:.2f} M | {both(lambda e: str(e.get('steps')))} |")
    return "\n".join(lines)


def _three(seeds: dict) -> str:
    """Mean and 95 % t-interval of the test bits/dim over the seeds (images' bound for a prior)."""
    values = []
    for e in seeds.values():
        t = e.get("test") or {}
        value = t.get("image_bpd_bound", t.get("bpd"))
        if value is not None:
            values.append(value)
    if len(values) < 3:
        return "—"
    i = interval(values)
    return f"{i['mean']:.3f} [{i['ci95'][0]:.3f}, {i['ci95'][1]:.3f}]"


def _find(probe: dict, name: str) -> float | None:
    """The test accuracy of the probe ``name`` on the run's own features in an ``unsup probe`` JSON."""
    return ((probe.get("features") or {}).get("run") or {}).get(name, {}).get("accuracy")


def _auroc(ood: dict) -> float | None:
    """The likelihood score's AUROC against the digits in an ``unsup ood`` JSON."""
    return ((ood.get("metrics") or {}).get("likelihood") or {}).get("digits", {}).get("auroc")


if __name__ == "__main__":
    main()
