"""BN folding: the integer comparison must equal the float formula on every reachable integer.

The specification is written out here again, independently of golden/bn_fold.py:
``sign(gamma * (a - mean) / sqrt(var + eps) + beta)`` in IEEE float64 with sign(0) = +1.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden.bn_fold import FOLD_LIMIT, BatchNorm, FoldedThreshold, fold_batchnorm
from sim.stimulus import random_batchnorm


def spec_scalar(a: int, gamma, beta, mean, var, eps) -> int:
    y = gamma * (a - mean) / math.sqrt(var + eps) + beta   # Python floats are IEEE float64
    return 1 if y >= 0 else -1


def spec_table(bn: BatchNorm, a_min: int, a_max: int) -> np.ndarray:
    """(A, C) table of the specification for every integer a in the range."""
    a = np.arange(a_min, a_max + 1, dtype=np.float64)[:, None]
    y = bn.gamma * (a - bn.mean) / np.sqrt(bn.var + bn.eps) + bn.beta
    return np.where(y >= 0, 1, -1)


def assert_exhaustive(bn: BatchNorm, a_min: int, a_max: int) -> FoldedThreshold:
    folded = fold_batchnorm(bn, a_min, a_max)
    a = np.arange(a_min, a_max + 1)[:, None]
    got = folded.apply(a)
    want = spec_table(bn, a_min, a_max)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} mismatches; first a={a_min + bad[0][0]}, "
                           f"channel {bad[0][1]}")
    # Canonical: thresholds fit the range, hence the accumulator.
    assert np.all((folded.threshold >= a_min) & (folded.threshold <= a_max))
    return folded


@pytest.mark.parametrize("a_min, a_max", [(-300, 300), (-784, 784), (0, 10), (-1, 1), (5, 5),
                                          (-2, 1), (-4096, 4095)])
def test_exhaustive_random_layers(seed, a_min, a_max):
    print(f"seed {seed}")
    rng = np.random.default_rng([seed, a_max - a_min])
    bn = random_batchnorm(rng, 256, a_min, a_max)
    folded = assert_exhaustive(bn, a_min, a_max)
    assert folded.invert.any() and (~folded.invert).any()


def one_channel(gamma, beta, mean, var, eps=1e-5) -> BatchNorm:
    return BatchNorm(gamma=[gamma], beta=[beta], mean=[mean], var=[var], eps=eps)


@pytest.mark.parametrize("gamma, beta, mean, var, want_threshold, want_invert", [
    (1.0, 0.0, 5.0, 1.0, 5, False),     # y = 0 exactly at a = 5: sign(0) = +1, so a >= 5
    (-1.0, 0.0, 5.0, 1.0, 6, True),     # gamma < 0: a <= 5 gives +1, i.e. NOT(a >= 6)
    (2.0, -1.0, 0.0, 4.0, 1, False),    # tau = 0 - (-1)*2/2 = 1
    (0.0, 0.5, 3.0, 1.0, -10, False),   # gamma = 0, beta >= 0: always +1
    (0.0, 0.0, 3.0, 1.0, -10, False),   # gamma = 0, beta = 0: y = 0 -> +1
    (0.0, -0.5, 3.0, 1.0, -10, True),   # gamma = 0, beta < 0: always -1
    (1.0, 0.0, 99.5, 1.0, -10, True),   # tau above the range, gamma > 0: always -1
    (1.0, 0.0, -99.5, 1.0, -10, False),  # tau below the range, gamma > 0: always +1
    (-1.0, 0.0, 99.5, 1.0, -10, False),  # tau above the range, gamma < 0: always +1
    (-1.0, 0.0, -99.5, 1.0, -10, True),  # tau below the range, gamma < 0: always -1
    (1.0, 0.0, 10.0, 1.0, 10, False),   # tau = a_max: only a_max gives +1
    (-1.0, 0.0, -10.0, 1.0, -9, True),  # tau = a_min, gamma < 0: only a_min gives +1
])
def test_each_folding_case(gamma, beta, mean, var, want_threshold, want_invert):
    bn = one_channel(gamma, beta, mean, var, eps=0.0)
    folded = assert_exhaustive(bn, -10, 10)
    assert (int(folded.threshold[0]), bool(folded.invert[0])) == (want_threshold, want_invert)


# Found by searching random parameters: tau = mean - beta*sqrt(var+eps)/gamma evaluates to an
# exact integer in float64, yet the float formula at that integer is slightly negative. Folding
# with ceil(tau) (gamma > 0) or floor(tau) (gamma < 0) would be off by one there.
ROUNDING_TRAPS = [
    (2.8563447193452123, 0.33043707618338714, 1.3564090880365458, 9.491629526658715),
    (1.3276467020204694, -0.5369532353602852, -19.824013961254987, 4.151071450054697),
    (-0.17992142840489828, 0.02842224131579679, 3.631972305302538, 5.427618800870854),
    (-2.3864432399423725, -0.48211931267997826, -17.56719458278296, 4.5896291058584495),
]


@pytest.mark.parametrize("gamma, beta, mean, var", ROUNDING_TRAPS)
def test_float_rounding_traps_of_the_textbook_threshold(gamma, beta, mean, var):
    eps = 1e-5
    tau = mean - beta * math.sqrt(var + eps) / gamma
    naive = math.ceil(tau) if gamma > 0 else math.floor(tau)
    naive_ok = all(spec_scalar(a, gamma, beta, mean, var, eps) == (1 if (a >= naive if gamma > 0 else a <= naive) else -1)
                   for a in range(naive - 2, naive + 3))
    assert not naive_ok, "the textbook threshold is right here; this case no longer tests anything"
    assert_exhaustive(one_channel(gamma, beta, mean, var, eps), naive - 50, naive + 50)


finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gamma=st.one_of(st.just(0.0), st.floats(-1e3, 1e3, **finite),
                       st.floats(-1e-6, 1e-6, **finite)),
       beta=st.floats(-1e3, 1e3, **finite),
       mean=st.one_of(st.integers(-300, 300).map(float), st.floats(-400, 400, **finite)),
       var=st.floats(0, 1e5, **finite),
       eps=st.sampled_from([0.0, 1e-5, 1e-3]),
       a_min=st.integers(-200, 0), span=st.integers(0, 250))
def test_property_equals_spec_everywhere(gamma, beta, mean, var, eps, a_min, span):
    if var + eps <= 0:
        var = 1.0
    bn = one_channel(gamma, beta, mean, var, eps)
    folded = fold_batchnorm(bn, a_min, a_min + span)
    for a in range(a_min, a_min + span + 1):
        want = spec_scalar(a, gamma, beta, mean, var, eps)
        assert folded.apply(np.array([a]))[0] == want, f"a={a}"


def test_per_channel_ranges_and_wide_range():
    rng = np.random.default_rng(7)
    bn = random_batchnorm(rng, 64, -(2 ** 40), 2 ** 40)
    folded = fold_batchnorm(bn, -(2 ** 40), 2 ** 40)
    t = folded.threshold
    probes = np.stack([t - 1, t, t + 1])
    want = np.where(bn.gamma * (probes.astype(np.float64) - bn.mean) / np.sqrt(bn.var + bn.eps)
                    + bn.beta >= 0, 1, -1)
    inside = np.abs(probes) <= 2 ** 40   # the canonical form promises nothing outside
    assert np.array_equal(folded.apply(probes)[inside], want[inside])
    assert inside.sum() > 100
    folded2 = fold_batchnorm(one_channel(1.0, 0.0, 3.0, 1.0), [0], [2])
    assert folded2.apply(np.array([[0], [1], [2]])).ravel().tolist() == [-1, -1, -1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(var=[-1.0]), "var must be >= 0, found -1.0"),
    (dict(gamma=[float("nan")]), "gamma must be finite, found nan"),
    (dict(beta=[1.0, 2.0]), "batch-norm parameters must have one shape"),
    (dict(var=[0.0], eps=0.0), "var \\+ eps must be > 0"),
    (dict(eps=-1.0), "eps must be a finite number >= 0, not -1.0"),
    (dict(mean=[[1.0]]), r"mean must be a non-empty 1-D array .* got shape \(1, 1\)"),
])
def test_invalid_batchnorm_is_rejected(kwargs, message):
    base = dict(gamma=[1.0], beta=[0.0], mean=[0.0], var=[1.0], eps=1e-5)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        BatchNorm(**base)


def test_invalid_ranges_and_thresholds_are_rejected():
    bn = one_channel(1.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="empty pre-activation range: a_min 3 > a_max 2"):
        fold_batchnorm(bn, 3, 2)
    with pytest.raises(ValueError, match="must lie within \\+-2\\*\\*52"):
        fold_batchnorm(bn, -(FOLD_LIMIT + 1), 0)
    with pytest.raises(ValueError, match="thresholds must be integers"):
        FoldedThreshold(threshold=np.array([1.5]), invert=np.array([False]))
