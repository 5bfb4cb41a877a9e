"""Sign-constant inputs: sum w*x = 2*sum w*x' - sum w, and folding -sum w into thresholds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.bn_fold import fold_batchnorm
from golden.bnn import Domain, binary_dense
from golden.sign_constant import (crossbar_sum, fold_weight_sum, sign_constant_preactivation,
                                  to_bipolar, to_unipolar, unipolar_sum_range)
from sim.stimulus import random_batchnorm


def test_identity_on_random_layers(seed):
    rng = np.random.default_rng(seed)
    for k, m in [(1, 1), (7, 3), (784, 128), (1152, 64)]:
        x = rng.choice([-1, 1], size=(50, k)).astype(np.int8)
        w = rng.choice([-1, 1], size=(k, m)).astype(np.int8)
        direct = (x.astype(np.int64) @ w.astype(np.int64))   # integer reference
        assert np.array_equal(sign_constant_preactivation(to_unipolar(x), w), direct)


def test_unipolar_round_trip_and_errors():
    x = np.array([-1, 1, 1, -1], np.int8)
    assert to_unipolar(x).tolist() == [0, 1, 1, 0]
    assert to_bipolar(to_unipolar(x)).tolist() == x.tolist()
    with pytest.raises(ValueError, match="found 0"):
        to_unipolar(np.array([0, 1]))


def test_sum_range_is_tight():
    w = np.array([[1, -1], [1, -1], [-1, -1]], np.int8)
    lo, hi = unipolar_sum_range(w)
    assert lo.tolist() == [-1, -3] and hi.tolist() == [2, 0]
    # every input pattern stays inside and both ends are reached
    bits = np.array([[(i >> j) & 1 for j in range(3)] for i in range(8)], np.uint8)
    s = crossbar_sum(bits, w)
    assert s.min(axis=0).tolist() == lo.tolist() and s.max(axis=0).tolist() == hi.tolist()


def test_folded_layer_equals_bipolar_layer_exhaustively_over_s(seed):
    """For every reachable crossbar sum s of every column, the s-threshold gives the same bit as
    the bipolar threshold on a = 2 s - W."""
    rng = np.random.default_rng(seed)
    k, m = 60, 200
    w = rng.choice([-1, 1], size=(k, m)).astype(np.int8)
    bn = random_batchnorm(rng, m, -k, k)
    on_a = fold_batchnorm(bn, -k, k)
    w_sum = w.sum(axis=0, dtype=np.int64)
    s_min, s_max = unipolar_sum_range(w)
    on_s = fold_weight_sum(on_a, w_sum, s_min, s_max)
    assert np.all((on_s.threshold >= s_min) & (on_s.threshold <= s_max))
    for s in range(-k, k + 1):
        inside = (s >= s_min) & (s <= s_max)
        want = on_a.bits(2 * s - w_sum)
        assert np.array_equal(on_s.bits(np.full(m, s))[inside], want[inside]), f"s={s}"


@settings(max_examples=300, deadline=None)
@given(threshold=st.integers(-100, 100), invert=st.booleans(), w_sum=st.integers(-50, 50),
       s_min=st.integers(-60, 0), span=st.integers(0, 60))
def test_property_weight_sum_fold(threshold, invert, w_sum, s_min, span):
    from golden.bn_fold import FoldedThreshold
    on_a = FoldedThreshold(threshold=np.array([threshold]), invert=np.array([invert]))
    on_s = fold_weight_sum(on_a, w_sum, s_min, s_min + span)
    for s in range(s_min, s_min + span + 1):
        a = 2 * s - w_sum
        assert on_s.bits(np.array([s]))[0] == int((a >= threshold) ^ invert)


def test_first_layer_needs_no_correction(seed):
    rng = np.random.default_rng(seed)
    pixels = (rng.random((20, 784)) < 0.2).astype(np.uint8)
    w = rng.choice([-1, 1], size=(784, 16)).astype(np.int8)
    assert np.array_equal(crossbar_sum(pixels, w), binary_dense(pixels, w, Domain.UNIPOLAR))
