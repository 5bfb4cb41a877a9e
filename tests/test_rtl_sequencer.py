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
