"""What unsup's training loop costs over a bare PyTorch loop, in CPU seconds per step.

Both loops train the same model (same initial weights) on the same in-memory examples with the
same optimiser (AdamW, lr 1e-3) and batch for ``--steps`` steps:

* **bare**: index a batch, ``model.loss``, ``zero_grad``, ``backward``, ``step`` -- nothing else,
  with the optimiser unsup uses (AdamW, ``fused=True``), so the difference is the loop's own cost;
* **bare, torch's default AdamW** (``fused`` unset: a per-tensor loop on the CPU), what a plain
  script or a peer library gets;
* **unsup**: :class:`unsup.train.Trainer` as ``unsup train`` runs it (CSV log, checkpoint and
  validation only at the end, which is not timed; no progress bar, as in a script), timed from the
  first to the last step by the process's CPU clock (``fit()``'s ``step_cpu_seconds``).

Run on one pinned, otherwise idle core; the two loops alternate ``--repeats`` times (which goes
first alternates too) and the medians are compared, as is the median of the per-repeat ratios. Example::

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/loop_overhead.py --model vae \\
        --json benchmarks/results/loop-overhead-vae.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned import provenance  # noqa: E402

from unsup.data.args import DataArgs  # noqa: E402
from unsup.memory import keep_freed_memory  # noqa: E402
from unsup.models import MODELS, config_for  # noqa: E402
from unsup.train import TrainConfig, Trainer  # noqa: E402

MODELS_TIMED = {  # name -> (model, config, data representation, batch size)
    "vae": ("vae", {"hidden": [256, 256], "z_dim": 32}, "binary", 128),
    "made": ("made", {"hidden": [1024], "input_encoding": "scaled"}, "binary", 128),
}


def build(name: str, spec, seed: int):
    model_name, options, _, _ = MODELS_TIMED[name]
    config = config_for(model_name, **options)
    torch.manual_seed(seed)
    return MODELS.get(model_name)(spec, config)


def bare(name: str, train, steps: int, batch_size: int, fused: bool = True) -> float:
    """CPU seconds of ``steps`` bare steps."""
    model = build(name, train.spec, 0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=fused or None)
    g = torch.Generator().manual_seed(0)
    order = torch.randint(len(train), (steps, batch_size), generator=g)
    t0 = time.process_time()
    for s in range(steps):
        batch = train.batch(order[s])
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.process_time() - t0


def looped(name: str, train, steps: int, batch_size: int) -> float:
    """CPU seconds of ``steps`` steps of :class:`Trainer` (its loop only)."""
    model = build(name, train.spec, 0)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, weight_decay=0.0,
                          eval_every=0, progress=False, tensorboard=False, final_eval_time=None)
        trainer = Trainer(model, train, None, cfg, out=Path(out))
        summary = trainer.fit()
    # the loop alone, by the process clock (the final checkpoint, after the loop, is not a step)
    return summary["step_cpu_seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS_TIMED), default="vae")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    keep_freed_memory()  # as the unsup command does, for both loops
    torch.set_num_threads(1)
    _, _, represent, batch_size = MODELS_TIMED[args.model]
    train = DataArgs(name="fashion-mnist", representation=represent).load("train")
    bare(args.model, train, 20, batch_size)  # warm-up (first-touch of the heap, lazy init)
    looped(args.model, train, 20, batch_size)
    times: dict[str, list[float]] = {"bare": [], "unsup": [], "bare_default_adamw": []}
    for r in range(args.repeats):  # the order alternates, so that drift hits both loops alike
        cases = [("bare", lambda: bare(args.model, train, args.steps, batch_size)),
                 ("unsup", lambda: looped(args.model, train, args.steps, batch_size))]
        for name, run in cases[::-1] if r % 2 else cases:
            times[name].append(run())
        times["bare_default_adamw"].append(bare(args.model, train, args.steps, batch_size, False))
        print(f"repeat {r}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        **provenance("benchmarks/loop_overhead.py", sys.argv[1:]),
        "model": args.model, "config": MODELS_TIMED[args.model][1], "batch_size": batch_size,
        "steps": args.steps, "repeats": args.repeats,
        "cpu_seconds": times,
        "ms_per_step": {k: 1000 * v / args.steps for k, v in med.items()},
        "overhead": med["unsup"] / med["bare"] - 1,
        "overhead_paired_median": statistics.median(u / b - 1 for u, b in zip(times["unsup"], times["bare"],
                                                                               strict=True)),
    }
    ms = result["ms_per_step"]
    print(f"{args.model}: bare {ms['bare']:.2f} ms/step, unsup {ms['unsup']:.2f} ms/step: overhead "
          f"{100 * result['overhead']:+.1f} % (bare with torch's default AdamW: "
          f"{ms['bare_default_adamw']:.2f} ms/step)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
