"""Diffusion, score-based and flow-matching models: generative models that learn to undo a
gradual corruption of the data by Gaussian noise.

:mod:`~unsup.models.diffusion.nets` holds the noise-conditional network they share (a U-Net for
images, an MLP for vectors), :mod:`~unsup.models.diffusion.base` conditioning, guidance and
sampling, :mod:`~unsup.models.diffusion.schedule` the discrete-time forward process and
:mod:`~unsup.models.diffusion.samplers` the samplers of DDPM (:mod:`~unsup.models.diffusion.ddpm`).
"""
