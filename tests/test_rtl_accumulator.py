"""Accumulator RTL on Icarus and Verilator against its golden twin (tests in
sim/tb/tb_accumulator.py)."""

import pytest

from sim.regressions import ACCUMULATOR_SETS, run_accumulator

from conftest import check_cocotb_run, require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(ACCUMULATOR_SETS))
def test_accumulator_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_accumulator(name, simulator, build_root, seed=seed)
    # 4 traffic mixes of random_runs + range_extremes + throughput_and_latency + closure
    check_cocotb_run(result, record_property, tests=8)