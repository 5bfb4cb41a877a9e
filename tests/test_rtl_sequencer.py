"""Sequencer RTL on Icarus and Verilator against the golden schedule (tests in
sim/tb/tb_sequencer.py)."""

import pytest

from sim.regressions import regression_sets, run_sequencer

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