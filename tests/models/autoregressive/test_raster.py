"""Raster-order completion: known pixels are kept, the rest sampled given what precedes them."""

import pytest
import torch

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError

MODELS = [
    ("pixelcnn", {"hidden": 8, "num_layers": 2, "first_kernel_size": 3}),
    ("gated-pixelcnn", {"hidden": 8, "num_layers": 2, "first_kernel_size": 3}),
]
# Models without the masked-convolution options (channel_dependence) of the colour test below.
ALL_MODELS = [*MODELS, ("pixelcnn++", {"hidden": 8, "num_logistics": 2})]


def _model(name, options, shape=(1, 6, 5), levels=3, classes=None, **extra):
    torch.manual_seed(0)
    return unsup.create(name, DataSpec(shape, levels, classes), **{**options, **extra}).eval()


@pytest.mark.parametrize("name,options", ALL_MODELS)
def test_completion_keeps_known_pixels_and_fills_the_rest(name, options):
    model = _model(name, options)
    x = torch.randint(3, (4, 1, 6, 5))
    known = torch.zeros(4, 1, 6, 5, dtype=torch.bool)
    known[:, :, :3] = True  # the top half
    known[0, 0, 5, 4] = True  # and a pixel after the gap
    torch.manual_seed(1)
    out = model.complete(torch.where(known, x, -1), known)  # hidden values are ignored
    assert out.shape == x.shape and out.dtype == torch.long
    assert torch.equal(out[known], x[known])
    assert out.min() >= 0 and out.max() < 3
    torch.manual_seed(1)
    assert torch.equal(model.complete(x, known, fast=False), out)  # naive: the same draws
    assert torch.equal(model.complete(x, torch.ones_like(known)), x)  # nothing to fill in


@pytest.mark.parametrize("name,options", ALL_MODELS)
def test_completion_of_nothing_is_sampling(name, options):
    model = _model(name, options)
    x = torch.randint(3, (3, 1, 6, 5))
    torch.manual_seed(5)
    completed = model.complete(x, torch.zeros(3, 1, 6, 5, dtype=torch.bool), temperature=0.7)
    torch.manual_seed(5)
    assert torch.equal(completed, model.sample(3, temperature=0.7))


@pytest.mark.parametrize("name,options", MODELS)
def test_completion_of_colour_and_conditional_models(name, options):
    model = _model(name, options, shape=(3, 4, 4), levels=4, classes=2,
                   conditional=True, channel_dependence="autoregressive", hidden=12)
    x = torch.randint(4, (2, 3, 4, 4))
    known = torch.rand(2, 1, 4, 4) < 0.5  # whole pixels, broadcast over the colours
    y = torch.tensor([1, 0])
    out = model.complete(x, known, y=y)
    assert torch.equal(out[known.expand_as(x)], x[known.expand_as(x)])
    with pytest.raises(ConfigError, match="pass labels"):
        model.complete(x, known)
    with pytest.raises(ConfigError, match="broadcast"):
        model.complete(x, known[:, :, :2], y=y)
    with pytest.raises(ConfigError, match="values in"):
        model.complete(x + 4, known, y=y)
