"""ProgrammingController RTL on Icarus and Verilator in lock-step with the golden write-verify
model (the cocotb tests are in sim/tb/tb_programming.py)."""

import pytest

from sim.regressions import PROGRAMMING_SETS, run_programming

from conftest import check_cocotb_run, require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(PROGRAMMING_SETS))
def test_programming_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_programming(name, simulator, build_root, seed=seed)
    # 3 traffic mixes of programs_a_fresh_chip + reprogramming + second start + closure
    check_cocotb_run(result, record_property, tests=6)
