"""The accumulator's golden twin and parameters (the RTL is checked against this twin)."""

import numpy as np
import pytest

from golden.accumulator import AccumulatorModel, AccumulatorParams, signed_bits


def test_twin_sums_runs_and_applies_the_correction():
    p = AccumulatorParams(lanes=2, code_bits=4, max_terms=3, bias_max=9, entries=2)
    m = AccumulatorModel(p, bias=[[0, 0], [9, -9]], double=[False, True])
    assert m.step([3, -8], first=True, last=False, entry=1) is None
    assert m.step([7, 1], first=False, last=True, entry=1).tolist() == [2 * 10 - 9, 2 * -7 + 9]
    assert m.step([-1, 5], first=True, last=True, entry=0).tolist() == [-1, 5]   # first resets


def test_widths_hold_the_range_ends():
    p = AccumulatorParams(lanes=1, code_bits=9, max_terms=49, bias_max=6272, entries=1)
    lo, hi = p.value_range
    assert (lo, hi) == (2 * 49 * -256 - 6272, 2 * 49 * 255 + 6272)
    # -31360..31262 fits 16-bit two's complement (-32768..32767), not 15 (-16384..16383)
    assert (lo, hi) == (-31360, 31262) and p.acc_bits == 16
    assert signed_bits(-(1 << 16), (1 << 16) - 1) == 17 and signed_bits(0, 1 << 16) == 18


@pytest.mark.parametrize("kwargs, message", [
    (dict(lanes=0), "lanes must be an integer in 1..4096, not 0"),
    (dict(code_bits=1), "code_bits must be an integer in 2..24, not 1"),
    (dict(max_terms=True), "max_terms must be an integer in 1..1048576, not True"),
    (dict(bias_max=-1), "bias_max must be an integer in 0..1099511627776, not -1"),
])
def test_bad_parameters_are_named(kwargs, message):
    base = dict(lanes=4, code_bits=5, max_terms=3, bias_max=10, entries=2)
    with pytest.raises(ValueError, match=message):
        AccumulatorParams(**{**base, **kwargs})


def test_twin_rejects_what_the_widths_do_not_cover():
    p = AccumulatorParams(lanes=1, code_bits=3, max_terms=2, bias_max=1, entries=1)
    with pytest.raises(ValueError, match="bias magnitude 2 exceeds bias_max 1"):
        AccumulatorModel(p, bias=[[2]], double=[False])
    m = AccumulatorModel(p, bias=[[0]], double=[False])
    with pytest.raises(ValueError, match=r"codes must be 1 integers in \[-4, 3\]"):
        m.step([4], True, True, 0)
    m.step([1], True, False, 0)
    m.step([1], False, False, 0)
    with pytest.raises(ValueError, match="run of 3 beats exceeds max_terms 2"):
        m.step([1], False, True, 0)
    assert np.array_equal(AccumulatorModel(p, [[1]], [True]).step([3], True, True, 0), [5])
