"""colored-NAME: a random colour per image, k levels per channel."""

from __future__ import annotations

import pytest
import torch

from unsup.data import load
from unsup.errors import ConfigError


def test_colored_digits() -> None:
    grey = load("digits", "test")
    ds = load("colored-digits", "test")
    assert ds.x.shape == (len(grey), 3, 8, 8) and ds.spec.levels == 4
    assert int(ds.x.max()) == 3 and int(ds.x.min()) == 0
    assert torch.equal(ds.y, grey.y) and ds.class_names == grey.class_names
    # black stays black, and every image's brightest pixel reaches the top level in some channel
    assert bool((ds.x[(grey.x == 0).expand_as(ds.x)] == 0).all())
    full = (grey.x[:, 0] == 16).flatten(1).any(1)
    assert bool((ds.x.flatten(1).amax(1)[full] == 3).all())
    # one colour per image: all its full-intensity pixels get the same RGB; images differ
    colours = set()
    for g, c in zip(grey.x[full, 0], ds.x[full], strict=True):
        rgb = c[:, g == 16]  # (3, pixels)
        assert bool((rgb == rgb[:, :1]).all())
        colours.add(tuple(rgb[:, 0].tolist()))
    assert len(colours) > 10


def test_colours_fixed_for_test_seeded_for_train() -> None:
    assert torch.equal(load("colored-digits", "test", seed=0).x,
                       load("colored-digits", "test", seed=3).x)
    a = load("colored-digits", "train", seed=0).x
    assert torch.equal(a, load("colored-digits", "train", seed=0).x)
    assert not torch.equal(a, load("colored-digits", "train", seed=1).x)


def test_option_k_and_passthrough() -> None:
    ds = load("colored-shapes", "test", k=8, n_test=50)
    assert ds.spec.levels == 8 and len(ds) == 50 and ds.spec.num_classes == 4
    assert load("colored-digits", "test", "binary").spec.levels == 2


def test_rejects_non_greyscale() -> None:
    with pytest.raises(ConfigError, match="not a single-channel"):
        load("colored-two-moons")
    with pytest.raises(ConfigError, match="k=1"):
        load("colored-digits", k=1)
