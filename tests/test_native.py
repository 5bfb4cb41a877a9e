"""The golden model's C kernels against the numpy steps that specify them, bit for bit, and
their build: cached by source, refused inputs, and a clear fallback when no compiler runs."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from golden import native


def _kernel():
    kernel = native.tile_codes()
    if kernel is None:
        if os.environ.get("CI"):
            pytest.fail("the C kernel tile_codes did not build in CI (gcc is installed there)")
        pytest.skip("no C compiler here: the evaluation read runs numpy's steps")
    return kernel


def _numpy_tile_codes(value, sums, first, saturate, limit, code_min, code_max):
    """The steps of the evaluation read the kernel replaces, as golden/analog/evaluate.py's
    numpy path performs them."""
    code = np.rint(value)
    residual = np.abs(value - code)
    near = np.flatnonzero(residual > limit)
    flagged = (near, code[near], residual[near])
    if saturate:
        code = np.clip(code, np.float32(code_min), np.float32(code_max))
    return (code if first else sums + code), flagged


def _values(rng, n):
    """ADC inputs with exact ties (k + 0.5, where rint rounds to even), values one and two
    ulps either side of them, integers, and random fractions; some beyond +-300 LSB so that
    a code range of [-256, 255] clips them."""
    k = rng.integers(-300, 300, n).astype(np.float32)
    tie = k + np.float32(0.5)
    kind = rng.integers(0, 6, n)
    v = np.where(kind == 0, tie, k + rng.random(n, dtype=np.float32))
    v = np.where(kind == 1, np.nextafter(tie, np.float32(np.inf)), v)
    v = np.where(kind == 2, np.nextafter(tie, np.float32(-np.inf)), v)
    v = np.where(kind == 3, np.nextafter(np.nextafter(tie, tie - 1), tie - 1), v)
    v = np.where(kind == 4, k, v)
    return v.astype(np.float32)


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("saturate", [True, False])
def test_tile_codes_equal_the_numpy_steps(seed, first, saturate):
    """Codes, sums, flagged indices, unclipped codes and residuals are bitwise numpy's, on
    a size that is not a whole number of the kernel's scan groups; the ties (where rint's
    half-to-even rule decides) and near-ties are counted so the test cannot pass without
    them."""
    print(f"seed {seed}")
    kernel = _kernel()
    rng = np.random.default_rng(seed)
    n = 100_003
    value = _values(rng, n)
    sums = rng.integers(-5000, 5000, n).astype(np.float32)
    limit = np.float32(0.4999)
    want_sums, (near, near_code, near_residual) = _numpy_tile_codes(
        value, sums, first, saturate, limit, -256, 255)
    out = sums.copy()
    index = np.empty(n, np.int64)
    code, residual = np.empty(n, np.float32), np.empty(n, np.float32)
    flagged = kernel(value, out, first, saturate, float(limit), -256, 255, index, code,
                     residual)
    ties = int(np.sum(value - np.floor(value) == 0.5))
    print(f"{ties} exact ties, {flagged} flagged, {int(np.sum(np.abs(value) > 255.5))} clipped")
    assert ties > n // 10 and flagged > n // 3
    assert np.array_equal(out.view(np.uint32), want_sums.view(np.uint32))
    assert flagged == len(near)
    np.testing.assert_array_equal(index[:flagged], near)
    assert np.array_equal(code[:flagged].view(np.uint32), near_code.view(np.uint32))
    assert np.array_equal(residual[:flagged].view(np.uint32), near_residual.view(np.uint32))


def test_tile_codes_refuse_mismatched_arrays():
    kernel = _kernel()
    v, s = np.zeros(8, np.float32), np.zeros(8, np.float32)
    room = (np.empty(8, np.int64), np.empty(8, np.float32), np.empty(8, np.float32))
    with pytest.raises(ValueError, match="value's size"):
        kernel(v, np.zeros(7, np.float32), True, False, 0.4, -1, 1, *room)
    with pytest.raises(TypeError, match="sums must be a writeable C-contiguous float32"):
        kernel(v, s.astype(np.float64), True, False, 0.4, -1, 1, *room)
    with pytest.raises(TypeError, match="value must be a writeable C-contiguous float32"):
        kernel(np.zeros(16, np.float32)[::2], s, True, False, 0.4, -1, 1, *room)


def test_kernels_are_built_once_per_source(tmp_path, monkeypatch):
    """A build lands in the cache under a name keyed by the source, and a second build of
    the same source takes it from there (nothing rewritten)."""
    if native._compiler() is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("MBNN_NATIVE_DIR", str(tmp_path))
    first = native._build("tile_codes")
    assert first.parent == tmp_path and first.name.startswith("tile_codes-")
    stamp = first.stat().st_mtime_ns
    assert native._build("tile_codes") == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]      # no temp files left


def test_a_failed_build_warns_once_and_falls_back(tmp_path, monkeypatch):
    """No working compiler: one warning naming the kernel, then numpy (None), and the same
    answer without another attempt."""
    monkeypatch.setattr(native, "_libraries", {})
    monkeypatch.setenv("MBNN_NATIVE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")
    with pytest.warns(RuntimeWarning, match="C kernel tile_codes unavailable, using numpy"):
        assert native.tile_codes() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.tile_codes() is None
    assert list(tmp_path.iterdir()) == []
