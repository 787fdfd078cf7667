"""Jigsaw puzzles (Noroozi and Favaro 2016): which permutation shuffled these 9 tiles?

A ``3 x 3`` grid of ``cell x cell`` cells is placed at a random position inside each image and a
``tile x tile`` tile is cut at a random position inside each cell, so that neighbouring tiles are
separated by a random gap (on average ``cell - tile`` pixels): edges and textures that continue
across tiles would otherwise solve the puzzle without understanding it [1]. With ``t_0 .. t_8`` the
tiles in reading order and a permutation ``pi`` drawn from a fixed set ``{pi_1 .. pi_P}`` (label
``y ~ U{0..P-1}``), position ``i`` of the puzzle receives tile ``t_{pi(i)}``. Every tile goes
through the same backbone ``f`` (the "context-free network": a siamese network with shared
weights, each tile seen alone), the 9 feature vectors are concatenated in puzzle order and an MLP
``g`` classifies the permutation:

    L = -(1/B) sum_b log softmax(g([f(t_{pi_y(0)}), ..., f(t_{pi_y(8)})]))[y].

Per-tile normalisation (``tile_norm``, default on, as in [1]): each tile is standardised to zero
mean and unit variance, so the tiles' brightness and contrast (which vary smoothly over an image)
cannot tell their places. [1] also jitters the colour channels and uses some grayscale images
against chromatic aberration; that is not done here (see :mod:`~unsup.models.representation.relative_patch`).

The permutation set. The task's difficulty depends on how far apart the permutations are: two
permutations that differ in one swap can only be told apart by those two tiles. The set is chosen
greedily among all ``9! = 362880`` permutations, by Hamming distance ``d(p, q) = #{i: p(i) != q(i)}``:
start from a random permutation, then repeatedly add the candidate ``q`` maximising
``min_{p in set} d(p, q)``; ties are broken by the largest *total* distance ``sum_p d(p, q)`` (the
criterion of [1]'s Algorithm 1, which maximises the average distance), then at random. The choice
is deterministic for a given (``permutations``, ``permutation_seed``), vectorised over the 9!
candidates (~10 ms per added permutation on one core, cached per process), and the set is a buffer
of the model, so checkpoints carry it. With seed 0 the minimum distance of 100 permutations is 6
and their mean distance 8.08 (100 random permutations: minimum 2 or 3); of [1]'s 1000, 5 and 8.01
(1000 random ones: 0, duplicates).

References:
    [1] Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving Jigsaw
        Puzzles. ECCV 2016.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.backbones import RESNET18, BackboneConfig
from unsup.models.representation.base import RepresentationModel
from unsup.models.representation.patches import classifier, crop_patches, normalise_patches

TILES = 9
ALL = math.factorial(TILES)


@dataclass
class JigsawConfig(BackboneConfig):
    """Hyper-parameters of :class:`Jigsaw`.

    Attributes:
        cell: side of the cells of the 3x3 grid (the grid needs 3 x cell pixels per side).
        tile: side of the tile cut at a random position inside each cell (<= cell; the
            difference is the random gap between tiles).
        permutations: size P of the permutation set, the number of classes.
        permutation_seed: seed of the greedy choice of the permutation set.
        hidden: units of the hidden layer of the MLP on the 9 concatenated features.
        tile_norm: standardise each tile to zero mean and unit variance.
    """

    cell: int = 9
    tile: int = 7
    permutations: int = 100
    permutation_seed: int = 0
    hidden: int = 256
    tile_norm: bool = True


@functools.cache
def _all_permutations() -> torch.Tensor:
    """Every permutation of 9 tiles, position-major: ``(9, 9!)`` uint8, row ``i`` holding the tile
    that each permutation puts at position ``i``."""
    return torch.from_numpy(np.array(list(itertools.permutations(range(TILES))), dtype=np.uint8).T.copy())


def _distances_to(candidates: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Hamming distances of every candidate (``(9, N)``) to permutation ``p`` (``(9,)``), ``(N,)``."""
    d = torch.zeros(candidates.shape[1], dtype=torch.int32)
    for i in range(TILES):  # one comparison per position: 5x faster than (N, 9) != (9,)
        d += candidates[i] != p[i]
    return d


@functools.cache
def _permutation_set(count: int, seed: int) -> torch.Tensor:
    candidates = _all_permutations()
    g = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(ALL, (1,), generator=g))]
    d = _distances_to(candidates, candidates[:, chosen[0]])
    min_d, sum_d = d, d.clone()  # chosen ones have min_d = 0 and are never picked again
    for _ in range(count - 1):
        score = min_d * (TILES * count + 1) + sum_d  # lexicographic: min distance, then total
        ties = (score == score.max()).nonzero().flatten()
        chosen.append(int(ties[torch.randint(len(ties), (1,), generator=g)]))
        d = _distances_to(candidates, candidates[:, chosen[-1]])
        min_d = torch.minimum(min_d, d)
        sum_d += d
    return candidates[:, chosen].t().long()  # (count, 9)


def permutation_set(count: int, seed: int = 0) -> torch.Tensor:
    """The greedy max-min-Hamming-distance set of ``count`` permutations of 9 tiles, ``(count, 9)``.

    Raises:
        ConfigError: ``count`` outside ``[2, 9!]``.
    """
    if not 2 <= count <= ALL:
        raise ConfigError(f"jigsaw permutations must be in [2, {ALL}], got {count}")
    return _permutation_set(count, seed).clone()


def min_hamming_distance(perms: torch.Tensor) -> int:
    """The smallest Hamming distance between two different rows of ``perms`` ``(P, n)``."""
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)  # (P, P)
    d.fill_diagonal_(perms.shape[1] + 1)
    return int(d.min())


@register("jigsaw", "jigsaw puzzles: the backbone encodes 9 shuffled tiles, an MLP tells which of "
          "P permutations shuffled them",
          presets={"paper": {**RESNET18,
                             "cell": 75, "tile": 64, "permutations": 1000, "hidden": 4096}})
class Jigsaw(RepresentationModel):
    """Shared tile encoder + MLP classifying the permutation of a 3x3 puzzle.

    Attributes:
        perms: the permutation set, ``(P, 9)`` long, a buffer.

    Raises:
        ConfigError: the grid does not fit the images, a tile larger than its cell, a
            non-positive size, or ``permutations`` outside ``[2, 9!]``.
    """

    Config = JigsawConfig

    def __init__(self, spec: DataSpec, config: JigsawConfig) -> None:
        super().__init__(spec, config)
        c = config
        if c.tile < 1 or c.hidden < 1:
            raise ConfigError(f"jigsaw needs tile >= 1 and hidden >= 1, got tile={c.tile}, hidden={c.hidden}")
        if c.tile > c.cell:
            raise ConfigError(f"jigsaw tile ({c.tile}) must fit in its cell ({c.cell}): "
                              f"use --tile <= {c.cell}")
        H, W = spec.shape[1:]
        if 3 * c.cell > min(H, W):
            raise ConfigError(f"jigsaw's 3x3 grid of {c.cell}-pixel cells needs {3 * c.cell}x{3 * c.cell} "
                              f"images, got {H}x{W}: use --cell <= {min(H, W) // 3} (and --tile <= cell)")
        self.register_buffer("perms", permutation_set(c.permutations, c.permutation_seed))
        self.head = classifier(TILES * self.feature_dim, c.permutations, c.hidden)

    def tiles(self, images: torch.Tensor) -> torch.Tensor:
        """The 9 tiles of each image in reading order, at random places, ``(B, 9, C, tile, tile)``."""
        c, dev, B = self.config, images.device, len(images)
        H, W = images.shape[2:]
        cells = torch.arange(3, device=dev) * c.cell
        top = torch.randint(H - 3 * c.cell + 1, (B, 1), device=dev) + cells.repeat_interleave(3)  # (B, 9)
        left = torch.randint(W - 3 * c.cell + 1, (B, 1), device=dev) + cells.repeat(3)
        top = top + torch.randint(c.cell - c.tile + 1, (B, TILES), device=dev)  # place inside the cell
        left = left + torch.randint(c.cell - c.tile + 1, (B, TILES), device=dev)
        return crop_patches(images, top, left, c.tile)

    def shuffle(self, tiles: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The puzzles: position ``i`` of puzzle ``b`` gets tile ``perms[labels[b], i]``.

        Args:
            tiles: ``(B, 9, ...)`` in reading order.
            labels: ``(B,)`` indices into the permutation set.
        """
        index = self.perms[labels]  # (B, 9)
        return tiles[torch.arange(len(tiles), device=tiles.device)[:, None], index]

    def unshuffle(self, puzzles: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`shuffle`: the tiles back in reading order."""
        inverse = self.perms[labels].argsort(1)  # (B, 9)
        return puzzles[torch.arange(len(puzzles), device=puzzles.device)[:, None], inverse]

    def logits(self, puzzles: torch.Tensor) -> torch.Tensor:
        """Scores of the P permutations for puzzles ``(B, 9, C, t, t)``, ``(B, P)``."""
        B = len(puzzles)
        if self.config.tile_norm:
            puzzles = normalise_patches(puzzles)
        h = self.features(puzzles.flatten(0, 1)).view(B, -1)  # (B, 9 D) in puzzle order
        return self.head(h)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        tiles = self.tiles(self.images(batch["x"]))
        labels = torch.randint(len(self.perms), (len(tiles),), device=tiles.device)
        logits = self.logits(self.shuffle(tiles, labels))
        return {"loss": F.cross_entropy(logits, labels),
                "accuracy": (logits.argmax(1) == labels).float().mean()}
