"""Implicit models: samplers without a likelihood, trained by comparing samples with data.

:mod:`~unsup.models.implicit.nets` holds the generators and discriminators; the models are the GAN
family (minimax, non-saturating, Wasserstein, hinge; gradient penalties, spectral norm, instance
noise; class-conditional), trained by alternating phases of the training loop, and the generative
moment-matching network, trained by MMD alone, and the energy-based model, trained by contrastive
divergence with Langevin samples. :mod:`~unsup.models.implicit.base` holds the data
scaling and sampling they share.
"""
