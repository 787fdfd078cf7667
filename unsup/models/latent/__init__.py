"""Latent-variable models: ``p(x) = E_p(z) p(x | z)``, trained on a bound, scored by importance sampling.

:mod:`~unsup.models.latent.parts` holds the encoders, decoders and observation likelihoods
``p(x | z)``; the models are the VAE and IWAE, VAEs with flow priors or posteriors, PixelVAE, a
two-level hierarchical VAE, the Gumbel-softmax VAE and the VQ-VAE (with a prior over its codes).
"""
