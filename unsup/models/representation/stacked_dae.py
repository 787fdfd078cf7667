"""Stacked denoising autoencoders: greedy layer-wise pretraining of a deep MLP encoder [1].

The encoder is a stack of ``K`` dense layers on the flattened pixels ``h_0 = x`` (``D``
dimensions in ``[0, 1]``), widths ``layers = [d_1, ..., d_K]``,

    h_k = f_k(h_{k-1}) = s(W_k h_{k-1} + b_k),   s = ``activation`` (sigmoid in [1]),

and each layer has its own decoder ``g_k(h_k) = W'_k h_k + b'_k`` back to ``d_{k-1}`` values (a
sigmoid output for ``recon=bce``; untied weights). Layer ``k`` is trained as a denoising
autoencoder (:mod:`unsup.models.representation.autoencoder`: the same corruption ``q``, reconstruction
error and
emphasized weighting, imported from there) on the *clean* codes of the frozen layers below,

    L_k = (1/d_{k-1}) sum_j w_j l(g_k(f_k(h~_{k-1}))_j, h_{k-1,j}),   h~_{k-1} ~ q(. | h_{k-1}),

while the layers below receive no gradient. Which layer trains is set by the training steps taken
so far, ``t``: layer ``k = floor(t / steps_per_layer)`` (from 0), for ``K * steps_per_layer``
steps in all. After that, the top layer keeps training (``finetune=False``, what [1] does before
its supervised fine-tuning), or (``finetune=True``) the whole stack is trained as one deep
denoising autoencoder, ``x~ -> h_K -> g_1(... g_K(h_K))``, every layer free (the unsupervised
fine-tuning of [2]). ``t`` is a buffer of the model (restored exactly by checkpoints and resume) and
advances only in training mode, once per :meth:`StackedDAE.loss` call. The freezing relies on the
lower layers having no gradient (``grad is None``), which the trainer's ``zero_grad(set_to_none=
True)`` guarantees, so Adam leaves them untouched.

:meth:`~unsup.models.representation.base.RepresentationModel.encode` is the top code ``h_K``. In
evaluation mode the ``loss`` is the whole stack's reconstruction error of the clean images,
``l(g_1(... g_K(h_K)), x)`` per dimension: one number comparable across the phases, so the
validation loss of a stage where the upper layers are still untrained is not mistaken for a good
one. (The kept checkpoint is chosen by the kNN probe of ``h_K`` on labelled validation data, or is
the last, as for every :class:`~unsup.models.representation.base.RepresentationModel`.)
``layer_loss`` is then the current layer's denoising objective ``L_k``, and ``layer`` the index
``k`` (``K`` during fine-tuning).

References:
    [1] Vincent, Larochelle, Lajoie, Bengio, Manzagol. Stacked Denoising Autoencoders: Learning
        Useful Representations in a Deep Network with a Local Denoising Criterion. JMLR 11, 2010.
    [2] Hinton, Salakhutdinov. Reducing the Dimensionality of Data with Neural Networks. Science
        313, 2006.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn

from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import register
from unsup.models.base import Batch
from unsup.models.representation.autoencoder import (
    MLPEncoder,
    ReconstructionConfig,
    as_data,
    check_criterion,
    check_widths,
    corrupt,
    emphasized_error,
    output_values,
    reconstruction_error,
)
from unsup.models.representation.base import RepresentationModel


@dataclass
class StackedDAEConfig(ReconstructionConfig):
    """Hyper-parameters of :class:`StackedDAE` (an MLP: the backbone fields are not used).

    Attributes:
        layers: widths of the stacked layers, bottom to top (the last is the representation).
        activation: ``sigmoid``, ``relu``, ``tanh`` or ``none`` after each encoder layer (bce and
            salt-pepper noise on the codes of the upper layers need sigmoid).
        steps_per_layer: training steps of each layer's greedy phase.
        finetune: after the last phase, train the whole stack as one deep denoising autoencoder
            (else keep training the top layer).
    """

    recon: str = "bce"
    noise: str = "masking"
    layers: list[int] = field(default_factory=lambda: [512, 256, 128])
    activation: str = "sigmoid"
    steps_per_layer: int = 1000
    finetune: bool = False


@register("stacked-dae", "stacked denoising autoencoder (Vincent et al. 2010): MLP layers "
          "pretrained greedily, one denoising autoencoder each",
          presets={"paper": {"layers": [1000, 1000, 1000], "noise": "masking", "noise_level": 0.25,
                             "activation": "sigmoid", "recon": "bce"}})
class StackedDAE(RepresentationModel):
    """Greedy layer-wise denoising autoencoders (module docstring).

    Raises:
        ConfigError: bad layer widths, activation or steps; a bad criterion; ``bce`` or
            salt-and-pepper noise on upper layers whose codes are not in ``[0, 1]``.
    """

    reconstructs = True

    Config = StackedDAEConfig
    step: torch.Tensor

    def __init__(self, spec: DataSpec, config: StackedDAEConfig | None = None) -> None:
        c = config or self.Config()
        check_criterion(c)
        check_widths("layers", list(c.layers), c.activation)
        if not c.layers:
            raise ConfigError("layers must hold at least one width")
        if c.steps_per_layer < 1:
            raise ConfigError(f"steps_per_layer must be >= 1, got {c.steps_per_layer}")
        if len(c.layers) > 1 and c.activation != "sigmoid" and (c.recon == "bce" or c.noise == "salt-pepper"):
            raise ConfigError(f"recon bce and salt-pepper noise need targets in [0, 1]: with "
                              f"{len(c.layers)} layers use activation sigmoid (got {c.activation!r})")
        sizes = [spec.dims, *c.layers]
        super().__init__(spec, c, encoder=MLPEncoder(sizes, c.activation))  # the stack is the encoder
        self.decoders = nn.ModuleList(nn.Linear(b, a) for a, b in itertools.pairwise(sizes))  # g_k
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # t: training steps taken

    def stage(self, k: int) -> nn.Module:
        """``f_k`` (from 0): layer ``k`` of the encoder and its activation."""
        return self.encoder.net[1 + 2 * k: 3 + 2 * k]  # net = Flatten, (Linear, activation) * K

    @property
    def phase(self) -> int:
        """The layer ``k`` that trains at the current step (``K``: the whole stack fine-tunes)."""
        K = len(self.config.layers)
        k = int(self.step) // self.config.steps_per_layer
        return K if k >= K and self.config.finetune else min(k, K - 1)

    def decode_stack(self, h: torch.Tensor, top: int) -> torch.Tensor:
        """Decoder outputs at the pixels of codes ``h_top``: ``g_1(s(... g_top(h)))``, ``(B, D)``."""
        for k in reversed(range(top)):
            h = self.decoders[k](h)
            if k:  # an intermediate code: in the codes' range (sigmoid for bce)
                h = output_values(h, self.config.recon)
        return h

    def layer_objective(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``L_k`` on flat images ``(B, D)``: layer ``k``'s denoising loss on the clean codes of the
        layers below (no gradient to them); ``k = K``: the whole stack's."""
        c = self.config
        K = len(c.layers)
        h = x
        with torch.no_grad():
            for j in range(min(k, K)):
                h = self.stage(j)(h)  # (B, d_j), clean
        if k == K:  # fine-tuning: corrupt the pixels, reconstruct them through every layer
            x_tilde, chosen = corrupt(x, c.noise, c.noise_level)
            out = self.decode_stack(self.encoder(x_tilde), K)
            return emphasized_error(reconstruction_error(out, x, c.recon), chosen, c.corrupted_weight)
        h_tilde, chosen = corrupt(h, c.noise, c.noise_level)
        out = self.decoders[k](self.stage(k)(h_tilde))  # (B, d_{k-1})
        return emphasized_error(reconstruction_error(out, h, c.recon), chosen, c.corrupted_weight)

    @torch.no_grad()
    def reconstruction(self, images: torch.Tensor) -> torch.Tensor:
        """Clean float images through the whole stack and back, floats in ``[0, 1]``."""
        out = self.decode_stack(self.features(images), len(self.config.layers))
        return output_values(out, self.config.recon).clamp(0, 1).view(images.shape)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of raw examples in the data's representation (levels or floats)."""
        return as_data(self.reconstruction(self.images(x)), self.spec)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.images(batch["x"]).flatten(1)  # (B, D) in [0, 1]
        k = self.phase
        layer = torch.tensor(float(k))
        if self.training:
            self.step += 1
            return {"loss": self.layer_objective(x, k), "layer": layer}
        with torch.no_grad():
            out = self.decode_stack(self.encoder(x), len(self.config.layers))  # (B, D)
            stack = reconstruction_error(out, x, self.config.recon).mean()
            return {"loss": stack, "layer_loss": self.layer_objective(x, k), "layer": layer}
