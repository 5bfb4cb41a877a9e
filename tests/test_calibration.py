"""Threshold calibration from reference reads (golden/analog/calibration.py): the fit and
threshold rule on numbers worked by hand, no change on an ideal chip, and the accuracy it
recovers on a drifted PCM chip and on a chip with ADC offsets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from golden.analog.calibration import LayerFit, _calibrated_layer, calibrate
from golden.analog.chip_state import program_chip
from golden.analog.evaluate import fast_analog_infer
from golden.bn_fold import FoldedThreshold
from golden.chip import ChipConfig
from golden.mapping import compile_model, mapped_infer
from golden.mnist import binarize_pixels, load_mnist
from golden.model import load_model
from sim.regressions import CORE_SETS

REPO = Path(__file__).resolve().parent.parent


def test_fit_and_threshold_rule_by_hand():
    # a_chip = 2 a_ideal + 3 on channel 0, a_ideal - 1 on channel 1, constant input on 2
    a_ideal = np.array([[0, 4, 7], [1, 5, 7], [2, 9, 7], [6, 0, 7]])
    a_chip = np.stack([2 * a_ideal[:, 0] + 3, a_ideal[:, 1] - 1, [9, 9, 9, 9]], axis=1)
    fit = LayerFit(a_ideal, a_chip)
    np.testing.assert_allclose(fit.gain, [2.0, 1.0, 1.0])
    np.testing.assert_allclose(fit.offset, [3.0, -1.0, 2.0], atol=1e-12)
    layer = compile_model(CORE_SETS["tiny_16x8"].load(1), CORE_SETS["tiny_16x8"].chip).layers[0]
    c = layer.out_channels
    t = FoldedThreshold(np.full(c, 5), np.zeros(c, bool))
    fit.gain = np.full(c, 2.0)
    fit.offset = np.full(c, 3.0)
    # ideal boundary between 4 and 5 is 4.5 -> 2 * 4.5 + 3 = 12: a_chip >= 12
    got = _calibrated_layer(replace(layer, threshold=t), fit)
    assert got.threshold.threshold.tolist() == [12] * c
    fit.gain = np.full(c, -1.0)      # a degenerate fit keeps the threshold
    assert _calibrated_layer(replace(layer, threshold=t), fit).threshold.threshold.tolist() \
        == [5] * c


def test_ideal_chip_calibrates_to_itself(seed):
    print(f"seed {seed}")
    core = CORE_SETS["tiny_16x8"]
    chip = ChipConfig(16, 8, adc_bits=5)
    mapped = compile_model(core.load(seed), chip)
    state = program_chip(mapped)
    x = (np.random.default_rng(seed).random((300,) + tuple(mapped.input_shape)) < 0.5)
    fitted, fits = calibrate(mapped, state, x)
    for before, after, fit in zip(mapped.layers, fitted.layers, fits):
        assert fit.rms_before == 0.0
        if before.threshold is not None:
            np.testing.assert_array_equal(before.threshold.threshold,
                                          after.threshold.threshold)
        np.testing.assert_array_equal(before.correction_bias, after.correction_bias)


@pytest.fixture(scope="module")
def mnist():
    test, train = load_mnist("test"), load_mnist("train")
    return (binarize_pixels(test.images[:1000]), test.labels[:1000],
            binarize_pixels(train.images[:500]))


@pytest.mark.parametrize("chip, read_time_sec, before_below, after_within", [
    # PCM a day and a half after programming: conductances ~0.58x, thresholds misplaced
    (ChipConfig(device={"preset": "pcm"}), 1e6, 0.70, 0.01),
    # ADC offsets of 6 LSB and 20 % gains, per column, summed over up to 8 row tiles (2 LSB
    # and 10 % did not hurt the MLP: before = ideal within read noise, so after > before was
    # a coin toss on the noise draw)
    # The 98.88 % MLP keeps less margin than the 98.46 % one did: over seeds 1-14 it recovers
    # to 0.980-0.992 of an ideal 0.991 (the older model: within 0.003 of its 0.983).
    (ChipConfig(device={"preset": "rram"}, adc_offset_dtod_lsb=6.0, adc_gain_dtod=0.2), None,
     0.95, 0.015),
])
def test_calibration_recovers_accuracy(mnist, seed, chip, read_time_sec, before_below,
                                       after_within):
    print(f"seed {seed}")
    px, y, cal = mnist
    model = load_model(REPO / "models/mlp.npz")
    mapped = compile_model(model, chip)
    ideal = float(np.mean(mapped_infer(compile_model(model, chip.ideal()), px).predictions == y))
    state = program_chip(mapped, seed, read_time_sec)
    noise = chip.device.read_noise_std
    before = np.mean(fast_analog_infer(mapped, state, px, noise,
                                       np.random.default_rng(seed)).predictions == y)
    fitted, fits = calibrate(mapped, state, cal, noise, np.random.default_rng(seed + 1))
    after = np.mean(fast_analog_infer(fitted, state, px, noise,
                                      np.random.default_rng(seed)).predictions == y)
    print(f"ideal {ideal:.3f} before {before:.3f} after {after:.3f}")
    assert after > before
    assert after >= ideal - after_within
    if before_below is not None:
        assert before < before_below
    assert all(f.rms_after < f.rms_before for f in fits)
