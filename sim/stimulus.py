"""Seeded stimulus generators shared by golden tests and RTL testbenches."""

from __future__ import annotations

import numpy as np

from golden.bn_fold import BatchNorm, FoldedThreshold
from golden.model import Architecture, BnnModel, Layer, preactivation_range

__all__ = ["random_batchnorm", "random_model"]


def random_batchnorm(rng: np.random.Generator, channels: int, a_min: int, a_max: int,
                     eps: float = 1e-5) -> BatchNorm:
    """Batch-norm parameters that exercise every folding case on ``[a_min, a_max]``.

    Mixes gamma > 0, gamma < 0, gamma == 0 and tiny |gamma|; means spread a quarter of the range
    beyond each end so some thresholds fall outside the reachable range; about one channel in
    eight has a threshold placed exactly on an integer (``beta = 0``, integral mean), where the
    ``sign(0) = +1`` convention decides the output.
    """
    span = max(1, a_max - a_min)
    kind = rng.choice(4, size=channels, p=[0.4, 0.4, 0.1, 0.1])
    magnitude = rng.lognormal(0.0, 1.0, size=channels)
    gamma = np.select([kind == 0, kind == 1, kind == 2], [magnitude, -magnitude, 0.0],
                      default=rng.choice([-1, 1], size=channels) * 1e-9)
    mean = rng.uniform(a_min - span / 4, a_max + span / 4, size=channels)
    var = rng.uniform(1e-3, 1.0, size=channels) * span ** 2 / 4
    beta = rng.normal(0.0, 1.0, size=channels)
    on_integer = rng.random(channels) < 0.125
    mean = np.where(on_integer, np.round(mean), mean)
    beta = np.where(on_integer, 0.0, beta)
    return BatchNorm(gamma=gamma, beta=beta, mean=mean, var=var, eps=eps)


def random_model(arch: Architecture, rng: np.random.Generator) -> BnnModel:
    """A model of ``arch`` with random +-1 weights and thresholds, for exercising hardware on
    shapes no trained model has. Thresholds sit in the middle half of each channel's reachable
    range (so bits toggle on random inputs) plus a few at the range ends (constant channels);
    directions are random."""
    layers = []
    for i in range(len(arch.layers)):
        w = rng.choice(np.array([-1, 1], np.int8), size=arch.weight_shape(i))
        if i == len(arch.layers) - 1:
            layers.append(Layer(w, None))
            break
        lo, hi = preactivation_range(arch, i, w)
        t = rng.integers((3 * lo + hi) // 4, (lo + 3 * hi) // 4, endpoint=True)
        ends = rng.random(len(t)) < 0.05
        t = np.where(ends, np.where(rng.random(len(t)) < 0.5, lo, hi), t)
        layers.append(Layer(w, FoldedThreshold(t, rng.random(len(t)) < 0.5)))
    return BnnModel(arch, layers, metadata={"random": True})
