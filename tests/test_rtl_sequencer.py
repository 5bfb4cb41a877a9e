"""Sequencer RTL on Icarus and Verilator against the golden schedule (tests in
sim/tb/tb_sequencer.py)."""

import pytest

from sim.regressions import (CORE_SETS, generate_verilog, regression_sets, run_sequencer,
                             sequencer_sets)

from conftest import check_cocotb_run, require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", regression_sets()["sequencer"])
def test_sequencer_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_sequencer(name, simulator, build_root, seed=seed)
    # 2 backpressure settings of schedule_matches_golden, layer_gap_and_throughput,
    # idle_without_start, coverage closure
    check_cocotb_run(result, record_property, tests=5)

# A pipelined core's stage sequencers (one layer each, images back to back): every layer of
# the tiny CNN at 3 reads per cycle (groups full, partial and single; conv and dense) on
# Icarus, its 4-row-tile layer on Verilator.
STAGE_RUNS = [("icarus", 0), ("icarus", 1), ("icarus", 2), ("icarus", 3), ("verilator", 1)]


@pytest.mark.rtl
@pytest.mark.parametrize("simulator, stage", STAGE_RUNS,
                         ids=[f"{sim}-layer{stage}" for sim, stage in STAGE_RUNS])
def test_stage_sequencer_rtl(simulator, stage, seed, build_root, record_property):
    require_simulator(simulator)
    assert CORE_SETS["tiny_16x8_p3_pipe"].chip.pipeline
    result = run_sequencer("tiny_16x8_p3_pipe", simulator, build_root, seed=seed, stage=stage)
    check_cocotb_run(result, record_property, tests=5)


def test_sets_left_out_of_the_sequencer_regression_have_a_regressed_twin(tmp_path, seed):
    """Every core set's sequencer is byte for byte the sequencer of a set the regression runs
    (the sets differ in device, ADC, mapping scheme or programming only)."""
    regressed = {}
    for name in sequencer_sets():
        path = generate_verilog("sequencer", name, tmp_path / name, seed)["sequencer.v"][0]
        regressed[path.read_bytes()] = name
    left_out = [n for n in CORE_SETS if n not in sequencer_sets()]
    assert left_out, "no set is left out: the test checks nothing"
    for name in left_out:
        path = generate_verilog("sequencer", name, tmp_path / name, seed)["sequencer.v"][0]
        assert path.read_bytes() in regressed, f"{name}'s sequencer is regressed by no set"
