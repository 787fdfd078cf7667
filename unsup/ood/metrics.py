"""Detection metrics of a score that separates in-distribution inputs from outliers.

Conventions, the same for every score in :mod:`unsup.ood`:

* **outliers are the positive class** (label 1), in-distribution inputs the negative (label 0);
* every score is oriented so that **higher = more outlying** (each score's module says how).

Then, from scikit-learn:

* ``auroc`` = ``roc_auc_score``: the probability that a random outlier scores above a random
  in-distribution input (ties count one half); 1 separates perfectly, 0.5 is chance, and below
  0.5 the score ranks the two the wrong way round (the failure of plain likelihood);
* ``aupr`` = ``average_precision_score``: the area under precision-recall with outliers positive
  (often called AUPR-out); its chance level is the share of outliers, ``n_out / (n_in + n_out)``;
* ``fpr95`` = the false-positive rate at the first threshold of ``roc_curve`` that catches at least
  95 % of outliers: the share of in-distribution inputs that would be flagged. Lower is better.

Non-finite scores (a model's ``inf`` NLL of an image it cannot produce) count as the most
outlying (``+inf`` is replaced by the largest float; ``nan`` too, and the count is reported).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def finite(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Scores with ``nan``/``+inf`` as the largest float and ``-inf`` as the smallest, and how many
    were not finite."""
    s = np.asarray(scores, dtype=np.float64)
    bad = int((~np.isfinite(s)).sum())
    big = np.finfo(np.float64).max
    return np.nan_to_num(s, nan=big, posinf=big, neginf=-big), bad


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr_level: float = 0.95) -> float:
    """The false-positive rate at the first ROC threshold whose true-positive rate reaches
    ``tpr_level``."""
    from sklearn.metrics import roc_curve  # imported here: scikit-learn costs a second at CLI start

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(fpr[np.searchsorted(tpr, tpr_level, side="left")])


def ood_metrics(inliers: np.ndarray, outliers: np.ndarray) -> dict[str, Any]:
    """AUROC, AUPR (outliers positive) and FPR at 95 % TPR of scores where higher = more outlying.

    Args:
        inliers: scores of in-distribution inputs.
        outliers: scores of outliers.

    Returns:
        ``{"auroc", "aupr", "fpr95", "n_in", "n_out"}`` (and ``"nonfinite"`` when some were).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s_in, bad_in = finite(inliers)
    s_out, bad_out = finite(outliers)
    if not len(s_in) or not len(s_out):
        raise ValueError(f"need scores of both kinds, got {len(s_in)} inliers and {len(s_out)} outliers")
    labels = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    scores = np.concatenate([s_in, s_out])
    out: dict[str, Any] = {"auroc": float(roc_auc_score(labels, scores)),
                           "aupr": float(average_precision_score(labels, scores)),
                           "fpr95": fpr_at_tpr(labels, scores), "n_in": len(s_in), "n_out": len(s_out)}
    if bad_in + bad_out:
        out["nonfinite"] = bad_in + bad_out
    return out
