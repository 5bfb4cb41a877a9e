"""Sign-constant crossbar inputs: the identity the chip's first arithmetic step relies on.

A crossbar can only apply non-negative read voltages, so a bipolar activation ``x`` in {-1, +1}
is applied as the bit ``x' = (x + 1) / 2`` in {0, 1} (0 V or +V_read). For +-1 weights ``w``

    sum_i w_i * x_i  =  2 * sum_i w_i * x'_i  -  sum_i w_i

The crossbar (through a differential conductance pair per weight) produces ``s = sum w x'``;
the constant ``-sum w`` of each column is not computed at run time but folded into that
column's batch-norm threshold by :func:`fold_weight_sum`:

    a >= T  <=>  2 s - W >= T  <=>  s >= ceil((T + W) / 2)

The first layer takes unipolar pixels directly (``x' = pixel``), so its pre-activation already
is ``s`` and needs no correction.
"""

from __future__ import annotations

import numpy as np

from .bn_fold import FoldedThreshold, canonical_threshold
from .bnn import Domain, binary_dense, check_domain, check_weights

__all__ = ["to_unipolar", "to_bipolar", "crossbar_sum", "sign_constant_preactivation",
           "unipolar_sum_range", "fold_weight_sum"]


def to_unipolar(x: np.ndarray) -> np.ndarray:
    """{-1, +1} -> {0, 1} (uint8): ``x' = (x + 1) / 2``."""
    check_domain(x, Domain.BIPOLAR, "x")
    return ((np.asarray(x) + 1) // 2).astype(np.uint8)


def to_bipolar(bits: np.ndarray) -> np.ndarray:
    """{0, 1} -> {-1, +1} (int8): ``x = 2 x' - 1``."""
    check_domain(bits, Domain.UNIPOLAR, "bits")
    return (2 * np.asarray(bits).astype(np.int8) - 1).astype(np.int8)


def crossbar_sum(bits: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``s = bits @ w``: what an ideal crossbar column integrates for unipolar inputs."""
    return binary_dense(bits, w, Domain.UNIPOLAR)


def sign_constant_preactivation(bits: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Bipolar pre-activation ``x @ w`` computed the chip's way, ``2 s - sum(w)``."""
    w = np.asarray(w)
    return 2 * crossbar_sum(bits, w) - w.sum(axis=0, dtype=np.int64).astype(np.int32)


def unipolar_sum_range(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column inclusive range of ``s = sum w x'`` over all unipolar inputs:
    ``[-(number of -1 weights), number of +1 weights]``."""
    w = np.asarray(w)
    check_weights(w)
    return -(w < 0).sum(axis=0).astype(np.int64), (w > 0).sum(axis=0).astype(np.int64)


def fold_weight_sum(folded: FoldedThreshold, weight_sum, s_min, s_max) -> FoldedThreshold:
    """Re-express thresholds on ``a = 2 s - W`` as thresholds on ``s``.

    Parameters
    ----------
    folded : FoldedThreshold
        Comparison on the bipolar pre-activation ``a``.
    weight_sum : int or array (C,)
        ``W = sum w`` of each column.
    s_min, s_max : int or array (C,)
        Inclusive range of ``s`` (see :func:`unipolar_sum_range`).

    Returns
    -------
    FoldedThreshold
        Canonical on ``[s_min, s_max]``; ``bits(s)`` equals ``folded.bits(2 s - W)`` there.
    """
    w_sum = np.asarray(weight_sum, dtype=np.int64)
    total = folded.threshold + w_sum
    first_true = -((-total) // 2)       # ceil((T + W) / 2) in exact integer arithmetic
    return canonical_threshold(first_true, folded.invert, s_min, s_max)
