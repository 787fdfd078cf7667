"""How good a model's samples are: the shipped classifiers and ``unsup eval --sample-quality N``.

A small classifier per dataset (the ``supervised`` backbone + linear layer, trained by
``python benchmarks/classifiers.py``) ships inside the package as ``unsup/quality/NAME.safetensors``,
pinned by SHA-256 in :data:`CLASSIFIERS` and checked when loaded. Its pooled features define the
metrics of :mod:`unsup.metrics` (FD, KID, precision/recall, density/coverage) and its logits the
classifier score; its test accuracy is reported beside them.

Samples and real examples go through the same conversion to the classifier's input: the run's
representation (``binary``, ``levels:K``, ...) is mapped to ``[0, 1]`` and re-quantised to the
classifier's 256 levels, so a binarised model is compared with binarised real images, never with
the 8-bit originals. Every figure comes with its **floor**: the same metric between ``N`` real
training and ``N`` real test examples in the run's representation, the best a model can hope for
at that sample size.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from unsup import metrics
from unsup.data import DataArgs, TensorDataset
from unsup.data.base import DataSpec
from unsup.data.download import sha256sum
from unsup.errors import ConfigError, DataError, SamplingError
from unsup.models import MODELS, config_for
from unsup.progress import progress
from unsup.train.checkpoint import load_state

HERE = Path(__file__).resolve().parent / "quality"
# dataset -> (classifier file in unsup/quality, its SHA-256), from `benchmarks/classifiers.py export`;
# the real CIFAR-10 is scored with the classifier trained on its JPEG copy (the same images, lossy)
CLASSIFIERS: dict[str, tuple[str, str]] = {
    "digits": ("digits.safetensors", "752f4fe8b96c2e09ae84b9ba911cd3b34eddfd64732197d5d44a688bfea76441"),
    "fashion-mnist": ("fashion-mnist.safetensors",
                      "07211dc123ac0528b04ae104a220532c4e87edfbd5ede34f8b8fd61c0c3bc88a"),
    "cifar10-jpeg": ("cifar10-jpeg.safetensors",
                     "c7ca8c218551025b69b9fe952f809734dfe33c35de15c1c0696fbdeb7ce16ae3"),
}
CLASSIFIERS["cifar10"] = CLASSIFIERS["cifar10-jpeg"]


def classifier_for(dataset: str) -> tuple[Path, str]:
    """The shipped classifier file of ``dataset`` and its pinned SHA-256.

    Raises:
        ConfigError: no classifier ships for that dataset (the message lists those that do).
    """
    base = dataset.split(":", 1)[0]
    if base not in CLASSIFIERS:
        raise ConfigError(f"no classifier ships for {dataset!r}, so its samples cannot be scored; "
                          f"--sample-quality works for runs on {', '.join(sorted(CLASSIFIERS))}")
    name, sha = CLASSIFIERS[base]
    return HERE / name, sha


def load_classifier(dataset: str, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """The classifier of ``dataset`` (eval mode) and its metadata (test accuracy, command).

    Raises:
        ConfigError: no classifier ships for the dataset.
        DataError: the file is missing or not the one pinned (a damaged installation).
    """
    path, sha = classifier_for(dataset)
    if not path.is_file():
        raise DataError(f"{path} is missing: the installation of unsup is damaged; reinstall it")
    actual = sha256sum(path)
    if actual != sha:
        raise DataError(f"{path}: sha256 {actual}, expected {sha}: the installation of unsup is "
                        f"damaged; reinstall it")
    state = load_state(path)
    meta = state["meta"]
    config = config_for(meta["model"], **meta["model_config"])  # (imports the model modules)
    model = MODELS.get(meta["model"])(DataSpec.from_dict(meta["spec"]), config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), meta


def to_classifier_input(x: torch.Tensor, spec: DataSpec, levels: int) -> torch.Tensor:
    """Examples in a run's representation -> integer images of the classifier's ``levels``."""
    v = x.float() / (spec.levels - 1) if spec.levels is not None else x.float().clamp(0, 1)
    return torch.round(v * (levels - 1)).long()


@torch.no_grad()
def features(clf: Any, x: torch.Tensor, spec: DataSpec, batch_size: int = 256
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features ``(N, D)`` and logits ``(N, C)`` of examples ``x`` of a run's data."""
    feats, logits = [], []
    for xb in x.split(batch_size):
        h = clf.encode(to_classifier_input(xb, spec, clf.spec.levels).to(clf.device))
        feats.append(h.double().cpu())
        logits.append(clf.head(h).double().cpu())
    return torch.cat(feats), torch.cat(logits)


def draw_samples(model: Any, n: int, batch_size: int = 64, seed: int = 0, progress_bars: bool = True,
                 sampling: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples of ``model`` drawn ``batch_size`` at a time from seed ``seed`` (with the
    sampler options ``sampling``), and for a conditional model the class each was drawn for
    (every class in turn; ``None`` otherwise)."""
    torch.manual_seed(seed)
    bar, drawn, asked = progress(n, "sampling", "example", disable=not progress_bars), [], []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if model.num_classes is not None:
            asked.append(torch.arange(start, start + size) % model.num_classes)
            drawn.append(model.sample(size, y=asked[-1], **(sampling or {})).cpu())
        else:
            drawn.append(model.sample(size, **(sampling or {})).cpu())
        bar.update(len(drawn[-1]))
        _check_drawn(drawn[-1], model, start)
    bar.close()
    return torch.cat(drawn), (torch.cat(asked) if asked else None)


def _check_drawn(samples: torch.Tensor, model: Any, start: int) -> None:
    """Refuse samples outside the data's values (a sampler that overflowed: a flow's inverse can
    turn a rare latent into inf or NaN, which become no level at all), naming how many."""
    levels = model.spec.levels
    if samples.is_floating_point():
        bad = ~torch.isfinite(samples).flatten(1).all(1)
    elif levels is not None:
        bad = ((samples < 0) | (samples >= levels)).flatten(1).any(1)
    else:
        return
    if bad.any():
        raise SamplingError(
            f"{int(bad.sum())} of the {len(samples)} samples drawn from sample {start} on are not data "
            f"(values outside 0..{levels - 1 if levels else 'finite'}: the sampler overflowed, e.g. a "
            f"flow's inverse sent a latent to inf or NaN); this checkpoint's samples cannot be "
            f"scored: train longer or lower the temperature")


def score_samples(fake: torch.Tensor, data: DataArgs, seed: int = 0, asked: torch.Tensor | None = None,
                  device: Any = "cpu") -> dict[str, Any]:
    """Score samples ``fake`` (``n`` examples in the representation of ``data``) against ``n``
    real test examples, beside the floor (``n`` real training against ``n`` real test examples);
    ``asked``: the class each sample was drawn for (adds ``class_accuracy``)."""
    n = len(fake)
    if n < 10:
        raise ConfigError(f"--sample-quality needs at least 10 samples, got {n}")
    clf, meta = load_classifier(data.name, device)
    train, test = data.load("train"), data.load("test")
    if not isinstance(test, TensorDataset) or tuple(test.spec.shape) != tuple(clf.spec.shape):
        raise ConfigError(f"the classifier of {data.name} takes images {tuple(clf.spec.shape)}; this "
                          f"run's data are {tuple(test.spec.shape)}")
    if n > min(len(train), len(test)):
        raise ConfigError(f"--sample-quality {n}: the test split has {len(test)} examples")
    g = torch.Generator().manual_seed(seed)
    real_test = test.x[torch.randperm(len(test), generator=g)[:n]]
    real_train = train.x[torch.randperm(len(train), generator=g)[:n]]
    f_test, _ = features(clf, real_test, test.spec)
    f_train, _ = features(clf, real_train, test.spec)
    f_fake, logits = features(clf, fake, test.spec)
    # subsets of half the sets (at most 1,000, KID's usual size): subsets as large as the sets
    # would all be the same examples, and their spread would say nothing
    kid = {"subsets": 100, "subset_size": min(1000, n // 2), "seed": seed}
    report = metrics.sample_quality(f_test, f_fake, **kid)
    report["classifier_score"], report["classifier_score_sd"] = metrics.classifier_score(logits, seed=seed)
    if asked is not None:  # how often the classifier sees the class each sample was drawn for
        report["class_accuracy"] = float((logits.argmax(1) == asked).double().mean())
    return {"n": n, "seed": seed, "features": f"the {data.name} classifier's pooled features "
            f"({f_fake.shape[1]}-d): FD, not FID", "classifier": {
                "file": classifier_for(data.name)[0].name, "test_accuracy": meta["test_accuracy"]},
            "samples": report, "floor": metrics.sample_quality(f_test, f_train, **kid)}


def sample_quality_report(model: Any, data: DataArgs, n: int, batch_size: int = 64, seed: int = 0,
                          progress_bars: bool = True, sampling: dict[str, Any] | None = None
                          ) -> dict[str, Any]:
    """Draw ``n`` samples from ``model`` (with the sampler options ``sampling``) and score them
    (:func:`score_samples`)."""
    if n < 10:
        raise ConfigError(f"--sample-quality needs at least 10 samples, got {n}")
    test = data.load("test")  # refused before the (slow) sampling
    if n > len(test):
        raise ConfigError(f"--sample-quality {n}: the test split has {len(test)} examples")
    wall, cpu = time.perf_counter(), time.process_time()
    fake, asked = draw_samples(model, n, batch_size, seed, progress_bars, sampling)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = score_samples(fake, data, seed, asked, model.device)
    # what drawing them cost: CPU seconds of this process (all its threads) and wall seconds
    report.update(sampling_seconds=wall, sampling_cpu_seconds=cpu, batch_size=batch_size)
    return {**report, **({"sampling": sampling} if sampling else {})}
