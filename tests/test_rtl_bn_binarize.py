"""BN-binarize RTL on Icarus and Verilator against its golden twin, one build dir per
(parameter set, simulator). The cocotb tests themselves live in sim/tb/tb_bn_binarize.py."""

import pytest

from sim.regressions import BN_BINARIZE_SETS, run_bn_binarize

from conftest import require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(BN_BINARIZE_SETS))
def test_bn_binarize_rtl(name, simulator, seed, build_root, record_property):
    require_simulator(simulator)
    result = run_bn_binarize(name, BN_BINARIZE_SETS[name], simulator, build_root, seed=seed)
    print(result.summary())
    for outcome in result.outcomes:
        print(f"  cocotb {outcome.name}: {'PASS' if outcome.passed else 'FAIL'}")
    record_property("cocotb_simulator", simulator)
    record_property("cocotb_passed", result.passed)
    record_property("cocotb_failed", result.failed)
    assert result.ok, result.summary()
    # 4 traffic mixes of random_stream + 3 directed tests; guards against a test silently
    # dropping out of the module (e.g. a decorator lost in an edit).
    assert len(result.outcomes) == 7, "a cocotb test was not run"
