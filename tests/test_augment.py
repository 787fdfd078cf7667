"""Batch augmentation: shapes and range kept, views independent per image and per view, repeatable
under the seed, the identity when asked, and clear errors."""

import pytest
import torch

from unsup.augment import PIPELINES, Views, pipeline
from unsup.errors import ConfigError


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("channels, size", [(1, (28, 28)), (3, (32, 32)), (3, (12, 16))])
def test_views_keep_shape_and_range_and_repeat_under_the_seed(name, channels, size):
    views = Views(pipeline(name, channels, size))
    x = torch.rand(6, channels, *size)
    torch.manual_seed(3)
    a = views(x, 2)
    torch.manual_seed(3)
    b = views(x, 2)
    for u, v in zip(a, b, strict=True):
        assert u.shape == x.shape and u.dtype == x.dtype
        assert float(u.min()) >= 0 and float(u.max()) <= 1
        assert torch.equal(u, v)
    if name == "none":
        assert torch.equal(a[0], x) and torch.equal(a[1], x)
    else:  # two draws differ, and so do the parameters drawn for different images
        assert not torch.allclose(a[0], a[1])
        same = torch.stack([x[0]] * 6)
        out = views(same, 1)[0]
        assert not torch.allclose(out[0], out[1])


def test_crop_only_keeps_colours_and_colour_pipelines_change_them():
    # a constant-colour image: crops and flips leave it as it is, colour jitter does not
    x = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(16, 3, 8, 8).contiguous()
    torch.manual_seed(0)
    assert torch.allclose(Views(pipeline("crop", 3, (8, 8)))(x, 1)[0], x, atol=1e-5)
    out = Views(pipeline("simclr", 3, (8, 8), jitter=1.0))(x, 1)[0]
    assert (out - x).abs().amax((1, 2, 3)).gt(1e-3).float().mean() > 0.5


def test_greyscale_images_get_no_colour_only_operations():
    ops = [type(m).__name__ for m in pipeline("simclr", 1, (28, 28)).children()]
    assert "RandomGrayscale" not in ops and "ColorJitter" in ops
    assert "RandomGrayscale" in [type(m).__name__ for m in pipeline("simclr", 3, (32, 32)).children()]
    assert "RandomGaussianBlur" not in [type(m).__name__ for m in pipeline("simclr", 3, (32, 32), blur=0)
                                        .children()]


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "autoaugment"}, ["autoaugment", "simclr"]),
    ({"channels": 2}, ["1 or 3", "2"]),
    ({"blur": 1.5}, ["blur", "1.5"]),
    ({"jitter": -1.0}, ["jitter", "-1.0"]),
])
def test_bad_options_are_named(kwargs, words):
    args = {"name": "simclr", "channels": 3, "size": (8, 8), **kwargs}
    with pytest.raises(ConfigError) as e:
        pipeline(**args)
    assert all(w in str(e.value) for w in words), str(e.value)
