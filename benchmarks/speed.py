"""How close training runs to the machine's limit, and what the speed options change (issue #8).

    python benchmarks/speed.py                      # about 5 minutes on 2 cores
    python benchmarks/speed.py --quick --json ''    # a smoke run: few steps, nothing written

In one process and one thread setting (torch's default: every core):

1. the peak: the best rate of a large square ``torch.matmul`` in fp32 (and bf16; and a 1x1
   convolution, the GEMM of oneDNN), GFLOP/s;
2. for six workloads -- the PixelCNN on binarised Fashion-MNIST (its CPU default size), RealNVP
   and Glow on 8-bit Fashion-MNIST (their CPU default sizes), the MLP VAE on binarised
   Fashion-MNIST, SimCLR with the ResNet backbone on cifar10-jpeg, and a ResNet-18-style network
   with a linear head on cifar10-jpeg (defined here, the stand-in of issue #8; the data is the
   project's copy beside the repository, ``recipes.SHARED_CIFAR``)
   -- the training rate through :class:`~unsup.train.Trainer` (images/s after a warm-up), the
   FLOPs of one step (forward and backward, counted by ``torch.utils.flop_counter``: matrix
   multiplications and convolutions only, so elementwise work is free) and the achieved GFLOP/s
   as a fraction of the peak;
3. the effect of each speed option (``--amp bf16``, ``--channels-last``, ``--compile``, all three)
   on images/s;
4. the share of a step spent drawing the batch (``Dataset.batch``: in-memory indexing; JPEGs are
   decoded once when the dataset is first loaded, and cached).

Each configuration is a fresh model (seed 0) trained for ``--warmup`` steps (kernel set-up, and
compilation with ``--compile``) and then ``--steps`` timed steps of the same run. Writes
``benchmarks/results/speed.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pinned import git_commit  # benchmarks/ is on sys.path (the script's directory)
from recipes import SHARED_CIFAR
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import unsup
from unsup.data.base import Dataset
from unsup.models.base import Model
from unsup.train import TrainConfig, Trainer
from unsup.train.trainer import BatchSchedule, seed_everything

RESULTS = Path(__file__).resolve().parent / "results"

# name -> (the `unsup train` flags, TrainConfig fields)
OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "fp32": ("(none)", {}),
    "bf16": ("--amp bf16", {"amp": "bf16"}),
    "channels-last": ("--channels-last", {"channels_last": True}),
    "compile": ("--compile", {"compile": True}),
    "all": ("--amp bf16 --channels-last --compile",
            {"amp": "bf16", "channels_last": True, "compile": True}),
}


# --- the stand-in backbone ------------------------------------------------------------------

@dataclasses.dataclass
class ResNetConfig:
    """ResNet-18 layout at half width: four stages of two basic blocks."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 2


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`` (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNetStandIn(Model):
    """A CIFAR-style ResNet-18 (3x3 stem, no max-pool) at half width with a linear head trained
    on the labels: the forward and backward cost of an SSL backbone at the same batch size (a
    two-view SSL method runs it on twice the batch; its projection head is small next to it)."""

    Config = ResNetConfig

    def __init__(self, spec: Any, config: ResNetConfig | None = None) -> None:
        c = config or ResNetConfig()
        super().__init__(spec, c)
        layers: list[nn.Module] = [nn.Conv2d(spec.shape[0], c.widths[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(c.widths[0]), nn.ReLU()]
        c_in = c.widths[0]
        for i, w in enumerate(c.widths):
            for j in range(c.blocks):
                layers.append(BasicBlock(c_in, w, 2 if i > 0 and j == 0 else 1))
                c_in = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, spec.num_classes)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"].float() / 127.5 - 1.0  # (B, 3, 32, 32) in [-1, 1]
        logits = self.head(self.features(x).mean((2, 3)))  # (B, 10)
        return {"loss": F.cross_entropy(logits.float(), batch["y"])}


# --- measurements ---------------------------------------------------------------------------

@dataclasses.dataclass
class Workload:
    name: str
    what: str
    train: Dataset
    make: Callable[[], Model]
    batch_size: int


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux); elsewhere what :mod:`platform` knows."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else (platform.processor() or platform.machine())


def best_rate(run: Callable[[], object], flop: float, repeats: int) -> dict[str, float]:
    """GFLOP/s of ``run`` (``flop`` FLOPs a call): the best and the median of ``repeats`` calls."""
    for _ in range(3):  # warm-up: thread pool, page faults, kernel choice
        run()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    return {"gflops": flop / min(seconds) / 1e9,
            "gflops_median": flop / statistics.median(seconds) / 1e9, "repeats": repeats}


def matmul_peak(n: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """``torch.matmul`` of two ``n x n`` matrices (2 n^3 FLOPs): MKL in fp32, oneDNN in bf16."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    c = torch.empty(n, n, dtype=dtype)
    return {"n": n, **best_rate(lambda: torch.matmul(a, b, out=c), 2 * n**3, repeats)}


def conv1x1_peak(channels: int, repeats: int) -> dict[str, float]:
    """A 1x1 convolution, ``channels`` to ``channels`` over 8 x 32 x 32 positions: the GEMM that
    oneDNN (which runs every convolution) reaches, NHWC as it prefers."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, channels, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 1, 1, generator=g).contiguous(memory_format=torch.channels_last)
    flop = 2 * 8 * 32 * 32 * channels**2
    return {"channels": channels, **best_rate(lambda: F.conv2d(x, w), flop, repeats)}


def flops_per_step(w: Workload) -> int:
    """FLOPs of one training step's forward and backward (fp32, eager)."""
    seed_everything(0)
    model = w.make().train()
    batch = w.train.batch(torch.arange(w.batch_size), torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model.loss(batch)["loss"].backward()
    return int(counter.get_total_flops())


def train_rate(w: Workload, options: dict[str, Any], warmup: int, steps: int) -> dict[str, float]:
    """Images/s of ``steps`` training steps after ``warmup`` steps of the same run."""
    seed_everything(0)
    cfg = TrainConfig(steps=warmup, batch_size=w.batch_size, device="cpu", seed=0, eval_every=0,
                      log_every=10**9, progress=False, tensorboard=False, **options)
    trainer = Trainer(w.make(), w.train, None, cfg)
    t0 = time.perf_counter()
    trainer.fit()
    warmup_s = time.perf_counter() - t0
    trainer.total_steps = warmup + steps  # carry on: the timed steps continue the warmed-up run
    summary = trainer.fit()
    return {"images_per_s": summary["examples_per_second"], "warmup_s": warmup_s,
            "step_s": w.batch_size / summary["examples_per_second"]}


def fetch_seconds(train: Dataset, batch_size: int, n: int) -> float:
    """Mean seconds to draw one training batch the way the loop does (index, then gather)."""
    batches = BatchSchedule(len(train), batch_size, seed=0)
    t0 = time.perf_counter()
    for step in range(n):
        train.batch(batches.index(step), batches.generator(step))
    return (time.perf_counter() - t0) / n


def workloads(names: list[str]) -> tuple[list[Workload], dict[str, float]]:
    """The workloads asked for, and the seconds each dataset took to load."""
    load_s: dict[str, float] = {}

    def load(name: str, rep: str, **kwargs: Any) -> Dataset:
        t0 = time.perf_counter()
        ds = unsup.data.load(name, "train", rep, **kwargs)
        load_s[f"{name} {rep}"] = time.perf_counter() - t0
        return ds

    out = []
    if "pixelcnn" in names:
        fb = load("fashion-mnist", "binary")
        out.append(Workload("pixelcnn", "PixelCNN (CPU default: 7x7 A, 5 x 3x3 B, 64 maps), binarised "
                            "Fashion-MNIST 1x28x28", fb, lambda: unsup.create("pixelcnn", data=fb), 128))
    if "realnvp" in names:
        f8 = load("fashion-mnist", "native")
        out.append(Workload("realnvp", "RealNVP (CPU default: 2 scales, hidden 32), 8-bit "
                            "Fashion-MNIST 1x28x28", f8, lambda: unsup.create("realnvp", data=f8), 32))
    if "glow" in names:
        f8 = load("fashion-mnist", "native")
        out.append(Workload("glow", "Glow (CPU default), 8-bit Fashion-MNIST 1x28x28", f8,
                            lambda: unsup.create("glow", data=f8), 32))
    if "vae" in names:
        fb = load("fashion-mnist", "binary")
        out.append(Workload("vae", "VAE (CPU default: MLP 784-256-256-z, Bernoulli), binarised "
                            "Fashion-MNIST", fb, lambda: unsup.create("vae", data=fb), 128))
    if "simclr" in names:
        cj = load("cifar10-jpeg", "native", root=SHARED_CIFAR)
        out.append(Workload("simclr", "SimCLR with the ResNet backbone (--backbone resnet), two "
                            "augmented views, cifar10-jpeg 3x32x32", cj,
                            lambda: unsup.create("simclr", data=cj, backbone="resnet"), 64))
    if "resnet" in names:
        cj = load("cifar10-jpeg", "native", root=SHARED_CIFAR)
        out.append(Workload("resnet", "ResNet-18 layout at half width (defined in speed.py), "
                            "cifar10-jpeg 3x32x32", cj, lambda: ResNetStandIn(cj.spec), 64))
    return out, load_s


# --- report ---------------------------------------------------------------------------------

def tables(res: dict[str, Any]) -> str:
    peak = res["peak"]["fp32"]["gflops"]
    lines = [f"Peak: fp32 matmul {peak:.0f} GFLOP/s, bf16 {res['peak']['bf16']['gflops']:.0f} "
             f"GFLOP/s (n = {res['peak']['fp32']['n']}); fp32 1x1 convolution "
             f"{res['peak']['conv1x1_fp32']['gflops']:.0f} GFLOP/s; {res['threads']} threads", "",
             "| workload | option | images/s | vs fp32 | GFLOP/s | of fp32 peak | of own peak | warm-up s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in res["models"].items():
        base = m["options"].get("fp32", {}).get("images_per_s")
        for r in m["options"].values():
            ratio = f"{r['images_per_s'] / base:.2f}x" if base else "-"
            lines.append(f"| {name} | `{r['flags']}` | {r['images_per_s']:.1f} | {ratio} | "
                         f"{r['gflops']:.1f} | {100 * r['fraction_of_fp32_peak']:.0f} % | "
                         f"{100 * r['fraction_of_own_peak']:.0f} % | {r['warmup_s']:.1f} |")
    lines += ["", "| workload | FLOPs/image (fwd+bwd) | batch | batch fetch ms | fp32 step ms | "
              "fetch share |", "|---|---|---|---|---|---|"]
    for name, m in res["models"].items():
        d = m["data"]
        lines.append(f"| {name} | {m['flops_per_image'] / 1e9:.3f} G | {m['batch_size']} | "
                     f"{1e3 * d['fetch_s']:.2f} | {1e3 * d['step_s']:.0f} | "
                     f"{100 * d['fetch_share']:.2f} % |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ["pixelcnn", "realnvp", "glow", "vae", "simclr", "resnet"]
    p.add_argument("--models", nargs="+", default=names, choices=names)
    p.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration")
    p.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed steps, small matmul")
    p.add_argument("--json", default=str(RESULTS / "speed.json"), help="'' to write nothing")
    args = p.parse_args()
    if args.quick:
        args.warmup, args.steps, args.matmul_n = 1, 2, 1024
    started = time.perf_counter()
    res: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/speed.py", *sys.argv[1:]]),
        "git_commit": git_commit(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_name(), "load_before": os.getloadavg(),
        "warmup_steps": args.warmup, "timed_steps": args.steps,
    }
    repeats = 5 if args.quick else 20
    res["peak"] = {"fp32": matmul_peak(args.matmul_n, torch.float32, repeats),
                   "bf16": matmul_peak(args.matmul_n, torch.bfloat16, repeats),
                   "conv1x1_fp32": conv1x1_peak(args.matmul_n // 2, repeats)}
    print(f"peak: {res['peak']}", flush=True)
    peak = res["peak"]["fp32"]["gflops"]
    work, res["load_s"] = workloads(args.models)
    res["models"] = {}
    for w in work:
        flops = flops_per_step(w)
        m: dict[str, Any] = {"what": w.what, "batch_size": w.batch_size,
                             "parameters": sum(q.numel() for q in w.make().parameters()),
                             "flops_per_step": flops, "flops_per_image": flops / w.batch_size,
                             "options": {}}
        for opt in args.options:
            r = {"flags": OPTIONS[opt][0], **train_rate(w, OPTIONS[opt][1], args.warmup, args.steps)}
            r["gflops"] = flops / r["step_s"] / 1e9
            r["fraction_of_fp32_peak"] = r["gflops"] / peak
            # bf16 runs their matrix products in bf16: their own ceiling is the bf16 peak
            own = res["peak"]["bf16" if OPTIONS[opt][1].get("amp") == "bf16" else "fp32"]["gflops"]
            r["fraction_of_own_peak"] = r["gflops"] / own
            m["options"][opt] = r
            print(f"{w.name} {opt}: {r['images_per_s']:.1f} images/s, {r['gflops']:.1f} GFLOP/s "
                  f"({100 * r['fraction_of_fp32_peak']:.1f} % of peak), warm-up {r['warmup_s']:.1f} s",
                  flush=True)
        step_s = m["options"].get("fp32", next(iter(m["options"].values())))["step_s"]
        fetch = fetch_seconds(w.train, w.batch_size, 20 if args.quick else 200)
        # the timed steps include their own fetch: the share is of the whole step
        m["data"] = {"fetch_s": fetch, "step_s": step_s, "fetch_share": fetch / step_s}
        res["models"][w.name] = m
    res["load_after"] = os.getloadavg()
    res["wall_s"] = time.perf_counter() - started
    print(tables(res))
    print(f"wall time {res['wall_s']:.0f} s; load average before {res['load_before']}, after "
          f"{res['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
