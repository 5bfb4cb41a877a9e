"""Batch-norm + sign folded into one integer comparison per channel.

The float reference a layer's output is defined by is

    y = gamma * (a - mean) / sqrt(var + eps) + beta,      out = +1 if y >= 0 else -1

(``sign(0) = +1``), evaluated in IEEE float64 exactly as :func:`bn_sign_reference` writes it.
For an integer pre-activation ``a`` in ``[a_min, a_max]`` the chip instead computes

    out_bit = (a >= threshold) XOR invert              (bit 1 means +1)

Folding
-------
Each float64 operation in the reference is correctly rounded and therefore monotone in its
operand, so ``y(a)`` is non-decreasing in ``a`` for ``gamma >= 0`` and non-increasing for
``gamma < 0``: the set of ``a`` giving +1 is an up-set (gamma >= 0) or a down-set (gamma < 0) of
the integers. The folder finds its boundary by bisection *on the reference predicate itself*, so
the folded comparison equals the reference for every integer in range, even where the textbook
threshold ``tau = mean - beta * sqrt(var + eps) / gamma`` lands on or within rounding error of an
integer. (``a <= T`` is expressed as ``NOT(a >= T + 1)``, hence one comparator plus an XOR.)

Canonical form
--------------
Thresholds always lie in ``[a_min, a_max]`` so they fit the accumulator width. Channels whose
output does not depend on ``a`` in range (``gamma == 0``, or ``tau`` outside the reachable range)
become ``threshold = a_min`` with ``invert = 0`` (always +1) or ``invert = 1`` (always -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FOLD_LIMIT", "BatchNorm", "FoldedThreshold", "bn_sign_reference", "fold_batchnorm",
           "canonical_threshold"]

# Largest |a| the folder accepts: every integer up to here is exact in float64, so the
# reference is evaluated on the true pre-activation (and bisection midpoints cannot overflow).
FOLD_LIMIT = 2 ** 52


def _vector(name: str, value) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (one value per channel), "
                         f"got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, found {v[~np.isfinite(v)][0]}")
    return v


@dataclass(frozen=True)
class BatchNorm:
    """Inference-time batch-norm parameters of one layer, one entry per channel.

    Parameters
    ----------
    gamma, beta : array (C,)
        Scale and shift.
    mean, var : array (C,)
        Running mean and variance (``var`` is sigma squared, not sigma).
    eps : float
        Added to ``var`` before the square root.
    """

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def __post_init__(self):
        for name in ("gamma", "beta", "mean", "var"):
            object.__setattr__(self, name, _vector(name, getattr(self, name)))
        shapes = {n: getattr(self, n).shape for n in ("gamma", "beta", "mean", "var")}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"batch-norm parameters must have one shape, got {shapes}")
        eps = float(self.eps)
        if not (np.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, not {self.eps}")
        object.__setattr__(self, "eps", eps)
        if np.any(self.var < 0):
            raise ValueError(f"var must be >= 0, found {self.var[self.var < 0][0]}")
        if np.any(self.var + eps <= 0):
            raise ValueError("var + eps must be > 0 for every channel (found a channel with "
                             "var = 0 and eps = 0)")

    @property
    def channels(self) -> int:
        return self.gamma.shape[0]


def bn_sign_reference(a: np.ndarray, bn: BatchNorm) -> np.ndarray:
    """The float64 specification: +-1 (int8) per element of ``a`` (..., C)."""
    a = np.asarray(a, dtype=np.float64)
    y = bn.gamma * (a - bn.mean) / np.sqrt(bn.var + bn.eps) + bn.beta
    return np.where(y >= 0, 1, -1).astype(np.int8)


@dataclass(frozen=True)
class FoldedThreshold:
    """Per-channel integer comparison: ``bit = (a >= threshold) XOR invert``.

    ``threshold`` is int64 (C,), ``invert`` bool (C,).
    """

    threshold: np.ndarray
    invert: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.threshold)
        inv = np.asarray(self.invert)
        if t.ndim != 1 or inv.shape != t.shape:
            raise ValueError(f"threshold and invert must be 1-D of equal length, got {t.shape} "
                             f"and {inv.shape}")
        if t.dtype.kind not in "iu":
            if not np.all(np.isfinite(t)) or np.any(t != np.round(t)):
                raise ValueError(f"thresholds must be integers, found {t[t != np.round(t)][:1]}")
        if inv.dtype != np.bool_ and not np.all((inv == 0) | (inv == 1)):
            raise ValueError(f"invert must be boolean, found {inv[(inv != 0) & (inv != 1)][0]}")
        object.__setattr__(self, "threshold", t.astype(np.int64))
        object.__setattr__(self, "invert", inv.astype(bool))

    @property
    def channels(self) -> int:
        return self.threshold.shape[0]

    def bits(self, a: np.ndarray) -> np.ndarray:
        """Output bits (uint8, 1 = +1) for integer pre-activations ``a`` (..., C)."""
        bit = np.greater_equal(a, self.threshold)
        np.not_equal(bit, self.invert, out=bit)         # XOR, in the comparison's own array
        return bit.view(np.uint8)                       # False/True are bytes 0/1

    def apply(self, a: np.ndarray) -> np.ndarray:
        """Output in {-1, +1} (int8) for integer pre-activations ``a`` (..., C)."""
        return (2 * self.bits(a).astype(np.int8) - 1).astype(np.int8)


def canonical_threshold(first_true: np.ndarray, invert: np.ndarray, a_min, a_max) -> FoldedThreshold:
    """Canonical form of ``bit = (a >= first_true) XOR invert`` on ``[a_min, a_max]``.

    ``first_true`` may lie anywhere (even far outside the range); the result's thresholds lie in
    ``[a_min, a_max]`` and give the same bit for every integer in the range.
    """
    first_true = np.asarray(first_true, dtype=np.int64)
    invert = np.asarray(invert, dtype=bool)
    a_min = np.broadcast_to(np.asarray(a_min, dtype=np.int64), first_true.shape)
    a_max = np.broadcast_to(np.asarray(a_max, dtype=np.int64), first_true.shape)
    if np.any(a_min > a_max):
        raise ValueError(f"empty pre-activation range: a_min {a_min.max()} > a_max {a_max.min()}")
    never = first_true > a_max           # comparison false on the whole range
    threshold = np.where(first_true <= a_min, a_min, first_true)
    threshold = np.where(never, a_min, threshold)
    # (a >= a_min) is always true, so flip invert to keep "always false" channels false.
    return FoldedThreshold(threshold=threshold, invert=invert ^ never)


def fold_batchnorm(bn: BatchNorm, a_min, a_max) -> FoldedThreshold:
    """Fold batch-norm + sign into integer thresholds valid on ``[a_min, a_max]``.

    Parameters
    ----------
    bn : BatchNorm
    a_min, a_max : int or array (C,)
        Inclusive range of integer pre-activations the layer can produce.

    Returns
    -------
    FoldedThreshold
        Canonical (see module docstring); equals :func:`bn_sign_reference` on every integer in
        the range.
    """
    c = bn.channels
    lo = np.broadcast_to(np.asarray(a_min, dtype=np.int64), (c,)).copy()
    hi_incl = np.broadcast_to(np.asarray(a_max, dtype=np.int64), (c,)).copy()
    if np.any(lo > hi_incl):
        raise ValueError(f"empty pre-activation range: a_min {lo.max()} > a_max {hi_incl.min()}")
    if np.any(np.abs(np.concatenate([lo, hi_incl])) > FOLD_LIMIT):
        raise ValueError(f"pre-activation range [{lo.min()}, {hi_incl.max()}] must lie within "
                         f"+-2**52, where float64 holds every integer exactly")
    decreasing = bn.gamma < 0
    a_min_arr = lo.copy()

    def rising(a):  # monotone false -> true in a, per channel
        positive = bn_sign_reference(a, bn) > 0
        return positive ^ decreasing

    # Smallest a in [lo, hi) with rising(a) true; hi = a_max + 1 when there is none.
    hi = hi_incl + 1
    while np.any(lo < hi):
        mid = lo + (hi - lo) // 2
        r = rising(mid) & (lo < hi)
        hi = np.where(r, mid, hi)
        lo = np.where(r | (lo >= hi), lo, mid + 1)
    # out = rising XOR decreasing.
    return canonical_threshold(lo, decreasing, a_min_arr, hi_incl)
