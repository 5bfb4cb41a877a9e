"""BN-binarize RTL on Icarus and Verilator against its golden twin, one build dir per
(parameter set, simulator). The cocotb tests themselves live in sim/tb/tb_bn_binarize.py."""

import pytest

from sim.regressions import BN_BINARIZE_SETS, run_bn_binarize

from conftest import check_cocotb_run, require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(BN_BINARIZE_SETS))
def test_bn_binarize_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_bn_binarize(name, simulator, build_root, seed=seed)
    # 4 traffic mixes of random_stream + 3 directed tests + coverage closure
    check_cocotb_run(result, record_property, tests=9)