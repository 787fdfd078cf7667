"""Representation learning: an encoder ``h = f(x)`` whose features cut the labels a task needs.

:mod:`~unsup.models.representation.base` is the interface (``encode``); the shared image encoders
(:mod:`~.backbones`), patch and colour helpers (:mod:`~.patches`, :mod:`~.color`) serve the
methods: autoencoders of every kind, sparse coding and PSD, the pretext tasks (context encoder,
colorization, split-brain, rotation, relative patch, jigsaw), the contrastive methods (SimCLR,
MoCo, a memory bank, CPC on images and audio), word2vec, and the supervised reference.
"""
