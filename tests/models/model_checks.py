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
