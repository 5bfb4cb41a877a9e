"""Training-image augmentation (golden.augment) against independent references: whole-pixel
shifts by slicing, rotations and scalings by scipy's affine resampling."""

import numpy as np
import pytest
from scipy import ndimage

from golden.augment import distort, shift
from golden.mnist import binarize_pixels, load_mnist


@pytest.fixture(scope="module")
def digits():
    return binarize_pixels(load_mnist("test").images[:300]).reshape(-1, 28, 28)


def test_distort_without_rotation_or_scaling_is_the_whole_pixel_shift(digits, seed):
    print(f"seed {seed}")
    shifted = shift(digits, np.random.default_rng(seed), 3)
    assert not np.array_equal(shifted, digits)
    # the same generator state draws the same translations first
    assert np.array_equal(distort(digits, np.random.default_rng(seed), 3, 0.0, 0.0), shifted)


def test_distort_resamples_like_scipy_affine_transform(digits, seed):
    """Each image against scipy.ndimage.affine_transform (order 1, zero outside) with the
    translation, rotation and scale ``distort`` drew, thresholded at 1/2. They may differ only
    where scipy's value lies within rounding (1e-5) of the threshold: counted and printed."""
    print(f"seed {seed}")
    max_shift, rotate_deg, scale = 2, 15.0, 0.15
    out = distort(digits, np.random.default_rng(seed), max_shift, rotate_deg, scale)
    rng = np.random.default_rng(seed)
    t = rng.integers(-max_shift, max_shift + 1, size=(len(digits), 2))
    rot = np.deg2rad(rng.uniform(-1, 1, len(digits)) * rotate_deg)
    size = 1 + rng.uniform(-1, 1, len(digits)) * scale
    centre = np.array([13.5, 13.5])
    near, differ = 0, 0
    for k, image in enumerate(digits.astype(np.float64)):
        c, s = np.cos(rot[k]) / size[k], np.sin(rot[k]) / size[k]
        matrix = np.array([[c, -s], [s, c]])
        value = ndimage.affine_transform(image, matrix, offset=centre - matrix @ centre - t[k],
                                         order=1, mode="constant", cval=0.0)
        borderline = np.abs(value - 0.5) < 1e-5
        near += int(borderline.sum())
        wrong = (value >= 0.5) != out[k].astype(bool)
        differ += int(wrong.sum())
        assert not (wrong & ~borderline).any(), f"image {k}"
    print(f"{near} pixels within 1e-5 of the threshold, {differ} of them resolved differently")
    assert 0.02 < np.abs(out.astype(int) - digits).mean() < 0.2, "barely transformed, or noise"


def test_elastic_deformation_moves_strokes_smoothly_and_keeps_the_ink(digits, seed):
    """With no affine part, the displacement field alone: the digits change (more with a larger
    amplitude), keep their amount of ink within 15 %, and the same draws give the same images."""
    print(f"seed {seed}")
    changed = []
    for alpha in (5.0, 20.0):
        out = distort(digits, np.random.default_rng(seed), 0, 0.0, 0.0, alpha, 4.0)
        assert np.array_equal(out, distort(digits, np.random.default_rng(seed), 0, 0.0, 0.0,
                                           alpha, 4.0))
        ink = out.reshape(len(out), -1).sum(axis=1) / digits.reshape(len(out), -1).sum(axis=1)
        assert 0.85 < np.median(ink) < 1.15, (alpha, np.median(ink))
        changed.append(np.abs(out.astype(int) - digits).mean())
    print(f"fraction of pixels changed: {changed}")
    assert 0 < changed[0] < changed[1]
