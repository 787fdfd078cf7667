"""The code grids of a trained VQ-VAE as a dataset: ``vq-codes:RUN_DIR``.

It lives with the training code, above the models, because it loads a trained run; importing
:mod:`unsup.train` registers it. A VQ-VAE (:mod:`unsup.models.latent.vqvae`) maps an image to a grid of
``h x w`` indices into its
codebook of ``K`` codes. Seen as a ``(1, h, w)`` image with ``K`` levels, the grid is data for any
of the autoregressive image models, which then serve as the VQ-VAE's learned prior [1]:

    unsup train vqvae --data fashion-mnist --time 20m --out runs/vq
    unsup train gated-pixelcnn --data vq-codes:runs/vq --time 20m --out runs/vq-prior

Each split holds the codes of the same split of the run's own dataset (its name, representation,
options, ``seed`` and ``val_fraction`` as stored in the checkpoint), with the original labels, so
the prior's test set is the code grids of the VQ-VAE's test images and ``--conditional`` works.
The run's ``best`` weights are read from ``best.safetensors`` (option ``checkpoint=last`` for the
resume point); nothing is unpickled. Codes are computed on the CPU when the dataset is loaded.

References:
    [1] van den Oord, Vinyals, Kavukcuoglu. Neural Discrete Representation Learning. NeurIPS 2017.
"""

from __future__ import annotations

from typing import Any

import torch

from unsup.data import DataArgs
from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError
from unsup.models.base import LikelihoodModel
from unsup.models.latent.vqvae import VQVAE, VQVAEWithPrior
from unsup.train.runs import VIEWS, load_run

_CHUNK = 512  # images encoded at a time


def encode_run_split(req: Request, accept: type, need: str) -> tuple[Any, TensorDataset, torch.Tensor]:
    """The model of the run ``req.arg`` (its ``checkpoint`` option: ``best`` or ``last``), the
    split ``req.split`` of its own image dataset, and ``model.encode`` of every image, ``(N, ...)``.

    Raises:
        ConfigError: the run holds no ``accept`` model (``need``: what to train instead), or its
            data are not images.
    """
    assert req.arg is not None  # resolve() guarantees a path after ':'
    which = req.option("checkpoint", "best")
    if which not in ("best", "last"):
        raise ConfigError(f"{req.name}: option checkpoint must be best or last, got {which!r}")
    model, meta = load_run(req.arg, which)
    if not isinstance(model, accept):
        raise ConfigError(f"{req.name}: {req.arg} holds a {meta['model']} run; this source needs "
                          f"{need}")
    d = DataArgs.from_dict(meta["data"])
    d.root, d.download = req.root or d.root, req.download or d.download
    images = d.load(req.split)
    if not isinstance(images, TensorDataset):
        raise ConfigError(f"{req.name}: the run's data {d.name!r} is not an image dataset")
    with torch.no_grad():  # a dataset of codes: no graph back into the encoder
        codes = torch.cat([model.encode(images.x[i:i + _CHUNK]) for i in range(0, len(images), _CHUNK)])
    return model, images, codes


@DATASETS.register(
    "vq-codes:PATH",
    "code grids (1, h, w) of a trained vqvae run's dataset, K levels, its labels (option checkpoint)",
)
def vq_codes(req: Request) -> TensorDataset:
    model, images, codes = encode_run_split(
        req, VQVAE, f"a vqvae run (`unsup train vqvae --out {req.arg}`)")
    h, w = model.code_shape
    spec = DataSpec((1, h, w), model.codebook_size, images.spec.num_classes, "image")
    return TensorDataset(codes.view(-1, 1, h, w), spec, y=images.y, name=req.name, split=req.split,
                         class_names=images.class_names)


def load_vqvae_with_prior(vqvae_run: str, prior_run: str,
                          device: str | torch.device = "cpu") -> VQVAEWithPrior:
    """:class:`VQVAEWithPrior` from the run directories of a ``vqvae`` and of its prior."""
    vq, meta = load_run(vqvae_run, device=device)
    if not isinstance(vq, VQVAE):
        raise ConfigError(f"{vqvae_run} holds a {meta['model']} run, not a vqvae")
    prior, pmeta = load_run(prior_run, device=device)
    if not isinstance(prior, LikelihoodModel):
        raise ConfigError(f"{prior_run} holds a {pmeta['model']}, which has no likelihood")
    return VQVAEWithPrior(vq, prior).eval()


def source_run(meta: dict[str, Any], prefix: str, accept: type, device: str | torch.device = "cpu"
               ) -> tuple[Any, DataArgs] | None:
    """For a run trained on data ``PREFIX:RUN`` derived from another run: that run's model (the
    weights its data were made with: option ``checkpoint``) and the data arguments of its own
    data; ``None`` for a run trained on anything else.

    Raises:
        ConfigError: the source run holds no ``accept`` model.
    """
    name = (meta.get("data") or {}).get("name") or ""
    if not name.startswith(prefix + ":"):
        return None
    which = (meta["data"].get("options") or {}).get("checkpoint", "best")
    source, source_meta = load_run(name.split(":", 1)[1], which, device=device)
    if not isinstance(source, accept):
        raise ConfigError(f"{name}: not a run of {accept.__name__}")
    return source, DataArgs.from_dict(source_meta["data"])


def image_view(model: Any, meta: dict[str, Any], device: str | torch.device = "cpu"
               ) -> tuple[VQVAEWithPrior, DataArgs] | None:
    """For a likelihood model trained on ``vq-codes:RUN``: it and that run's VQ-VAE as one model
    of the VQ-VAE's images (:class:`VQVAEWithPrior`: its bound in bits/dim, decoded samples), and
    the data arguments of those images; ``None`` for a model trained on anything else."""
    source = source_run(meta, "vq-codes", VQVAE, device) if isinstance(model, LikelihoodModel) else None
    return None if source is None else (VQVAEWithPrior(source[0], model).eval(), source[1])


VIEWS["vq-codes"] = image_view
