"""Checks shared by the model tests."""

import itertools

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


def with_fixed_draws(model, seed: int = 1):
    """``model`` whose ``loss`` reseeds torch's RNG first: the same random crops, puzzles or masks
    on every call, so that a fixed batch is a fixed objective."""
    loss = model.loss
    model.loss = lambda batch: (torch.manual_seed(seed), loss(batch))[1]
    return model


def all_images(shape: tuple[int, ...], levels: int) -> torch.Tensor:
    """Every discrete example of ``shape`` with ``levels`` values, ``(levels**D, *shape)``."""
    import itertools
    import math

    n = math.prod(shape)
    return torch.tensor(list(itertools.product(range(levels), repeat=n))).view(-1, *shape)


def assert_marginal_sums_to_one(model, shape: tuple[int, ...] = (8,), k: int = 2000) -> None:
    """A latent-variable model's importance-sampled ``p^(x) = exp(log p^(x))`` is unbiased for
    ``p(x)``: summed over every binary example of ``shape`` it is 1 within its standard error."""
    x = all_images(shape, 2)
    lp, se = model.log_prob_with_se(x, k=k)
    p = lp.double().exp()
    se_total = (p * se.double()).pow(2).sum().sqrt()  # delta method: se(p^) = p^ se(log p^)
    assert abs(p.sum() - 1) < 3 * se_total + 0.01, (float(p.sum()), float(se_total))


def fit(model, x: torch.Tensor, steps: int, batch: int, lr: float = 1e-2):
    """Adam on ``model.loss`` over ``x`` in consecutive batches (cycling); the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(x) // batch
    for i in range(steps):
        opt.zero_grad()
        model.loss({"x": x[(i % n) * batch:(i % n + 1) * batch]})["loss"].backward()
        opt.step()
    return model.eval()


def iwae_bound_means(model, x: torch.Tensor, repeats: int, ks=(1, 5, 50)) -> dict[int, torch.Tensor]:
    """``repeats`` independent draws of the mean ``L_k`` over ``x`` for each ``k``, asserting that
    ``L_1 < L_5 < L_50``: each step up beyond twice the standard error of the mean difference."""
    means = {k: torch.stack([model.iwae_bound(x, k).mean() for _ in range(repeats)]) for k in ks}
    for lo, hi in itertools.pairwise(ks):
        d = means[hi] - means[lo]  # independent draws: the SE of the mean difference
        assert d.mean() > 2 * d.std() / repeats ** 0.5 + 1e-3, (lo, hi, d)
    return means
