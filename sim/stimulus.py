"""Seeded stimulus generators shared by golden tests and RTL testbenches."""

from __future__ import annotations

import numpy as np

from golden.bn_fold import BatchNorm

__all__ = ["random_batchnorm"]


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
