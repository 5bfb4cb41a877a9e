"""BN-binarize parameters and golden twin (the RTL is checked against this twin)."""

import numpy as np
import pytest

from golden.bn_binarize import BNBinarizeModel, BNBinarizeParams
from golden.bn_fold import fold_batchnorm
from sim.stimulus import random_batchnorm


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=0, acc_width=8), "channels must be a positive integer, not 0"),
    (dict(channels=-3, acc_width=8), "channels must be a positive integer, not -3"),
    (dict(channels=2.5, acc_width=8), "channels must be a positive integer, not 2.5"),
    (dict(channels=True, acc_width=8), "channels must be a positive integer, not True"),
    (dict(channels=70000, acc_width=8), "channels must be at most 65536, not 70000"),
    (dict(channels=4, acc_width=1), "acc_width must be at least 2"),
    (dict(channels=4, acc_width=65), "acc_width must be at most 64, not 65"),
    (dict(channels=4, acc_width=10, fan_in=784),
     r"acc_width 10 cannot hold pre-activations in \[-784, 784\] \(fan_in=784\); need at least 11 bits"),
    (dict(channels=4, acc_width=8, fan_in=0), "fan_in must be a positive integer, not 0"),
])
def test_invalid_params_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BNBinarizeParams(**kwargs)


def test_derived_properties():
    p = BNBinarizeParams(channels=10, acc_width=11, fan_in=784)
    assert (p.channel_width, p.preact_min, p.preact_max) == (4, -784, 784)
    q = BNBinarizeParams(channels=1, acc_width=4)
    assert (q.channel_width, q.preact_min, q.preact_max) == (1, -8, 7)
    assert (p.width_min, p.width_max) == (-1024, 1023)
    assert BNBinarizeParams(channels=256, acc_width=8).channel_width == 8
    assert BNBinarizeParams(channels=257, acc_width=8).channel_width == 9


def test_model_reproduces_the_folded_layer(seed):
    rng = np.random.default_rng(seed)
    p = BNBinarizeParams(channels=32, acc_width=10, fan_in=300)
    folded = fold_batchnorm(random_batchnorm(rng, 32, -300, 300), -300, 300)
    model = BNBinarizeModel(p)
    model.load(folded)
    for c in range(32):
        for a in range(-300, 301, 7):
            assert model.output_bit(c, a) == folded.bits(np.full(32, a))[c]


def test_model_rejects_what_the_hardware_cannot_hold():
    model = BNBinarizeModel(BNBinarizeParams(channels=4, acc_width=8, fan_in=100))
    with pytest.raises(ValueError, match="channel 4 out of range 0..3"):
        model.write(4, 0, False)
    with pytest.raises(ValueError, match=r"threshold 101 for channel 0 outside the pre-activation range \[-100, 100\]"):
        model.write(0, 101, False)
    with pytest.raises(ValueError, match="pre-activation 128 does not fit 8 signed bits"):
        model.output_bit(0, 128)
