"""The peer side of the latent-variable pairs: pythae's ``VAE`` and ``IWAE`` on binarised
Fashion-MNIST with the MLP unsup uses (784-256-256-32, ReLU, Bernoulli decoder), trained by pythae's
own ``BaseTrainer`` (Adam, batch 64, lr 1e-3 as on unsup's side) for a wall-clock budget (a
callback stops the trainer) or a fixed number of steps; then the importance-sampled test NLL with
K samples on the first N test images, computed by ``common.importance_sampled_nll`` -- the same
function that scores unsup's side (``unsup_score.py``).

Runs in the peer virtual environment (no unsup); prints and writes one JSON object (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BudgetReached,
    TimeBudget,
    importance_sampled_nll,
    load_split,
    run_arguments,
    versions,
    write_json,
)


def mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def networks(z_dim: int, hidden: list[int]):
    """pythae encoder and decoder classes holding unsup's MLP shapes: the encoder sees the image
    rescaled to [-1, 1] (as unsup's does) and emits mean and log-variance; the decoder emits
    Bernoulli probabilities (pythae's ``bce`` loss) and keeps its logits for the shared estimator."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp([784, *hidden, 2 * z_dim])

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.net(2 * x.flatten(1) - 1)
            return ModelOutput(embedding=h[:, :z_dim], log_covariance=h[:, z_dim:])

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp([z_dim, *hidden[::-1], 784])

        def logits(self, z: torch.Tensor) -> torch.Tensor:
            return self.net(z)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).view(-1, 1, 28, 28))

    return Encoder(), Decoder()


def build(model: str, z_dim: int, hidden: list[int], k: int):
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig

    encoder, decoder = networks(z_dim, hidden)
    if model == "vae":
        config = VAEConfig(input_dim=(1, 28, 28), latent_dim=z_dim, reconstruction_loss="bce")
        return VAE(config, encoder=encoder, decoder=decoder)
    config = IWAEConfig(input_dim=(1, 28, 28), latent_dim=z_dim, reconstruction_loss="bce",
                        number_samples=k)
    return IWAE(config, encoder=encoder, decoder=decoder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=["vae", "iwae"])
    run_arguments(ap)
    ap.add_argument("--z-dim", type=int, default=32)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--k", type=int, default=5, help="IWAE's training samples")
    ap.add_argument("--test-limit", type=int, default=2000, help="score the first N test images")
    ap.add_argument("--importance-samples", type=int, default=1000)
    args = ap.parse_args()

    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    torch.manual_seed(args.seed)
    x_train, y_train = load_split("binary", "train")
    model = build(args.model, args.z_dim, args.hidden, args.k)
    budget = TimeBudget(args.budget, args.steps)

    class StopAtBudget(TrainingCallback):
        """Counts pythae's steps; ends its (epoch-based) training when the budget is spent. (The
        hook is not told the batch's size: the last, 48-example batch of each epoch counts as 64,
        0.03 % of the examples.)"""

        def on_train_step_end(self, training_config, **kwargs):
            budget.step(args.batch_size)
            if budget.spent():
                raise BudgetReached

    with tempfile.TemporaryDirectory() as tmp:
        config = BaseTrainerConfig(output_dir=tmp, num_epochs=10**6, learning_rate=args.lr,
                                   per_device_train_batch_size=args.batch_size, optimizer_cls="Adam",
                                   no_cuda=True, seed=args.seed)
        trainer = BaseTrainer(model, train_dataset=BaseDataset(x_train.float(), y_train),
                              eval_dataset=None,
                              training_config=config, callbacks=[StopAtBudget()])
        budget.t0, budget.c0 = time.perf_counter(), time.process_time()  # after pythae's set-up
        with contextlib.suppress(BudgetReached):  # the callback ends pythae's epoch loop
            trainer.train()
    result = {"library": "pythae", "model": args.model, "z_dim": args.z_dim, "hidden": args.hidden,
              "parameters": sum(p.numel() for p in model.parameters()),
              "batch_size": args.batch_size, "optimizer": f"Adam(lr={args.lr})",
              "versions": versions("pythae", "pydantic"), **budget.report()}
    if args.steps is None:
        model.eval()
        x_test, _ = load_split("binary", "test", args.test_limit)

        def encode(x: torch.Tensor):
            out = model.encoder(x)
            return out.embedding, 0.5 * out.log_covariance

        t0 = time.process_time()
        result["test"] = importance_sampled_nll(encode, model.decoder.logits, x_test,
                                                k=args.importance_samples, seed=args.seed)
        result["test"]["cpu_seconds"] = time.process_time() - t0
        result["test"]["estimator"] = "common.importance_sampled_nll"
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
