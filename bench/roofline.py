"""The float32 GEMM roofline of this machine and the multiply-accumulates of a network: the
yardsticks the inference and training benches divide by."""

from __future__ import annotations

import time

import numpy as np


def gemm_roofline(n: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GEMM rate (FLOP/s) with the BLAS threads the process has
    (one core where the caller limits BLAS to one thread)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def layer_macs(arch) -> list[int]:
    """Multiply-accumulates per image of each layer of an architecture."""
    macs = []
    for i, (spec, (_, _, fan_in)) in enumerate(zip(arch.layers, arch.shapes())):
        positions = 1
        if spec.kind == "conv":
            h_in, w_in = arch.shapes()[i][0][1:]
            positions = (h_in + 2 * spec.padding - spec.kernel + 1) * \
                (w_in + 2 * spec.padding - spec.kernel + 1)
        macs.append(positions * fan_in * spec.out)
    return macs


def model_macs(model) -> int:
    """Multiply-accumulates per image of all layers."""
    return sum(layer_macs(model.arch))


def training_flops(arch) -> int:
    """FLOP per training image of the products: each layer's forward product, its weight
    gradient and (every layer but the first) its input gradient, 2 FLOP per
    multiply-accumulate."""
    macs = layer_macs(arch)
    return 2 * (3 * sum(macs) - macs[0])
