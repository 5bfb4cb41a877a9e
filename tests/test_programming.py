"""Golden write-verify programming (golden/programming.py): the vectorised controller against a
cell-by-cell reference written here from the module's description, the counter-based device
draws, and the policy checks."""

from __future__ import annotations

import numpy as np
import pytest

from golden.analog.devices import RESET, SET, device_preset
from golden.programming import (PULSE, READ, WriteVerifyPolicy, apply_pulse, cell_uniform,
                                initial_cells, level_codes, program_cells, verify_code)

CASES = {
    "rram": (device_preset("rram", stuck_on_rate=0.05, stuck_off_rate=0.05),
             WriteVerifyPolicy()),
    "dw5": (device_preset("dw5", stuck_on_rate=0.05, stuck_off_rate=0.05),
            WriteVerifyPolicy(levels=5, v_start_v=0.55, v_max_v=1.0, max_pulses=12)),
    "pcm": (device_preset("pcm", stuck_on_rate=0.04, stuck_off_rate=0.04),
            WriteVerifyPolicy(levels=4, window_codes=6, v_step_v=0.0, max_pulses=40)),
}


def reference(device, policy, targets, g, stuck, seed):
    """One cell at a time, one pulse at a time, as the module docstring states the rules."""
    full = (1 << policy.verify_bits) - 1
    g = np.array(g, np.float64)

    def read(c):
        x = (g[c] - device.g_off_s) / (device.g_on_s - device.g_off_s)
        return min(max(int(np.floor(x * full + 0.5)), 0), full)

    commands, failed, energy, pulses = [], [], 0.0, 0
    for c, level in enumerate(targets):
        target = int(np.floor(level / (policy.levels - 1) * full + 0.5))
        commands.append((READ, c))
        energy += device.v_read_v ** 2 * g[c] * policy.read_time_sec
        code, k, last, step = read(c), 0, 0, 0
        while abs(code - target) > policy.window_codes:
            if k == policy.max_pulses:
                failed.append(c)
                break
            polarity = SET if code < target else RESET
            step = min(step + 1, policy.max_step) if k > 0 and polarity == last else 0
            last = polarity
            amplitude = policy.v_start_v + step * policy.v_step_v
            energy += amplitude ** 2 * g[c] * policy.width_sec
            g[c] = float(apply_pulse(device, policy, g[c], c, k, polarity, step, stuck[c], seed))
            commands += [(PULSE, c, polarity, step), (READ, c)]
            energy += device.v_read_v ** 2 * g[c] * policy.read_time_sec
            code, k, pulses = read(c), k + 1, pulses + 1
    return commands, g, failed, energy, pulses


@pytest.mark.parametrize("name", list(CASES))
def test_vectorised_run_equals_the_cell_by_cell_reference(name, seed):
    device, policy = CASES[name]
    cells = 300
    targets = np.random.default_rng(seed).integers(0, policy.levels, cells)
    g, stuck = initial_cells(device, cells, seed)
    got = program_cells(device, policy, targets, g, stuck, seed)
    commands, g_ref, failed, energy, pulses = reference(device, policy, targets, g, stuck, seed)
    assert got.commands() == commands
    assert np.array_equal(got.g_s, g_ref)
    assert np.flatnonzero(got.failed).tolist() == failed
    assert got.pulses == pulses and got.reads == cells + pulses
    assert got.energy_j == pytest.approx(energy, rel=1e-12)
    assert got.time_sec == pytest.approx(pulses * policy.width_sec
                                         + (cells + pulses) * policy.read_time_sec, rel=1e-12)
    # the run means something: retries, skips and failures all occur
    per_cell = np.bincount(got.pulse_cell, minlength=cells)
    assert per_cell.max() >= 2 and got.skipped.any() and got.failed.any()
    # every stuck cell whose stuck state is outside its window is reported, never accepted
    codes = verify_code(device, g, policy.verify_bits)
    target_codes = np.asarray(level_codes(policy.levels, policy.verify_bits))[targets]
    wrong = (stuck != 0) & (np.abs(codes - target_codes) > policy.window_codes)
    assert wrong.any() and np.all(got.failed[wrong])
    print(f"{name}: {cells} cells, {pulses} pulses, {got.skipped.sum()} skipped, "
          f"{got.failed.sum()} failed, {got.energy_j * 1e12:.1f} pJ, {got.time_sec * 1e6:.2f} us")


def test_a_second_run_pulses_only_the_failed_cells(seed):
    device, policy = CASES["rram"]
    targets = np.random.default_rng(seed).integers(0, 2, 500)
    g, stuck = initial_cells(device, 500, seed)
    first = program_cells(device, policy, targets, g, stuck, seed)
    again = program_cells(device, policy, targets, first.g_s, stuck, seed + 1)
    assert set(again.pulse_cell.tolist()) <= set(np.flatnonzero(first.failed).tolist())
    assert again.skipped.sum() >= 500 - first.failed.sum()


def test_draws_are_per_cell_and_switching_follows_the_device_law(seed):
    """A cell's draws do not depend on which other cells are drawn with it, and over many
    cells one pulse switches the fraction Device.switching_probability gives (within 4 sigma
    of the binomial spread)."""
    cells = np.arange(200_000)
    u = cell_uniform(seed, 1, cells, 3)
    assert np.array_equal(u[[5, 77, 1234]], cell_uniform(seed, 1, np.array([5, 77, 1234]), 3))
    assert not np.array_equal(u[:100], cell_uniform(seed, 1, cells[:100], 4)[:100])
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 4 * (1 / 12 / len(u)) ** 0.5
    rram = device_preset("rram")
    policy = WriteVerifyPolicy(v_step_v=0.0, v_start_v=1.15, v_max_v=1.15)
    p = float(rram.switching_probability(1.15, policy.width_sec))
    after = apply_pulse(rram, policy, np.full(len(cells), rram.g_off_s), cells, 0, SET, 0,
                        np.zeros(len(cells)), seed)
    fraction = np.mean(after == rram.g_on_s)
    assert abs(fraction - p) < 4 * (p * (1 - p) / len(cells)) ** 0.5, (fraction, p)


@pytest.mark.parametrize("device, policy, message", [
    (device_preset("pcm"), WriteVerifyPolicy(levels=4, window_codes=2, v_step_v=0.0),
     r"window_codes 2 is narrower than device 'pcm''s step of 8.0 codes"),
    (device_preset("dw3"), WriteVerifyPolicy(levels=4, window_codes=8, v_start_v=0.7),
     r"target level 1 \(code 85\) is unreachable for device 'dw3': its nearest level is 128"),
    (device_preset("rram"), WriteVerifyPolicy(v_start_v=0.5, v_step_v=0.05, v_max_v=0.75),
     r"v_max_v 0.75 V never reaches device 'rram''s switching threshold 0.8 V"),
])
def test_policies_the_device_cannot_follow_are_refused(device, policy, message):
    with pytest.raises(ValueError, match=message):
        program_cells(device, policy, np.zeros(3, np.int64), np.full(3, device.g_off_s),
                      np.zeros(3), 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_pulses=0), "max_pulses must be an integer in 1..65536, not 0"),
    (dict(window_codes=-1), "window_codes must be an integer in 0..255, not -1"),
    (dict(v_step_v=float("nan")), "v_step_v must be a non-negative finite number, not nan"),
    (dict(v_max_v=0.9), r"v_max_v \(0.9\) must be at least v_start_v \(1.0\)"),
    (dict(width_sec=0.0), "width_sec must be a positive finite number, not 0.0"),
])
def test_bad_policies_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WriteVerifyPolicy(**kwargs)


def test_bad_targets_are_refused():
    device, policy = CASES["rram"]
    g = np.full(3, device.g_off_s)
    with pytest.raises(ValueError, match="target level 2 of cell 1 is outside 0..1"):
        program_cells(device, policy, np.array([0, 2, 1]), g, np.zeros(3), 1)
    with pytest.raises(ValueError, match="one entry per cell"):
        program_cells(device, policy, np.array([0, 1]), g, np.zeros(3), 1)


def test_the_programmed_chip_reads_as_the_golden_model_when_every_cell_made_it(seed):
    """Binary RRAM lands exactly on g_on / g_off when it switches: a chip where write-verify
    brought every cell into its window (no stuck cells) reads exactly like the plain golden
    model. With stuck cells, the failed cells are in the chip and change some scores."""
    from golden.chip import ChipConfig
    from golden.mapping import compile_model
    from golden.analog.chip_state import analog_infer
    from golden.model import infer
    from golden.programming import program_model
    from sim.regressions import TINY_ARCH
    from sim.stimulus import random_model

    rng = np.random.default_rng(seed)
    model = random_model(TINY_ARCH, rng)
    pixels = (rng.random((64,) + TINY_ARCH.input_shape) < 0.5).astype(np.uint8)
    want = infer(model, pixels)
    assert len(np.unique(want.scores, axis=0)) > 1
    healthy = ChipConfig(rows=16, columns=8, device=device_preset("rram"))
    result, chip = program_model(compile_model(model, healthy), WriteVerifyPolicy(), seed)
    assert result.pulses > 0 and not result.failed.any()
    got = analog_infer(compile_model(model, healthy), chip, pixels)
    assert np.array_equal(got.scores, want.scores)
    faulty = ChipConfig(rows=16, columns=8, device=device_preset("rram", stuck_on_rate=0.05,
                                                                 stuck_off_rate=0.05))
    mapped = compile_model(model, faulty)
    result, chip = program_model(mapped, WriteVerifyPolicy(), seed)
    assert result.failed.any()
    assert np.array_equal(chip.g_phys_s.reshape(-1), result.g_s)
    assert not np.array_equal(analog_infer(mapped, chip, pixels).scores, want.scores)
    # reprogramming the same model over it: only failed cells are pulsed again
    again, _ = program_model(mapped, WriteVerifyPolicy(), seed, over=(result, chip))
    assert set(again.pulse_cell.tolist()) <= set(np.flatnonzero(result.failed).tolist())


@pytest.mark.parametrize("name", ["rram", "pcm"])
def test_a_subset_programmed_by_cell_ids_draws_as_within_the_whole_set(name, seed):
    """Switching draws are keyed by cell id: programming 300 of 2000 cells under their own
    ids leaves them, their failures and their pulses exactly as programming all 2000 does;
    without the log the figures are the same and the log's views refuse to answer."""
    print(f"seed {seed}")
    device = CASES[name][0]
    policy = WriteVerifyPolicy(levels=2, max_pulses=64)
    g, stuck = initial_cells(device, 2000, seed)
    targets = np.random.default_rng(seed).integers(0, 2, 2000)
    whole = program_cells(device, policy, targets, g.copy(), stuck, 99)
    sub = np.sort(np.random.default_rng(seed + 1).choice(2000, 300, replace=False))
    part = program_cells(device, policy, targets[sub], g[sub].copy(), stuck[sub], 99,
                         cell_ids=sub)
    quiet = program_cells(device, policy, targets[sub], g[sub].copy(), stuck[sub], 99,
                          cell_ids=sub, keep_log=False)
    assert np.array_equal(part.g_s, whole.g_s[sub])
    assert np.array_equal(part.failed, whole.failed[sub]) and part.failed.any()
    assert part.pulses == int(np.isin(whole.pulse_cell, sub).sum()) > 0
    assert np.array_equal(part.skipped, whole.skipped[sub])
    assert np.array_equal(quiet.g_s, part.g_s) and np.array_equal(quiet.failed, part.failed)
    assert (quiet.pulses, quiet.energy_j, quiet.time_sec) == (part.pulses, part.energy_j,
                                                               part.time_sec)
    for view in (lambda r: r.skipped, lambda r: r.commands()):
        with pytest.raises(ValueError, match=r"needs the pulse log, which this programming "
                                             r"did not keep"):
            view(quiet)
