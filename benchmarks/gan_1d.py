"""The 1-D GAN: minimax against non-saturating generator loss (issue #19).

    python benchmarks/gan_1d.py

Data: ``gaussians-1d`` (0.5 N(-1, 0.25^2) + 0.5 N(1.5, 0.5^2)). Two experiments, one thread:

1. **The generator's gradient at the start.** A freshly initialised generator whose samples are
   moved far from the data (its output bias shifted so that they centre on x = -4; the data lie
   around -1 and 1.5), and a discriminator trained alone for 300 steps to tell the data from
   those samples (Adam, lr 1e-3). For samples placed at each ``x`` of a grid, the gradient of each
   generator loss with respect to the sample, ``dL_G / dx``: the minimax loss
   ``log(1 - D(x))`` has a gradient that vanishes where D is confident the sample is fake, the
   non-saturating ``-log D(x)`` a large one there.
2. **Training.** Each loss, 3 seeds, 4,000 steps (2,000 per player) at batch 256, Adam (0.5,
   0.999) at 1e-3, the MLP default; from the usual start (the generator's samples standardised
   like the data, so they overlap it from the first step) and from the far start of 1. Scored by
   the 1-D Wasserstein-1 distance between 10,000
   samples and the test set (the mean absolute difference of their sorted values, after
   interpolating both quantile functions on a common grid).

Writes ``benchmarks/results/gan-1d.json`` and ``docs/figures/gan-1d.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pinned import git_commit, interval  # benchmarks/ is on sys.path

import unsup
from unsup.data import load
from unsup.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("minimax", "non-saturating")
SEEDS = (0, 1, 2)
STEPS = 4000


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    q = np.linspace(0.0005, 0.9995, 2000)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


FAR = -4.0  # where the far start puts the generator's samples


def place_far(gan) -> None:
    """Shift the generator's output so that its initial samples centre on ``FAR``."""
    with torch.no_grad():
        now = float(gan.sample(2000).mean())
        gan.generator.net[-1].bias += (FAR - now) / float(gan.scale)


def start_gradients(seed: int = 0) -> dict:
    """Experiment 1: D trained against the initial G; each loss's dL_G/dx over a grid of x."""
    train = load("gaussians-1d", "train")
    torch.manual_seed(seed)
    gan = unsup.create("gan", train, loss="minimax")
    place_far(gan)
    opt = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gan.generator.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    for _ in range(300):
        batch = train.x[torch.randint(len(train), (256,), generator=g)]
        loss = gan.loss({"x": batch}, "critic")["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    gan.eval()
    grid = torch.linspace(-6, 4, 401)[:, None]
    out = {"x": grid.squeeze(1).tolist()}
    with torch.no_grad():
        out["D"] = torch.sigmoid(gan.critic(gan.to_unit(grid), None)).tolist()
        fake = gan.from_unit(gan.generate(5000)).squeeze(1).numpy()
    out["initial_samples"] = {"mean": float(fake.mean()), "sd": float(fake.std())}
    for loss in LOSSES:
        gan.config.loss = loss
        x = grid.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(gan.generator_loss(gan.critic(gan.to_unit(x), None)) * len(x), x)
        out[f"grad_{loss}"] = grad.squeeze(1).tolist()
    hist = np.histogram(fake, bins=60, range=(-6, 4), density=True)
    out["initial_hist"] = hist[0].tolist()
    return out


def train_one(loss: str, seed: int, far: bool) -> dict:
    train, val, test = (load("gaussians-1d", s) for s in ("train", "val", "test"))
    torch.manual_seed(seed)
    model = unsup.create("gan", train, loss=loss)
    if far:
        place_far(model)
    cfg = TrainConfig(steps=STEPS, lr=1e-3, batch_size=256, seed=seed, eval_every=0, progress=False,
                      tensorboard=False)
    t0 = time.process_time()
    Trainer(model, train, val, cfg).fit()
    cpu = time.process_time() - t0
    torch.manual_seed(100 + seed)
    x = model.sample(10000).squeeze(1).numpy()
    return {"loss": loss, "seed": seed, "start": "far" if far else "usual",
            "w1_to_test": wasserstein_1d(x, test.x.squeeze(1).numpy()),
            "cpu_seconds": cpu, "samples_hist": np.histogram(x, bins=60, range=(-6, 4),
                                                            density=True)[0].tolist()}


def figure(start: dict, runs: list[dict], data_hist: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = np.linspace(-6, 4, 61)
    centres = (centres[:-1] + centres[1:]) / 2
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    ax.fill_between(centres, data_hist, alpha=0.3, label="data density")
    ax.fill_between(centres, start["initial_hist"], alpha=0.3, label="initial G samples")
    ax.plot(start["x"], start["D"], "k", label="D(x), trained against the initial G")
    ax.set_title("at the start")
    ax.legend(fontsize=8)
    ax = axes[1]
    for loss in LOSSES:
        ax.plot(start["x"], np.abs(start[f"grad_{loss}"]), label=loss)
    ax.set_yscale("log")
    ax.set_title("|dL_G/dx| of a sample at x (same D)")
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.fill_between(centres, data_hist, alpha=0.25, color="grey", label="data")
    for loss, colour in zip(LOSSES, ("C0", "C1"), strict=True):
        r = next(r for r in runs if r["loss"] == loss and r["seed"] == 0 and r["start"] == "far")
        ax.plot(centres, r["samples_hist"], colour, label=f"{loss}: W1 {r['w1_to_test']:.3f}")
    ax.set_title(f"after {STEPS} steps from the far start (seed 0)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    torch.set_num_threads(1)
    start = start_gradients()
    runs = [train_one(loss, seed, far) for far in (True, False) for loss in LOSSES for seed in SEEDS]
    test = load("gaussians-1d", "test").x.squeeze(1).numpy()
    data_hist = np.histogram(test, bins=60, range=(-6, 4), density=True)[0].tolist()
    commit = git_commit()
    x = np.asarray(start["x"])
    near = np.abs(x - start["initial_samples"]["mean"]) < 2 * start["initial_samples"]["sd"]
    doc = {"command": "python benchmarks/gan_1d.py", "commit": commit, "threads": 1,
           "steps": STEPS, "batch_size": 256, "lr": 1e-3,
           "start": {"initial_samples": start["initial_samples"],
                     "mean_abs_grad_at_initial_samples": {
                         loss: float(np.abs(np.asarray(start[f"grad_{loss}"]))[near].mean())
                         for loss in LOSSES}},
           "w1_to_test": {f"{start} start/{loss}": interval(
               [r["w1_to_test"] for r in runs if r["loss"] == loss and r["start"] == start])
               for start in ("far", "usual") for loss in LOSSES},
           "runs": [{k: v for k, v in r.items() if k != "samples_hist"} for r in runs]}
    out = ROOT / "benchmarks" / "results" / "gan-1d.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    figure(start, runs, data_hist, ROOT / "docs" / "figures" / "gan-1d.png")
    print(json.dumps({k: doc[k] for k in ("start", "w1_to_test")}, indent=1))


if __name__ == "__main__":
    main()
