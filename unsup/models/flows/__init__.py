"""Normalizing flows: ``log p(x) = log p(z) + log |det dz/dx|`` with ``z = f(x)`` invertible.

:mod:`~unsup.models.flows.base` holds the dequantisation, the logit transform and bits/dim shared
by every flow; :mod:`~unsup.models.flows.layers` the invertible layers with their exact
log-determinants. Models: NICE, RealNVP, Glow, MAF/IAF, Flow++ and the course's 1-D/2-D CDF flows.
"""
