"""Random geometric augmentation of the binary MNIST images that training sees.

Two transformations, one draw per image and batch from the trainer's generator:

* :func:`shift`, whole-pixel translations (the recipes' ``shift_augment``; exact, no
  resampling);
* :func:`distort`, the same translations combined with a random rotation and scaling about
  the image centre and, optionally, an elastic deformation (a smoothed random displacement
  field, after Simard, Steinkraus and Platt, "Best practices for convolutional neural networks
  applied to visual document analysis", ICDAR 2003). The binary image is resampled bilinearly
  and thresholded at 1/2, so the network still sees {0, 1} pixels, as on the chip.

Both work on ``(N, 28, 28)`` arrays of 0/1 pixels and return a new array of the same dtype.
The operations and the order of the draws are part of each recipe: a trained model
reproduces from its recorded configuration only if they stay as they are.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["shift", "distort"]


def shift(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Random translations by whole pixels, up to ``max_shift`` along each axis; zero fill."""
    if max_shift == 0:
        return images
    out = np.zeros_like(images)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(images), 2))
    h, w = images.shape[1:]
    for i, (dy, dx) in enumerate(shifts):
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[i, yd, xd] = images[i, ys, xs]
    return out


@lru_cache(maxsize=4)
def _smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    # Gaussian smoothing along one axis as a matrix (zero outside the image), scaled by the
    # mean row sum: ``G @ u @ G.T`` smooths a field along both axes
    i = np.arange(size)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    g /= g.sum(axis=1, keepdims=True).mean()
    return g.astype(np.float32)


def distort(images: np.ndarray, rng: np.random.Generator, max_shift: int, rotate_deg: float,
            scale: float, elastic_alpha: float = 0.0, elastic_sigma: float = 4.0) -> np.ndarray:
    """Random translation, rotation, scaling and elastic deformation, resampled bilinearly.

    Parameters
    ----------
    images : ndarray, (N, H, W)
        Binary pixels (0 or 1).
    rng : numpy.random.Generator
        Draws, in this order: the translations (integers), the rotations, the scale factors
        and, if ``elastic_alpha`` > 0, the two displacement fields.
    max_shift : int
        Largest translation, pixels along each axis (uniform integers).
    rotate_deg : float
        Largest rotation, degrees (uniform in ``[-rotate_deg, rotate_deg]``).
    scale : float
        Largest relative change of size (uniform in ``[1 - scale, 1 + scale]``).
    elastic_alpha : float
        Amplitude of the displacement field, pixels per unit of smoothed uniform noise; 0 for
        none.
    elastic_sigma : float
        Correlation length of the displacement field, pixels (Gaussian standard deviation).

    Returns
    -------
    ndarray, (N, H, W), ``images.dtype``
        1 where the resampled value is at least 1/2.
    """
    n, h, w = images.shape
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32) - (h - 1) / 2,
                         np.arange(w, dtype=np.float32) - (w - 1) / 2, indexing="ij")
    t = rng.integers(-max_shift, max_shift + 1, size=(n, 2)).astype(np.float32)
    rot = np.deg2rad(rng.uniform(-1, 1, n) * rotate_deg).astype(np.float32)
    size = (1 + rng.uniform(-1, 1, n) * scale).astype(np.float32)
    cos, sin = (np.cos(rot) / size)[:, None, None], (np.sin(rot) / size)[:, None, None]
    # where each output pixel comes from (the inverse map), in input pixel coordinates
    src_y = cos * yy - sin * xx + (h - 1) / 2 - t[:, 0, None, None]
    src_x = sin * yy + cos * xx + (w - 1) / 2 - t[:, 1, None, None]
    if elastic_alpha > 0:
        assert h == w, "elastic deformation of square images only"
        g = _smoothing_matrix(h, float(elastic_sigma))
        field = g @ rng.uniform(-1, 1, size=(2, n, h, w)).astype(np.float32) @ g.T
        field *= elastic_alpha
        src_y = src_y + field[0]
        src_x = src_x + field[1]
    # bilinear interpolation in the image padded by one zero pixel
    padded = np.pad(images.astype(np.float32), ((0, 0), (1, 1), (1, 1)))
    src_y = np.clip(src_y, -1, h) + 1
    src_x = np.clip(src_x, -1, w) + 1
    y0 = np.minimum(np.floor(src_y).astype(np.int64), h)
    x0 = np.minimum(np.floor(src_x).astype(np.int64), w)
    wy, wx = src_y - y0, src_x - x0
    # the four neighbours by flat index (much faster than three-array fancy indexing)
    flat = padded.reshape(-1)
    row = w + 2
    base = (np.arange(n)[:, None, None] * (h + 2) + y0) * row + x0
    value = ((1 - wy) * (1 - wx) * flat.take(base) + (1 - wy) * wx * flat.take(base + 1)
             + wy * (1 - wx) * flat.take(base + row) + wy * wx * flat.take(base + row + 1))
    return (value >= 0.5).astype(images.dtype)
