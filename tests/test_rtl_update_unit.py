"""UpdateUnit RTL on Icarus and Verilator against its golden twin (the cocotb tests are in
sim/tb/tb_update_unit.py)."""

import pytest

from sim.regressions import UPDATE_UNIT_SETS, run_update_unit

from conftest import check_cocotb_run, require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(UPDATE_UNIT_SETS))
def test_update_unit_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_update_unit(name, simulator, build_root, seed=seed)
    # 3 traffic mixes of random_updates, one_update_per_cycle, coverage closure
    check_cocotb_run(result, record_property, tests=5)
