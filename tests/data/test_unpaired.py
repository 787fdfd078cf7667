"""unpaired-A+B: two domains side by side, never paired by index."""

import pytest
import torch

from unsup.data import load
from unsup.errors import ConfigError


def test_batches_hold_both_domains_with_b_unrelated_to_a():
    d = load("unpaired-digits+colored-digits", "test")
    a, b = load("digits", "test"), load("colored-digits", "test")
    assert d.spec == a.spec and d.spec_b == b.spec and len(d) == len(a)
    batch = d.batch(torch.arange(len(d)))
    assert torch.equal(batch["x"], a.x) and torch.equal(batch["y"], a.y)
    assert torch.equal(batch["x_b"], b.x[d.partner]) and torch.equal(batch["y_b"], b.y[d.partner])
    assert (d.partner == torch.arange(len(d))).float().mean() < 0.05  # not the same image's colouring
    part = d.subset(torch.arange(5, 9), "test")
    assert torch.equal(part.batch(torch.arange(4))["x_b"], batch["x_b"][5:9])


def test_two_image_datasets_are_needed():
    with pytest.raises(ConfigError, match="joined by"):
        load("unpaired-digits", "test")
    with pytest.raises(ConfigError, match="discrete images"):
        load("unpaired-digits+two-moons", "test")
