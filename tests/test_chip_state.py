"""The programmed (non-ideal) chip and its exact read, against independent references:
the ideal mapped model, a per-operation Python transcription of the read's specification, the
parasitic network solved directly, and the device laws."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from golden.analog.chip_state import analog_infer, analog_read, program_chip
from golden.analog.parasitics import CrossbarNetwork, physical_conductances, weight_currents
from golden.chip import ChipConfig
from golden.conductance import program
from golden.mapping import compile_model, mapped_infer
from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model
from sim.regressions import CORE_SETS

NONIDEAL = dict(device={"preset": "rram", "stuck_on_rate": 0.01, "stuck_off_rate": 0.05},
                r_wire_ohm=1.0, r_source_ohm=5.0, r_sense_ohm=5.0, adc_gain_dtod=0.01,
                adc_offset_dtod_lsb=0.1)


def tiny(seed, adc_bits=3, **chip):
    """The random 16x8 test CNN of the RTL regression on a chip with these settings."""
    core = CORE_SETS["tiny_16x8"]
    return compile_model(core.load(seed), ChipConfig(16, 8, adc_bits=adc_bits, **chip))


def random_inputs(mapped, n, seed):
    rng = np.random.default_rng(seed + 1)
    return (rng.random((n,) + tuple(mapped.input_shape)) < 0.5).astype(np.uint8)


def reference_read(bits_row, state, tile, columns):
    """The read's specification transcribed operation by operation in plain Python floats."""
    chip = state.chip
    lsb = (state.v_read_v * state.g_unit_s) * (chip.adc.full_scale / (1 << (chip.adc_bits - 1)))
    codes = []
    for c in range(columns):
        s = 0.0
        for r, bit in enumerate(bits_row):
            if bit:
                s = s + (float(state.g_pos_s[tile, r, c]) - float(state.g_neg_s[tile, r, c]))
        x = (state.v_read_v * s) / lsb
        x = x * float(state.adc_gain[tile, c])
        x = x + float(state.adc_offset_lsb[tile, c])
        code = math.floor(x + 0.5)
        codes.append(min(max(code, chip.adc_min), chip.adc_max))
    return codes


def test_ideal_chip_is_the_mapped_model():
    model = load_model("models/mlp.npz")
    mapped = compile_model(model, ChipConfig())
    state = program_chip(mapped)
    target = program(mapped)
    np.testing.assert_array_equal(state.g_pos_s, target.g_pos_s)
    np.testing.assert_array_equal(state.g_neg_s, target.g_neg_s)
    pixels = binarize_pixels(load_mnist("test").images[:100])
    got = analog_infer(mapped, state, pixels, keep_layers=True)
    want = infer(model, pixels, keep_layers=True)
    np.testing.assert_array_equal(got.scores, want.scores)
    for a, b in zip(got.layer_bits, want.layer_bits):
        np.testing.assert_array_equal(a, b)


def test_ideal_chip_with_saturating_adcs_is_the_mapped_model(seed):
    mapped = tiny(seed)
    assert not mapped.chip.adc_exact
    x = random_inputs(mapped, 30, seed)
    got = analog_infer(mapped, program_chip(mapped), x, keep_layers=True)
    want = mapped_infer(mapped, x, keep_layers=True)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_non_ideal_chip_read_follows_its_specification(seed):
    print(f"seed {seed}")
    mapped = tiny(seed, **NONIDEAL)
    state = program_chip(mapped, seed=seed)
    rng = np.random.default_rng(seed)
    for tile in (0, state.tiles // 2, state.tiles - 1):
        bits = (rng.random((6, mapped.chip.rows)) < 0.5).astype(np.uint8)
        got = analog_read(bits, state, tile)
        for p in range(len(bits)):
            assert list(got[p]) == reference_read(bits[p], state, tile, mapped.chip.columns)


def test_non_ideal_chip_is_deterministic_and_differs_from_the_ideal_one(seed):
    mapped = tiny(seed, adc_bits=6, **NONIDEAL)
    a, b = program_chip(mapped, seed=seed), program_chip(mapped, seed=seed)
    np.testing.assert_array_equal(a.g_pos_s, b.g_pos_s)
    np.testing.assert_array_equal(a.adc_offset_lsb, b.adc_offset_lsb)
    c = program_chip(mapped, seed=seed + 1)
    assert not np.array_equal(a.g_pos_s, c.g_pos_s)
    x = random_inputs(mapped, 40, seed)
    got = analog_infer(mapped, a, x)
    ideal = tiny(seed, adc_bits=6)
    # stuck cells, IR drop and ADC errors move scores (the test would notice an ideal read)
    assert np.any(got.scores != mapped_infer(ideal, x).scores)
    assert (a.stuck != 0).any()


def test_effective_state_reproduces_the_physical_network(seed):
    """The differential current the state predicts for a read equals the direct solve of the
    programmed physical array (its cells, ``g_phys_s``, with the chip's wires) -- to 1e-9 of
    the largest column current."""
    mapped = tiny(seed, **NONIDEAL)
    state = program_chip(mapped, seed)
    chip = mapped.chip
    phys = state.g_phys_s[0]
    target = program(mapped)
    assert np.mean(phys != physical_conductances(target.g_pos_s[0], target.g_neg_s[0],
                                                  chip.mapping)) > 0.9   # programming spread
    net = CrossbarNetwork(np.maximum(phys, 1e-15), chip.parasitics)
    v = (np.random.default_rng(seed).random(chip.rows) < 0.5) * state.v_read_v
    i_direct = weight_currents(net.column_currents(v), chip.mapping)
    i_state = v @ (state.g_pos_s[0] - state.g_neg_s[0])
    scale = np.abs(net.column_currents(v)).max()
    assert np.max(np.abs(i_state - i_direct)) < 1e-9 * scale
    assert np.max(np.abs(i_state - v @ (phys[:, 0::2] - phys[:, 1::2]))) > 1e-6 * scale


def test_drift_and_nonlinear_iv_enter_the_state(seed):
    mapped = tiny(seed, device={"preset": "pcm"})
    t0 = mapped.chip.device.drift_t0_sec
    early = program_chip(mapped, seed=seed, read_time_sec=t0)
    late = program_chip(mapped, seed=seed, read_time_sec=t0 * 1000)
    conducting = early.g_pos_s > 0        # programming error can clip a PCM cell at 0 S
    ratio = late.g_pos_s[conducting] / early.g_pos_s[conducting]
    assert (ratio < 1).mean() > 0.9       # all but stuck cells drift down
    # G(t) = G0 (t/t0)^-nu with nu ~ 0.05: 1000x later is about 0.71x
    assert 0.6 < np.median(ratio) < 0.8
    lin = tiny(seed)
    v0 = 0.25
    sinh_chip = tiny(seed, device={"preset": "ideal", "iv_v0_v": v0})
    a, b = program_chip(lin), program_chip(sinh_chip)
    v = a.v_read_v
    np.testing.assert_allclose(b.g_pos_s, a.g_pos_s * v0 * np.sinh(v / v0) / v, rtol=1e-15)


def test_programming_refuses_what_the_read_cannot_represent(seed):
    with pytest.raises(ValueError, match="non-linear cells.*not a linear map"):
        program_chip(tiny(seed, device={"preset": "ideal", "iv_v0_v": 0.3}, r_wire_ohm=1.0),
                     seed=1)
    with pytest.raises(ValueError, match="random: give a seed"):
        program_chip(tiny(seed, device="rram"))
    with pytest.raises(ValueError, match="before the device's drift t0"):
        program_chip(tiny(seed, device="pcm"), seed=1, read_time_sec=1.0)


def test_adc_boundaries_are_counted_and_exact(seed):
    """Reads whose x = I / lsb sits within a few ulps of a rounding boundary k + 1/2: the
    golden read and the transcription agree on every one of them (the RTL block test checks
    the Verilog on the same kind of state)."""
    mapped = tiny(seed, adc_bits=6)
    state = program_chip(mapped)
    # put half-LSB offsets into the state: every column's sum lands near k + 1/2
    lsb = state.v_read_v * state.g_unit_s
    rng = np.random.default_rng(seed)
    nudged = replace(state, adc_offset_lsb=np.full_like(state.adc_offset_lsb, 0.5)
                     + rng.choice([-1, 0, 1], state.adc_offset_lsb.shape) * 2.0 ** -50)
    bits = (rng.random((200, mapped.chip.rows)) < 0.5).astype(np.uint8)
    near = 0
    for tile in range(3):
        got = analog_read(bits, nudged, tile)
        d = (nudged.g_pos_s - nudged.g_neg_s)[tile]
        z = (nudged.v_read_v * (bits.astype(float) @ d)) / lsb + nudged.adc_offset_lsb[tile] + 0.5
        near += int(np.sum(np.abs(z - np.round(z)) < 1e-9))   # floor(z) decides the code
        for p in range(0, 200, 20):
            assert list(got[p]) == reference_read(bits[p], nudged, tile, mapped.chip.columns)
    print(f"{near} column reads within 1e-9 LSB of a decision boundary")
    assert near > 100


# --- generate and the command line on a non-ideal chip ---------------------------------------

def _mbnn(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_generate_writes_the_programmed_state_deterministically(tmp_path, seed):
    """`generate --device rram --seed S` writes the programmed chip (bit for bit the golden
    state), the same bytes for the same seed, a different chip for another seed."""
    from golden.conductance import hex_lines
    from golden.model import save_model
    model_file = save_model(tmp_path / "tiny.npz", CORE_SETS["tiny_16x8"].load(seed))
    cfg = tmp_path / "chip.toml"
    cfg.write_text("[array]\nrows = 16\ncolumns = 8\n[adc]\nbits = 5\ngain_dtod = 0.02\n"
                   "[parasitics]\nr_wire_ohm = 0.5\n")
    outs = []
    for k, s in enumerate((seed, seed, seed + 1)):
        out = tmp_path / f"gen{k}"
        r = _mbnn("generate", "--model", str(model_file), "--config", str(cfg), "--device",
                  "rram", "--seed", str(s), "--drift-s", "100", "--out", str(out))
        assert r.returncode == 0, r.stderr
        outs.append(out)
    names = {p.name for p in outs[0].iterdir()}
    assert {"adc_gain.hex", "adc_offset.hex", "gpos.hex", "gneg.hex"} <= names
    for f in ("gpos.hex", "adc_gain.hex", "bnn_system.v", "manifest.json"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    assert (outs[0] / "gpos.hex").read_bytes() != (outs[2] / "gpos.hex").read_bytes()
    manifest = __import__("json").loads((outs[0] / "manifest.json").read_text())
    assert manifest["programming"]["seed"] == seed
    assert manifest["programming"]["read_time_sec"] == 100.0
    chip = ChipConfig(**manifest["chip"])
    assert chip.device.preset == "rram" and chip.r_wire_ohm == 0.5
    state = program_chip(compile_model(load_model(model_file), chip), seed, 100.0)
    assert (outs[0] / "gpos.hex").read_bytes() == hex_lines(state.g_pos_s)
    assert (outs[0] / "adc_gain.hex").read_bytes() == hex_lines(state.adc_gain)


def test_infer_golden_reports_the_non_ideal_and_the_ideal_accuracy(tmp_path):
    import json
    r = _mbnn("infer", "--model", "models/mlp.npz", "--sim", "golden", "--images", "200",
              "--device", "rram", "--seed", "5", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["non_ideal_chip"] is True
    assert 0.5 < s["golden_accuracy"] <= 1 and s["ideal_golden_accuracy"] > 0.95
    r = _mbnn("infer", "--model", "models/mlp.npz", "--sim", "golden", "--images", "10",
              "--device", "memristor")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(
        "mbnn: error: --device: unknown device preset 'memristor'")


def test_infer_refuses_combinations_it_cannot_run():
    r = _mbnn("infer", "--model", "models/mlp.npz", "--sim", "golden", "--crossbar", "vacask",
              "--images", "2")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "mbnn: error: --crossbar vacask answers the RTL's reads: give --sim icarus or "
        "verilator, not golden")
    r = _mbnn("infer", "--model", "models/mlp.npz", "--sim", "golden", "--dataset", "random",
              "--images", "2")
    assert r.returncode == 2 and "--dataset random runs the RTL" in r.stderr


def test_an_adc_sized_for_exact_codes_must_hold_the_programmed_chips_codes(seed):
    """A 6-bit ADC holds every code of an ideal 16-row array (-16..16); a device spread of
    sigma(ln G) = 1.5 makes some columns' reachable sums exceed -32..31: refused, naming the
    array, column, code and seed. The same chip with a deliberately narrow ADC (5 bits) is
    taken to saturate, as modelled, and programs."""
    import re

    from golden.analog.chip_state import program_chip as program
    from golden.chip import ChipConfig
    from golden.mapping import compile_model
    from sim.regressions import CORE_SETS

    print(f"seed {seed}")
    model = CORE_SETS["tiny_16x8"].load(seed)
    device = {"preset": "rram", "g_dtod_sigma_ln": 1.5}
    wide = ChipConfig(16, 8, device=device)
    assert wide.adc_bits == wide.exact_adc_bits == 6
    with pytest.raises(ValueError) as err:
        program(compile_model(model, wide), seed)
    message = str(err.value)
    assert re.search(rf"\[adc\] bits = 6: array \d+ column \d+ of this chip \(device rram, "
                     rf"seed {seed}\) reaches code -?\d+, outside the ADC's -32..31", message)
    program(compile_model(model, ChipConfig(16, 8, adc_bits=5, device=device)), seed)
    program(compile_model(model, ChipConfig(16, 8, device={"preset": "rram"})), seed)


def test_a_chip_too_large_for_memory_is_refused_before_allocating():
    """The shipped MLP on 65536x65536 arrays: 4 arrays of 4.3e9 cells. Programming would
    allocate terabytes (it was killed by the kernel after 100 s at 24 GB); the estimate refuses
    it at once, saying what it needs. The estimate itself is 80 bytes per cell (measured peak:
    75) and its boundary is exact."""
    from golden.analog.chip_state import check_programming_memory, programming_memory_bytes
    from golden.analog.devices import device_preset
    big = ChipConfig(rows=65536, columns=65536, adc_bits=18, device=device_preset("rram"))
    mapped = compile_model(load_model("models/mlp.npz"), big)
    assert mapped.tiles == 4
    assert programming_memory_bytes(mapped) == 4 * 65536 * 65536 * 80
    with pytest.raises(MemoryError, match=r"programming 4 arrays of 65536x65536 cells needs "
                                          r"about 1280.0 GiB \(80 bytes per cell\); "):
        program_chip(mapped, seed=1)
    need = programming_memory_bytes(mapped)
    check_programming_memory(mapped, available_bytes=need)          # exactly enough: accepted
    with pytest.raises(MemoryError, match=r"2560.0 GiB, 2 chips at once"):
        check_programming_memory(mapped, chips_at_once=2, available_bytes=2 * need - 1)
