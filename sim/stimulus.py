"""Seeded stimulus generators shared by golden tests and RTL testbenches."""

from __future__ import annotations

import numpy as np

from golden.bn_fold import BatchNorm, FoldedThreshold
from golden.bnn import Domain, binary_conv2d, binary_dense, flatten, maxpool2d
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


def random_model(arch: Architecture, rng: np.random.Generator,
                 calibration: np.ndarray | None = None) -> BnnModel:
    """A model of ``arch`` with random +-1 weights and thresholds, for exercising hardware on
    shapes no trained model has.

    Thresholds are set at each channel's median pre-activation over ``calibration`` inputs
    (default: 64 random input maps) plus a random offset of -1, 0 or +1, so every layer's bits
    keep changing from input to input however deep the model is; about one channel in twenty
    gets a threshold at an end of its reachable range (a constant channel). Directions are
    random.
    """
    if calibration is None:
        calibration = (rng.random((64,) + arch.input_shape) < 0.5).astype(np.uint8)
    x = np.asarray(calibration).reshape((len(calibration),) + arch.input_shape)
    domain = Domain.UNIPOLAR
    layers = []
    for i, spec in enumerate(arch.layers):
        w = rng.choice(np.array([-1, 1], np.int8), size=arch.weight_shape(i))
        if spec.kind == "conv":
            a = np.moveaxis(binary_conv2d(x, w, spec.padding, domain), 1, -1)
        else:
            x = flatten(x) if x.ndim > 2 else x
            a = binary_dense(x, w, domain)
        if i == len(arch.layers) - 1:
            layers.append(Layer(w, None))
            break
        lo, hi = preactivation_range(arch, i, w)
        median = np.median(a.reshape(-1, spec.out), axis=0).astype(np.int64)
        t = median + rng.integers(-1, 1, size=spec.out, endpoint=True)
        ends = rng.random(spec.out) < 0.05
        t = np.clip(np.where(ends, np.where(rng.random(spec.out) < 0.5, lo, hi), t), lo, hi)
        folded = FoldedThreshold(t, rng.random(spec.out) < 0.5)
        layers.append(Layer(w, folded))
        bits = folded.bits(a)
        if spec.kind == "conv":
            bits = np.moveaxis(bits, -1, 1)
            if spec.pool > 1:
                bits = maxpool2d(bits, spec.pool)
        x, domain = (2 * bits.astype(np.int8) - 1).astype(np.int8), Domain.BIPOLAR
    return BnnModel(arch, layers, metadata={"random": True})
