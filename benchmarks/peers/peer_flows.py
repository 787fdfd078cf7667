"""The peer side of the flow pairs on 8-bit Fashion-MNIST: normflows' Glow (``MultiscaleFlow`` of
``GlowBlock``s, built as in normflows' own Glow example, unconditional ``GlowBase`` priors), zuko's
``MAF`` and ``RealNVP`` over the flattened image. Trains with a plain maximum-likelihood loop (Adam,
batch 64, lr 1e-3; normflows and zuko ship no trainer) for a wall-clock budget or a fixed number
of steps, then reports the test NLL of the uniformly dequantised images (one seeded noise draw,
``y = (x + u) / 256``, the logit pre-processing ``alpha = 0.05`` as unsup's flows use), in nats
per image and bits/dim: ``-log p(x) <= -log p_model(y) + D log 256``.

Runs in the core peer venv (no unsup); prints and writes one JSON object (``--out``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    TimeBudget,
    load_split,
    run_arguments,
    shuffled_batches,
    versions,
    write_json,
)

D = 784
ALPHA = 0.05


def logit(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``v = logit(alpha + (1 - 2 alpha) y)`` of flat ``y`` in [0, 1) and ``log |dv/dy|`` summed."""
    p = ALPHA + (1 - 2 * ALPHA) * y
    v = torch.log(p) - torch.log1p(-p)
    log_det = (math.log(1 - 2 * ALPHA) - torch.log(p) - torch.log1p(-p)).sum(1)
    return v, log_det


class Glow(torch.nn.Module):
    """normflows' multi-scale Glow for 1x28x28: ``levels`` levels of ``steps`` GlowBlocks each."""

    def __init__(self, levels: int, steps: int, hidden: int) -> None:
        import normflows as nf

        super().__init__()
        q0, merges, flows = [], [], []
        for i in range(levels):
            flows.append([nf.flows.GlowBlock(2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                          for _ in range(steps)] + [nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
                shape = (2 ** (levels - i), 28 // 2 ** (levels - i), 28 // 2 ** (levels - i))
            else:
                shape = (2 ** (levels + 1), 28 // 2 ** levels, 28 // 2 ** levels)
            q0.append(nf.distributions.GlowBase(shape))
        self.flow = nf.MultiscaleFlow(q0, flows, merges, transform=nf.transforms.Logit(ALPHA),
                                      class_cond=False)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """``log p(y)`` of dequantised images in [0, 1) (normflows' Logit is part of the flow)."""
        return self.flow.log_prob(y.view(-1, 1, 28, 28), None)


class Flat(torch.nn.Module):
    """A zuko flow over the flattened, logit-transformed image."""

    def __init__(self, kind: str, layers: int, hidden: int) -> None:
        import zuko

        super().__init__()
        cls = zuko.flows.MAF if kind == "maf" else zuko.flows.RealNVP
        self.flow = cls(features=D, transforms=layers, hidden_features=(hidden, hidden))

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        v, log_det = logit(y.flatten(1))
        return self.flow().log_prob(v) + log_det


def dequantise(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    return (x.float() + torch.rand(x.shape, generator=g)) / 256


@torch.no_grad()
def test_nll(model: torch.nn.Module, x: torch.Tensor, seed: int, batch_size: int = 256) -> dict:
    model.eval()
    g = torch.Generator().manual_seed(seed)
    lp = torch.cat([model.log_prob(dequantise(x[i:i + batch_size], g)) for i in range(0, len(x), batch_size)])
    nll = -lp.double() + D * math.log(256)
    mean = float(nll.mean())
    return {"nll_nats": mean, "se": float(nll.std() / math.sqrt(len(nll))), "bpd": mean / (D * math.log(2)),
            "n": len(x), "dequantisation": "uniform, one draw"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=["glow", "maf", "realnvp"])
    ap.add_argument("--levels", type=int, default=2, help="glow: levels")
    ap.add_argument("--steps-per-level", type=int, default=8, help="glow: GlowBlocks per level")
    ap.add_argument("--layers", type=int, default=5, help="maf/realnvp: transforms")
    ap.add_argument("--hidden", type=int, default=64, help="glow: channels; maf/realnvp: units (x 2 layers)")
    run_arguments(ap)
    ap.add_argument("--test-limit", type=int, help="score the first N test images only")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    x_train, _ = load_split("uint8", "train")
    if args.model == "glow":
        model, library = Glow(args.levels, args.steps_per_level, args.hidden), "normflows"
    else:
        model, library = Flat(args.model, args.layers, args.hidden), "zuko"
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    batches = shuffled_batches(len(x_train), args.batch_size, args.seed)
    budget = TimeBudget(args.budget, args.steps)
    model.train()
    while not budget.spent():
        y = dequantise(x_train[next(batches)])
        loss = -model.log_prob(y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.step(len(y))
    result = {"library": library, "model": args.model,
              "parameters": sum(p.numel() for p in model.parameters()),
              "batch_size": args.batch_size, "optimizer": f"Adam(lr={args.lr})",
              "versions": versions("normflows", "zuko"), **budget.report(),
              "last_train_bpd": (loss.item() + D * math.log(256)) / (D * math.log(2))}
    if args.steps is None:
        x_test, _ = load_split("uint8", "test", args.test_limit)
        t0 = time.process_time()
        result["test"] = test_nll(model, x_test, args.seed)
        result["test"]["cpu_seconds"] = time.process_time() - t0
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
