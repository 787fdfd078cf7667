"""Raster-order sampling and completion for autoregressive image models.

An image model factorised in raster order (rows top to bottom, pixels left to right, and with
``G > 1`` ordered channel groups, the colours of a pixel in turn) is sampled by filling in one
pixel (colour) at a time from ``softmax(logits / T)``:

* naive (``fast=False``): every step runs the full network, ``model.logits(model.scale(x), y)``,
  and reads the logits of the next pixel -- ``H W G`` forward passes;
* cached (``fast=True``): every step asks ``model.incremental(n, y)`` -- a function
  ``(inputs, i, j) -> logits (n, C, L)`` that keeps activations between calls (see
  :mod:`unsup.nn.cached_conv`) -- for the logits at ``(i, j)`` only.

Both paths draw the same random numbers in the same order (one :func:`sample_categorical` call
per step), so for the same torch seed they return the same samples, up to floating-point ties.
Completion (:meth:`RasterSampling.complete`) is the same loop started from a partly known image:
known pixels are kept, the others sampled in raster order given everything before them
(conditionals of a raster-order model only look back, so known pixels further on are ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from unsup.errors import ConfigError
from unsup.models.base import LikelihoodModel
from unsup.nn.layers import check_temperature, sample_categorical

StepFn = Callable[[torch.Tensor, int, int], torch.Tensor]
Choose = Callable[[torch.Tensor, tuple], torch.Tensor]  # (logits (n, k, L), index) -> values (n, k)


class RasterSampling(LikelihoodModel):
    """Sampling and completion for a raster-order image model over ``L`` levels.

    Subclasses set ``image_shape = (C, H, W)`` (the data's shape, viewed as an image),
    ``levels``, ``groups`` (1: a pixel's channels drawn together; ``C``: one after another),
    and implement :meth:`scale`, :meth:`logits` and, for the cached sampler, :meth:`incremental`.
    """

    supports_fast_sampling: ClassVar[bool] = True
    completes: ClassVar[bool] = True
    codes: ClassVar[bool] = True
    image_shape: tuple[int, int, int]
    levels: int
    groups: int

    @staticmethod
    def raster_shape(spec, name: str) -> tuple[int, int, int]:
        """The data viewed as an image: ``(C, H, W)`` as is, a vector ``(D,)`` as one row.

        Raises:
            ConfigError: neither an image nor a vector.
        """
        if spec.kind == "vector" and len(spec.shape) == 1:
            return (1, 1, spec.shape[0])  # a vector is a one-row image
        if spec.kind == "image" and len(spec.shape) == 3:
            return tuple(spec.shape)
        raise ConfigError(f"{name} expects images (C, H, W) or vectors (D,), got {spec.kind} "
                          f"data of shape {spec.shape}")

    def to_walk(self, x: torch.Tensor) -> torch.Tensor:
        """Examples ``(B, *spec.shape)`` as the images :meth:`walk` fills, ``(B, C, H, W)``."""
        return x.reshape(len(x), *self.image_shape)

    def from_walk(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_walk`."""
        return z.reshape(len(z), *self.spec.shape)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``(B, C, H, W)`` to network inputs."""
        raise NotImplementedError

    def logits(self, inputs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, C, H, W, L)`` of network inputs ``(B, C, H, W)``."""
        raise NotImplementedError

    def incremental(self, n: int, y: torch.Tensor | None) -> StepFn:
        """A stateful ``(inputs, i, j) -> (n, C, L)``: the logits at ``(i, j)`` of the current
        inputs, equal to ``logits(inputs, y)[:, :, i, j]``, valid when called in raster order
        (each position one or more times, before any later one)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               fast: bool = True) -> torch.Tensor:
        """Ancestral samples in raster order, shape ``(n, *spec.shape)``.

        Args:
            n: number of samples.
            y: labels ``(n,)`` of a conditional model; default ``arange(n) % num_classes``
                (a grid with one class per column when ``n`` is a multiple of it).
            temperature: divides every conditional's logits (0: argmax).
            fast: use the cached sampler (same samples for the same seed, far fewer FLOPs);
                False runs the full network for every pixel.

        Raises:
            ConfigError: ``y`` given to an unconditional model, invalid labels or temperature.
        """
        check_temperature(temperature)
        y = self.sample_labels(y, n)
        x = torch.zeros(n, *self.image_shape, dtype=torch.long, device=self.device)
        known = torch.zeros_like(x, dtype=torch.bool)
        return self._fill(x, known, y, temperature, fast).view(n, *self.spec.shape)

    @torch.no_grad()
    def complete(self, x: torch.Tensor, known: torch.Tensor, *, temperature: float = 1.0,
                 y: torch.Tensor | None = None, fast: bool = True) -> torch.Tensor:
        """Fill in the unknown pixels of ``x`` by sampling them in raster order.

        Args:
            x: images ``(n, *spec.shape)``; values where ``known`` is False are ignored.
            known: boolean mask broadcastable to ``x`` (e.g. ``(n, 1, H, W)`` for all channels
                of a pixel); True keeps the value of ``x``.
            temperature: as in :meth:`sample`.
            y: labels ``(n,)``, required by a conditional model.
            fast: use the cached sampler.

        Returns:
            Long tensor like ``x``, equal to it wherever ``known``.

        Raises:
            ConfigError: invalid ``x``, mask, labels or temperature.
        """
        check_temperature(temperature)
        try:
            known = torch.as_tensor(known, dtype=torch.bool, device=x.device).expand_as(x)
        except RuntimeError as e:
            raise ConfigError(f"known mask of shape {tuple(known.shape)} does not broadcast to "
                              f"images of shape {tuple(x.shape)}") from e
        x = torch.where(known, x, 0)  # hidden values may be anything, e.g. -1
        self.check_input(x)
        n = len(x)
        y = self.labels(y, n)
        shape = (n, *self.image_shape)
        known = known.to(self.device).reshape(shape)
        x = x.to(self.device).reshape(shape)
        return self._fill(x, known, y, temperature, fast).view(n, *self.spec.shape)

    def _fill(self, x: torch.Tensor, known: torch.Tensor, y: torch.Tensor | None,
              temperature: float, fast: bool) -> torch.Tensor:
        """Sample every position where not ``known``, keep ``x`` where it is."""
        def choose(logits: torch.Tensor, where: tuple) -> torch.Tensor:
            return torch.where(known[where], x[where], sample_categorical(logits, temperature))

        return self.walk(x, y, choose, fast)

    def walk(self, x: torch.Tensor, y: torch.Tensor | None, choose: Choose,
             fast: bool = True) -> torch.Tensor:
        """The raster loop: at every position in the model's order, ``x[where] =
        choose(logits, where)``, where ``logits`` ``(n, k, L)`` are the conditionals there given
        ``x`` as filled so far (``k``: the channels drawn together) and ``where`` indexes ``x``
        ``(n, C, H, W)`` at that position. Sampling and completion choose by drawing; the
        lossless coder (:mod:`unsup.codec`) by coding, which needs the same logits on both
        sides: they depend only on ``x`` before ``where``, filled in the same order.
        """
        channels, height, width = self.image_shape
        step = self.incremental(len(x), y) if fast else None
        sequential = self.groups > 1
        for i in range(height):
            for j in range(width):
                for c in range(channels if sequential else 1):
                    inputs = self.scale(x)
                    if step is None:
                        logits = self.logits(inputs, y)[:, :, i, j]  # (n, C, L)
                    else:
                        logits = step(inputs, i, j)
                    pick = slice(c, c + 1) if sequential else slice(None)
                    where = (slice(None), pick, i, j)
                    x[where] = choose(logits[:, pick], where)
        return x
