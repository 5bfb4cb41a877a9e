"""Device models (golden/analog/devices.py): statistics against the formulas they state, the
ideal preset against today's programming, presets and their records, the chip's [device]
settings, and the errors. Statistical checks use 5-standard-error bounds (a false failure
about once in 1.7 million per check) and print the measured figures."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from golden.analog.devices import (DEVICE_PRESETS, RESET, SET, Device, IdealDevice, PcmDevice,
                                   device_from_record, device_preset)
from golden.chip import ChipConfig, load_chip_config
from golden.conductance import IdealDevice as ConductanceIdealDevice
from golden.conductance import program_tiles

REPO = Path(__file__).resolve().parent.parent
Z = 5.0   # standard errors allowed in every statistical check


def rng_for(seed, salt):
    print(f"seed {seed} (salt {salt})")
    return np.random.default_rng([seed, salt])


# --- the ideal preset ----------------------------------------------------------------------


@pytest.mark.parametrize("mapping", ["differential", "reference_column"])
def test_ideal_preset_reproduces_todays_programming_exactly(mapping, seed):
    rng = rng_for(seed, 1)
    w = rng.choice(np.array([-1, 0, 1], np.int8), size=(3, 16, 8))
    used = rng.random(w.shape) < 0.9
    carries = used & (w != 0)
    g_on, g_off = 100e-6, 10e-6
    if mapping == "differential":
        want_pos = np.where(carries & (w > 0), g_on, g_off)
        want_neg = np.where(carries & (w < 0), g_on, g_off)
    else:
        want_pos = np.where(carries, np.where(w > 0, g_on, g_off), (g_on + g_off) / 2)
        want_neg = np.full(w.shape, (g_on + g_off) / 2)
    ideal = device_preset("ideal")
    assert ideal == IdealDevice() == ChipConfig().device and ConductanceIdealDevice is IdealDevice
    assert ideal.is_ideal and ideal.preset == "ideal"
    c = program_tiles(w, used, mapping, ideal)
    assert c.g_pos_s.tobytes() == want_pos.tobytes() and c.g_neg_s.tobytes() == want_neg.tobytes()
    # programming ideal cells draws nothing (no rng needed) and returns the targets bit for bit
    for target in (c.g_pos_s, c.g_neg_s):
        cells = ideal.program(target)
        assert cells.g_s.tobytes() == target.tobytes() and cells.g_s is not target
        assert not cells.stuck.any() and not cells.nu.any()
        assert ideal.read(cells.g_s).tobytes() == target.tobytes()
        assert ideal.drift(cells.g_s, 1e6, cells.nu).tobytes() == target.tobytes()


# --- programming error ---------------------------------------------------------------------


def test_pcm_programming_noise_recovers_the_published_polynomial(seed):
    """sigma(g) = 0.26348 + 1.9650 g - 1.1731 g^2 uS (g = G/25 uS), from 1e5 cells per
    target: each measured sigma within 5 standard errors, and the quadratic fitted to them
    recovers the coefficients within 5 of the fit's standard errors."""
    rng = rng_for(seed, 2)
    pcm = device_preset("pcm")
    assert pcm.g_on_s == 25e-6 and pcm.g_dtod_poly_s == (0.26348e-6, 1.9650e-6, -1.1731e-6)
    n = 100_000
    gs = np.linspace(0.1, 1.0, 10)
    cells = pcm.program(np.repeat(gs[:, None] * 25e-6, n, axis=1), rng)
    err_us = (cells.g_s - gs[:, None] * 25e-6) * 1e6
    formula = 0.26348 + 1.9650 * gs - 1.1731 * gs ** 2
    sigma = err_us.std(axis=1, ddof=1)
    se = formula / math.sqrt(2 * (n - 1))                 # standard error of a normal's std
    mean_se = formula / math.sqrt(n)
    print("g, sigma measured / formula (uS):",
          [(round(float(g), 2), round(float(s), 4), round(float(f), 4)) for g, s, f in zip(gs, sigma, formula)])
    assert np.all(np.abs(sigma - formula) < Z * se)
    assert np.all(np.abs(err_us.mean(axis=1)) < Z * mean_se)
    coef, cov = np.polyfit(gs, sigma, 2, w=1 / se, cov="unscaled")
    fitted = coef[::-1]                                    # c0, c1, c2
    coef_se = np.sqrt(np.diag(cov))[::-1]
    print("fitted c0, c1, c2:", fitted, "+-", coef_se)
    assert np.all(np.abs(fitted - [0.26348, 1.9650, -1.1731]) < Z * coef_se)


def test_rram_spread_is_lognormal_with_the_stated_sigma(seed):
    rng = rng_for(seed, 3)
    rram = device_preset("rram")
    n = 200_000
    target = np.where(np.arange(n) % 2 == 0, rram.g_on_s, rram.g_off_s)
    ln_ratio = np.log(rram.program(target, rng).g_s / target)
    s = ln_ratio.std(ddof=1)
    print(f"ln(G/G_T): mean {ln_ratio.mean():.5f}, std {s:.5f} (want 0, 0.1)")
    assert abs(ln_ratio.mean()) < Z * 0.1 / math.sqrt(n)
    assert abs(s - 0.1) < Z * 0.1 / math.sqrt(2 * (n - 1))


def test_levels_snap_to_the_nearest_reachable_state(seed):
    rng = rng_for(seed, 4)
    dw5 = device_preset("dw5", g_dtod_poly_s=())          # no programming error: pure snapping
    levels = dw5.level_conductances()
    assert np.allclose(levels, [20e-6, 27.5e-6, 35e-6, 42.5e-6, 50e-6], rtol=0, atol=1e-18)
    target = rng.uniform(0, 70e-6, 50_000)
    g = dw5.program(target).g_s
    idx = np.searchsorted(levels, g)
    assert np.all(levels[idx] == g), "a programmed value is not a level"
    want = levels[np.argmin(np.abs(target[:, None] - levels[None, :]), axis=1)]
    assert np.array_equal(g, want)
    # ties go to the higher level; out-of-range targets to the end states
    spacing = 7.5e-6
    assert dw5.snap([20e-6 + spacing / 2, 0.0, 1.0]).tolist() == [27.5e-6, 20e-6, 50e-6]
    assert device_preset("pcm").level_conductances() is None


# --- stuck cells ----------------------------------------------------------------------------


def test_stuck_rates_are_within_binomial_bounds(seed):
    rng = rng_for(seed, 5)
    dev = device_preset("rram", stuck_on_rate=0.01, stuck_off_rate=0.09)
    n = 400_000
    target = np.full(n, 55e-6)
    cells = dev.program(target, rng)
    for code, p, g in ((1, 0.01, dev.g_on_s), (-1, 0.09, dev.g_off_s)):
        k = int(np.sum(cells.stuck == code))
        bound = Z * math.sqrt(n * p * (1 - p))
        print(f"stuck {code:+d}: {k} of {n} (expected {n * p:.0f} +- {bound:.0f})")
        assert abs(k - n * p) < bound
        assert np.all(cells.g_s[cells.stuck == code] == g)
        assert np.all(cells.nu[cells.stuck == code] == 0)


def test_explicit_stuck_map_replaces_the_rates():
    dev = device_preset("ideal", stuck_on_rate=0.5)      # the map wins; nothing is drawn
    stuck = np.array([[1, 0, -1], [0, 0, 1]], np.int8)
    target = np.full(stuck.shape, 42e-6)
    cells = dev.program(target, rng=None, stuck_map=stuck)
    assert np.array_equal(cells.stuck, stuck)
    assert cells.g_s.tolist() == [[100e-6, 42e-6, 10e-6], [42e-6, 42e-6, 100e-6]]
    with pytest.raises(ValueError, match=r"stuck_map shape \(3,\) does not match the targets \(2, 3\)"):
        dev.program(target, stuck_map=[0, 0, 1])
    with pytest.raises(ValueError, match="stuck_map entries must be"):
        dev.program(target, stuck_map=np.full(stuck.shape, 2))


# --- drift and read noise --------------------------------------------------------------------


def test_drift_follows_the_power_law(seed):
    rng = rng_for(seed, 6)
    pcm = device_preset("pcm")
    n = 100_000
    cells = pcm.program(np.full(n, 20e-6), rng)
    nu = cells.nu
    print(f"nu: mean {nu.mean():.5f}, std {nu.std(ddof=1):.5f} (want 0.05, 0.008)")
    assert abs(nu.mean() - 0.05) < Z * 0.008 / math.sqrt(n)
    assert abs(nu.std(ddof=1) - 0.008) < Z * 0.008 / math.sqrt(2 * (n - 1))
    ts = np.array([20.0, 200.0, 3600.0, 86400.0, 3.15e7])
    g_t = np.stack([pcm.drift(cells.g_s, t, nu) for t in ts])
    # per cell: log G is linear in log t with slope -nu
    slope = np.polyfit(np.log(ts), np.log(g_t), 1)[0]
    assert np.allclose(slope, -nu, rtol=0, atol=1e-12)
    assert np.array_equal(g_t[0], cells.g_s)                 # t = t0: G0 itself
    assert math.isclose(pcm.drift(1e-6, 2000.0), 1e-6 * 100 ** -0.05, rel_tol=1e-14)
    with pytest.raises(ValueError, match=r"t_sec must be a finite time >= drift_t0_sec \(20.0\), not 5"):
        pcm.drift(cells.g_s, 5)


def test_read_noise_is_fresh_per_read_and_the_programmed_state_fixed(seed):
    rng = rng_for(seed, 7)
    rram = device_preset("rram")
    cells = rram.program(np.full((300, 300), rram.g_on_s), rng)
    kept = cells.g_s.copy()
    r1, r2 = rram.read(cells.g_s, rng), rram.read(cells.g_s, rng)
    assert np.array_equal(cells.g_s, kept), "a read changed the programmed state"
    assert not np.any(r1 == r2)
    rel = (np.concatenate([r1, r2]) / np.concatenate([kept, kept]) - 1).ravel()
    n = rel.size
    print(f"relative read noise: mean {rel.mean():.2e}, std {rel.std(ddof=1):.5f} (want 0.01)")
    assert abs(rel.mean()) < Z * 0.01 / math.sqrt(n)
    assert abs(rel.std(ddof=1) - 0.01) < Z * 0.01 / math.sqrt(2 * (n - 1))


def test_same_seed_same_chip(seed):
    target = np.random.default_rng(seed).uniform(1e-6, 25e-6, (4, 32, 32))
    for name in DEVICE_PRESETS:
        dev = device_preset(name, stuck_on_rate=0.02, stuck_off_rate=0.03)
        a = dev.program(target, np.random.default_rng(seed))
        b = dev.program(target, np.random.default_rng(seed))
        c = dev.program(target, np.random.default_rng(seed + 1))
        for x, y in ((a.g_s, b.g_s), (a.stuck, b.stuck), (a.nu, b.nu)):
            assert x.tobytes() == y.tobytes(), name
        assert not np.array_equal(a.stuck, c.stuck), name


# --- I-V and switching ----------------------------------------------------------------------


def test_cell_current_linear_and_sinh_law():
    g = np.array([10e-6, 100e-6])
    v = np.array([[-0.5], [0.0], [0.1], [0.3]])
    assert np.array_equal(IdealDevice().cell_current(g, v), g * v)
    assert IdealDevice(iv_v0_v=0).iv_v0_v is None and IdealDevice(iv_v0_v=0).iv_linear
    dev = IdealDevice(iv_v0_v=0.25)
    i = dev.cell_current(g, v)
    assert np.allclose(i, g * 0.25 * np.sinh(v / 0.25), rtol=1e-15, atol=0)
    assert np.allclose(dev.cell_current(g, -v), -i, rtol=0, atol=0)                  # odd
    h = 1e-6                                       # small-signal conductance at 0 V is g
    assert np.allclose((dev.cell_current(g, h) - dev.cell_current(g, -h)) / (2 * h), g,
                       rtol=1e-9)
    assert math.isclose(float(dev.cell_current(1.0, 0.25)), 0.25 * math.sinh(1.0))
    assert "iv_v0_v" in dev.non_ideal_parameters()


def test_switching_probability_follows_the_poisson_law():
    rram = device_preset("rram")          # threshold 0.8 V, tau 100 ns at 1.2 V, V0 0.1 V
    p = rram.switching_probability([0.7, 1.2, 1.2, 1.3], [1e-6, 100e-9, 50e-9, 100e-9])
    want = [0.0, 1 - math.exp(-1), 1 - math.exp(-0.5), 1 - math.exp(-math.e)]
    assert np.allclose(p, want, rtol=1e-14, atol=0)
    assert np.array_equal(rram.switching_probability(-1.2, 100e-9, RESET), p[1:2].reshape(()))
    assert np.array_equal(IdealDevice().switching_probability([0.4, 0.6], 1e-9), [0.0, 1.0])


def test_binary_pulse_switches_fully_with_the_stated_probability(seed):
    rng = rng_for(seed, 8)
    rram = device_preset("rram")
    n = 200_000
    cells = rram.program(np.full(n, rram.g_off_s), rng)
    after = rram.pulse(cells.g_s, SET, 1.2, 100e-9, rng)
    switched = after != cells.g_s
    p = 1 - math.exp(-1)
    k = int(switched.sum())
    print(f"SET at 1.2 V, 100 ns: {k} of {n} switched (p = {p:.4f})")
    assert abs(k - n * p) < Z * math.sqrt(n * p * (1 - p))
    # a switch is a full swing, the cell's own deviation kept
    assert np.allclose(after[switched] - cells.g_s[switched], rram.g_on_s - rram.g_off_s,
                       rtol=1e-12, atol=0)
    assert np.array_equal(rram.pulse(after, SET, 1.2, 100e-9, rng)[switched], after[switched])
    # no pulse (polarity 0), sub-threshold pulses and stuck cells leave cells alone
    assert np.array_equal(rram.pulse(cells.g_s, 0, 1.2, 1e-3, rng), cells.g_s)
    assert np.array_equal(rram.pulse(cells.g_s, SET, 0.79, 1.0), cells.g_s)
    stuck = np.ones(n, np.int8)
    assert np.array_equal(rram.pulse(cells.g_s, SET, 2.0, 1e-3, rng, stuck=stuck), cells.g_s)


def test_level_device_moves_one_state_per_successful_pulse(seed):
    rng = rng_for(seed, 9)
    dw3 = device_preset("dw3")            # p = 1 - 1/e at 1.0 V, 10 ns; 3 states
    levels = dw3.level_conductances()
    g = np.full(100_000, levels[0])
    counts = []
    for _ in range(3):
        g = dw3.pulse(g, SET, 1.0, 10e-9, rng)
        counts.append(np.bincount(np.searchsorted(levels, g), minlength=3))
    assert set(np.unique(g)) <= set(levels)
    # after k pulses the state is min(Binomial(k, p), 2)
    p = 1 - math.exp(-1)
    n = len(g)
    for k, c in enumerate(counts, start=1):
        want = [(1 - p) ** k, k * p * (1 - p) ** (k - 1)]
        want.append(1 - sum(want))
        print(f"after {k} pulses: {c.tolist()} (expected {[round(n * q) for q in want]})")
        for got, q in zip(c, want):
            assert abs(got - n * q) < Z * math.sqrt(n * q * (1 - q)) + 1e-9
    down = dw3.pulse(np.full(10, levels[2]), RESET, -2.0, 1e-6, rng)   # p = 1: certain
    assert np.array_equal(down, np.full(10, levels[1]))
    assert np.array_equal(dw3.pulse(np.full(3, levels[0]), RESET, -2.0, 1e-6), np.full(3, levels[0]))


def test_pcm_set_pulse_is_a_noisy_increment(seed):
    rng = rng_for(seed, 10)
    pcm = device_preset("pcm")
    n = 200_000
    g0 = np.full(n, 10e-6)
    dg = (pcm.pulse(g0, SET, 1.0, 50e-9, rng) - g0) * 1e6
    # a SET never lowers G: the increment is max(0, N(0.75, 0.5)) uS
    a = 0.75 / 0.5
    mean = 0.75 * norm.cdf(a) + 0.5 * norm.pdf(a)
    second = (0.75 ** 2 + 0.5 ** 2) * norm.cdf(a) + 0.75 * 0.5 * norm.pdf(a)
    std = math.sqrt(second - mean ** 2)
    print(f"PCM SET increment: mean {dg.mean():.4f} uS (want {mean:.4f}), std {dg.std():.4f} "
          f"(want {std:.4f})")
    assert np.all(dg >= 0)
    assert abs(dg.mean() - mean) < Z * std / math.sqrt(n)
    assert abs(dg.std(ddof=1) - std) < Z * 0.02      # loose: the rectified normal's 4th moment
    assert np.all(pcm.pulse(np.full(5, 24.9e-6), SET, 1.0, 50e-9, rng) <= 25e-6)


# --- presets, records, TOML -----------------------------------------------------------------


def test_presets_are_subclasses_that_round_trip_through_their_records():
    assert list(DEVICE_PRESETS) == ["ideal", "rram", "pcm", "dw3", "dw5"]
    for name, cls in DEVICE_PRESETS.items():
        dev = device_preset(name)
        assert type(dev) is cls and issubclass(cls, Device) and dev.preset == name
        assert cls.__doc__ and len(cls.__doc__) > 100, f"{name} cites no source"
        again = device_from_record(json.loads(json.dumps(dev.record())))
        assert again == dev
        assert (name == "ideal") == dev.is_ideal
    assert device_preset("dw5").levels == 5 and device_preset("dw3").levels == 3
    assert device_preset("rram", g_on_s=200e-6).g_on_s == 200e-6
    assert isinstance(device_preset("pcm"), PcmDevice)


def test_device_settings_from_the_chip_toml(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text('[device]\npreset = "pcm"\ndrift_nu = 0.08\n'
                    'g_dtod_poly_s = [0.3e-6, 2e-6]\n')
    chip = load_chip_config(path)
    assert chip.device == device_preset("pcm", drift_nu=0.08, g_dtod_poly_s=(0.3e-6, 2e-6))
    path.write_text('[device]\nstuck_off_rate = 0.09\n')             # no preset: ideal's
    assert load_chip_config(path).device == IdealDevice(stuck_off_rate=0.09)
    path.write_text('[device]\npreset = "pcm"\nlevels = 8\nswitch_step_s = 0\n')   # a level PCM
    assert load_chip_config(path).device.level_conductances().size == 8
    path.write_text('device = "dw5"\n')
    assert load_chip_config(path).device == device_preset("dw5")


@pytest.mark.parametrize("text, message", [
    ('[device]\npreset = "reram"\n',
     "unknown device preset 'reram'; expected one of ideal, rram, pcm, dw3, dw5"),
    ('[device]\npreset = "rram"\ng_on = 1e-4\n', "unknown device parameter 'g_on' \\(= 0.0001\\)"),
    ('[device]\nstuck_on_rate = 1.5\n', re.escape("stuck_on_rate must be in [0, 1], not 1.5")),
    ('[device]\nlevels = 1\n', "levels must be an integer in 2..65536, not 1"),
    ('[device]\ng_off_s = nan\n', "g_off_s must be a positive finite number, not nan"),
    ('[device]\nread_noise_std = inf\n', re.escape("read_noise_std must be in [0, 1), not inf")),
])
def test_bad_device_settings_in_toml_are_rejected(tmp_path, text, message):
    path = tmp_path / "chip.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_chip_config(path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(stuck_on_rate=1.5), "stuck_on_rate must be in [0, 1], not 1.5"),
    (dict(stuck_off_rate=-0.1), "stuck_off_rate must be in [0, 1], not -0.1"),
    (dict(stuck_on_rate=0.6, stuck_off_rate=0.5), "stuck_on_rate + stuck_off_rate must be at most 1, not 1.1"),
    (dict(g_on_s=-1e-4), "g_on_s must be a positive finite number, not -0.0001"),
    (dict(g_on_s=float("inf")), "g_on_s must be a positive finite number, not inf"),
    (dict(g_on_s=1e-5, g_off_s=2e-5), "g_on_s (1e-05) must exceed g_off_s (2e-05)"),
    (dict(g_on_s=1e-5, g_off_s=1e-5), "g_on_s (1e-05) must exceed g_off_s (1e-05)"),
    (dict(drift_nu=-0.05), "drift_nu must be a non-negative finite number, not -0.05"),
    (dict(g_dtod_sigma_ln=float("nan")), "g_dtod_sigma_ln must be a non-negative finite number, not nan"),
    (dict(g_dtod_poly_s=(1e-6, float("nan"))), "g_dtod_poly_s must be a sequence of finite numbers (siemens), not (1e-06, nan)"),
    (dict(iv_v0_v=-0.2), "iv_v0_v must be a non-negative finite number, not -0.2"),
    (dict(levels=2.0), "levels must be an integer in 2..65536, not 2.0"),
    (dict(switch_v_th_v=0.1), "switch_v_th_v (0.1) must exceed v_read_v (0.2): a read would switch cells"),
    (dict(levels=3, switch_step_s=1e-6), "switch_step_s is for continuous devices (levels None); a device with 3 levels steps by whole levels: set switch_step_s = 0, not 1e-06"),
    (dict(switch_step_s=-1e-6), "switch_step_s must be a non-negative finite number, not -1e-06"),
    (dict(drift_t0_sec=0), "drift_t0_sec must be a positive finite number, not 0"),
    (dict(v_read_v=True), "v_read_v must be a positive finite number, not True"),
])
def test_bad_device_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        IdealDevice(**kwargs)


def test_bad_inputs_to_the_operations_are_rejected():
    rram = device_preset("rram")
    with pytest.raises(ValueError, match=re.escape("target_s must be finite and non-negative (siemens), not -1e-06")):
        rram.program([10e-6, -1e-6], np.random.default_rng(0))
    with pytest.raises(ValueError, match="target_s must be finite and non-negative \\(siemens\\), not nan"):
        IdealDevice().program([np.nan])
    with pytest.raises(ValueError, match="device preset 'rram' draws programming errors: pass a seeded numpy.random.Generator as rng, not None"):
        rram.program([10e-6])
    with pytest.raises(ValueError, match="device preset 'rram' draws read noise"):
        rram.read([10e-6], rng=42)
    with pytest.raises(ValueError, match="width_sec must be positive and finite, not 0.0"):
        rram.switching_probability(1.0, 0.0)
    with pytest.raises(ValueError, match="amplitude_v must be finite, not nan"):
        rram.switching_probability(np.nan, 1e-9)
    with pytest.raises(ValueError, match="polarity must be \\+1 \\(SET\\), -1 \\(RESET\\) or 0 \\(no pulse\\), not 2"):
        rram.pulse([10e-6], 2, 1.0, 1e-9, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown device parameter 'g_onn_s' \\(= 1\\)"):
        device_preset("rram", g_onn_s=1)


# --- generate refuses what the crossbar model cannot represent -------------------------------


@pytest.mark.parametrize("table, message", [
    ('[device]\npreset = "rram"\n',
     "this chip's device or ADC is random: give a seed (--seed) to program it"),
    ('[adc]\nbits = 9\nfull_scale = 100.0\n',
     "[adc] full_scale = 100.0: an LSB of 0.390625 weights needs the accumulator to scale the "
     "codes, not yet supported (use full_scale = 256.0)"),
    ('[device]\niv_v0_v = 0.3\n[parasitics]\nr_wire_ohm = 1.0\n',
     "device iv_v0_v = 0.3 (non-linear cells) with parasitic resistance is not a linear map; "
     "the RTL crossbar needs one"),
])
def test_generate_refuses_a_non_ideal_chip_with_one_line(tmp_path, table, message):
    cfg = tmp_path / "chip.toml"
    cfg.write_text(table)
    out = tmp_path / "gen"
    r = subprocess.run([sys.executable, "-m", "sim.cli", "generate", "--model", "models/mlp.npz",
                        "--config", str(cfg), "--out", str(out)], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"mbnn: error: {message}"], r.stderr
    assert not out.exists()


def test_generate_records_the_device_and_adc_in_the_manifest(tmp_path):
    from periphery.generate_model import generate_model
    chip = ChipConfig(rows=512, columns=256, device=IdealDevice(g_on_s=50e-6, g_off_s=2e-6))
    manifest = generate_model(REPO / "models" / "mlp.npz", chip, tmp_path / "gen")
    on_disk = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    rec = on_disk["chip"]["device"]
    assert rec["preset"] == "ideal" and rec["g_on_s"] == 50e-6 and rec["g_off_s"] == 2e-6
    assert set(rec) == {f for f in IdealDevice().record()}
    assert (on_disk["chip"]["adc_bits"], on_disk["chip"]["adc_full_scale"],
            on_disk["chip"]["adc_gain_dtod"], on_disk["chip"]["adc_offset_dtod_lsb"]) == (11, 1024.0, 0.0, 0.0)
    assert ChipConfig(**on_disk["chip"]) == chip
    assert on_disk["crossbar"]["g_unit_s"] == 50e-6 - 2e-6
