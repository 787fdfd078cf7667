"""Kernel time and page faults of evaluation and training, before and after :mod:`unsup.memory`.

Each case runs in a fresh process pinned to one core with one thread (the allocator setting must
be made before the first large allocation), ``--repeats`` times; the figures are medians of that
process's own ``getrusage`` over the measured work: user and system CPU seconds and minor page
faults.

* ``eval``: the Gated PixelCNN (CPU default, untrained weights: the cost does not depend on
  them) scores 2,048 binarised Fashion-MNIST test images in batches of 256 -- whole batches or
  memory-bounded chunks (:func:`unsup.memory.chunk_size`), with glibc's default thresholds or
  with :func:`unsup.memory.keep_freed_memory`;
* ``train``: 300 steps of the MLP VAE (784-256-256-32, batch 128) through the trainer, with the
  default thresholds or with freed memory kept.

    OMP_NUM_THREADS=1 python benchmarks/memory.py --json benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned import ROOT, provenance  # noqa: E402

CASES = {  # name -> (work, keep freed memory, chunked evaluation)
    "eval whole batches, glibc defaults (before)": ("eval", False, False),
    "eval whole batches, freed memory kept": ("eval", True, False),
    "eval chunked, glibc defaults": ("eval", False, True),
    "eval chunked, freed memory kept (after)": ("eval", True, True),
    "train, glibc defaults (before)": ("train", False, False),
    "train, freed memory kept (after)": ("train", True, False),
}


def measure(work: str, keep: bool, chunked: bool) -> dict:
    """In this process: the resource usage of one case's work."""
    from unsup.memory import keep_freed_memory

    keep_freed_memory(keep)
    import torch

    from unsup.data.args import DataArgs
    from unsup.models import MODELS, config_for
    from unsup.train import TrainConfig, Trainer
    from unsup.train.trainer import evaluate

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if work == "eval":
        data = DataArgs(name="fashion-mnist", representation="binary").load("test")
        config = config_for("gated-pixelcnn")
        model = MODELS.get("gated-pixelcnn")(data.spec, config)
        before = resource.getrusage(resource.RUSAGE_SELF)
        evaluate(model, data, batch_size=256, max_batches=8, chunked=chunked)
    else:
        data = DataArgs(name="fashion-mnist", representation="binary").load("train")
        config = config_for("vae", hidden=[256, 256], z_dim=32)
        model = MODELS.get("vae")(data.spec, config)
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(model, data, None, TrainConfig(steps=300, batch_size=128, eval_every=0,
                                                             progress=False, tensorboard=False),
                              out=Path(out))
            before = resource.getrusage(resource.RUSAGE_SELF)
            trainer.fit()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": after.ru_utime - before.ru_utime, "system_s": after.ru_stime - before.ru_stime,
            "minor_faults": after.ru_minflt - before.ru_minflt}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--core", type=int, default=1, help="the core every case is pinned to")
    p.add_argument("--json", type=Path)
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print its usage
    args = p.parse_args()
    if args.case:
        print(json.dumps(measure(*CASES[args.case])))
        return
    header = provenance("benchmarks/memory.py", sys.argv[1:])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNSUP_KEEP_FREED_MEMORY": "1"}
    results = {}
    for name in CASES:
        runs = [json.loads(subprocess.run(
            ["taskset", "-c", str(args.core), sys.executable, __file__, "--case", name], cwd=ROOT,
            env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[name] = {"median": med, "runs": runs}
        print(f"{name}: user {med['user_s']:.2f} s, system {med['system_s']:.2f} s, "
              f"{med['minor_faults']:.0f} minor faults", flush=True)
    if args.json:
        args.json.write_text(json.dumps({**header, "threads": 1, "core": args.core,
                                         "repeats": args.repeats, "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
