"""Accumulator RTL on Icarus and Verilator against its golden twin (tests in
sim/tb/tb_accumulator.py)."""

import pytest

from sim.regressions import ACCUMULATOR_SETS, run_accumulator

from conftest import require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(ACCUMULATOR_SETS))
def test_accumulator_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_accumulator(name, ACCUMULATOR_SETS[name], simulator, build_root, seed=seed)
    print(result.summary())
    for outcome in result.outcomes:
        print(f"  cocotb {outcome.name}: {'PASS' if outcome.passed else 'FAIL'}")
    record_property("cocotb_simulator", simulator)
    record_property("cocotb_passed", result.passed)
    record_property("cocotb_failed", result.failed)
    assert result.ok, result.summary()
    assert len(result.outcomes) == 6, "a cocotb test was not run"   # 4 traffic mixes + 2
