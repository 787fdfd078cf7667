"""Run unsup side by side with a peer library on binarised / 8-bit Fashion-MNIST and write
``benchmarks/results/peers-PAIR.json``.

Protocol: both sides read unsup's own 54k/6k/10k split (``export_data.py``; binarised by
``x/255 > 0.5``), are launched together, each pinned to its own core (``taskset -c 0`` for unsup,
``-c 1`` for the peer) with ``OMP_NUM_THREADS=1``, train for the same wall-clock budget with batch
64 and Adam(1e-3) where the library allows, and are scored on the same test images by the same
estimator. For every phase of every side (train, score, sample) the child's ``getrusage`` is
recorded: user and system CPU seconds, minor/major page faults, peak RSS. Examples per CPU-second
is training examples over the training process's user+sys CPU seconds (start-up and data loading
included, on both sides alike; a peer script that scores or samples in its training process has
the CPU seconds it measured for that taken off); examples per loop-second uses the training loop's
own wall time.

``--speed-only`` measures equal work instead of an equal budget: each side trains exactly
``--warmup`` steps and then ``--warmup + --speed-steps`` steps in two processes; the difference of
their CPU seconds is the cost of ``--speed-steps`` steps (start-up, warm-up and the end of the run
cancel), and the difference of the loop seconds each side reports (unsup: ``train.json``
``step_seconds``) is a second, less noisy measure. Repeated ``--repeats`` times; the median
examples per CPU-second (and per loop-second) per side is reported.

    python benchmarks/peers/run.py made-8000 --budget 300             # the measurement
    python benchmarks/peers/run.py made-8000 --budget 15 --test-limit 500   # a smoke test
    python benchmarks/peers/run.py made-8000 --speed-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from common import home  # noqa: E402

# what every `unsup train` of a pair shares: unsup's CPU defaults for batch and optimiser, the
# nearest the CLI has to "train only" (no test, no samples, one validation batch at the end)
UNSUP_TRAIN = ["--data", "fashion-mnist", "--batch-size", "64", "--lr", "1e-3", "--optimizer", "adamw",
               "--no-test", "--samples", "0", "--eval-every", "0", "--eval-batches", "1",
               "--no-progress", "--no-tensorboard", "--device", "cpu"]
VAE_MLP = ["--arch", "mlp", "--hidden", "256", "256", "--z-dim", "32", "--decoder", "bernoulli"]


@dataclass
class Pair:
    """One comparison. ``unsup``: model and options of ``unsup train``; ``peer``: script and
    arguments run in venv ``venv`` (``pg``: the vision venv when pytorch-generative is installed
    there, else the core venv, where the MADE script falls back to zuko); ``score``: how unsup's side
    is scored (``eval``: ``unsup eval``; ``vae``/``probe``: ``unsup_score.py``, the function the peer
    script uses too)."""

    what: str
    unsup: list[str]
    peer: list[str]
    venv: str = "core"
    represent: str = "binary"
    score: str = "eval"
    metric: str = "nll_nats"
    test_limit: int | None = None  # the protocol's test subset (None: all 10,000)
    sample: int = 0  # also time drawing this many samples on each side
    needs: str | None = None  # the peer module that must import
    speed_steps: int = 200  # --speed-only: measured steps (more where a step costs little)
    extra: dict = field(default_factory=dict)


PAIRS: dict[str, Pair] = {
    "made-default": Pair(
        "MADE, each library's defaults: unsup's (for binary 28x28 images one hidden layer of 8000, "
        "random order, inputs as values) vs pytorch-generative MADE(784, [8000]) (zuko.nn.MaskedMLP "
        "[8000], random order, where pytorch-generative is not installed)",
        ["made"], ["peer_autoregressive.py", "made", "--arch", "default"], venv="pg", speed_steps=500),
    "made-8000": Pair(
        "MADE, equal architecture: one hidden layer of 8000, random order, inputs as values "
        "(unsup --input-encoding scaled), one mask",
        ["made", "--hidden", "8000", "--ordering", "random", "--input-encoding", "scaled",
         "--num-masks", "1"],
        ["peer_autoregressive.py", "made", "--arch", "default"], venv="pg"),
    "vae-mlp": Pair(
        "VAE, MLP 784-256-256-32, ReLU, Bernoulli decoder, ELBO; IS-NLL K=1000 on the first 2,000 "
        "test images by common.importance_sampled_nll on both sides",
        ["vae", *VAE_MLP, "--k", "1"],
        ["peer_pythae.py", "vae"], score="vae", test_limit=2000, needs="pythae", speed_steps=2000),
    "iwae": Pair(
        "IWAE k=5, the same MLP; IS-NLL K=1000 on the first 2,000 test images (shared estimator)",
        ["iwae", *VAE_MLP, "--k", "5"],
        ["peer_pythae.py", "iwae", "--k", "5"], score="vae", test_limit=2000, needs="pythae",
        speed_steps=2000),
    "glow": Pair(
        "Glow on 8-bit images, equal size: 2 levels x 8 steps, coupling nets of 64 channels without "
        "residual blocks (unsup --blocks 0: 169k parameters; normflows GlowBlock: 152k), affine "
        "couplings; dequantised test bits/dim (uniform noise, logit alpha 0.05 on both sides)",
        ["glow", "--num-levels", "2", "--flow-steps", "8", "--hidden", "64", "--blocks", "0"],
        ["peer_flows.py", "glow", "--levels", "2", "--steps-per-level", "8", "--hidden", "64"],
        represent="uint8", needs="normflows"),
    "glow-default": Pair(
        "Glow on 8-bit images, each side's defaults: unsup's CPU configuration (2 levels x 8 steps, "
        "64 channels, 1 residual block) vs normflows' Glow example (16 steps per level, 256 channels; "
        "2 levels, as 28 x 28 halves only twice)",
        ["glow"], ["peer_flows.py", "glow", "--levels", "2", "--steps-per-level", "16", "--hidden", "256"],
        represent="uint8", needs="normflows"),
    "realnvp": Pair(
        "RealNVP on 8-bit images (zuko.flows.RealNVP over flattened pixels vs unsup's convolutional "
        "RealNVP: same family, different networks -- a speed/quality reference, not equal size)",
        ["realnvp"], ["peer_flows.py", "realnvp"], represent="uint8", needs="zuko"),
    "maf": Pair(
        "MAF on 8-bit images, equal size: 5 autoregressive layers, MADEs of 2 x 256 hidden",
        ["maf", "--num-layers", "5", "--hidden", "256", "--hidden-layers", "2"],
        ["peer_flows.py", "maf", "--layers", "5", "--hidden", "256"], represent="uint8", needs="zuko",
        speed_steps=2000),
    "gated-pixelcnn-sampling": Pair(
        "Gated PixelCNN, unsup's CPU size on both sides; the seconds to draw 16 images",
        ["gated-pixelcnn"], ["peer_autoregressive.py", "gated-pixelcnn", "--arch", "unsup"],
        venv="vision", sample=16, needs="pytorch_generative"),
    "pixelcnn": Pair(
        "PixelCNN, residual blocks, 5 of 64 maps on both sides",
        ["pixelcnn", "--residual", "--hidden", "64", "--num-layers", "5"],
        ["peer_autoregressive.py", "pixelcnn", "--arch", "unsup"], venv="vision",
        needs="pytorch_generative"),
    "simclr": Pair(
        "SimCLR on 8-bit images, unsup's default encoder on both sides, lightly's NTXentLoss and "
        "projection head; the same linear probe (common.linear_probe) on frozen features",
        ["simclr"], ["peer_lightly.py", "simclr"], venv="vision", represent="uint8", score="probe",
        metric="accuracy", needs="lightly"),
    "moco": Pair(
        "MoCo v2 on 8-bit images, lightly's MoCo loop vs unsup's; the same linear probe",
        ["moco"], ["peer_lightly.py", "moco"], venv="vision", represent="uint8", score="probe",
        metric="accuracy", needs="lightly"),
}


def venv_python(name: str) -> Path:
    return home() / name / "bin" / "python"


def unsup_python(pair: Pair) -> str:
    """unsup runs beside the torch build of the peer's venv: the system python (torch 2.13.0, as the
    core venv) for the core pairs, the vision venv (torch 2.14.1, where unsup is installed too)."""
    return sys.executable if pair.venv == "core" else str(venv_python(pair.venv))


def run_pinned(core: int, argv: list[str], log: Path) -> dict:
    """Run ``argv`` under ``taskset -c core`` with one thread; its rusage and wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = ["taskset", "-c", str(core), *argv]
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        f.write(f"$ {shlex.join(cmd)}\n".encode())
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"argv": cmd, "returncode": proc.returncode, "wall_seconds": time.perf_counter() - t0,
            "cpu_seconds": ru.ru_utime + ru.ru_stime, "user_seconds": ru.ru_utime, "sys_seconds": ru.ru_stime,
            "minor_faults": ru.ru_minflt, "major_faults": ru.ru_majflt, "max_rss_mb": ru.ru_maxrss / 1024}


def last_json(log: Path) -> dict:
    """The last line of a log that parses as a JSON object (``unsup eval --json``)."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def unsup_train_argv(pair: Pair, out: Path, seed: int, budget: float | None, steps: int | None) -> list[str]:
    stop = ["--steps", str(steps)] if steps is not None else ["--time", f"{budget:g}s"]
    return [unsup_python(pair), "-m", "unsup.cli", "train", *pair.unsup, *UNSUP_TRAIN, "--represent",
            pair.represent, "--seed", str(seed), "--out", str(out), *stop]


def peer_argv(pair: Pair, out: Path, seed: int, budget: float | None, steps: int | None,
              test_limit: int | None) -> list[str]:
    script, *rest = pair.peer
    stop = ["--steps", str(steps)] if steps is not None else ["--budget", f"{budget:g}"]
    limit = ["--test-limit", str(test_limit)] if test_limit else []
    sample = ["--samples", str(pair.sample)] if pair.sample and steps is None else []
    return [str(venv_python(pair.venv)), str(HERE / script), *rest, *stop, *limit, *sample,
            "--seed", str(seed), "--out", str(out)]


def unsup_side(pair: Pair, work: Path, seed: int, budget: float, test_limit: int | None) -> dict:
    """Train with ``unsup train``, score with ``unsup eval`` or ``unsup_score.py``, sample with
    ``unsup sample``; each phase on core 0."""
    run, log = work / "unsup-run", work / "unsup.log"
    side: dict = {"library": "unsup", "core": 0, "phases": {}}
    train = run_pinned(0, unsup_train_argv(pair, run, seed, budget, None), log)
    side["phases"]["train"] = train
    if train["returncode"] != 0:
        side["error"] = f"unsup train failed; see {log}"
        return side
    info = json.loads((run / "train.json").read_text())
    said = re.search(r"^\S+: ([\d,]+) parameters", log.read_text(errors="replace"), re.M)
    if said:
        side["parameters"] = int(said.group(1).replace(",", ""))
    side.update(steps=info["steps"], examples=info["steps"] * 64, loop_seconds=info["step_seconds"],
                examples_per_loop_second=info["examples_per_second"])
    py = unsup_python(pair)
    if pair.score == "eval":
        argv = [py, "-m", "unsup.cli", "eval", str(run), "--json", "--device", "cpu", "--seed", str(seed)]
        if test_limit:
            argv += ["--examples", str(test_limit)]
        side["phases"]["score"] = run_pinned(0, argv, log)
        side["test"] = last_json(log)
    else:
        out = work / "unsup-score.json"
        argv = [py, str(HERE / "unsup_score.py"), pair.score, str(run), "--seed", str(seed),
                "--out", str(out)]
        if test_limit:
            argv += ["--test-limit", str(test_limit)]
        if pair.score == "probe":
            argv += ["--represent", pair.represent]
        side["phases"]["score"] = run_pinned(0, argv, log)
        if out.exists():
            side["test"] = json.loads(out.read_text())["test"]
        if pair.score == "vae":  # cross-check: unsup's own estimator, same K and examples
            argv = [py, "-m", "unsup.cli", "eval", str(run), "--json", "--device", "cpu", "--seed", str(seed),
                    "--importance-samples", "1000", "--examples", str(test_limit or 2000)]
            side["phases"]["unsup_eval"] = run_pinned(0, argv, log)
            side["test_unsup_eval"] = last_json(log)
    if pair.sample:  # timed in-process, as the peer script times its sample() call
        out = work / "unsup-sample.json"
        argv = [py, str(HERE / "unsup_score.py"), "sample", str(run), "--n", str(pair.sample),
                "--seed", str(seed), "--out", str(out)]
        side["phases"]["sample"] = run_pinned(0, argv, log)
        if out.exists():
            side["sampling"] = json.loads(out.read_text())["sampling"]
    return side


def peer_side(pair: Pair, work: Path, seed: int, budget: float, test_limit: int | None) -> dict:
    out, log = work / "peer.json", work / "peer.log"
    side: dict = {"core": 1, "phases": {}}
    train = run_pinned(1, peer_argv(pair, out, seed, budget, None, test_limit), log)
    side["phases"]["train"] = train
    if train["returncode"] != 0 or not out.exists():
        side["error"] = f"peer script failed; see {log}"
        return side
    side.update(json.loads(out.read_text()))
    return side


def peer_missing(pair: Pair) -> str | None:
    """Why the peer side cannot run here, or None."""
    py = venv_python(pair.venv)
    if not py.exists():
        return f"{py} does not exist: run benchmarks/peers/setup.sh"
    if pair.needs and not imports(py, pair.needs):
        hint = ""
        if pair.needs == "pytorch_generative":
            hint = " (it is not on PyPI: see PYTORCH_GENERATIVE_SRC in setup.sh)"
        return f"`import {pair.needs}` fails in {py}{hint}"
    return None


def imports(python: Path, module: str) -> bool:
    return python.exists() and subprocess.run([str(python), "-c", f"import {module}"],
                                              capture_output=True).returncode == 0


def both(first, second) -> tuple:
    """Run two callables at once (one per core) and return both results."""
    results: list = [None, None]

    def go(i, fn):
        results[i] = fn()

    threads = [threading.Thread(target=go, args=(i, fn)) for i, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tuple(results)


def speed_side(run_steps, warmup: int, steps: int, batch: int) -> dict:
    """Per-step cost from two runs (``warmup`` and ``warmup + steps`` steps) of one side: the
    difference of their processes' CPU seconds, and of their training loops' own wall seconds
    (``run_steps(n)`` returns the rusage record and the loop seconds the side reported)."""
    (short, loop_short), (long, loop_long) = run_steps(warmup), run_steps(warmup + steps)
    ok = short["returncode"] == 0 and long["returncode"] == 0
    cpu = long["cpu_seconds"] - short["cpu_seconds"]
    loop = loop_long - loop_short if ok and loop_long is not None and loop_short is not None else None
    return {"short": short, "long": long, "cpu_seconds": cpu if ok else None, "loop_seconds": loop,
            "examples_per_cpu_second": steps * batch / cpu if ok and cpu > 0 else None,
            "examples_per_loop_second": steps * batch / loop if loop and loop > 0 else None}


def median_of(reps: list[dict], key: str = "examples_per_cpu_second") -> float | None:
    vals = [r[key] for r in reps if r.get(key)]
    return statistics.median(vals) if vals else None


def loop_seconds(path: Path, key: str) -> float | None:
    """The training loop's seconds as a side reported them (unsup: train.json ``step_seconds``)."""
    try:
        return json.loads(path.read_text())[key]
    except (OSError, ValueError, KeyError):
        return None


def torch_version(python: str) -> str | None:
    r = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                       text=True)
    return r.stdout.strip() or None


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "load": list(os.getloadavg())}


def git_commit() -> str | None:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("pair", choices=sorted(PAIRS))
    ap.add_argument("--budget", type=float, default=300, help="training seconds per side (wall clock)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-limit", type=int,
                    help="score the first N test images only (smoke tests; default: the pair's protocol)")
    ap.add_argument("--speed-only", action="store_true", help="equal-work throughput instead of a budget")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--speed-steps", type=int,
                    help="measured steps (default: the pair's, 200, or 2000 for the cheap MLP models)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="result file (default: benchmarks/results/peers-PAIR[-speed].json)")
    ap.add_argument("--keep", action="store_true", help="keep the run directories and logs")
    args = ap.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset is missing (apt-get install util-linux)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two cores: one per side")

    pair = PAIRS[args.pair]
    if pair.venv == "pg":
        pair.venv = "vision" if imports(venv_python("vision"), "pytorch_generative") else "core"
    test_limit = args.test_limit or pair.test_limit
    missing = peer_missing(pair)
    result: dict = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "git_commit": git_commit(),
        "threads": {"OMP_NUM_THREADS": 1, "cores": {"unsup": 0, "peer": 1}},
        **machine(),
        "versions": {"unsup": {"python": unsup_python(pair), "torch": torch_version(unsup_python(pair))},
                     "peer": {"python": str(venv_python(pair.venv)),
                              "torch": None if missing and "does not exist" in missing
                              else torch_version(str(venv_python(pair.venv)))}},
        "sides": {},
        "pair": args.pair, "what": pair.what, "mode": "speed-only" if args.speed_only else "budget",
        "dataset": f"fashion-mnist ({pair.represent}; unsup's 54k/6k split, test "
                   f"{'first ' + str(test_limit) if test_limit else 'all 10,000'})",
        "budget_seconds": None if args.speed_only else args.budget, "seed": args.seed,
        "metric": pair.metric,
    }
    if result["load"][0] > 0.5:
        print(f"warning: load average {result['load'][0]:.2f} -- the measurement wants an idle machine "
              f"(recorded in the JSON)", file=sys.stderr)
    keep = Path(tempfile.mkdtemp(prefix=f"peers-{args.pair}-"))
    print(f"{args.pair}: {pair.what}\nlogs and runs in {keep}", flush=True)

    def peer_or_skip(fn):
        return (lambda: {"skipped": missing}) if missing else fn

    speed_steps = args.speed_steps or pair.speed_steps
    if args.speed_only:
        reps = []
        for r in range(args.repeats):
            work = keep / f"rep{r}"
            work.mkdir()

            def unsup_steps(n, work=work):
                usage = run_pinned(0, unsup_train_argv(pair, work / f"unsup-{n}", args.seed, None, n),
                                   work / "unsup.log")
                return usage, loop_seconds(work / f"unsup-{n}" / "train.json", "step_seconds")

            def peer_steps(n, work=work):
                usage = run_pinned(1, peer_argv(pair, work / f"peer-{n}.json", args.seed, None, n, None),
                                   work / "peer.log")
                return usage, loop_seconds(work / f"peer-{n}.json", "loop_seconds")

            u, p = both(lambda: speed_side(unsup_steps, args.warmup, speed_steps, 64),
                        peer_or_skip(lambda: speed_side(peer_steps, args.warmup, speed_steps, 64)))
            made = work / f"peer-{args.warmup + speed_steps}.json"
            if made.exists():
                info = json.loads(made.read_text())
                p.update(library=info["library"], parameters=info.get("parameters"))
            reps.append({"unsup": u, "peer": p})
            print(f"repeat {r}: unsup {u['examples_per_cpu_second']} ex/CPU-s, "
                  f"peer {p.get('examples_per_cpu_second', p.get('skipped'))}", flush=True)
        result["sides"] = {
            "unsup": {"library": "unsup", "examples_per_cpu_second": median_of([r["unsup"] for r in reps]),
                      "examples_per_loop_second": median_of([r["unsup"] for r in reps],
                                                            "examples_per_loop_second")},
            "peer": {"skipped": missing} if missing else
                    {"library": reps[0]["peer"].get("library"),
                     "parameters": reps[0]["peer"].get("parameters"),
                     "examples_per_cpu_second": median_of([r["peer"] for r in reps]),
                     "examples_per_loop_second": median_of([r["peer"] for r in reps],
                                                           "examples_per_loop_second")},
        }
        result["repeats"] = reps
        result["steps"] = {"warmup": args.warmup, "measured": speed_steps, "batch_size": 64}
    else:
        u, p = both(lambda: unsup_side(pair, keep, args.seed, args.budget, test_limit),
                    peer_or_skip(lambda: peer_side(pair, keep, args.seed, args.budget, test_limit)))
        for side in (u, p):
            train = side.get("phases", {}).get("train")
            if train and side.get("examples"):
                # a peer script scores (and samples) in its training process: take off the CPU
                # seconds it measured for those, so both sides count training alone
                side["train_cpu_seconds"] = train["cpu_seconds"] - sum(
                    (side.get(k) or {}).get("cpu_seconds", 0) for k in ("test", "sampling")) \
                    if side is p else train["cpu_seconds"]
                side["examples_per_cpu_second"] = side["examples"] / side["train_cpu_seconds"]
        result["sides"] = {"unsup": u, "peer": p}
    if missing:
        result["peer_skipped"] = missing
    out = Path(args.out) if args.out else \
        ROOT / "benchmarks" / "results" / f"peers-{args.pair}{'-speed' if args.speed_only else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(keep, ignore_errors=True)
    print(f"wrote {out}")
    sys.path.insert(0, str(HERE))
    from table import row_for

    print(row_for(out.name, result))


if __name__ == "__main__":
    main()
