"""The codes of a trained VAE as a dataset, ``vae-latents:RUN_DIR``: latent diffusion.

Latent diffusion (Rombach et al. 2022) trains a diffusion model not on pixels but on the codes of
an autoencoder trained first, and decodes its samples with that autoencoder's decoder: the
diffusion model then spends its capacity on the code's few dimensions rather than on
imperceptible pixel detail. Here the autoencoder is a run of the VAE family
(:mod:`unsup.models.latent.vae`); each example's code is its posterior mean ``E_q[z | x]``, a
``z_dim`` vector, and any model of continuous vectors can learn their distribution:

    unsup train vae --data fashion-mnist --time 10m --out runs/vae
    unsup train ddpm --data vae-latents:runs/vae --time 10m --out runs/latent-ddpm
    unsup sample runs/latent-ddpm --out samples.png          # codes decoded to images
    unsup eval runs/latent-ddpm --sample-quality 1000        # scored as images

Each split holds the codes of the same split of the VAE run's own dataset, with its labels (so
``--conditional`` works); the run's ``best`` weights are read (option ``checkpoint=last`` for the
resume point). A sample is the decoder's most likely image given the sampled code. The diffusion
model's bits/dim are of the codes, not of the images: no likelihood of the images is claimed.
"""

from __future__ import annotations

from typing import Any

import torch

from unsup.data import DataArgs
from unsup.data.base import DataSpec, TensorDataset
from unsup.data.registry import DATASETS, Request
from unsup.errors import ConfigError
from unsup.models.base import Model
from unsup.models.latent.vae import VAE
from unsup.train.runs import VIEWS
from unsup.train.vqcodes import encode_run_split, source_run


@DATASETS.register(
    "vae-latents:PATH",
    "posterior means (z_dim,) of a trained vae run's dataset, continuous, its labels (option "
    "checkpoint): data for latent diffusion",
)
def vae_latents(req: Request) -> TensorDataset:
    model, images, codes = encode_run_split(
        req, VAE, f"a run of the VAE family with continuous codes (`unsup train vae --out {req.arg}`)")
    if not model.continuous_latents or codes.dim() != 2:
        raise ConfigError(f"{req.name}: {type(model).__name__} has no continuous vector code")
    spec = DataSpec((codes.shape[1],), None, images.spec.num_classes, "vector")
    return TensorDataset(codes.float(), spec, y=images.y, name=req.name, split=req.split,
                         class_names=images.class_names)


class DecodedLatents(Model):
    """A model of a VAE's codes and that VAE's decoder, as one sampler of images: ``sample``
    draws codes from ``prior`` (with its sampler options) and decodes them."""

    samples = True

    def __init__(self, vae: VAE, prior: Model) -> None:
        super().__init__(vae.spec, None)
        if tuple(prior.spec.shape) != (vae.z_dim,) or not prior.samples:
            raise ConfigError(f"the prior samples data of shape {prior.spec.shape}; this VAE's codes "
                              f"are ({vae.z_dim},): train it with --data vae-latents:RUN_DIR")
        self.vae, self.prior = vae, prior
        self.num_classes = prior.num_classes
        self.sampling_options = prior.sampling_options

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               **options: Any) -> torch.Tensor:
        z = self.prior.sample(n, y=y, temperature=temperature, **options)
        return self.vae.decode(z.to(self.vae.device).float())


def latent_view(model: Any, meta: dict[str, Any], device: str | torch.device = "cpu"
                ) -> tuple[DecodedLatents, DataArgs] | None:
    """For a model trained on ``vae-latents:RUN``: it and that run's VAE as one sampler of the
    VAE's images, and the data arguments of those images; ``None`` for any other run."""
    source = source_run(meta, "vae-latents", VAE, device) if model.samples else None
    return None if source is None else (DecodedLatents(source[0], model).eval(), source[1])


VIEWS["vae-latents"] = latent_view
