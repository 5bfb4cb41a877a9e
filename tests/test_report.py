"""`mbnn report` (sim/report.py): every figure against a derivation of its own -- cycles and
latency by hand from the layer shapes and the README's pipeline constants, reads and
conversions counted through the golden read callback, the read energy of hand-built arrays
with known conductances -- the JSON keys, the sweep plot, and bad input refused in one line
before any work, with nothing written."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from golden.chip import ChipConfig, load_chip_config
from golden.mapping import compile_model, mapped_infer
from golden.model import Architecture, BnnModel, Layer, LayerSpec, load_model, save_model
from sim import report as rp
from sim.stimulus import random_model

from conftest import run_main

REPO = Path(__file__).resolve().parent.parent
MLP = str(REPO / "models" / "mlp.npz")
CNN = str(REPO / "models" / "cnn.npz")

# The core's pipeline as README "Inference hardware" states it: 5 idle cycles at each layer
# boundary and 6 per image between the last read of one image and the first of the next;
# the latency (start to result) is the steady state less the handshake and restart cycles.
LAYER_GAP, TURNAROUND, LATENCY_LESS = 5, 6, 2


def exact(value):
    """``value`` to 12 significant digits, with no absolute slack (pytest.approx allows
    1e-12 absolute by default: every energy in joules would pass)."""
    return pytest.approx(value, rel=1e-12, abs=0)



# --- time: cycles and latency by hand ----------------------------------------------------

# 1x8x8 input, 3x3 conv with padding 1 to 4 channels and 2x2 pooling, dense 12, dense 5; on
# 16x8 arrays (worked out below from these shapes alone)
SMALL = Architecture("small", (1, 8, 8), (LayerSpec("conv", 4, kernel=3, padding=1, pool=2),
                                         LayerSpec("dense", 12), LayerSpec("dense", 5)))


def _small_by_hand(p: int) -> dict:
    """Per layer (pixels, row tiles, column tiles) of SMALL on 16x8 arrays, by hand:
    conv: 64 output pixels, 3*3*1 = 9 rows (1 tile), 4 channels (1 tile); dense 12: input
    4 channels x 4x4 positions = 64 bits (4 tiles of 16), 12 channels (2 tiles of 8); dense 5:
    input two 8-bit chunks = 16 bits (1 tile), 5 channels (1 tile)."""
    layers = [(64, 1, 1), (1, 4, 2), (1, 1, 1)]
    reads = [px * rt * ct for px, rt, ct in layers]
    cycles = [px * ct * math.ceil(rt / p) for px, rt, ct in layers]
    steady = sum(cycles) + LAYER_GAP * (len(layers) - 1) + TURNAROUND
    return {"reads": reads, "cycles": cycles, "steady": steady, "latency": steady - LATENCY_LESS,
            "conversions": [px * rt * out for (px, rt, _), out in zip(layers, (4, 12, 5))]}


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_cycles_latency_and_throughput_equal_a_hand_derivation(p):
    model = random_model(SMALL, np.random.default_rng(7))
    chip = ChipConfig(16, 8, adc_bits=5, arrays=4, parallel_reads=p, clock_mhz=50.0)
    pixels = (np.random.default_rng(8).random((3, 1, 8, 8)) < 0.5).astype(np.uint8)
    report = rp.chip_report(model, chip, rp.array_activity(model, chip, pixels), 3)
    want = _small_by_hand(p)
    assert [l.reads_per_image for l in report.layers] == want["reads"]
    assert [l.read_cycles_per_image for l in report.layers] == want["cycles"]
    assert [l.adc_conversions_per_image for l in report.layers] == want["conversions"]
    assert [l.arrays for l in report.layers] == [1, 8, 1]
    assert report.compute_cycles_per_image == want["steady"]
    assert report.latency_cycles == want["latency"]
    assert report.latency_us == exact(want["latency"] / 50.0)
    assert report.throughput_images_per_s == exact(50e6 / want["steady"])


def test_reads_and_conversions_equal_a_count_through_the_read_callback():
    """An independent counter on mapped_infer's read callback (every array read of the
    batch, and the codes it returns) against the report's per-image figures."""
    model = random_model(SMALL, np.random.default_rng(3))
    chip = ChipConfig(16, 8, adc_bits=5)
    n = 5
    pixels = (np.random.default_rng(4).random((n, 1, 8, 8)) < 0.4).astype(np.uint8)
    reads, codes = {}, {}
    mapped = compile_model(model, chip)

    def count(bits, layer, row_tile, column_tile):
        from golden.mapping import crossbar_read
        rows = slice(row_tile * 16, row_tile * 16 + bits.shape[1])
        cols = slice(column_tile * 8, min(column_tile * 8 + 8, layer.out_channels))
        out = crossbar_read(bits, layer.weights[rows, cols], chip)
        reads[layer.index] = reads.get(layer.index, 0) + len(bits)
        codes[layer.index] = codes.get(layer.index, 0) + out.size
        return out

    mapped_infer(mapped, pixels, read=count)
    report = rp.chip_report(model, chip, rp.array_activity(model, chip, pixels), n)
    assert [l.reads_per_image * n for l in report.layers] == [reads[i] for i in range(3)]
    assert [l.adc_conversions_per_image * n for l in report.layers] == \
        [codes[i] for i in range(3)]


def test_shipped_models_cycles_match_the_readme(capsys):
    """README: MLP 192 array reads and 213 cycles per image, CNN 2405 and 2431."""
    for model, reads, steady in ((MLP, 192, 213), (CNN, 2405, 2431)):
        rc, out, err = run_main(["report", "--model", model, "--images", "1", "--no-synth",
                                 "--json"], capsys)
        assert rc == 0, err
        total = json.loads(out)["total"]
        assert (total["reads_per_image"], total["compute_cycles_per_image"]) == (reads, steady)
        assert total["latency_cycles"] == steady - LATENCY_LESS
        assert total["latency_us"] == exact((steady - LATENCY_LESS) / 100.0)


# --- energy ------------------------------------------------------------------------------

ONE = Architecture("one", (4,), (LayerSpec("dense", 2),))
W = np.array([[1, -1], [1, 1], [-1, -1], [-1, 1]], np.int8)
DEVICE = {"preset": "ideal", "g_on_s": 100e-6, "g_off_s": 10e-6, "v_read_v": 0.25}


def _one_read(mapping, weights=W, bits=(1, 0, 1, 1), rows=4, columns=2, **chip_kw):
    arch = Architecture("one", (weights.shape[0],), (LayerSpec("dense", weights.shape[1]),))
    model = BnnModel(arch, [Layer(weights, None)])
    chip = ChipConfig(rows, columns, mapping=mapping, device=DEVICE, **chip_kw)
    act = rp.array_activity(model, chip, np.array([bits], np.uint8))
    assert len(act) == 1 and act[0].reads == 1
    return act[0].crossbar_energy_j


def test_energy_of_one_read_by_hand_differential():
    """Rows 0, 2, 3 driven; each row holds two pairs, each pair one cell at G_on and one at
    G_off: 3 rows x 2 x 110 uS = 660 uS; I = 0.25 V x 660 uS = 165 uA; E = V I t =
    0.25 x 165e-6 x 20e-9 = 8.25e-13 J."""
    assert _one_read("differential", read_pulse_ns=20.0) == exact(8.25e-13)


def test_energy_of_one_read_by_hand_reference_column():
    """One cell per weight (+1: 100 uS, -1: 10 uS) and a reference cell of 55 uS per row:
    row 0 (+1, -1) 165 uS, row 2 (-1, -1) 75 uS, row 3 (-1, +1) 165 uS: 405 uS; E = 0.25^2
    x 405e-6 x 20e-9 = 5.0625e-13 J."""
    assert _one_read("reference_column", read_pulse_ns=20.0) == \
        exact(5.0625e-13)


def test_energy_counts_every_cell_of_a_driven_row_of_a_partly_filled_array():
    """A 3x1 layer on a 4x2 array: the unused column's pair sits at G_off, G_off (20 uS) and
    draws current on a driven row too; rows 0 and 1 driven: 2 x (110 + 20) uS = 260 uS;
    E = 0.25^2 x 260e-6 x 10e-9 (one 100 MHz clock period) = 1.625e-13 J."""
    w = np.array([[1], [-1], [1]], np.int8)
    assert _one_read("differential", weights=w, bits=(1, 1, 0)) == \
        exact(1.625e-13)


def test_energy_of_every_layer_equals_a_count_of_driven_cells():
    """A three-layer model on 16x8 differential arrays, counted through mapped_infer's read
    callback: a driven row of a tile has one pair at (G_on, G_off) per weight it carries and
    (G_off, G_off) for each of the array's other columns, so it conducts
    n (G_on + G_off) + (8 - n) 2 G_off; each read costs V_read^2 t_read times the sum over
    its driven rows. Also on conv padding and on the padded, never-driven rows."""
    model = random_model(SMALL, np.random.default_rng(11))
    g_on, g_off, v, t = 100e-6, 10e-6, 0.25, 10e-9
    chip = ChipConfig(16, 8, adc_bits=5, device=DEVICE)
    n = 4
    pixels = (np.random.default_rng(12).random((n, 1, 8, 8)) < 0.5).astype(np.uint8)
    energy = [0.0, 0.0, 0.0]

    def count(bits, layer, row_tile, column_tile):
        from golden.mapping import crossbar_read
        w = layer.weights[row_tile * 16:row_tile * 16 + bits.shape[1],
                          column_tile * 8:min(column_tile * 8 + 8, layer.out_channels)]
        carried = np.count_nonzero(w, axis=1)
        row_g = carried * (g_on + g_off) + (8 - carried) * 2 * g_off
        for read in bits:
            energy[layer.index] += v * v * t * float(np.sum(read * row_g))
        return crossbar_read(bits, w, chip)

    mapped_infer(compile_model(model, chip), pixels, read=count)
    report = rp.chip_report(model, chip, rp.array_activity(model, chip, pixels), n)
    got = [layer.crossbar_energy_per_image_nj for layer in report.layers]
    assert got == exact([e / n * 1e9 for e in energy])
    assert min(got) > 0


def test_energy_scales_with_read_time_voltage_and_adc_energy():
    model = random_model(SMALL, np.random.default_rng(5))
    pixels = (np.random.default_rng(6).random((4, 1, 8, 8)) < 0.5).astype(np.uint8)

    def figures(**kw):
        chip = ChipConfig(16, 8, adc_bits=5, **kw)
        return rp.chip_report(model, chip, rp.array_activity(model, chip, pixels), 4)

    base = figures()
    assert base.chip.read_pulse_s == exact(10e-9)         # one 100 MHz period
    by_pulse = figures(read_pulse_ns=20.0)                          # twice the read pulse
    by_clock = figures(clock_mhz=50.0)                              # default: one period
    quarter_v = figures(device={"preset": "ideal", "v_read_v": 0.1})  # half the 0.2 V
    adc = figures(adc_energy_pj=2.5)
    for a, b in zip(base.layers, by_pulse.layers):
        assert b.crossbar_energy_per_image_nj == exact(2 * a.crossbar_energy_per_image_nj)
        assert b.adc_energy_per_image_nj == a.adc_energy_per_image_nj
    for a, b, c in zip(base.layers, by_clock.layers, quarter_v.layers):
        assert b.crossbar_energy_per_image_nj == exact(2 * a.crossbar_energy_per_image_nj)
        assert c.crossbar_energy_per_image_nj == exact(a.crossbar_energy_per_image_nj / 4)
    conversions = _small_by_hand(1)["conversions"]
    for layer, k in zip(adc.layers, conversions):
        assert layer.adc_energy_per_image_nj == exact(k * 2.5e-3)
    assert adc.energy_per_image_nj == exact(
        sum(l.crossbar_energy_per_image_nj for l in base.layers) + sum(conversions) * 2.5e-3)
    # parallel reads change no read: the same energy
    p3 = figures(parallel_reads=3)
    assert p3.energy_per_image_nj == exact(base.energy_per_image_nj)


def test_array_area_by_hand():
    """MLP on 128x128 arrays: 192 arrays of 128 rows x 256 physical columns (differential),
    or 129 (reference column)."""
    model = load_model(MLP)
    act = [rp.LayerActivity(r, c, 0.0) for r, c in ((56, 7168), (64, 8192), (64, 8192),
                                                      (8, 80))]
    for mapping, cols in (("differential", 256), ("reference_column", 129)):
        chip = ChipConfig(mapping=mapping, cell_area_um2=0.01)
        report = rp.chip_report(model, chip, act, 1)
        total = report.as_dict()["total"]
        assert total["cells"] == 192 * 128 * cols
        assert total["array_area_um2"] == exact(192 * 128 * cols * 0.01)


def test_an_energy_pass_too_large_for_memory_is_refused_before_allocation():
    """MLP on 128x128: 192 arrays of 16384 cells, 40 bytes each = 120 MiB."""
    mapped = compile_model(load_model(MLP), ChipConfig())
    rp.check_energy_memory(mapped, available_bytes=192 * 16384 * 40)
    with pytest.raises(MemoryError, match=r"192 arrays of 128x128 cells: about 0\.1 GiB"):
        rp.check_energy_memory(mapped, available_bytes=192 * 16384 * 40 - 1)


def test_chip_settings_from_toml_and_their_validation(tmp_path):
    cfg = tmp_path / "chip.toml"
    cfg.write_text("[array]\nread_pulse_ns = 25.0\ncell_area_um2 = 0.05\n[adc]\nenergy_pj = 3.0\n")
    chip = load_chip_config(cfg)
    assert (chip.read_pulse_ns, chip.cell_area_um2, chip.adc_energy_pj) == (25.0, 0.05, 3.0)
    assert chip.read_pulse_s == exact(25e-9)
    for name, value in (("read_pulse_ns", 0), ("adc_energy_pj", -1.0), ("cell_area_um2", True),
                        ("cell_area_um2", float("inf"))):
        with pytest.raises(ValueError, match=f"{name} must be a positive finite number, "
                                             f"not {value!r}"):
            ChipConfig(**{name: value})


# --- the command line --------------------------------------------------------------------

LAYER_KEYS = {"layer", "kind", "arrays", "row_tiles", "column_tiles", "reads_per_image",
              "read_cycles_per_image", "adc_conversions_per_image",
              "crossbar_energy_per_image_nj", "adc_energy_per_image_nj", "energy_per_image_nj",
              "cells", "array_area_um2"}
TOTAL_KEYS = {"arrays", "reads_per_image", "read_cycles_per_image", "compute_cycles_per_image",
              "latency_cycles", "latency_us", "throughput_images_per_s", "input_hidden",
              "adc_conversions_per_image", "crossbar_energy_per_image_nj",
              "adc_energy_per_image_nj", "energy_per_image_nj", "array_power_mw", "cells",
              "array_area_um2", "array_area_mm2"}
CHIP_KEYS = {"rows", "columns", "mapping", "physical_columns", "adc_bits", "arrays",
             "parallel_reads", "read_ports", "pipeline", "clock_mhz", "read_pulse_ns", "adc_energy_pj",
             "cell_area_um2", "device", "v_read_v", "g_on_s", "g_off_s"}


def test_json_has_the_documented_keys_and_consistent_totals(capsys):
    rc, out, err = run_main(["report", "--model", MLP, "--images", "3", "--no-synth", "--json"],
                            capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert set(d) == {"model", "architecture", "chip", "images", "layers", "total",
                      "periphery", "energy_pass_s", "synthesis_s", "wall_s"}
    assert set(d["chip"]) == CHIP_KEYS and set(d["total"]) == TOTAL_KEYS
    assert all(set(layer) == LAYER_KEYS for layer in d["layers"])
    assert d["periphery"] is None and d["images"] == 3
    t = d["total"]
    # MLP 784-1024-1024-1024-10 on 128x128: reads 7x8 + 8x8 + 8x8 + 8x1; one conversion per
    # read and weight column
    assert [l["reads_per_image"] for l in d["layers"]] == [56, 64, 64, 8]
    assert t["adc_conversions_per_image"] == 7 * 1024 + 8 * 1024 * 2 + 8 * 10
    assert t["throughput_images_per_s"] == exact(100e6 / 213)
    assert t["energy_per_image_nj"] == exact(
        sum(l["crossbar_energy_per_image_nj"] + l["adc_energy_per_image_nj"]
            for l in d["layers"]))
    assert t["array_power_mw"] == exact(t["energy_per_image_nj"] * 1e-9 * 100e6 / 213 * 1e3)
    assert d["chip"]["read_pulse_ns"] == exact(10.0)


def test_plot_draws_the_sweep_and_the_table_prints(tmp_path, monkeypatch, capsys):
    """MLP widest layer: 8 row tiles -> P = 1, 2, 4, 8. Steady-state cycles by hand: P = 2:
    8x4 + 8x4 + 8x4 + 1x4 = 100 cycles of reads + 3x5 + 6 = 121; P = 4: 8x2 x 3 + 2 + 21 =
    71; P = 8: 8 x 3 + 1 + 21 = 46."""
    from sim import plots
    figures = []
    write = plots.write_png
    monkeypatch.setattr(plots, "write_png",
                        lambda fig, path: (figures.append(fig), write(fig, path))[1])
    png = tmp_path / "sweep.png"
    rc, out, err = run_main(["report", "--model", MLP, "--images", "2", "--no-synth",
                             "--plot", str(png), "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert [s["parallel_reads"] for s in d["sweep"]] == [1, 2, 4, 8]
    steady = [213, 121, 71, 46]
    assert [s["compute_cycles_per_image"] for s in d["sweep"]] == steady
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.listdir(tmp_path) == ["sweep.png"]
    (fig,) = figures
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    assert list(lines["throughput"].get_xdata()) == [1, 2, 4, 8]
    assert list(lines["throughput"].get_ydata()) == exact([100e6 / c for c in steady])
    assert list(lines["energy:total"].get_ydata()) == \
        exact([d["total"]["energy_per_image_nj"]] * 4)
    assert "periphery:cells" not in lines and "throughput:input_paced" not in lines
    rc, out, err = run_main(["report", "--model", MLP, "--images", "2", "--no-synth"], capsys)
    assert rc == 0, err
    assert "total" in out and "213 in the steady state" in out and "not synthesised" in out


def test_cnn_sweep_by_hand_and_the_input_paced_points(tmp_path, monkeypatch, capsys):
    """The CNN on 128x128 arrays, per layer (pixels, row tiles, column tiles): conv 28x28 x
    (1, 1), conv 14x14 x (5, 1), conv 7x7 x (9, 1), dense (49, 4), dense (4, 1); widest 49 ->
    P = 1, 2, 4, 8, 16, 32, 49. The next image's 784 input words (one per cycle, README) hide
    behind layers >= 1 only while those take more than 784 cycles: at P = 1 and 2."""
    from sim import plots
    figures = []
    write = plots.write_png
    monkeypatch.setattr(plots, "write_png",
                        lambda fig, path: (figures.append(fig), write(fig, path))[1])
    rc, out, err = run_main(["report", "--model", CNN, "--images", "1", "--no-synth", "--plot",
                             str(tmp_path / "cnn.png"), "--json"], capsys)
    assert rc == 0, err
    sweep = json.loads(out)["sweep"]
    values = [1, 2, 4, 8, 16, 32, 49]
    layers = [(784, 1, 1), (196, 5, 1), (49, 9, 1), (1, 49, 4), (1, 4, 1)]
    later = [sum(px * ct * math.ceil(rt / p) for px, rt, ct in layers[1:]) for p in values]
    steady = [784 + c + 4 * LAYER_GAP + TURNAROUND for c in later]
    assert [s["parallel_reads"] for s in sweep] == values
    assert [s["compute_cycles_per_image"] for s in sweep] == steady
    assert [s["input_hidden"] for s in sweep] == [c > 784 for c in later] == \
        [True, True] + [False] * 5
    (fig,) = figures
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    assert list(lines["throughput:input_paced"].get_xdata()) == values[2:]


def test_periphery_synthesis_of_a_tiny_core(tmp_path, capsys):
    """The one synthesis of the suite (about 4 s): a 784-16-10 random model on 64x16 arrays.
    The activation buffers (13 words of 64 bits, 1 of 64) are mapped to flip-flops, so the
    core has at least their 896."""
    arch = Architecture("mnist_tiny", (784,), (LayerSpec("dense", 16), LayerSpec("dense", 10)))
    path = save_model(tmp_path / "tiny.npz", random_model(arch, np.random.default_rng(1)))
    cfg = tmp_path / "chip.toml"
    cfg.write_text("[array]\nrows = 64\ncolumns = 16\n")
    rc, out, err = run_main(["report", "--model", str(path), "--config", str(cfg), "--images",
                             "2", "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    p = d["periphery"]
    assert p["cells"] > p["flip_flops"] >= 64 * 13 + 64 and p["longest_path_cells"] > 2
    assert p["yosys"].startswith("Yosys ") and d["synthesis_s"] > 0
    # 13 row tiles of the first layer, one of the second: 14 reads; 14 + 5 + 6 cycles
    assert (d["total"]["reads_per_image"], d["total"]["compute_cycles_per_image"]) == (14, 25)


def test_pipelined_chip_reports_the_slowest_stage_and_synthesises_its_core(tmp_path, capsys):
    """``[chip] pipeline = true``: the steady state is the slowest layer's read cycles (the
    single datapath's is their sum plus gaps) and the latency golden.pipeline's; the arrays
    read at once are every stage's; the synthesised periphery is the pipelined core: its
    first buffer holds three images, as flip-flops (the one synthesis of this test)."""
    from golden.core import CoreParams
    from golden.pipeline import timing
    arch = Architecture("t", (784,), (LayerSpec("dense", 16), LayerSpec("dense", 10)))
    path = save_model(tmp_path / "tiny.npz", random_model(arch, np.random.default_rng(1)))
    reports = {}
    for pipeline in ("false", "true"):
        cfg = tmp_path / f"chip-{pipeline}.toml"
        cfg.write_text(f"[array]\nrows = 64\ncolumns = 16\n[chip]\npipeline = {pipeline}\n")
        rc, out, err = run_main(["report", "--model", str(path), "--config", str(cfg),
                                 "--images", "2", "--json"]
                                + (["--no-synth"] if pipeline == "false" else []), capsys)
        assert rc == 0, err
        reports[pipeline] = json.loads(out)
    d = reports["true"]
    # 784 inputs on 64 rows: 13 row tiles, then 1; in sequence 13 + 5 + 1 + 6
    assert [layer["read_cycles_per_image"] for layer in d["layers"]] == [13, 1]
    assert reports["false"]["total"]["compute_cycles_per_image"] == 13 + 5 + 1 + 6
    params = CoreParams(compile_model(load_model(path), load_chip_config(cfg)))
    assert d["chip"]["pipeline"] and d["chip"]["read_ports"] == 1 + 1 == params.crossbar_ports
    assert d["total"]["compute_cycles_per_image"] == 13 == params.pipeline.interval
    assert d["total"]["latency_cycles"] == timing(params.pipeline, 1).latency
    # 13 input beats, a start, 13 commands: a bank is busy 27 cycles, 3 banks at 13 per image
    assert params.pipeline.banks[0] == 3
    assert d["periphery"]["flip_flops"] >= 3 * 13 * 64


# --- bad input ---------------------------------------------------------------------------

@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the energy pass or a synthesis starts: bad input is refused first."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the bad input was refused")
    monkeypatch.setattr(rp, "array_activity", refuse)
    monkeypatch.setattr(rp, "synthesize_core", refuse)


def _bad_cases(tmp: Path) -> dict:
    (tmp / "a_directory.png").mkdir()

    def config(name, text):
        (tmp / name).write_text(text)
        return str(tmp / name)

    tiny = save_model(tmp / "tiny_cnn.npz", random_model(
        Architecture("t", (3, 9, 7), (LayerSpec("conv", 4, kernel=3), LayerSpec("dense", 5))),
        np.random.default_rng(1)))
    return {
        "images 0": (["--images", "0"], ["argument --images", "positive integer", "0"]),
        "images text": (["--images", "many"], ["argument --images", "'many'"]),
        "images past the test set": (["--images", "10001"],
                                     ["--images 10001", "10000 MNIST test images"]),
        "plot directory": (["--plot", str(tmp / "a_directory.png")],
                           ["argument --plot", "a_directory.png", "not the directory"]),
        "plot not png": (["--plot", str(tmp / "a.jpg")], ["argument --plot", "a.jpg", ".png"]),
        "adc energy": (["--config", config("e.toml", "[adc]\nenergy_pj = -1.0\n")],
                       ["--config", "e.toml", "adc_energy_pj", "positive", "-1.0"]),
        "cell area": (["--config", config("a.toml", "[array]\ncell_area_um2 = 0\n")],
                      ["--config", "a.toml", "cell_area_um2", "positive", "not 0"]),
        "read pulse": (["--config", config("t.toml", "[array]\nread_pulse_ns = -5\n")],
                       ["--config", "t.toml", "read_pulse_ns", "positive", "-5"]),
        "config missing": (["--config", str(tmp / "none.toml")],
                           ["--config", "none.toml", "not found"]),
        "model missing": (["--model", str(tmp / "none.npz")], ["--model", "none.npz",
                                                                "not found"]),
        "model not MNIST": (["--model", str(tiny)], ["--model", "tiny_cnn.npz", "(3, 9, 7)",
                                                     "not an MNIST image"]),
        "core cannot implement": (["--config", config("c.toml",
                                                      "[array]\nrows = 100\ncolumns = 48\n")],
                                  ["--model", "c.toml", "cannot implement", "multiple"]),
    }


CASES = ["images 0", "images text", "images past the test set", "plot directory",
         "plot not png", "adc energy", "cell area", "read pulse", "config missing",
         "model missing", "model not MNIST", "core cannot implement"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_before_any_work_and_nothing_is_written(case, tmp_path, capsys,
                                                                        no_work):
    args, expected = _bad_cases(tmp_path)[case]
    before = sorted(os.listdir(tmp_path))
    argv = ["report", "--model", MLP, "--plot", str(tmp_path / "out.png"), *args]
    rc, out, err = run_main(argv, capsys)
    assert rc != 0
    lines = err.strip().splitlines()
    last = lines[-1]
    assert last.startswith("mbnn"), err
    if not last.startswith("mbnn report: error: argument"):    # argparse adds its usage line
        assert len(lines) == 1, err
    for text in expected:
        assert text in last, err
    assert "Traceback" not in err and out == ""
    assert sorted(os.listdir(tmp_path)) == before
