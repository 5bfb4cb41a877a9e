"""The update unit's golden arithmetic (golden.update_unit) by hand, and its parameter checks."""

import numpy as np
import pytest

from golden.update_unit import UpdateUnitParams, apply_update_batch, apply_updates, to_fixed

P = UpdateUnitParams(chi_bits=8, frac_bits=4, update_bits=6, epsilon=(10, 7),
                     layer_sizes=(3, 2), max_pulses=2)


def test_pulses_by_hand():
    """Weights 0-2 have epsilon 10, 3-4 epsilon 7; at most 2 pulses per update."""
    chi = np.zeros(P.weights, np.int64)
    cmds = apply_updates(P, chi, [
        (0, 9),      # 9 < 10: no pulse, chi 9
        (0, 1),      # 10 = 1 eps: +1, chi 0
        (1, -25),    # |-25| = 2.5 eps: -2, chi -5 (trunc towards zero keeps the sign)
        (1, -5),     # -10: -1, chi 0
        (3, 31),     # 31 = 4.4 eps of 7: capped at +2, chi 17
        (3, 0),      # 17 = 2.4 eps: +2, chi 3
        (4, -6),     # 6 < 7: nothing, chi -6
    ])
    assert cmds == [(0, 1), (1, -2), (1, -1), (3, 2), (3, 2)]
    assert chi.tolist() == [0, 0, 0, 3, -6]


def test_saturation_at_both_ends():
    """7-bit chi (-64..63), epsilon 60, one pulse per update: the sum saturates before the
    pulse is counted, so the remainder is taken from the saturated value."""
    p = UpdateUnitParams(chi_bits=7, frac_bits=0, update_bits=7, epsilon=(60,),
                         layer_sizes=(1,), max_pulses=1)
    chi = np.zeros(1, np.int64)
    assert apply_updates(p, chi, [(0, 59), (0, 59)]) == [(0, 1)]
    assert chi[0] == 63 - 60                # not 118 - 60
    chi[0] = 0
    assert apply_updates(p, chi, [(0, -59), (0, -59)]) == [(0, -1)]
    assert chi[0] == -64 + 60               # not -118 + 60


def test_to_fixed_rounds_half_up():
    assert to_fixed([0.5 / 16, -0.5 / 16, 1.0, -1.03], 4).tolist() == [1, 0, 16, -16]


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": (0, 7)}, r"epsilon\[0\] must be a positive integer"),
    ({"epsilon": (10, -1)}, r"epsilon\[1\] must be a positive integer"),
    ({"epsilon": (10, 200)}, r"epsilon\[1\] = 200 LSBs does not fit a chi of 8 bits"),
    ({"epsilon": (10,)}, "epsilon needs one value per layer: 1 for 2 layers"),
    ({"chi_bits": 1}, "chi_bits must be an integer in 2..32"),
    ({"update_bits": 9}, "update_bits must be an integer in 2..8"),
    ({"max_pulses": 0}, "max_pulses must be an integer in 1..15"),
])
def test_bad_parameters_are_refused(kwargs, message):
    base = dict(chi_bits=8, frac_bits=4, update_bits=6, epsilon=(10, 7), layer_sizes=(3, 2),
                max_pulses=2)
    with pytest.raises(ValueError, match=message):
        UpdateUnitParams(**{**base, **kwargs})


def test_a_learning_rate_whose_updates_overflow_an_update_word_is_refused():
    # updates of 6 bits hold up to 31 LSBs = 31/16 at 4 fraction bits
    assert P.check_learning_rate(0.1, 10.0) == 16
    with pytest.raises(ValueError, match=r"learning rate 0.5: updates can reach 5, 80 LSBs at 4 "
                                         r"fraction bits, more than an update of 6 bits "
                                         r"holds \(31\)"):
        P.check_learning_rate(0.5, 10.0)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="learning rate must be a positive finite number"):
            P.check_learning_rate(bad, 1.0)


def test_updates_outside_the_memory_or_width_are_refused():
    chi = np.zeros(P.weights, np.int64)
    with pytest.raises(ValueError, match="update index 5 outside 0..4"):
        apply_updates(P, chi, [(5, 1)])
    with pytest.raises(ValueError, match="update 32 outside the 6-bit range"):
        apply_updates(P, chi, [(0, 32)])


@pytest.mark.parametrize("chi_bits, epsilon, max_pulses, dtype", [
    (10, (37, 64, 5), 4, np.int64),
    (10, (37, 64, 5), 4, np.int32),      # the narrow path: chi's own type
    (30, (1 << 27,) * 3, 1, np.int32),   # one granularity, one pulse: no division
    (10, (37, 64, 5), 4, np.int16),      # int16 cannot hold every sum: int64 arithmetic
])
def test_a_batch_of_updates_equals_the_sequential_twin(seed, chi_bits, epsilon, max_pulses,
                                                      dtype):
    """One update per weight at once (training) equals the update-by-update arithmetic the
    RTL implements, on random chi and updates reaching both saturation ends (seeded), in
    whatever integer type chi is kept."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    p = UpdateUnitParams(chi_bits=chi_bits, frac_bits=6, update_bits=chi_bits - 1,
                         epsilon=epsilon, layer_sizes=(200, 150, 50), max_pulses=max_pulses)
    chi = rng.integers(p.chi_min, p.chi_max, size=p.weights, endpoint=True)
    deltas = rng.integers(p.update_min, p.update_max, size=p.weights, endpoint=True)
    chi, deltas = chi.astype(dtype), deltas.astype(dtype)
    total = chi + deltas
    assert ((total > p.chi_max) | (total < p.chi_min)).any(), "no sum saturates"
    order = rng.permutation(p.weights)          # the order does not matter: one per weight
    seq = chi.astype(np.int64)
    cmds = apply_updates(p, seq, [(int(i), int(deltas[i])) for i in order])
    n = apply_update_batch(p, chi, deltas)
    assert np.array_equal(chi, seq)
    assert sorted(cmds) == sorted((int(i), int(n[i])) for i in np.flatnonzero(n))
    assert (np.abs(n) == p.max_pulses).any() and (n == 0).any()
