"""Building blocks shared across model families: masked layers and output distributions
(:mod:`~unsup.nn.layers`), causal attention with a key/value cache (:mod:`~unsup.nn.attention`),
convolutions evaluated from cached inputs (:mod:`~unsup.nn.cached_conv`) and the distributed
context models read (:mod:`~unsup.nn.distributed`). They know no model and no training loop.
"""
