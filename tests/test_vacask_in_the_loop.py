"""VACASK in the loop: the tiny CNN through the generated core, every array read the RTL issues
answered from the chip's Verilog-A arrays solved in VACASK (sim/cosim_vacask.py,
sim/tb/tb_core_vacask.py), and the run's classes, scores and layer bits equal to the golden
read of the same programmed chip."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from golden.chip import ChipConfig
from golden.mapping import compile_model
from golden.model import save_model
from periphery.generate_model import generate_model
from sim.regressions import CORE_SETS
from sim.cosim_vacask import (build_table, physical_chip, run_core_vacask, schedule_reads,
                              solve_reads)

from conftest import check_cocotb_run, require_simulator

# (core set, simulator, images). The non-ideal chip (RRAM spread, stuck cells, wire/driver/
# sense resistance, ADC gain and offset errors) on both simulators; the ideal-device chip
# (3-bit ADCs that saturate) on Icarus only: a Verilator build costs ~30 s on the reference
# machine and the file stays within its time budget.
RUNS = [
    pytest.param("tiny_16x8_nonideal", "verilator", 4, id="nonideal-verilator"),
    pytest.param("tiny_16x8_nonideal", "icarus", 3, id="nonideal-icarus"),
    pytest.param("tiny_16x8", "icarus", 4, id="ideal-icarus"),
    # two arrays read per cycle: each port's read answered from VACASK
    pytest.param("tiny_16x8_nonideal_p2", "icarus", 3, id="nonideal-p2-icarus"),
    # layers pipelined: the four stages' reads (2 + 2 + 2 + 1 ports) answered in the same
    # cycles from VACASK
    pytest.param("tiny_16x8_nonideal_p2_pipe", "icarus", 3, id="nonideal-p2-pipelined-icarus"),
]


def _generate(name: str, build_root: Path, seed: int, tag: str) -> Path:
    """Core set ``name`` generated into a directory of its own (one per test: xdist-safe)."""
    core = CORE_SETS[name]
    out = build_root / "generated" / f"vacask-{name}-{tag}"
    model_file = save_model(build_root / "generated" / f"vacask-{name}-{tag}-model.npz",
                            core.load(seed))
    generate_model(model_file, core.chip, out, seed=seed)
    return out


@pytest.mark.rtl
@pytest.mark.parametrize("name, simulator, images", RUNS)
def test_tiny_cnn_with_vacask_arrays(name, simulator, images, seed, build_root,
                                     record_property):
    """Every read answered by VACASK, every image equal to the golden model of the chip."""
    require_simulator("vacask")
    require_simulator(simulator)
    gen = _generate(name, build_root, seed, simulator)
    run = run_core_vacask(gen, simulator, build_root, name, images, dataset="random",
                          seed=seed)
    print({k: v for k, v in (run.summary or {}).items() if k != "mismatched_images"})
    s = run.summary
    assert s is not None, run.result.summary()
    # VACASK and the golden read: codes may only differ where a read sits within solver
    # rounding of an ADC boundary -- say so, whatever the RTL run did
    assert s["code_disagreements"] == 0, (
        f"VACASK's codes differ from the golden read on {s['code_disagreements']} reads "
        f"(ADC rounding boundaries): {s['disagreements']}")
    if s["near_boundary_reads"]:
        warnings.warn(f"{s['near_boundary_reads']} reads have a golden ADC input within "
                      f"{s['boundary_margin_lsb']} LSB of a rounding boundary (codes agreed)")
    # the margin is meaningful only far above the VACASK/golden difference actually seen
    assert s["max_dx_lsb"] < s["boundary_margin_lsb"] / 100
    check_cocotb_run(run.result, record_property, tests=1)
    assert s["images"] == images and s["mismatches"] == 0 and s["layer_checks"]
    # every read the RTL issued was answered from the batch, each solved read was used, and
    # the RTL issued exactly the golden schedule's reads
    assert s["reads_missing"] is None
    assert s["reads_answered"] == s["reads_scheduled"] > 0
    assert s["reads_distinct_answered"] == s["reads_in_table"] == s["reads_distinct"]
    assert s["vacask_runs"] == 1
    if CORE_SETS[name].chip.non_ideal_settings():
        assert s["non_ideal_chip"]
        assert s["scores_off_ideal"] > 0, "the non-ideal chip scored every image like an ideal one"
        # the answers are VACASK's own currents, not the golden product passed through
        assert s["max_dx_lsb"] > 0
    else:
        assert s["scores_off_ideal"] == 0


@pytest.mark.rtl
def test_a_read_missing_from_the_batch_fails_the_run(seed, build_root, record_property):
    """The last new read of the run is left out of the table: the RTL gets that far, then the
    run fails naming the tile and word lines of the read it lacked."""
    require_simulator("vacask")
    require_simulator("icarus")
    name = "tiny_16x8_nonideal"
    gen = _generate(name, build_root, seed, "missing")
    run = run_core_vacask(gen, "icarus", build_root, f"{name}-missing", 2, dataset="random",
                          seed=seed, omit_reads=[-1])
    assert not run.result.ok and run.result.failed == 1
    [(tile, wl)] = run.summary["omitted_reads"]
    message = run.result.outcomes[0].message
    print(message)
    assert re.search(rf"the RTL read tile {tile} with word lines {wl}, a read the VACASK batch "
                     rf"\(built from the golden schedule\) does not hold; answered \d+ reads",
                     message), message
    # it failed at that read, late in the run, not at the start
    assert run.summary["reads_missing"].startswith(f"tile {tile}, word lines ")
    assert 0 < run.summary["reads_answered"] < run.summary["reads_scheduled"]


# Chips the RTL runs above do not cover, checked without RTL: the reference-column layout,
# and non-linear (sinh) cells, whose law the Verilog-A cell applies itself while the golden
# folds it into an effective conductance.
BATCH_CHIPS = {
    "ref_nonideal": CORE_SETS["tiny_16x8_ref_nonideal"].chip,
    "sinh_cells": ChipConfig(16, 8, adc_bits=5, adc_gain_dtod=0.01,
                             device={"preset": "rram", "iv_v0_v": 0.25}),
}


@pytest.mark.parametrize("chip_name", sorted(BATCH_CHIPS))
def test_vacask_batch_codes_equal_the_golden_read(chip_name, seed, tmp_path):
    require_simulator("vacask")
    chip = BATCH_CHIPS[chip_name]
    model = CORE_SETS["tiny_16x8"].load(seed)
    mapped = compile_model(model, chip)
    phys = physical_chip(mapped, seed)
    pixels = (np.random.default_rng(seed).random((2,) + tuple(model.arch.input_shape))
              < 0.5).astype(np.uint8)
    reads = schedule_reads(mapped, phys.state, pixels)
    solution = solve_reads(phys, reads.patterns, work_dir=tmp_path)
    table = build_table(phys, reads, solution)
    print(f"{chip_name}: {reads.distinct} reads in {solution.analyses} operating points, "
          f"{solution.wall_time_s:.2f} s, max |dx| {table.max_dx_lsb:.3g} LSB, "
          f"{int(table.near_boundary.sum())} near a boundary")
    assert solution.runs == 1 and len(table.tile) == reads.distinct
    assert not table.disagreeing.any(), table.describe_disagreements()
    assert table.max_dx_lsb < table.boundary_margin_lsb / 100

