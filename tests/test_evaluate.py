"""Monte-Carlo accuracy over non-ideal chips: the fast evaluation read against the exact read,
the read-noise model against per-cell noise, determinism, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golden.analog.chip_state import analog_infer, program_chip
from golden.analog.evaluate import evaluate_chips, fast_analog_infer, prepare_read
from golden.chip import ChipConfig
from golden.mapping import compile_model
from golden.mnist import binarize_pixels, load_mnist
from golden.model import load_model
from sim.regressions import CORE_SETS, NON_IDEAL

REPO = Path(__file__).resolve().parent.parent


def test_fast_read_equals_the_exact_read_without_noise(seed):
    """Matrix-product reads give the exact read's codes (they could differ only within ulps
    of an ADC boundary): the tiny CNN on a non-ideal chip and the MLP on an RRAM chip."""
    print(f"seed {seed}")
    core = CORE_SETS["tiny_16x8_nonideal"]
    mapped = compile_model(core.load(seed), core.chip)
    state = program_chip(mapped, seed)
    x = (np.random.default_rng(seed).random((50,) + tuple(mapped.input_shape)) < 0.5)
    np.testing.assert_array_equal(fast_analog_infer(mapped, state, x).scores,
                                  analog_infer(mapped, state, x).scores)
    mlp = compile_model(load_model(REPO / "models/mlp.npz"),
                        ChipConfig(device={"preset": "rram", "stuck_off_rate": 0.02},
                                   adc_offset_dtod_lsb=0.2))
    state = program_chip(mlp, seed)
    px = binarize_pixels(load_mnist("test").images[:300])
    np.testing.assert_array_equal(fast_analog_infer(mlp, state, px).scores,
                                  analog_infer(mlp, state, px).scores)


def test_prepared_matrices_give_the_same_reads_and_must_match(seed):
    """A chip's matrices made once (prepare_read) read as those made per call, without and
    with noise (same seed, same draws); matrices of another chip or noise are refused."""
    print(f"seed {seed}")
    core = CORE_SETS["tiny_16x8_nonideal"]
    mapped = compile_model(core.load(seed), core.chip)
    state = program_chip(mapped, seed)
    x = (np.random.default_rng(seed).random((40,) + tuple(mapped.input_shape)) < 0.5)
    prepared = prepare_read(mapped, state)
    np.testing.assert_array_equal(fast_analog_infer(mapped, state, x, prepared=prepared).scores,
                                  analog_infer(mapped, state, x).scores)
    noisy = prepare_read(mapped, state, 0.05)
    a = fast_analog_infer(mapped, state, x, 0.05, np.random.default_rng(3), prepared=noisy)
    b = fast_analog_infer(mapped, state, x, 0.05, np.random.default_rng(3))
    np.testing.assert_array_equal(a.scores, b.scores)
    with pytest.raises(ValueError, match="prepared: matrices of another chip, model or read"):
        fast_analog_infer(mapped, state, x, 0.05, np.random.default_rng(3), prepared=prepared)
    other = program_chip(mapped, seed + 1)
    with pytest.raises(ValueError, match="prepared: matrices of another chip"):
        fast_analog_infer(mapped, other, x, prepared=prepared)


def test_read_noise_has_the_per_cell_distribution(seed):
    """One normal per column with variance (V sigma)^2 sum(G+^2 + G-^2) over driven rows has
    the distribution of a fresh normal per cell: compare mean and variance of the ADC input
    with 4000 per-cell draws (5-sigma bounds on the sample statistics)."""
    core = CORE_SETS["tiny_16x8"]
    chip = ChipConfig(16, 8, adc_bits=8, device={"preset": "rram", "read_noise_std": 0.05})
    mapped = compile_model(core.load(seed), chip)
    state = program_chip(mapped, seed)
    rng = np.random.default_rng(seed)
    bits = (rng.random(16) < 0.5).astype(float)
    bits[0] = 1
    n = 4000
    z_pos = rng.standard_normal((n, 16, 8))
    z_neg = rng.standard_normal((n, 16, 8))
    gp, gn = state.g_pos_s[0], state.g_neg_s[0]
    per_cell = state.v_read_v * np.einsum("r,nrc->nc", bits, gp * (1 + 0.05 * z_pos)
                                          - gn * (1 + 0.05 * z_neg))
    mean = state.v_read_v * bits @ (gp - gn)
    var = (state.v_read_v * 0.05) ** 2 * bits @ (gp ** 2 + gn ** 2)
    assert np.all(np.abs(per_cell.mean(axis=0) - mean) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(per_cell.var(axis=0) / var - 1) < 5 * np.sqrt(2 / n))


def test_chips_are_seeded_and_independent_of_the_worker_count(seed):
    model = CORE_SETS["tiny_16x8"].load(seed)
    chip = ChipConfig(16, 8, adc_bits=5, **NON_IDEAL)
    x = (np.random.default_rng(seed).random((60,) + tuple(model.arch.input_shape)) < 0.5)
    y = np.random.default_rng(seed + 1).integers(0, 5, 60)
    a = evaluate_chips(model, chip, x, y, 3, seed, workers=1)
    b = evaluate_chips(model, chip, x, y, 3, seed, workers=2)
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    # chip k is the chip programmed with seed + k, read with its own noise stream
    with pytest.raises(ValueError, match="chips must be a positive integer, not 0"):
        evaluate_chips(model, chip, x, y, 0, seed)


def mbnn(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


def test_evaluate_sweep_json():
    r = mbnn("evaluate", "--model", "models/mlp.npz", "--device", "rram", "--chips", "2",
             "--images", "500", "--sweep", "saf-rate=0,0.2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sweep"] == "saf-rate" and [row["value"] for row in out["results"]] == [0, 0.2]
    clean, faulty = out["results"]
    assert clean["chips"] == 2 and len(clean["accuracies"]) == 2
    assert faulty["device"]["stuck_on_rate"] == 0.1 == faulty["device"]["stuck_off_rate"]
    # 20 % stuck cells cost accuracy; a clean RRAM chip stays near the ideal one
    assert faulty["mean"] < clean["mean"] - 0.02
    assert abs(clean["mean"] - clean["ideal_accuracy"]) < 0.03


@pytest.mark.parametrize("args, message", [
    (("--chips", "0"), "argument --chips: expected a positive integer, not 0"),
    (("--chips", "2", "--saf-rate", "1.5"), "argument --saf-rate: expected a number in [0, 1], "
                                            "not 1.5"),
    (("--chips", "2", "--variation", "nan"), "argument --variation: expected a finite number "
                                             ">= 0, not nan"),
    (("--chips", "2", "--sweep", "temperature=1,2"), "--sweep: unknown parameter 'temperature'"),
    (("--chips", "2", "--sweep", "r-wire=1,x"), "--sweep 'r-wire=1,x': expected r-wire=V1,V2"),
    (("--chips", "2", "--images", "20000"), "--images 20000 exceeds the 10000 MNIST test"),
    (("--chips", "2", "--device", "memristor"), "--device: unknown device preset 'memristor'"),
    (("--chips", "2", "--calibrate", "70000"), "--calibrate 70000: expected 2 to 60000 MNIST "
                                               "training images"),
])
def test_evaluate_bad_input(args, message):
    r = mbnn("evaluate", "--model", "models/mlp.npz", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "numpy"])
@pytest.mark.parametrize("cells", ["halves", "thirds"])
def test_fast_read_recomputes_values_on_rounding_boundaries(seed, cells, kernel, monkeypatch):
    """Values on or next to a rounding boundary k + 0.5, where float32 products and the exact
    double sum round differently (and rint, the fast read's rounding, differs from
    floor(x + 0.5) on exact ties). ``halves``: cells of 0.5 and 1.5 weights plus or minus a
    few ulps, offsets 0 or 0.5: float32 lands exactly on the boundary. ``thirds``: cells of
    +-1/3 and offsets 1/6, so a third of the values sit within 1e-15 of a boundary and the
    float32 sum misses it by its rounding error (~1e-6): only a margin that covers that
    error recomputes them (a margin of 1e-7 fails). The layer read must give the exact
    read's codes on every read; the test counts the values it put within 1e-6 of a boundary
    so that it cannot pass vacuously. Both ways of rounding a tile: the C kernel's one pass
    and numpy's steps."""
    from dataclasses import replace

    import golden.analog.evaluate as evaluate
    from golden.analog.chip_state import analog_read
    from golden.analog.evaluate import layer_reader
    from golden.mapping import accumulate

    print(f"seed {seed}")
    core = CORE_SETS["tiny_16x8_nonideal"]
    mapped = compile_model(core.load(seed), core.chip)
    state = program_chip(mapped, seed)
    rng = np.random.default_rng(seed)
    shape = state.g_pos_s.shape
    if cells == "halves":
        halves = rng.choice([-1.5, -0.5, 0.5, 1.5], size=shape)
        weights = halves + rng.integers(-3, 4, size=shape) * np.spacing(np.abs(halves))
        offsets = np.where(rng.random(state.adc_offset_lsb.shape) < 0.5, 0.0, 0.5)
    else:
        weights = rng.choice([-1 / 3, 1 / 3], size=shape)
        offsets = np.full(state.adc_offset_lsb.shape, 1 / 6)
    g_neg = np.full(shape, 2.0) * state.g_unit_s
    g_pos = g_neg + weights * state.g_unit_s
    state = replace(state, g_pos_s=g_pos, g_neg_s=g_neg,
                    adc_gain=np.ones_like(state.adc_gain), adc_offset_lsb=offsets)
    layer = mapped.layers[0]
    bits = (rng.random((4000, layer.weights.shape[0])) < 0.5).astype(np.uint8)

    def exact(b, lay, r, c):
        tile = lay.tile_base + c * lay.row_tiles + r
        cols = min(mapped.chip.columns, lay.out_channels - c * mapped.chip.columns)
        return analog_read(b, state, tile, cols)

    recomputed = []
    original = evaluate._exact_codes

    def counting(bit_rows, tiles, t, j, chip_state):
        recomputed.append(len(j))
        return original(bit_rows, tiles, t, j, chip_state)

    monkeypatch.setattr(evaluate, "_exact_codes", counting)
    reader = layer_reader(mapped, state, kernel=kernel)
    if kernel and reader.kernel is None:
        pytest.fail("the C kernel is not loaded (test_native tells why)") if os.environ.get(
            "CI") else pytest.skip("no C compiler here")
    assert (reader.kernel is None) == (not kernel)
    fast = accumulate(bits, layer, mapped.chip, read_layer=reader)
    np.testing.assert_array_equal(fast, accumulate(bits, layer, mapped.chip, read=exact))
    # how many values the test put next to a boundary, over all the layer's arrays: every
    # one of them must have been recomputed (more may be: the margin is a bound)
    near = 0
    rows, out = layer.weights.shape
    for r in range(layer.row_tiles):
        rsl = slice(r * mapped.chip.rows, min((r + 1) * mapped.chip.rows, rows))
        for c in range(layer.column_tiles):
            tile = layer.tile_base + c * layer.row_tiles + r
            k = min(mapped.chip.columns, out - c * mapped.chip.columns)
            d = state.g_diff_s[tile, :rsl.stop - rsl.start, :k]
            x = bits[:, rsl] @ d / state.g_unit_s + state.adc_offset_lsb[tile, :k]
            near += int(np.sum(np.abs(x - np.floor(x) - 0.5) < 1e-6))
    print(f"{near} values within 1e-6 of a boundary, {sum(recomputed)} recomputed")
    assert near > 1000
    assert sum(recomputed) >= near


def test_exact_codes_resolve_values_on_a_boundary(seed):
    """The exact step of the evaluation read (a double sum in any order, then the read's own
    sequential sum where the first one's error interval straddles a boundary) gives
    :func:`analog_read`'s codes on values within 1e-15 LSB of a boundary -- cells of +-1/3
    and offsets 1/6 put a third of them there -- and the sequential sum is really taken for
    them (the interval of at least 100 of them holds two codes)."""
    from dataclasses import replace

    from golden.analog.chip_state import analog_read
    from golden.analog.evaluate import _U64, _exact_codes, _layer_tiles

    print(f"seed {seed}")
    core = CORE_SETS["tiny_16x8_nonideal"]
    mapped = compile_model(core.load(seed), core.chip)
    state = program_chip(mapped, seed)
    rng = np.random.default_rng(seed)
    shape = state.g_pos_s.shape
    g_neg = np.full(shape, 2.0) * state.g_unit_s
    g_pos = g_neg + rng.choice([-1 / 3, 1 / 3], size=shape) * state.g_unit_s
    state = replace(state, g_pos_s=g_pos, g_neg_s=g_neg, adc_gain=np.ones_like(state.adc_gain),
                    adc_offset_lsb=np.full(state.adc_offset_lsb.shape, 1 / 6))
    layer = mapped.layers[0]
    tiles = _layer_tiles(layer, state, 0.0)
    r = tiles.d64t.shape[2]
    n = 2000
    t = rng.integers(0, layer.row_tiles, n)
    j = rng.integers(0, min(mapped.chip.columns, layer.out_channels), n)
    bit_rows = (rng.random((n, r)) < 0.5).astype(np.uint8)
    rows = layer.weights.shape[0]
    for k in range(n):                          # a short last tile's missing rows read 0
        bit_rows[k, max(0, rows - t[k] * r):] = 0
    want = np.array([analog_read(bit_rows[k:k + 1, :min(r, rows - t[k] * r)], state,
                                 layer.tile_base + t[k])[0, j[k]] for k in range(n)])
    np.testing.assert_array_equal(_exact_codes(bit_rows, tiles, t, j, state), want)
    # values whose any-order double sum cannot decide the code alone
    s = np.einsum("kr,kr->k", bit_rows, tiles.d64t[t, j])
    width = 4 * (r * _U64 / (1 - r * _U64)) * tiles.abs_sum[t, j]
    half_up = s / state.g_unit_s + 1 / 6 + 0.5             # the code is floor of this
    straddles = (np.floor(half_up + width / state.g_unit_s)
                 != np.floor(half_up - width / state.g_unit_s))
    print(f"{int(straddles.sum())} of {n} values summed sequentially")
    assert straddles.sum() >= 100
