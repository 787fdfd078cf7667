"""The peer side of the autoregressive pairs (MADE, PixelCNN, Gated PixelCNN) on binarised
Fashion-MNIST: trains the peer library's own model for a wall-clock budget (or a fixed number of
steps), then reports its exact test NLL (nats per image and bits/dim) on unsup's test split and,
with ``--samples N``, the seconds it takes to draw N samples.

Libraries:
  * ``pytorch-generative`` (``pytorch_generative.models.MADE / PixelCNN / GatedPixelCNN``), with the
    loss and optimiser of its ``reproduce()`` scripts (Bernoulli cross-entropy on logits, Adam
    1e-3). It is not on PyPI: ``setup.sh`` installs it from a local checkout given in
    ``$PYTORCH_GENERATIVE_SRC``.
  * ``zuko`` (MADE only): ``zuko.nn.MaskedMLP`` over a random ordering, the masked network behind
    zuko's MAF, trained as a binary MADE (one Bernoulli logit per pixel) with a plain loop.

Runs in a peer virtual environment (no unsup); prints and writes one JSON object (``--out``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    TimeBudget,
    bernoulli_log_prob,
    load_split,
    run_arguments,
    shuffled_batches,
    versions,
    write_json,
)


def have_pytorch_generative() -> bool:
    try:
        import pytorch_generative  # noqa: F401
    except ImportError:
        return False
    return True


class ZukoMADE(torch.nn.Module):
    """A binary MADE built from ``zuko.nn.MaskedMLP``: output ``i`` sees the inputs before it in a
    random ordering (seeded), one Bernoulli logit per pixel."""

    def __init__(self, dims: int, hidden: list[int], seed: int) -> None:
        import zuko

        super().__init__()
        order = torch.randperm(dims, generator=torch.Generator().manual_seed(seed))
        adjacency = order[:, None] > order[None, :]  # out i depends on in j iff j comes earlier
        self.net = zuko.nn.MaskedMLP(adjacency, hidden_features=hidden)
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view_as(x)

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, ...]) -> torch.Tensor:
        x = torch.zeros(n, math.prod(shape))
        for i in torch.argsort(self.order).tolist():
            x[:, i] = torch.bernoulli(torch.sigmoid(self.net(x)[:, i]))
        return x.view(n, *shape)


def build(model: str, library: str, arch: str, seed: int) -> torch.nn.Module:
    """The peer's model: its library defaults (``arch == "default"``) or the size unsup is run at."""
    if library == "zuko":
        if model != "made":
            raise SystemExit(f"zuko has no {model}")
        return ZukoMADE(784, [8000], seed)
    from pytorch_generative import models

    if model == "made":  # reproduce(): MADE(input_dim=784, hidden_dims=[8000], n_masks=1)
        return models.MADE(input_dim=784, hidden_dims=[8000], n_masks=1)
    if model == "gated-pixelcnn":
        if arch == "default":  # reproduce(): 10 gated layers of 128 channels, head of 32
            return models.GatedPixelCNN(in_channels=1, out_channels=1, n_gated=10, gated_channels=128,
                                        head_channels=32)
        # unsup's CPU default: 5 gated layers (the first included) of 32 maps, head of 32
        return models.GatedPixelCNN(in_channels=1, out_channels=1, n_gated=4, gated_channels=32,
                                    head_channels=32)
    if model == "pixelcnn":
        if arch == "default":
            return models.PixelCNN(in_channels=1, out_channels=1)
        # the pair's unsup side: --residual --hidden 64 --num-layers 5 (5 residual blocks, 2h = 64)
        return models.PixelCNN(in_channels=1, out_channels=1, n_residual=5, residual_channels=64,
                               head_channels=32)
    raise SystemExit(f"unknown model {model!r}")


def loss_fn(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the summed Bernoulli cross-entropy (pytorch-generative's loss_fn)."""
    logits = model(x)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()


@torch.no_grad()
def test_nll(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> dict:
    model.eval()
    lp = torch.cat([bernoulli_log_prob(model(x[i:i + batch_size]), x[i:i + batch_size])
                    for i in range(0, len(x), batch_size)]).double()
    nll = float(-lp.mean())
    return {"nll_nats": nll, "se": float(lp.std() / math.sqrt(len(lp))),
            "bpd": nll / (784 * math.log(2)), "n": len(x)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=["made", "pixelcnn", "gated-pixelcnn"])
    ap.add_argument("--library", choices=["auto", "pytorch-generative", "zuko"], default="auto")
    ap.add_argument("--arch", choices=["default", "unsup"], default="default",
                    help="the library's defaults, or the size unsup's side runs at")
    run_arguments(ap)
    ap.add_argument("--test-limit", type=int, help="score the first N test images only")
    ap.add_argument("--samples", type=int, default=0, help="also time drawing this many samples")
    args = ap.parse_args()

    library = args.library
    if library == "auto":
        library = "pytorch-generative" if have_pytorch_generative() else "zuko"
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    x_train, _ = load_split("binary", "train")
    x_train = x_train.float()
    model = build(args.model, library, args.arch, args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    batches = shuffled_batches(len(x_train), args.batch_size, args.seed)
    budget = TimeBudget(args.budget, args.steps)
    model.train()
    while not budget.spent():
        x = x_train[next(batches)]
        loss = loss_fn(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.step(len(x))
    result = {"library": library, "model": args.model, "arch": args.arch,
              "parameters": sum(p.numel() for p in model.parameters()),
              "batch_size": args.batch_size, "optimizer": f"Adam(lr={args.lr})",
              "versions": versions("pytorch-generative", "zuko"), **budget.report(),
              "last_train_loss": loss.item()}
    if args.steps is None:
        x_test, _ = load_split("binary", "test", args.test_limit)
        t0 = time.process_time()
        result["test"] = test_nll(model, x_test.float())
        result["test"]["cpu_seconds"] = time.process_time() - t0
    if args.samples:
        t0, c0 = time.perf_counter(), time.process_time()
        if library == "zuko":
            model.sample(args.samples, (1, 28, 28))
        else:
            model.sample(conditioned_on=-torch.ones(args.samples, 1, 28, 28))
        result["sampling"] = {"n": args.samples, "seconds": time.perf_counter() - t0,
                              "cpu_seconds": time.process_time() - c0}
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
