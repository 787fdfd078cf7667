"""Predictive sparse decomposition: where the gradients flow, encode is the feed-forward predictor,
and training teaches the predictor the inferred codes."""

import pytest
import torch

from tests.models.model_checks import assert_training_reduces_loss
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import create

SPEC = DataSpec((12,), None, None, "vector")


def sparse_data(n=512, dims=12, atoms=16, seed=0):
    """Examples ``D z`` of a random unit-norm dictionary and 2-sparse codes."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(dims, atoms, generator=g)
    D = D / D.norm(dim=0)
    z = torch.zeros(n, atoms)
    z.scatter_(1, torch.rand(n, atoms, generator=g).argsort(1)[:, :2], torch.randn(n, 2, generator=g))
    return z @ D.T


def model(**opts):
    torch.manual_seed(0)
    return create("psd", SPEC, atoms=16, lam=0.1, inference_steps=30, center=False, **opts)


def test_smoke_and_training_reduces_loss():
    m, x = model(), sparse_data(64)
    out = m.loss({"x": x})
    assert set(out) == {"loss", "recon", "prediction", "sparsity"} and torch.isfinite(out["loss"])
    assert_training_reduces_loss(m, {"x": x}, lr=1e-2, steps=20)


def test_encoder_learns_only_from_the_prediction_term():
    m, x = model(alpha=0.7), sparse_data(64)
    m.loss({"x": x})  # normalise D first, so the manual pass below sees the same dictionary
    m.zero_grad()
    m.loss({"x": x})["loss"].backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    # the same z* (inference is deterministic), then each term on its own
    f = m.predict(x)
    z = m.infer(x, f)
    m.zero_grad()
    (0.7 * 0.5 * (z - f).pow(2).sum(1).mean()).backward()
    for name in ("W.weight", "W.bias", "gain"):
        torch.testing.assert_close(grads[name], dict(m.named_parameters())[name].grad)
    assert m.D.grad is None  # the prediction term does not touch the dictionary
    m.zero_grad()
    (0.5 * (x - z @ m.D.T).pow(2).sum(1).mean()).backward()
    torch.testing.assert_close(grads["D"], m.D.grad)


def test_encode_is_the_feed_forward_predictor(monkeypatch):
    m, x = model(), sparse_data(8)

    def no_inference(*args, **kwargs):
        raise AssertionError("encode must not run inference")

    monkeypatch.setattr(m, "infer", no_inference)
    expected = m.gain * torch.tanh(x @ m.W.weight.T + m.W.bias)
    torch.testing.assert_close(m.encode(x), expected)


def test_predictor_approaches_the_inferred_codes():
    m, x = model(), sparse_data()

    def prediction_error():
        with torch.no_grad():
            f = m.predict(x)
            return float((m.infer(x, f) - f).pow(2).sum(1).mean())

    before = prediction_error()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for i in range(300):
        opt.zero_grad()
        m.loss({"x": x[(i % 8) * 64:(i % 8 + 1) * 64]})["loss"].backward()
        opt.step()
    after = prediction_error()
    assert after < 0.5 * before, (before, after)


def test_bad_options():
    for opts in ({"alpha": 0.0}, {"atoms": 0}, {"inference": "lars"}):
        with pytest.raises(ConfigError):
            create("psd", SPEC, **opts)
