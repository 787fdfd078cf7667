"""Autoregressive models: ``log p(x) = sum_i log p(x_i | x_<i)``, exact, one conditional per element.

Histograms and the discretized logistic mixture (no context), MADE and NADE (masked or weight-shared
networks over any ordering), the PixelCNN family (masked convolutions, gated, PixelCNN++,
PixelSNAIL), sequence models over the flattened elements of any discrete data (causal
transformer, LSTM, ByteNet, WaveNet) and the raster-order sampling they share
(:mod:`~unsup.models.autoregressive.raster`, :mod:`~unsup.models.autoregressive.sequence`).
"""
