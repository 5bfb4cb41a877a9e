"""Integer BNN primitives: what one layer of the chip computes, before batch-norm.

Value domains
-------------
``UNIPOLAR``  values {0, 1}: binarized input pixels, and the chip's sign-constant word-line
              inputs ``x' = (x + 1) / 2`` (0 V or +V_read).
``BIPOLAR``   values {-1, +1}: weights everywhere, hidden activations.

Padding convention
------------------
Convolutions pad with the *off* value of their input domain: 0 for unipolar inputs and -1 for
bipolar ones. Both are the bit ``x' = 0``, i.e. an undriven word line, which is the only padding
the sign-constant crossbar can represent for free (a zero in the bipolar domain does not exist
on the chip).

All functions return exact integers. Sums are evaluated with float32 BLAS for speed, which is
exact because every term is in {-1, 0, 1} and the fan-in is below 2**24 (checked).
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = [
    "Domain", "check_domain", "check_weights", "sign", "binary_dense", "im2col",
    "binary_conv2d", "maxpool2d", "flatten", "argmax_class",
]

# Largest fan-in for which float32 accumulation of {-1,0,1} products is exact.
_MAX_EXACT_FAN_IN = 2 ** 24
# Convolutions with at most this many inputs per window unroll their windows (one product);
# wider ones sum one product per kernel offset (measured: a 1-channel 3x3 layer is faster
# unrolled, a 64-channel one 4x faster per offset).
_UNROLL_FAN_IN = 64


class Domain(enum.Enum):
    """Value domain of an activation tensor; ``off`` is its padding / undriven value."""

    UNIPOLAR = (0, 1)
    BIPOLAR = (-1, 1)

    @property
    def off(self) -> int:
        return self.value[0]


def check_domain(x: np.ndarray, domain: Domain, name: str = "x") -> None:
    """Raise ``ValueError`` unless every element of ``x`` is in ``domain``."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integers in {set(domain.value)}, not dtype {x.dtype}")
    lo, hi = domain.value
    bad = (x != lo) & (x != hi)
    if bad.any():
        value = x[bad].flat[0]
        raise ValueError(f"{name} must hold only {set(domain.value)} ({domain.name.lower()}), "
                         f"found {value}")


def check_weights(w: np.ndarray, name: str = "w") -> None:
    """Raise ``ValueError`` unless ``w`` is a binary (+-1) weight tensor."""
    check_domain(w, Domain.BIPOLAR, name)


def sign(y: np.ndarray) -> np.ndarray:
    """Binarize to {-1, +1} (int8); ``sign(0) = +1``, the convention used chip-wide."""
    return np.where(np.asarray(y) >= 0, 1, -1).astype(np.int8)


def _exact_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    if w.shape[0] >= _MAX_EXACT_FAN_IN:
        raise ValueError(f"fan-in {w.shape[0]} too large for exact evaluation (< {_MAX_EXACT_FAN_IN})")
    return np.matmul(x.astype(np.float32), w.astype(np.float32)).astype(np.int32)


def binary_dense(x: np.ndarray, w: np.ndarray, domain: Domain) -> np.ndarray:
    """Pre-activations of a binary fully connected layer, ``x @ w``.

    Parameters
    ----------
    x : array (N, K)
        Inputs in ``domain``.
    w : array (K, M)
        Weights in {-1, +1}.
    domain : Domain
        Value domain of ``x``.

    Returns
    -------
    numpy.ndarray int32 (N, M)
    """
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"binary_dense needs x (N, K) and w (K, M); got {x.shape} and {w.shape}")
    check_domain(x, domain, "x")
    check_weights(w)
    return _exact_matmul(x, w)


def im2col(x: np.ndarray, kernel: tuple[int, int], padding: int, domain: Domain) -> np.ndarray:
    """Unroll stride-1 convolution windows.

    Returns an array (N, H', W', C*kh*kw) whose last axis is ordered (channel, ky, kx), the
    order of ``w.reshape(M, -1)`` for weights (M, C, kh, kw). This is the order in which an
    unrolled kernel occupies crossbar rows.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"im2col needs x of shape (N, C, H, W), got {x.shape}")
    kh, kw = kernel
    if not (isinstance(padding, (int, np.integer)) and padding >= 0):
        raise ValueError(f"padding must be a non-negative integer, not {padding!r}")
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                   constant_values=domain.off)
    n, c, h, w = x.shape
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}x{kw} larger than padded input {h}x{w}")
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    # windows: (N, C, H', W', kh, kw) -> (N, H', W', C, kh, kw)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, h - kh + 1, w - kw + 1, c * kh * kw)


def binary_conv2d(x: np.ndarray, w: np.ndarray, padding: int, domain: Domain) -> np.ndarray:
    """Pre-activations of a stride-1 binary convolution (cross-correlation, as in DL frameworks).

    Parameters
    ----------
    x : array (N, C, H, W)
        Inputs in ``domain``.
    w : array (M, C, kh, kw)
        Weights in {-1, +1}.
    padding : int
        Pixels added on each side, filled with ``domain.off`` (see module docstring).
    domain : Domain

    Returns
    -------
    numpy.ndarray int32 (N, M, H + 2p - kh + 1, W + 2p - kw + 1)
    """
    x, w = np.asarray(x), np.asarray(w)
    if w.ndim != 4 or x.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(f"binary_conv2d needs x (N, C, H, W) and w (M, C, kh, kw) with equal C; "
                         f"got {x.shape} and {w.shape}")
    check_domain(x, domain, "x")
    check_weights(w)
    if not (isinstance(padding, (int, np.integer)) and padding >= 0):
        raise ValueError(f"padding must be a non-negative integer, not {padding!r}")
    m, c, kh, kw = w.shape
    if c * kh * kw >= _MAX_EXACT_FAN_IN:
        raise ValueError(f"fan-in {c * kh * kw} too large for exact evaluation "
                         f"(< {_MAX_EXACT_FAN_IN})")
    n, _, h, wd = x.shape
    if kh > h + 2 * padding or kw > wd + 2 * padding:
        raise ValueError(f"kernel {kh}x{kw} larger than padded input "
                         f"{h + 2 * padding}x{wd + 2 * padding}")
    # Channels last, padded, in float32: every partial sum below is an integer of magnitude
    # below the fan-in (< 2**24), so float32 products are exact in any summation order.
    xp = np.full((n, h + 2 * padding, wd + 2 * padding, c), domain.off, np.float32)
    xp[:, padding:padding + h, padding:padding + wd, :] = x.transpose(0, 2, 3, 1)
    ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    if c * kh * kw <= _UNROLL_FAN_IN:
        # few inputs per window (a first layer): unroll the windows (the im2col order) and
        # do one matrix product
        cols = np.empty((n, ho, wo, c, kh, kw), np.float32)
        for ky in range(kh):
            for kx in range(kw):
                cols[..., ky, kx] = xp[:, ky:ky + ho, kx:kx + wo, :]
        out = cols.reshape(-1, c * kh * kw) @ np.ascontiguousarray(
            w.reshape(m, -1).T, dtype=np.float32)
    else:
        # one product per kernel offset on the shifted input, summed: no kh*kw-fold copy
        wf = np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype=np.float32)   # kh, kw, c, m
        out = np.zeros((n * ho * wo, m), np.float32)
        for ky in range(kh):
            for kx in range(kw):
                out += xp[:, ky:ky + ho, kx:kx + wo, :].reshape(-1, c) @ wf[ky, kx]
    return out.astype(np.int32).reshape(n, ho, wo, m).transpose(0, 3, 1, 2)


def maxpool2d(x: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping max-pool (stride = size); trailing rows/columns that do not fill a window
    are dropped. On binary maps this is an OR of the ``x' = 1`` bits."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"maxpool2d needs x of shape (N, C, H, W), got {x.shape}")
    if not (isinstance(size, (int, np.integer)) and size >= 1):
        raise ValueError(f"pool size must be a positive integer, not {size!r}")
    n, c, h, w = x.shape
    if size > h or size > w:
        raise ValueError(f"pool size {size} larger than the {h}x{w} map")
    ho, wo = h // size, w // size
    x = x[:, :, :ho * size, :wo * size].reshape(n, c, ho, size, wo, size)
    return x.max(axis=(3, 5))


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C*H*W), channel-major (the order dense weights are indexed in)."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def argmax_class(scores: np.ndarray) -> np.ndarray:
    """Predicted class per row of integer scores; ties go to the lowest class index."""
    return np.argmax(np.asarray(scores), axis=1)
