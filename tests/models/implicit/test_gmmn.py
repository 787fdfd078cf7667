"""The generative moment-matching network."""

import pytest
import torch

import unsup
from unsup.data import load
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.nn.mmd import mmd2


def test_loss_is_the_root_of_the_mmd_and_validation_reports_mmd2():
    torch.manual_seed(0)
    model = unsup.create("gmmn", DataSpec((2,), None, None, "vector"), hidden=8, bandwidths=[1.0])
    x = torch.randn(64, 2)
    torch.manual_seed(1)
    out = model.loss({"x": x})
    torch.manual_seed(1)
    fake = model.draw(64, None, 1.0)
    expected = mmd2(x, fake, [1.0])
    torch.testing.assert_close(out["mmd2"], expected.detach())
    torch.testing.assert_close(out["loss"], expected.clamp_min(0).add(1e-12).sqrt())
    model.eval()
    with torch.no_grad():
        assert set(model.loss({"x": x})) == {"loss"}


def test_training_matches_the_moments_of_2d_data():
    train = load("gaussian-grid", "train", n=2000, k=2)
    torch.manual_seed(0)
    model = unsup.create("gmmn", train, hidden=32, layers=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = train.x[:512]
    model.eval()
    with torch.no_grad():
        before = float(model.loss({"x": x})["loss"])
    model.train()
    for _ in range(150):
        loss = model.loss({"x": train.x[torch.randint(len(train), (256,))]})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(model.loss({"x": x})["loss"])
    assert after < before / 4
    samples = model.sample(2000)
    torch.testing.assert_close(samples.mean(0), train.x.mean(0), atol=0.05, rtol=0)


def test_bad_bandwidths_are_refused():
    with pytest.raises(ConfigError, match="bandwidths must be positive"):
        unsup.create("gmmn", DataSpec((2,), None, None, "vector"), bandwidths=[1.0, 0.0])


def test_the_default_mlp_generator_makes_images():
    model = unsup.create("gmmn", DataSpec((1, 28, 28), 256, None, "image"), hidden=8)
    assert model.config.arch == "mlp"
    x = model.sample(3)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.long
    model.loss({"x": x})
