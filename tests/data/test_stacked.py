"""stacked-NAME: three images of a greyscale dataset as the channels of one."""

import pytest
import torch

from unsup.data import load
from unsup.errors import ConfigError


def test_each_channel_is_an_image_of_the_base_and_the_label_encodes_the_three_classes():
    base = load("digits", "test")
    stacks = load("stacked-digits", "test", n=50)
    assert stacks.x.shape == (50, 3, 8, 8) and stacks.spec.levels == 17 and stacks.spec.num_classes == 1000
    images = {tuple(img.flatten().tolist()): int(y) for img, y in zip(base.x, base.y, strict=True)}
    for x, y in zip(stacks.x, stacks.y, strict=True):
        classes = [images[tuple(x[c].flatten().tolist())] for c in range(3)]
        assert int(y) == 100 * classes[0] + 10 * classes[1] + classes[2]
    assert stacks.class_names[int(stacks.y[0])] == f"{int(stacks.y[0]):03d}"


def test_splits_are_fixed_and_train_follows_the_seed():
    assert torch.equal(load("stacked-digits", "test", n=10).x, load("stacked-digits", "test", n=10).x)
    a, b = (load("stacked-digits", "train", n=10, seed=s).x for s in (0, 1))
    assert not torch.equal(a, b)


def test_only_greyscale_discrete_images_stack():
    with pytest.raises(ConfigError, match="single-channel"):
        load("stacked-two-moons", "test")
    with pytest.raises(ConfigError, match="n=0"):
        load("stacked-digits", "test", n=0)
