"""The column ADC model (golden/analog/adc.py): the ideal case against today's exact golden
read, the Verilog crossbar's rounding rule at decision boundaries, full scale, saturation,
per-column gain/offset errors, and the [adc] chip settings."""

import math
import re

import numpy as np
import pytest

from golden.analog.adc import Adc, AdcErrors
from golden.chip import ChipConfig, load_chip_config
from golden.conductance import program_tiles
from golden.mapping import crossbar_read


def rtl_currents(bits, g_pos, g_neg, v_read):
    """Column currents formed as rtl/analog/mbnn_crossbar.v forms them: per cell G+ - G-,
    summed over the driven rows in ascending order from 0.0, times V_READ."""
    diff = g_pos - g_neg
    out = np.zeros((bits.shape[0], diff.shape[1]))
    for p in range(bits.shape[0]):
        acc = np.zeros(diff.shape[1])
        for r in range(diff.shape[0]):
            if bits[p, r]:
                acc = acc + diff[r]
        out[p] = v_read * acc
    return out


def verilog_code(current, v_read, g_unit, adc_bits):
    """The Verilog expression, in plain Python doubles: $rtoi($floor(V_READ * current[c] /
    lsb_a + 0.5)) with lsb_a = V_READ * G_UNIT, then the two saturation ifs."""
    lsb_a = v_read * g_unit
    code = int(math.floor(current / lsb_a + 0.5))
    return max(min(code, (1 << (adc_bits - 1)) - 1), -(1 << (adc_bits - 1)))


@pytest.mark.parametrize("chip", [ChipConfig(16, 8, adc_bits=3), ChipConfig(37, 13),
                                  ChipConfig(64, 16, mapping="reference_column", adc_bits=5)],
                         ids=lambda c: f"{c.rows}x{c.columns}-{c.mapping}-{c.adc_bits}b")
def test_ideal_adc_is_todays_exact_read(chip, seed):
    """Programmed ideal conductances -> RTL-order currents -> Adc.convert equals the existing
    golden crossbar_read (integer sums, clipped) and the Verilog expression, read by read."""
    rng = np.random.default_rng([seed, 11])
    print(f"seed {seed}")
    w = rng.choice(np.array([-1, 0, 1], np.int8), p=[0.45, 0.1, 0.45],
                   size=(1, chip.rows, chip.columns))
    cond = program_tiles(w, np.ones(w.shape, bool), chip.mapping)
    bits = (rng.random((40, chip.rows)) < rng.choice([0.1, 0.5, 0.9, 1.0], size=(40, 1))).astype(np.uint8)
    current = rtl_currents(bits, cond.g_pos_s[0], cond.g_neg_s[0], cond.v_read_v)
    adc = chip.adc
    assert adc.is_ideal and adc.lsb_weights == 1.0
    got = adc.convert(current, cond.v_read_v, cond.g_unit_s)
    want = crossbar_read(bits, w[0], chip)
    assert np.array_equal(got, want)
    assert got.tolist() == [[verilog_code(i, cond.v_read_v, cond.g_unit_s, chip.adc_bits)
                             for i in row] for row in current]
    # an ideal ADC draws no errors; explicit ideal errors change no bit
    errors = adc.draw_errors(chip.columns)
    assert np.array_equal(adc.convert(current, cond.v_read_v, cond.g_unit_s, errors), got)
    print(f"{np.sum(np.abs(bits.astype(int) @ w[0].astype(int)) > adc.code_max)} saturated codes")


def test_rounding_is_half_up_at_the_decision_boundaries():
    """floor(x + 0.5): halves go up (towards +inf) on both signs -- not half-to-even, not
    half-away-from-zero -- and the doubles just below a half go down (but one)."""
    adc = Adc(bits=8)
    v, g = 0.5, 2.0 ** -14             # power-of-two LSB: current / lsb_a is exact
    lsb = v * g
    x = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5])
    assert adc.convert(x * lsb, v, g).tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]
    below = np.nextafter(x, -np.inf)
    # ... except the double just below +0.5: x + 0.5 rounds to 1.0 in double, so it codes 1.
    # The rule is floor(x + 0.5) as evaluated in doubles, quirk included (the Verilog has it).
    assert adc.convert(below * lsb, v, g).tolist() == [-4, -3, -2, -1, 1, 1, 2, 3]
    assert [verilog_code(b * lsb, v, g, 8) for b in below] == [-4, -3, -2, -1, 1, 1, 2, 3]
    above = np.nextafter(x, np.inf)
    assert adc.convert(above * lsb, v, g).tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]
    # with a non-power-of-two LSB the golden and the Verilog expression still agree bit for bit
    v, g = 0.2, 90e-6
    rng = np.random.default_rng(0)
    k = rng.integers(-130, 130, 20_000)
    near = (k + 0.5 + rng.choice([-1, 0, 1], k.size) * 1e-15 * rng.integers(0, 4, k.size)) * (v * g)
    assert adc.convert(near, v, g).tolist() == [verilog_code(i, v, g, 8) for i in near]


def test_saturation_and_full_scale():
    adc = Adc(bits=8, full_scale=64.0)        # LSB = half a weight
    assert (adc.code_min, adc.code_max, adc.lsb_weights) == (-128, 127, 0.5)
    assert not adc.is_ideal and not adc.unit_lsb
    v, g = 0.25, 2.0 ** -10
    w = v * g                                  # current of one weight
    sums = np.array([0.0, 10.0, -10.0, 0.25, 63.5, 64.0, 1e9, -64.0, -64.5, -1e9])
    assert adc.convert(sums * w, v, g).tolist() == [0, 20, -20, 1, 127, 127, 127, -128, -128, -128]
    assert Adc(bits=9).full_scale == 256.0 and Adc(bits=9).is_ideal


def test_gain_then_offset_in_that_order():
    adc = Adc(bits=6, gain_dtod=0.1, offset_dtod_lsb=0.5)
    errors = AdcErrors(gain=np.array([3.0, 1.0]), offset_lsb=np.array([0.3, -0.6]))
    v, g = 1.0, 1.0
    # column 0: 1.0 * 3 + 0.3 = 3.3 -> 3 (offset-then-gain would give 3.9 -> 4)
    # column 1: 2.0 * 1 - 0.6 = 1.4 -> 1
    assert adc.convert(np.array([[1.0, 2.0]]), v, g, errors).tolist() == [[3, 1]]


def test_column_errors_are_drawn_once_per_chip_with_the_stated_spread(seed):
    print(f"seed {seed}")
    adc = Adc(bits=7, gain_dtod=0.02, offset_dtod_lsb=0.3)
    n = 100_000
    e = adc.draw_errors(n, np.random.default_rng([seed, 12]))
    again = adc.draw_errors(n, np.random.default_rng([seed, 12]))
    assert e.gain.tobytes() == again.gain.tobytes()
    assert e.offset_lsb.tobytes() == again.offset_lsb.tobytes()
    for values, mean, std in ((e.gain, 1.0, 0.02), (e.offset_lsb, 0.0, 0.3)):
        print(f"mean {values.mean():.5f} std {values.std(ddof=1):.5f} (want {mean}, {std})")
        assert abs(values.mean() - mean) < 5 * std / math.sqrt(n)
        assert abs(values.std(ddof=1) - std) < 5 * std / math.sqrt(2 * (n - 1))
    with pytest.raises(ValueError, match="ADC errors are random: pass a seeded numpy.random.Generator as rng, not None"):
        adc.draw_errors(4)


def test_chip_adc_settings_and_what_they_allow():
    chip = ChipConfig()
    assert (chip.adc_full_scale, chip.adc_gain_dtod, chip.adc_offset_dtod_lsb) == (256.0, 0.0, 0.0)
    assert chip.adc == Adc(9) and chip.adc_exact and chip.non_ideal_settings() == []
    assert ChipConfig(adc_full_scale=256) == chip
    scaled = ChipConfig(rows=16, columns=8, adc_bits=4, adc_full_scale=16.0)
    assert not scaled.adc_exact and scaled.adc.lsb_weights == 2.0
    assert scaled.non_ideal_settings() == ["[adc] full_scale = 16.0 (not 8.0, an LSB of one weight)"]
    assert ChipConfig(adc_gain_dtod=0.01).non_ideal_settings() == ["[adc] gain_dtod = 0.01"]
    bits = np.ones((1, 16), np.uint8)
    message = ("[adc] full_scale = 16.0 (not 8.0, an LSB of one weight): the ideal read cannot "
               "model it; program the chip and read it with golden.analog.chip_state.analog_infer")
    with pytest.raises(ValueError, match=re.escape(message)):
        crossbar_read(bits, np.ones((16, 8), np.int8), scaled)


def test_adc_settings_from_the_chip_toml(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text("[adc]\nbits = 6\nfull_scale = 48\ngain_dtod = 0.01\noffset_dtod_lsb = 0.2\n")
    chip = load_chip_config(path)
    assert chip.adc == Adc(6, 48.0, 0.01, 0.2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(adc_full_scale=0), "adc_full_scale must be a positive finite number, not 0"),
    (dict(adc_full_scale=float("inf")), "adc_full_scale must be a positive finite number, not inf"),
    (dict(adc_gain_dtod=-0.01), "adc_gain_dtod must be a non-negative finite number, not -0.01"),
    (dict(adc_offset_dtod_lsb=float("nan")), "adc_offset_dtod_lsb must be a non-negative finite number, not nan"),
    (dict(adc_full_scale="64"), "adc_full_scale must be a positive finite number, not '64'"),
])
def test_bad_chip_adc_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ChipConfig(**kwargs)


def test_bad_adc_inputs_are_rejected():
    with pytest.raises(ValueError, match="bits must be an integer in 2..24, not 1"):
        Adc(bits=1)
    adc = Adc(bits=4)
    with pytest.raises(ValueError, match="current_a must be finite, not nan"):
        adc.convert(np.array([1e-6, np.nan]), 0.2, 1e-5)
    with pytest.raises(ValueError, match="v_read_v must be a positive finite number, not -0.2"):
        adc.convert(np.array([1e-6]), -0.2, 1e-5)
    with pytest.raises(ValueError, match="ADC errors are for 3 columns, the currents have 2"):
        adc.convert(np.zeros((1, 2)), 0.2, 1e-5, AdcErrors(np.ones(3), np.zeros(3)))
