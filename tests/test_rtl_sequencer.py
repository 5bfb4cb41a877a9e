"""Sequencer RTL on Icarus and Verilator against the golden schedule (tests in
sim/tb/tb_sequencer.py)."""

import pytest

from sim.regressions import CORE_SETS, run_sequencer

from conftest import require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(CORE_SETS))
def test_sequencer_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_sequencer(name, simulator, build_root, seed=seed)
    print(result.summary())
    for outcome in result.outcomes:
        print(f"  cocotb {outcome.name}: {'PASS' if outcome.passed else 'FAIL'}")
    record_property("cocotb_simulator", simulator)
    record_property("cocotb_passed", result.passed)
    record_property("cocotb_failed", result.failed)
    assert result.ok, result.summary()
    assert len(result.outcomes) == 3, "a cocotb test was not run"
