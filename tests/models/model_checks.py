"""Checks shared by the model tests."""

import torch


def assert_training_reduces_loss(model, batch, lr: float, steps: int) -> None:
    """A few Adam steps on one fixed batch lower the model's loss, with finite losses throughout."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = model.loss(batch)["loss"].item()
    for _ in range(steps):
        opt.zero_grad()
        loss = model.loss(batch)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert model.loss(batch)["loss"].item() < first


def all_images(shape: tuple[int, ...], levels: int) -> torch.Tensor:
    """Every discrete example of ``shape`` with ``levels`` values, ``(levels**D, *shape)``."""
    import itertools
    import math

    n = math.prod(shape)
    return torch.tensor(list(itertools.product(range(levels), repeat=n))).view(-1, *shape)
