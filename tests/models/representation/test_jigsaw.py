"""Jigsaw puzzles: the greedy permutation set (size, distinctness, distances, determinism, carried by
checkpoints), tiles in their cells, shuffling and its inverse, labels, errors, and training."""

import pytest
import torch
from model_checks import assert_training_reduces_loss, with_fixed_draws

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.jigsaw import _all_permutations, min_hamming_distance, permutation_set
from unsup.models.representation.patches import normalise_patches

FASHION = DataSpec((1, 28, 28), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "hidden": 16, "permutations": 10}


def test_permutation_set_has_the_claimed_size_of_distinct_permutations_far_apart():
    perms = permutation_set(100, seed=0)
    assert perms.shape == (100, 9)
    assert (perms.sort(1).values == torch.arange(9)).all()  # each row a permutation of 0..8
    assert len({tuple(p) for p in perms.tolist()}) == 100
    greedy = min_hamming_distance(perms)
    g = torch.Generator().manual_seed(0)
    random = [min_hamming_distance(torch.stack([torch.randperm(9, generator=g) for _ in range(100)]))
              for _ in range(5)]
    assert greedy == 6 and max(random) <= 3  # 100 random permutations: a pair differs in <= 3 places
    assert greedy > max(random)


def test_each_greedy_choice_maximises_the_minimum_distance_to_the_earlier_ones():
    perms = permutation_set(6, seed=3)
    candidates = _all_permutations().t().long()  # (9!, 9)
    for k in range(1, 6):
        d = (candidates[:, None, :] != perms[None, :k, :]).sum(-1).min(1).values  # (9!,)
        assert (perms[k:k + 1] != perms[:k]).sum(-1).min() == d.max(), k


def test_permutation_set_is_deterministic_by_seed():
    assert torch.equal(permutation_set(20, seed=1), permutation_set(20, seed=1))
    assert not torch.equal(permutation_set(20, seed=1), permutation_set(20, seed=2))
    assert torch.equal(permutation_set(20, seed=1)[:10], permutation_set(10, seed=1))  # greedy: a prefix


def test_the_set_is_a_buffer_so_a_checkpoint_carries_it():
    a = unsup.create("jigsaw", FASHION, permutation_seed=1, **TINY)
    b = unsup.create("jigsaw", FASHION, permutation_seed=2, **TINY)
    assert "perms" in a.state_dict() and not torch.equal(a.perms, b.perms)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.perms, a.perms)


def test_tiles_lie_in_their_cells_in_reading_order():
    cell, tile = 9, 6
    model = unsup.create("jigsaw", DataSpec((1, 27, 28), None, None, "image"), cell=cell, tile=tile,
                         **TINY)
    images = torch.arange(27 * 28, dtype=torch.float).view(1, 1, 27, 28).expand(300, 1, 27, 28)
    tiles = model.tiles(images)  # (B, 9, 1, t, t)
    assert tiles.shape == (300, 9, 1, tile, tile)
    corner = tiles[:, :, 0, 0, 0].long()
    y, x = corner // 28, corner % 28
    assert torch.equal(y // cell, torch.arange(3).repeat_interleave(3).expand(300, 9))
    origin = x - torch.arange(3).repeat(3) * cell  # column inside the cell, plus the grid's offset
    assert origin.min() >= 0 and origin.max() <= 1 + cell - tile
    assert set((y % cell).flatten().tolist()) == set(range(cell - tile + 1))  # every place in the cell
    rows = y[..., None, None] + torch.arange(tile)[:, None]
    assert torch.equal(tiles[:, :, 0], (rows * 28 + x[..., None, None] + torch.arange(tile)).float())


def test_shuffle_applies_the_labelled_permutation_and_unshuffle_inverts_it():
    model = unsup.create("jigsaw", FASHION, **TINY)
    tiles = torch.rand(40, 9, 1, 7, 7)
    tiles[:, :, 0, 0, 0] = torch.arange(9.0)  # tag each tile with its place in reading order
    labels = torch.randint(10, (40,))
    puzzles = model.shuffle(tiles, labels)
    assert torch.equal(puzzles[:, :, 0, 0, 0].long(), model.perms[labels])
    assert torch.equal(model.unshuffle(puzzles, labels), tiles)
    assert not torch.equal(puzzles, tiles)


def test_tile_normalisation_gives_zero_mean_and_unit_variance_per_tile():
    out = normalise_patches(torch.rand(5, 9, 3, 7, 7) * 4 + 2)
    assert torch.allclose(out.mean((-3, -2, -1)), torch.zeros(5, 9), atol=1e-5)
    assert torch.allclose(out.var((-3, -2, -1), unbiased=False), torch.ones(5, 9), atol=1e-3)


@pytest.mark.parametrize("options, message", [
    ({"permutations": 1}, r"permutations must be in \[2, 362880\], got 1"),
    ({"tile": 10}, r"tile \(10\) must fit in its cell \(9\)"),
    ({"cell": 10}, "needs 30x30 images, got 28x28: use --cell <= 9"),
    ({"hidden": 0}, "hidden >= 1"),
])
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        unsup.create("jigsaw", FASHION, **{**TINY, **options})


@pytest.mark.parametrize("tile_norm", [True, False])
def test_one_step_smoke(tile_norm):
    model = unsup.create("jigsaw", DataSpec((3, 32, 32), 256, 10, "image"), tile_norm=tile_norm, **TINY)
    out = model.loss({"x": torch.randint(256, (4, 3, 32, 32), dtype=torch.uint8)})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and 0 <= out["accuracy"].item() <= 1
    assert model.encode(torch.randint(256, (5, 3, 32, 32))).shape == (5, model.feature_dim)


def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch():
    model = with_fixed_draws(unsup.create("jigsaw", FASHION, **TINY))  # the same puzzles every call
    assert_training_reduces_loss(model, {"x": torch.randint(256, (16, 1, 28, 28))}, lr=1e-2, steps=10)
