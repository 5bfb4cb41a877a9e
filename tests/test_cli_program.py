"""`mbnn program`: golden write-verify programming of a model's arrays on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golden.bn_fold import FoldedThreshold
from golden.model import preactivation_range, save_model
from sim.regressions import TINY_ARCH
from sim.stimulus import random_model

from conftest import require_simulator

REPO = Path(__file__).resolve().parent.parent


def mbnn(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.fixture()
def files(tmp_path, seed):
    """A random tiny CNN, the same with a tenth of its weights flipped (a fine-tuned model), and
    a 16x8 RRAM chip with many stuck cells."""
    rng = np.random.default_rng(seed)
    model = random_model(TINY_ARCH, rng)
    a = save_model(tmp_path / "a.npz", model)
    for i, layer in enumerate(model.layers):
        flip = rng.random(layer.weight.shape) < 0.1
        layer.weight = np.where(flip, -layer.weight, layer.weight).astype(np.int8)
        if layer.threshold is not None:     # kept inside the new weights' reachable range
            lo, hi = preactivation_range(TINY_ARCH, i, layer.weight)
            layer.threshold = FoldedThreshold(np.clip(layer.threshold.threshold, lo, hi),
                                              layer.threshold.invert)
    b = save_model(tmp_path / "b.npz", model)
    config = tmp_path / "chip.toml"
    config.write_text("[array]\nrows = 16\ncolumns = 8\n[device]\npreset = \"rram\"\n"
                      "stuck_on_rate = 0.02\nstuck_off_rate = 0.03\n")
    return a, b, config


def test_program_reports_pulses_failures_time_and_energy(files):
    a, _, config = files
    r = mbnn("program", "--model", a, "--config", config, "--seed", 3, "--images", 0, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("cells", "pulses", "skipped_cells", "failed_cells", "program_time_s",
                "energy_j"):
        assert key in out
    # every array of 16 rows x 16 physical columns (differential pairs of 8 weight columns)
    assert out["cells"] % (16 * 16) == 0
    assert 0 < out["failed_stuck_cells"] <= out["failed_cells"] and out["pulses"] > 0
    assert 0 < out["skipped_cells"] < out["cells"]
    again = json.loads(mbnn("program", "--model", a, "--config", config, "--seed", 3,
                            "--images", 0, "--json").stdout)
    assert {k: v for k, v in again.items() if k != "wall_s"} == \
        {k: v for k, v in out.items() if k != "wall_s"}


def test_reprogramming_over_another_model_saves_pulses(files):
    a, b, config = files
    r = mbnn("program", "--model", b, "--from", a, "--config", config, "--images", 0, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["from"]["model"] == str(a)
    # b over a: mostly the cells whose weight changed need pulses (and a's failed cells)
    assert out["pulses"] < out["fresh_chip"]["pulses"] / 2
    assert out["skipped_cells"] > out["fresh_chip"]["skipped_cells"]
    r = mbnn("program", "--model", b, "--from", a, "--config", config, "--images", "0")
    assert "on a fresh chip" in r.stdout and r.returncode == 0


@pytest.mark.parametrize("extra, message", [
    # binary RRAM cannot hold the reference column's middle conductance
    (["--device", "rram", "--config", "{ref}"],
     "target level 1 (code 128) is unreachable for device 'rram'"),
    (["--from", "models/mlp.npz", "--config", "{chip}"],
     "reprogramming needs the same arrays"),
    (["--device", "nope"], "--device: unknown device preset 'nope'"),
    (["--config", "{chip}"], "--images 1000: the model's input (3, 9, 7) is not an MNIST image"),
])
def test_bad_input_is_one_clear_line(files, tmp_path, extra, message):
    a, _, config = files
    (tmp_path / "ref.toml").write_text("[array]\nrows = 16\ncolumns = 8\n"
                                       "mapping = \"reference_column\"\n")
    args = [x.replace("{ref}", str(tmp_path / "ref.toml")).replace("{chip}", str(config))
            for x in extra]
    r = mbnn("program", "--model", a, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.slow          # 6.3 million cells programmed: about 30 s
def test_the_programmed_chip_is_scored_on_mnist(tmp_path):
    """The shipped MLP on 128x128 arrays of RRAM with 7 % stuck cells: the chip write-verify
    leaves scores below the ideal chip on the same images."""
    config = tmp_path / "chip.toml"
    config.write_text("[array]\nrows = 128\ncolumns = 128\n[device]\npreset = \"rram\"\n"
                      "stuck_on_rate = 0.02\nstuck_off_rate = 0.05\n")
    r = mbnn("program", "--model", "models/mlp.npz", "--config", config, "--images", 300,
             "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["images"] == 300 and out["failed_cells"] > 0
    assert out["programmed_accuracy"] < out["ideal_accuracy"]


@pytest.mark.rtl
def test_infer_programs_the_arrays_through_the_rtl_first(files, tmp_path, seed):
    """`mbnn infer --program`: the system's controller programs the fresh chip, then the
    images run on it; the JSON's programming record is golden write-verify's figures."""
    from golden.chip import load_chip_config
    from golden.mapping import compile_model
    from golden.model import load_model
    from golden.programming import chip_policy, program_model

    require_simulator("icarus")
    a, _, config = files
    r = mbnn("infer", "--model", a, "--config", config, "--program", "--dataset", "random",
             "--sim", "icarus", "--images", "4", "--seed", seed, "--build", tmp_path / "b",
             "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    chip = load_chip_config(config)
    result, _ = program_model(compile_model(load_model(a), chip), chip_policy(chip), seed)
    p = s["programming"]
    assert s["mismatches"] == 0 and s["images"] == 4 and s["non_ideal_chip"]
    # the RTL's counts equal golden's; its cycles follow from them (2 per cell, 3 per pulse,
    # 1 per report), so a cell skipped or pulsed differently would show there too
    assert (p["pulses"], p["failed_cells"]) == (result.pulses, int(result.failed.sum()))
    assert p["cycles"] == 2 * len(result.g_s) + 3 * result.pulses + int(result.failed.sum())
