"""Judging frozen features with labels: linear, k-nearest-neighbour and MLP probes.

An unsupervised model is useful as a *representation* if simple classifiers trained on its frozen
features ``h(x)`` recover the labels it never saw. ``unsup probe RUN`` measures that for the
any model that ``encodes``, through :meth:`Model.representation <unsup.models.base.Model.representation>`
(the VAE family's posterior mean ``E_q[z | x]``, a flow's ``z = f(x)``, a VQ-VAE's encoder
output, a GAN's or EBM's discriminator features, a diffusion model's denoiser features, a
representation method's encoder):

* **linear** probe: multinomial logistic regression on standardised features, the inverse
  regularisation ``C`` picked on the validation split from a small grid -- the standard "linear
  evaluation protocol" of representation learning [1, 2];
* **kNN**: cosine ``k``-nearest-neighbour accuracy (``k`` picked on validation from {1, 5, 20}), a
  probe with no trained parameters at all [3];
* **MLP**: one hidden layer of 256 ReLU units, trained with Adam and stopped at the epoch with the
  best validation accuracy, which shows what a small non-linear read-out adds.

Only a label subset is used for fitting (``--labels 1%|10%|100%``): a class-stratified, seeded
sample of the training split, so that 1 % still has every class. Standardisation and PCA use all
training examples *without* their labels (unsupervised statistics, as the encoder itself did). The
validation split only tunes ``C``, ``k`` and the MLP's epoch; the reported number is test accuracy.

A number means little without baselines computed by the same code on the same labels: raw
pixels, PCA to the features' dimension (the linear unsupervised method), k-means features (``K``
centroids fitted on the unlabelled training pixels, ``K`` = the features' dimension, each example
coded by the "triangle" activation ``max(0, mean_k d_k - d_k)`` of its distances ``d_k`` to the
centroids [5]), and the same network with random, untrained weights (random features are a
surprisingly strong baseline for kNN and linear probes on small images [4]). On audio the raw
samples stand in for the pixels (``raw``) and MFCC statistics (:func:`unsup.audio.mfcc_features`),
the hand-made features of speaker recognition, join them. A representation earns its keep by
beating all of them.

Frozen features are half of the question; the other half is whether pretraining *cuts the labels
a task needs* when the whole network may adapt. :func:`finetune` trains the encoder together with
a new linear layer on the label subset (cross-entropy, Adam, the step with the best validation
accuracy kept) twice: from the run's weights and from a fresh initialisation of the same
architecture -- supervised training from scratch on exactly the same labels, the baseline that
label-efficient pretraining must beat [6].

References:
    [1] Zhang, Isola, Efros. Colorful Image Colorization. ECCV 2016 (linear probes of frozen
        features).
    [2] Kolesnikov, Zhai, Beyer. Revisiting Self-Supervised Visual Representation Learning. CVPR
        2019.
    [3] Wu, Xiong, Yu, Lin. Unsupervised Feature Learning via Non-Parametric Instance
        Discrimination. CVPR 2018 (kNN evaluation).
    [4] Saxe, Koh, Chen, Bhand, Suresh, Ng. On Random Weights and Unsupervised Feature Learning.
        ICML 2011.
    [5] Coates, Lee, Ng. An Analysis of Single-Layer Networks in Unsupervised Feature Learning.
        AISTATS 2011.
    [6] Henaff et al. Data-Efficient Image Recognition with Contrastive Predictive Coding. ICML
        2020 (fine-tuning with 1 % .. 100 % of the labels against supervised training).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unsup.audio import AUDIO, mfcc_features
from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import ConfigError
from unsup.progress import progress

LABEL_FRACTIONS = {"1%": 0.01, "10%": 0.1, "100%": 1.0}
C_GRID = (0.01, 0.1, 1.0, 10.0)
K_GRID = (1, 5, 20)
PROBES = ("linear", "knn", "mlp")
TSNE_POINTS = 2000
TSNE_ITERATIONS = 1000  # sklearn's default; the cost is mostly per iteration, not per point


def parse_probes(text: str) -> tuple[str, ...]:
    """``"linear,knn"`` -> ``("linear", "knn")``, in :data:`PROBES` order.

    Raises:
        ConfigError: an empty list or an unknown probe.
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in PROBES]
    if unknown or not names:
        raise ConfigError(f"--probes takes a comma-separated list of {', '.join(PROBES)}, got {text!r}")
    return tuple(p for p in PROBES if p in names)


def parse_labels(text: str) -> float:
    """``"10%"`` -> 0.1; only the fractions of :data:`LABEL_FRACTIONS`.

    Raises:
        ConfigError: any other value.
    """
    if text not in LABEL_FRACTIONS:
        raise ConfigError(f"--labels must be one of {', '.join(LABEL_FRACTIONS)}, got {text!r}")
    return LABEL_FRACTIONS[text]


def stratified_subset(y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded sample of ``fraction`` of each class (at least one per class),
    so that the label subset has the class balance of ``y`` and every class in it."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n = max(1, int(round(len(members) * fraction)))
        picked.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(picked))


# ----------------------------------------------------------------------------------- features

def encoder_features(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """``model.representation`` of examples ``x`` in batches without gradients: ``(N, D)``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            h = [model.representation(xb).flatten(1).float().cpu() for xb in x.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(h).numpy().astype(np.float64)


def pixel_features(x: torch.Tensor, spec: DataSpec) -> np.ndarray:
    """Examples as flat vectors, discrete levels scaled to [0, 1]: ``(N, dims)``."""
    v = x.flatten(1).double()
    return (v / (spec.levels - 1) if spec.levels else v).numpy()


def fixed_examples(ds: TensorDataset, seed: int = 0) -> torch.Tensor:
    """All of ``ds.x`` as the model sees it; a dynamically binarised split is drawn once, seeded,
    so that features are a function of the data."""
    return ds.batch(torch.arange(len(ds)), generator=torch.Generator().manual_seed(seed))["x"]


# ------------------------------------------------------------------------------------- probes

def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    return [scaler.transform(a) for a in others]


def linear_probe(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
                 xte: np.ndarray, yte: np.ndarray, grid: tuple[float, ...] = C_GRID) -> dict[str, Any]:
    """Multinomial logistic regression on (already standardised) features; ``C`` by validation
    accuracy. Returns test ``accuracy``, ``val_accuracy`` and the chosen ``C``.

    The grid is walked from the strongest regularisation up, each fit starting from the previous
    solution (a warm-started regularisation path): the objective is strictly convex, so a fit that
    converges finds the cold-started solution (to the solver's tolerance) in about half the L-BFGS
    iterations; one stopped by ``max_iter`` may end slightly elsewhere."""
    from sklearn.linear_model import LogisticRegression

    best: tuple[float, float, float] = (-1.0, 0.0, 0.0)
    clf = LogisticRegression(max_iter=1000, warm_start=True)
    for c in sorted(grid):
        clf.set_params(C=c).fit(xtr, ytr)
        acc = clf.score(xva, yva)
        if acc > best[0]:
            best = (acc, c, clf.score(xte, yte))
    return {"accuracy": float(best[2]), "val_accuracy": float(best[0]), "C": best[1]}


def knn_probe(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
              xte: np.ndarray, yte: np.ndarray, grid: tuple[int, ...] = K_GRID) -> dict[str, Any]:
    """Cosine-distance k-nearest-neighbour vote; ``k`` (capped at the labelled examples) by
    validation accuracy. Returns test ``accuracy``, ``val_accuracy`` and ``k``."""
    from sklearn.neighbors import KNeighborsClassifier

    best: tuple[float, int, Any] = (-1.0, 0, None)
    for k in sorted({min(k, len(xtr)) for k in grid}):
        clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(xtr, ytr)
        acc = clf.score(xva, yva)
        if acc > best[0]:
            best = (acc, k, clf)
    return {"accuracy": float(best[2].score(xte, yte)), "val_accuracy": float(best[0]), "k": best[1]}


def mlp_probe(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
              xte: np.ndarray, yte: np.ndarray, hidden: int = 256, seed: int = 0,
              patience: int = 10) -> dict[str, Any]:
    """One hidden layer, Adam, early stopping on the *validation split*.

    sklearn's own ``early_stopping`` would carve its validation set out of the label subset,
    which at 1 % is a handful of examples; here each ``partial_fit`` is one epoch and the weights
    of the epoch with the best validation accuracy are kept. Small label sets get more epochs
    (up to ~500 optimiser steps) so that they are not stopped before they have learnt.
    Returns test ``accuracy``, ``val_accuracy`` and the chosen ``epochs``."""
    from sklearn.neural_network import MLPClassifier

    classes = np.unique(np.concatenate([ytr, yva, yte]))
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, batch_size=min(200, len(xtr)),
                        random_state=seed)
    steps_per_epoch = math.ceil(len(xtr) / clf.batch_size)
    max_epochs = min(500, max(50, math.ceil(500 / steps_per_epoch)))
    best: tuple[float, int, Any] = (-1.0, 0, None)
    for epoch in range(1, max_epochs + 1):
        clf.partial_fit(xtr, ytr, classes=classes)
        acc = clf.score(xva, yva)
        if acc > best[0]:
            best = (acc, epoch, copy.deepcopy(clf))
        elif epoch - best[1] >= patience:
            break
    return {"accuracy": float(best[2].score(xte, yte)), "val_accuracy": float(best[0]),
            "epochs": best[1]}


PROBE_FUNCTIONS = {"linear": linear_probe, "knn": knn_probe, "mlp": mlp_probe}


def probe_features(feats: dict[str, np.ndarray], y: dict[str, np.ndarray], labelled: np.ndarray,
                   seed: int = 0, probes: tuple[str, ...] = PROBES) -> dict[str, Any]:
    """All probes on one feature set.

    Args:
        feats: ``{"train", "val", "test"}`` -> features ``(N, D)``.
        y: the same splits -> labels ``(N,)``.
        labelled: indices into the train split whose labels the probes may use.
        seed: the MLP's initialisation.
        probes: which of :data:`PROBES` to fit.

    Returns:
        ``{"dim": D, "linear": {...}, "knn": {...}, "mlp": {...}}`` (the chosen probes), each with
        test ``accuracy``.
    """
    xtr, xva, xte = _standardise(feats["train"], feats["train"][labelled], feats["val"], feats["test"])
    args = (xtr, y["train"][labelled], xva, y["val"], xte, y["test"])
    out: dict[str, Any] = {"dim": int(feats["train"].shape[1])}
    for name in probes:
        out[name] = mlp_probe(*args, seed=seed) if name == "mlp" else PROBE_FUNCTIONS[name](*args)
    return out


def pca_features(train: np.ndarray, others: dict[str, np.ndarray], dim: int, seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """PCA to ``dim`` components, fitted on the (unlabelled) training examples."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(dim, *train.shape), random_state=seed).fit(train)
    return {k: pca.transform(v) for k, v in others.items()}


def kmeans_features(train: np.ndarray, others: dict[str, np.ndarray], k: int, seed: int = 0
                    ) -> dict[str, np.ndarray]:
    """Coates et al.'s k-means features: ``K`` centroids fitted (mini-batch k-means) on the
    unlabelled training examples; each example becomes ``max(0, mean(d) - d_k)`` for its
    Euclidean distances ``d_k`` to the centroids (a sparse, soft assignment)."""
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=min(k, len(train)), batch_size=2048, n_init=3,
                         random_state=seed).fit(train)
    out = {}
    for name, v in others.items():
        d = km.transform(v)  # (N, K) distances
        out[name] = np.maximum(0.0, d.mean(1, keepdims=True) - d)
    return out


# ------------------------------------------------------------------------------- fine-tuning

def _accuracy(model: nn.Module, head: nn.Linear, x: torch.Tensor, y: torch.Tensor,
              batch_size: int = 512) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([head(model.representation(xb)).argmax(1).cpu() for xb in x.split(batch_size)])
    return float((pred == y).float().mean())


def finetune(model: nn.Module, x: dict[str, torch.Tensor], y: dict[str, torch.Tensor],
             labelled: np.ndarray, steps: int = 1000, batch_size: int = 128, lr: float = 1e-3,
             eval_every: int = 100, seed: int = 0) -> dict[str, Any]:
    """Train a copy of ``model``'s encoder and a new linear layer on the labelled examples.

    Cross-entropy of ``Linear(model.representation(x))`` with Adam for ``steps`` steps of ``batch_size``
    labelled examples (reshuffled every pass); every ``eval_every`` steps the validation accuracy
    is measured and the weights of the best step are kept for the test. ``model`` itself is not
    changed. Batch norm layers train in train mode and are evaluated in eval mode.

    Args:
        model: any model with ``representation(x) -> (B, D)``.
        x: ``{"train", "val", "test"}`` -> examples as the model takes them.
        y: the same splits -> labels (long tensors).
        labelled: indices into the train split whose labels may be used.

    Returns:
        test ``accuracy``, ``val_accuracy``, the chosen ``step`` and ``steps``.
    """
    torch.manual_seed(seed)
    net = copy.deepcopy(model)
    device = next(net.parameters()).device
    classes = int(max(int(t.max()) for t in y.values()) + 1)
    with torch.no_grad():
        dim = net.representation(x["train"][:2]).shape[1]
    head = nn.Linear(dim, classes).to(device)
    params = [*net.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    idx = torch.as_tensor(labelled)
    order = idx[torch.randperm(len(idx))]
    pos = 0
    best: tuple[float, int, Any] = (-1.0, 0, None)
    for step in range(1, steps + 1):
        if pos >= len(order):
            order, pos = idx[torch.randperm(len(idx))], 0
        take = order[pos:pos + batch_size]
        pos += batch_size
        net.train()
        logits = head(net.representation(x["train"][take]))
        loss = F.cross_entropy(logits, y["train"][take].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            acc = _accuracy(net, head, x["val"], y["val"])
            if acc > best[0]:
                best = (acc, step, copy.deepcopy((net.state_dict(), head.state_dict())))
    net.load_state_dict(best[2][0])
    head.load_state_dict(best[2][1])
    return {"accuracy": _accuracy(net, head, x["test"], y["test"]), "val_accuracy": best[0],
            "step": best[1], "steps": steps}


# --------------------------------------------------------------------------------- the report

def probe(model: torch.nn.Module, random_model: torch.nn.Module, splits: dict[str, TensorDataset],
          fraction: float, seed: int = 0, baselines: bool = True, finetune_steps: int = 0,
          probes: tuple[str, ...] = PROBES) -> dict[str, Any]:
    """Every probe on the features of ``model`` and (``baselines``) of its untrained twin
    ``random_model``, PCA, k-means and pixels, fitted on the same stratified label subset of
    ``splits["train"]``; with ``finetune_steps > 0`` also :func:`finetune` from the run's weights
    and from ``random_model``'s (supervised training from scratch).

    Returns:
        ``{"labelled", "classes", "n", "chance", "features": {name: probe_features(...)}}``
        (+ ``"finetune": {"run": ..., "scratch": ...}``); ``chance`` is the test accuracy of
        always answering the most frequent class. The features of ``model`` on the test split
        are in ``"_test_features"`` (for a picture).
    """
    spec = splits["train"].spec
    xs = {k: fixed_examples(ds, seed) for k, ds in splits.items()}
    y = {k: ds.y.numpy() for k, ds in splits.items()}
    labelled = stratified_subset(y["train"], fraction, seed)
    audio = splits["train"].name in AUDIO and spec.kind == "sequence"
    n_sets = 1 + (4 + audio if baselines else 0)
    bar = progress(n_sets * (1 + len(probes)) + 2 * (finetune_steps > 0), "probe", "stage")

    def stage(name: str, make: Any) -> Any:
        bar.set_postfix({"stage": name})
        result = make()
        bar.update(1)
        return result

    run = stage("run features", lambda: {k: encoder_features(model, x) for k, x in xs.items()})
    sets = {"run": run}
    if baselines:
        pixels = {k: pixel_features(x, spec) for k, x in xs.items()}
        dim = run["train"].shape[1]
        sets["random-encoder"] = stage("untrained-network features", lambda: {
            k: encoder_features(random_model, x) for k, x in xs.items()})
        sets["pca"] = stage("PCA", lambda: pca_features(pixels["train"], pixels, dim, seed))
        sets["kmeans"] = stage("k-means", lambda: kmeans_features(pixels["train"], pixels, dim, seed))
        sets["pixels" if spec.kind == "image" else "raw"] = stage("pixels", lambda: pixels)
        if audio:
            rate = AUDIO[splits["train"].name][0]
            sets["mfcc"] = stage("MFCC", lambda: {k: mfcc_features(x, spec.levels, rate)
                                                  for k, x in xs.items()})
    counts = np.bincount(y["test"])
    fitted: dict[str, Any] = {}
    for name, f in sets.items():
        fitted[name] = {"dim": int(f["train"].shape[1])}
        for p in probes:
            fitted[name].update(stage(f"{p} probe of {name}", lambda f=f, p=p: probe_features(
                f, y, labelled, seed, (p,))))
    out = {"labelled": int(len(labelled)), "classes": int(len(np.unique(y["train"][labelled]))),
           "n": {k: int(len(v)) for k, v in y.items()}, "chance": float(counts.max() / counts.sum()),
           "features": fitted, "_test_features": run["test"]}
    if finetune_steps > 0:
        yt = {k: torch.as_tensor(v).long() for k, v in y.items()}
        out["finetune"] = {name: stage(f"fine-tuning {name}", lambda m=m: finetune(
            m, xs, yt, labelled, steps=finetune_steps, seed=seed))
            for name, m in (("run", model), ("scratch", random_model))}
    bar.close()
    return out


def format_table(result: dict[str, Any]) -> str:
    """The features x probes table of test accuracies (percent)."""
    probes = [p for p in PROBES if p in result["features"]["run"]]
    lines = [f"{'features':<16}{'dim':>6}" + "".join(f"{p:>9}" for p in probes)]
    for name, r in result["features"].items():
        lines.append(f"{name:<16}{r['dim']:>6}" + "".join(f"{100 * r[p]['accuracy']:>8.1f}%"
                                                           for p in probes))
    for name, r in result.get("finetune", {}).items():
        lines.append(f"{'finetune ' + name:<22}{100 * r['accuracy']:>8.1f}%  (best of {r['steps']} steps "
                     f"at {r['step']}; whole encoder + linear layer)")
    return "\n".join(lines)


def save_tsne(features: np.ndarray, y: np.ndarray, path: str | Path, class_names: list[str] | None,
              title: str = "", seed: int = 0) -> int:
    """A t-SNE map of at most :data:`TSNE_POINTS` examples (a seeded sample), coloured by class,
    with a legend. Returns the number of points drawn."""
    from sklearn.manifold import TSNE

    from unsup.plots import _pyplot

    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(features))[:TSNE_POINTS])
    f, labels = features[keep], y[keep]
    perplexity = min(30.0, (len(f) - 1) / 3)
    xy = TSNE(2, perplexity=perplexity, init="pca", max_iter=TSNE_ITERATIONS,
              random_state=seed).fit_transform(f)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for c in np.unique(labels):
        name = class_names[c] if class_names and c < len(class_names) else str(c)
        pts = xy[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, color=cmap(c % cmap.N), label=name)
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of {len(f)} test features")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return len(f)
