"""Sparse coding: a dictionary whose few active atoms reconstruct each example (Olshausen & Field [1]).

An example ``x`` (a flat vector, e.g. an image patch) is explained by a code ``z`` over the
``K`` columns (atoms) of a dictionary ``D`` (``dims x K``, unit-norm columns):

    E(x, z; D) = 1/2 ||x - D z||^2 + lam ||z||_1,            z*(x) = argmin_z E(x, z; D).

Inference is the proximal gradient method on the smooth part ``f(z) = 1/2 ||x - D z||^2``, whose
gradient ``D^T (D z - x)`` is ``L``-Lipschitz with ``L`` the largest eigenvalue of ``D^T D``:

    ISTA [2]:  z <- S_{lam/L}(z - grad f(z) / L),    S_t(v) = sign(v) max(|v| - t, 0),

an ``O(1/k)`` objective gap after ``k`` steps; FISTA [3] evaluates the step at an extrapolated
point ``y = z_k + (t_{k-1} - 1) / t_k (z_k - z_{k-1})``, ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``,
which gives ``O(1/k^2)``. Both accept an extra quadratic ``alpha/2 ||z - target||^2`` in the smooth
part (``L`` grows by ``alpha``), which predictive sparse decomposition
(:mod:`unsup.models.representation.psd`)
needs.

Learning alternates inference and a gradient step on ``D``: ``loss`` infers ``z*`` without
gradient (FISTA by default) and returns the mean of ``E(x, z*; D)``, whose gradient w.r.t. ``D``,
``(D z* - x) z*^T``, is the dictionary update of [1]; the ``lam ||z*||_1`` term has no gradient
but is the objective being minimised, so it is logged as part of the loss. Without a norm
constraint the L1 penalty would be beaten by growing ``D`` and shrinking ``z``, so the columns
are renormalised to unit length. The training loop only calls ``loss`` and ``optimizer.step``;
the renormalisation happens in place at the start of :meth:`SparseCoding.loss` (and
:meth:`encode` uses the normalised dictionary without changing it), so every inference sees
unit-norm atoms and a step's drift off the sphere is undone before it matters.

References:
    [1] B. A. Olshausen, D. J. Field. Emergence of simple-cell receptive field properties by
        learning a sparse code for natural images. Nature 381, 1996.
    [2] I. Daubechies, M. Defrise, C. De Mol. An iterative thresholding algorithm for linear
        inverse problems with a sparsity constraint. Comm. Pure Appl. Math. 57, 2004.
    [3] A. Beck, M. Teboulle. A fast iterative shrinkage-thresholding algorithm for linear inverse
        problems. SIAM J. Imaging Sciences 2(1), 2009.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch, Model

INFERENCE = ("ista", "fista")


def soft_threshold(v: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """``S_t(v) = sign(v) max(|v| - t, 0)``, the proximal operator of ``t ||.||_1``."""
    return torch.sign(v) * torch.clamp(v.abs() - t, min=0.0)


def lipschitz(D: torch.Tensor) -> torch.Tensor:
    """``L``, the largest eigenvalue of ``D^T D`` (the squared spectral norm of ``D``)."""
    return torch.linalg.matrix_norm(D.detach(), ord=2) ** 2


def energy(x: torch.Tensor, D: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    """``1/2 ||x - D z||^2 + lam ||z||_1`` per example, ``(B,)``; ``x (B, dims)``, ``z (B, K)``."""
    return 0.5 * (x - z @ D.T).pow(2).sum(1) + lam * z.abs().sum(1)


def _smooth_grad(x: torch.Tensor, D: torch.Tensor, z: torch.Tensor, alpha: float,
                 target: torch.Tensor | None) -> torch.Tensor:
    """Gradient of ``1/2 ||x - D z||^2 + alpha/2 ||z - target||^2`` w.r.t. ``z``, ``(B, K)``."""
    g = (z @ D.T - x) @ D
    return g if target is None else g + alpha * (z - target)


def _start(x: torch.Tensor, D: torch.Tensor, z0: torch.Tensor | None, alpha: float,
           target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if (target is None) != (alpha == 0):
        raise ConfigError("give both alpha > 0 and a target for the prediction term, or neither")
    z = torch.zeros(len(x), D.shape[1], dtype=x.dtype, device=x.device) if z0 is None else z0.clone()
    return z, lipschitz(D) + alpha


@torch.no_grad()
def ista(x: torch.Tensor, D: torch.Tensor, lam: float, steps: int, z0: torch.Tensor | None = None,
         *, alpha: float = 0.0, target: torch.Tensor | None = None) -> torch.Tensor:
    """ISTA [2]: ``steps`` proximal gradient steps of size ``1/L`` on ``E(x, z; D)``.

    Args:
        x: examples, ``(B, dims)``.
        D: dictionary, ``(dims, K)``.
        lam: L1 weight.
        steps: iterations.
        z0: starting codes, ``(B, K)`` (default zeros).
        alpha: weight of an extra ``alpha/2 ||z - target||^2`` term (PSD's prediction term).
        target: its target codes, ``(B, K)``.

    Returns:
        The codes, ``(B, K)``.
    """
    z, L = _start(x, D, z0, alpha, target)
    for _ in range(steps):
        z = soft_threshold(z - _smooth_grad(x, D, z, alpha, target) / L, lam / L)
    return z


@torch.no_grad()
def fista(x: torch.Tensor, D: torch.Tensor, lam: float, steps: int, z0: torch.Tensor | None = None,
          *, alpha: float = 0.0, target: torch.Tensor | None = None) -> torch.Tensor:
    """FISTA [3]: ISTA's step taken at a momentum-extrapolated point; arguments as :func:`ista`."""
    z, L = _start(x, D, z0, alpha, target)
    y, t = z, 1.0
    for _ in range(steps):
        z_next = soft_threshold(y - _smooth_grad(x, D, y, alpha, target) / L, lam / L)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = z_next + ((t - 1) / t_next) * (z_next - z)
        z, t = z_next, t_next
    return z


INFER = {"ista": ista, "fista": fista}


def unit_columns(D: torch.Tensor) -> torch.Tensor:
    """``D`` with each column scaled to unit Euclidean norm."""
    return D / D.norm(dim=0, keepdim=True).clamp_min(1e-12)


def flat_inputs(model: Model, x: torch.Tensor, center: bool) -> torch.Tensor:
    """Checked continuous examples as ``(B, dims)`` floats on the model's device, each with its
    own mean removed when ``center``."""
    model.check_input(x)
    x = x.to(model.device).float().flatten(1)  # (B, dims)
    return x - x.mean(1, keepdim=True) if center else x


def check_sparse_options(name: str, atoms: int, lam: float, inference: str, steps: int) -> None:
    """Raise a :class:`ConfigError` for options out of range (shared with PSD)."""
    if atoms < 1:
        raise ConfigError(f"{name}: atoms must be >= 1, got {atoms}")
    if not lam >= 0:
        raise ConfigError(f"{name}: lam must be >= 0, got {lam}")
    if inference not in INFERENCE:
        raise ConfigError(f"{name}: inference must be {' or '.join(INFERENCE)}, got {inference!r}")
    if steps < 1:
        raise ConfigError(f"{name}: inference_steps must be >= 1, got {steps}")


@dataclass
class SparseCodingConfig:
    """Hyper-parameters of :class:`SparseCoding`.

    Attributes:
        atoms: dictionary size K (columns of D); more than the data's dimensions is overcomplete.
        lam: weight of the L1 penalty lam ||z||_1 (relative to 1/2 ||x - D z||^2).
        inference: ``fista`` or ``ista``, the algorithm that infers the codes.
        inference_steps: iterations of that algorithm per batch (and in encode).
        center: remove each example's mean before coding (patches: their brightness).
    """

    atoms: int = 128
    lam: float = 0.5
    inference: str = "fista"
    inference_steps: int = 100
    center: bool = True


@register("sparse-coding", "sparse coding: a unit-norm dictionary learned with L1-sparse codes "
          "inferred by ISTA/FISTA (flat vectors or patches)",
          presets={"paper": {"atoms": 192, "lam": 0.5, "inference": "fista", "inference_steps": 200}})
class SparseCoding(Model):
    """Dictionary learning with L1-sparse codes (module docstring).

    Raises:
        ConfigError: discrete data, or options out of range.
    """

    Config = SparseCodingConfig
    encodes = True

    def __init__(self, spec: DataSpec, config: SparseCodingConfig) -> None:
        super().__init__(spec, config)
        self.require(levels=False)
        c = config
        check_sparse_options("sparse-coding", c.atoms, c.lam, c.inference, c.inference_steps)
        self.D = nn.Parameter(unit_columns(torch.randn(spec.dims, c.atoms)))  # (dims, K)

    @property
    def dictionary(self) -> torch.Tensor:
        """``D`` with unit-norm columns, ``(dims, K)`` (no gradient)."""
        return unit_columns(self.D.detach())

    @torch.no_grad()
    def normalise_(self) -> None:
        """Rescale the columns of the parameter ``D`` to unit norm, in place."""
        self.D.copy_(unit_columns(self.D))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse codes of flat examples ``(B, dims)`` under the current dictionary, ``(B, K)``."""
        c = self.config
        return INFER[c.inference](x, self.dictionary, c.lam, c.inference_steps)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The sparse codes ``z*`` of raw examples (mean-removed when ``center``), ``(B, K)``."""
        return self.infer(flat_inputs(self, x, self.config.center))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.normalise_()  # undo the last optimiser step's drift off unit norm
        x = flat_inputs(self, batch["x"], self.config.center)
        z = self.infer(x)  # (B, K), no gradient: only D learns
        e = energy(x, self.D, z, self.config.lam).mean()
        mse = (x - z @ self.D.detach().T).pow(2).mean()
        return {"loss": e, "mse": mse, "sparsity": (z != 0).float().mean()}
