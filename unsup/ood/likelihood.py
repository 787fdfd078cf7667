"""Likelihood scores: the plain negative log-likelihood and the likelihood ratio against a
background model.

**Likelihood.** A density model of the in-distribution data should give outliers low likelihood,
so the score is ``s(x) = -log2 p(x) / D`` (bits/dim; higher = more outlying). Nalisnick et al. [1]
showed that it fails: models trained on Fashion-MNIST give MNIST, and models trained on CIFAR-10
give SVHN, *higher* likelihood than their own test data. The likelihood is dominated by
low-level statistics (how much of the image is smooth background), and simpler images win.

**Likelihood ratio** (Ren et al. [2]). A *background model* ``p_0`` of the same family is trained
on inputs perturbed so that their semantic content is destroyed but their population-level
statistics survive: each value is replaced, with probability ``mu``, by a uniform random level
(``--data-opt mutate=mu``, :mod:`unsup.data.mutate`). The ratio

    LLR(x) = log p(x) - log p_0(x)

cancels what both models share (the background statistics) and keeps what only the
in-distribution model learned. The score is ``s(x) = -LLR(x) / (D ln 2)`` in bits/dim, higher =
more outlying.

**Which mu.** Ren et al. tune ``mu`` on outliers (or on simulated ones). Here the rule looks at
in-distribution data only (:func:`choose_background`): among candidate background runs (one per
``mu``), take the one whose LLR best separates held-out validation images from the same images
smoothed by a 3x3 box filter (:func:`smoothed`, a synthetic stand-in for "simpler than the data",
the failure case of plain likelihood), by AUROC; ties go to the first candidate given.

[1] E. Nalisnick, A. Matsukawa, Y. W. Teh, D. Gorur and B. Lakshminarayanan, "Do Deep Generative
    Models Know What They Don't Know?", ICLR 2019.
[2] J. Ren, P. J. Liu, E. Fertig, J. Snoek, R. Poplin, M. A. DePristo, J. V. Dillon and
    B. Lakshminarayanan, "Likelihood Ratios for Out-of-Distribution Detection", NeurIPS 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from unsup.data import DataSpec
from unsup.ood.metrics import ood_metrics
from unsup.ood.sets import quantise
from unsup.progress import progress

LN2 = math.log(2.0)


@torch.no_grad()
def nll_bits_per_dim(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256,
                     desc: str | None = None) -> np.ndarray:
    """``-log2 p(x) / D`` for every example of ``x`` (a float64 array of ``len(x)``).

    Args:
        model: a likelihood model (its ``log_prob`` in nats per example).
        x: examples of the model's spec.
        batch_size: examples per forward pass.
        desc: a progress bar's name (``None``: no bar).
    """
    model.eval()
    dims = math.prod(model.spec.shape)
    out = []
    bar = progress(math.ceil(len(x) / batch_size), desc or "", "batch", disable=desc is None, leave=False)
    try:
        for i in range(0, len(x), batch_size):
            lp = model.log_prob(x[i:i + batch_size].to(model.device))
            out.append(lp.double().cpu())
            bar.update(1)
    finally:
        bar.close()
    return (-torch.cat(out) / (dims * LN2)).numpy() if out else np.zeros(0)


def likelihood_ratio_score(nll: np.ndarray, background_nll: np.ndarray) -> np.ndarray:
    """``-LLR(x)`` in bits/dim from the two models' NLLs in bits/dim: ``nll - background_nll``
    (higher = more outlying)."""
    return np.asarray(nll, dtype=np.float64) - np.asarray(background_nll, dtype=np.float64)


def smoothed(x: torch.Tensor, spec: DataSpec, representation: str = "native") -> torch.Tensor:
    """Images blurred by a 3x3 box filter (edges replicated) and requantised to the run's levels:
    the synthetic "simpler" images of the noise-rate rule."""
    u = x.float() / (spec.levels - 1) if spec.levels is not None else x.float()
    c = u.shape[1]
    kernel = torch.full((c, 1, 3, 3), 1 / 9)
    u = F.conv2d(F.pad(u, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    return quantise(u.clamp(0, 1), spec, representation)


def choose_background(nll_val: np.ndarray, nll_corrupt: np.ndarray,
                      backgrounds: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[int, list[float]]:
    """The noise-rate rule: which background model's LLR best separates in-distribution
    validation examples from corrupted copies (the corrupted ones as the positive class).

    Args:
        nll_val: the model's NLL of the validation examples.
        nll_corrupt: the model's NLL of their corrupted copies.
        backgrounds: per candidate, the background's NLL of the same two sets.

    Returns:
        The index of the chosen candidate (the first of equal AUROCs) and every candidate's AUROC.
    """
    aurocs = [ood_metrics(likelihood_ratio_score(nll_val, val),
                          likelihood_ratio_score(nll_corrupt, corrupt))["auroc"]
              for val, corrupt in backgrounds]
    return int(np.argmax(aurocs)), aurocs
