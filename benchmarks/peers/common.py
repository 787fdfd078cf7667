"""What both sides of a peer comparison share: where the exported split lies, the time-budgeted
training loop, and the estimators that score both sides with one function.

This module imports only torch and numpy, so that it runs in the peer virtual environments (which
do not have unsup) as well as beside unsup. The peer scripts put this folder on ``sys.path``:

    from common import load_split, TimeBudget, importance_sampled_nll
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

DATASET = "fashion-mnist"


def home() -> Path:
    """Where the virtual environments and the exported data live (``$UNSUP_PEERS_HOME``)."""
    return Path(os.environ.get("UNSUP_PEERS_HOME", "~/.cache/unsup-peers")).expanduser()


def data_dir() -> Path:
    """Where ``export_data.py`` wrote unsup's split (``$UNSUP_PEERS_DATA``, else ``home()/data``)."""
    env = os.environ.get("UNSUP_PEERS_DATA")
    return Path(env).expanduser() if env else home() / "data"


def run_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every peer script shares: the budget (or exact steps), batch, learning rate,
    seed and output file."""
    ap.add_argument("--budget", type=float, default=300, help="training seconds (wall clock)")
    ap.add_argument("--steps", type=int, help="train exactly this many steps instead (--speed-only)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)


def load_split(represent: str, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """unsup's own split as exported: images ``(N, 1, 28, 28)`` uint8 (0/1 for ``binary``, 0..255
    for ``uint8``) and labels ``(N,)`` int64; ``limit`` keeps the first N examples."""
    root = data_dir()
    path = root / f"{DATASET}-{represent}-{split}.npy"
    if not path.exists():
        sys.exit(f"{path} is missing: run `python benchmarks/peers/export_data.py` first")
    x = torch.from_numpy(np.load(path))
    y = torch.from_numpy(np.load(root / f"{DATASET}-labels-{split}.npy")).long()
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def shuffled_batches(n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Index batches of endless seeded reshuffled epochs (the last partial batch of each is dropped)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]


class BudgetReached(Exception):
    """Raised from inside a library's own training loop (a callback) when the budget is spent."""


class TimeBudget:
    """Counts steps and examples against a wall-clock budget (as ``unsup train --time`` does), and
    the loop's own wall and CPU seconds.

        budget = TimeBudget(300)
        while not budget.spent():
            ...one optimiser step on a batch of 64...
            budget.step(64)
    """

    def __init__(self, seconds: float, max_steps: int | None = None) -> None:
        self.seconds, self.max_steps = seconds, max_steps
        self.steps = self.examples = 0
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def step(self, examples: int) -> None:
        self.steps += 1
        self.examples += examples

    def spent(self) -> bool:
        if self.max_steps is not None:
            return self.steps >= self.max_steps
        return time.perf_counter() - self.t0 >= self.seconds

    def report(self) -> dict:
        wall, cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
        return {"steps": self.steps, "examples": self.examples, "loop_seconds": wall,
                "loop_cpu_seconds": cpu, "examples_per_loop_second": self.examples / max(wall, 1e-9)}


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x)`` of independent Bernoullis, summed over all but the first dimension."""
    lp = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
    return lp.flatten(1).sum(1)


@torch.no_grad()
def importance_sampled_nll(
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    decode_logits: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    k: int = 1000,
    chunk: int = 8192,
    seed: int = 0,
) -> dict:
    """``-log p(x)`` of a Gaussian-latent VAE with a Bernoulli decoder, estimated with ``k``
    importance samples from ``q(z | x)`` per example:
    ``log p(x) ~ logmeanexp_k [log p(x | z_k) + log N(z_k; 0, I) - log q(z_k | x)]``.

    Args:
        encode: binary images ``(B, 1, 28, 28)`` (0/1 floats) -> posterior mean and log standard
            deviation, each ``(B, z)``.
        decode_logits: latents ``(N, z)`` -> Bernoulli logits ``(N, 784)``.
        x: binary images.
        k: importance samples per example.
        chunk: at most this many (example, sample) pairs per decoder call.

    Returns:
        ``nll_nats`` (mean over examples), its standard error ``se``, ``bpd`` and ``n``.
    """
    torch.manual_seed(seed)
    log2pi = math.log(2 * math.pi)
    out = []
    for xi in x.float():
        mu, log_s = encode(xi.unsqueeze(0))
        target = xi.flatten().unsqueeze(0)
        parts = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn(m, mu.shape[1])
            z = mu + log_s.exp() * eps
            log_q = (-0.5 * (eps.pow(2) + log2pi) - log_s).sum(1)
            log_pz = (-0.5 * (z.pow(2) + log2pi)).sum(1)
            log_px = bernoulli_log_prob(decode_logits(z), target.expand(m, -1))
            parts.append(log_px + log_pz - log_q)
        log_w = torch.cat(parts)
        out.append(float(torch.logsumexp(log_w, 0) - math.log(k)))
    lp = torch.tensor(out, dtype=torch.float64)
    nll = float(-lp.mean())
    se = float(lp.std() / math.sqrt(len(lp))) if len(lp) > 1 else float("nan")
    return {"nll_nats": nll, "se": se, "bpd": nll / (x[0].numel() * math.log(2)), "n": len(lp), "k": k}


def linear_probe(features: Callable[[torch.Tensor], torch.Tensor], represent: str = "uint8",
                 test_limit: int | None = None, train_limit: int | None = 10000,
                 grid: tuple[float, ...] = (0.01, 0.1, 1.0)) -> dict:
    """The linear evaluation protocol of ``unsup probe``: multinomial logistic regression on
    standardised frozen features of the (first ``train_limit``) training images, ``C`` picked by
    validation accuracy, test accuracy reported. ``features`` maps uint8 images to ``(B, D)``.
    Needs scikit-learn (the vision venv has it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs = {s: load_split(represent, s, limit) for s, limit in
          (("train", train_limit), ("val", None), ("test", test_limit))}
    f = {s: features(x).double().numpy() for s, (x, _) in xs.items()}
    y = {s: yy.numpy() for s, (_, yy) in xs.items()}
    scaler = StandardScaler().fit(f["train"])
    f = {s: scaler.transform(v) for s, v in f.items()}
    best = (-1.0, None, None)
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=1000).fit(f["train"], y["train"])
        acc = clf.score(f["val"], y["val"])
        if acc > best[0]:
            best = (acc, c, clf)
    return {"accuracy": float(best[2].score(f["test"], y["test"])), "val_accuracy": float(best[0]),
            "C": best[1], "n_train": len(y["train"]), "n": len(y["test"]), "estimator": "common.linear_probe"}


def write_json(path: str | os.PathLike[str], obj: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


def versions(*modules: str) -> dict:
    """Versions of torch, numpy and the named packages, as installed where this runs."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
    for name in modules:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
