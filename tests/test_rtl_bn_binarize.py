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

def test_the_core_binarizes_with_this_block_on_a_verified_parameter_set():
    """The core instantiates BNBinarize (it has no compare of its own) with
    CoreParams.bn_params, a lane per column: for the shipped MLP on the default chip that is a
    set of this regression, so the exact block the chip uses is verified on its own."""
    from amaranth.hdl import Fragment

    from golden.chip import ChipConfig
    from golden.core import CoreParams
    from golden.mapping import compile_model
    from golden.model import load_model
    from periphery.bn_binarize import BNBinarize
    from periphery.core import BnnCore

    params = CoreParams(compile_model(load_model("models/mlp.npz"), ChipConfig()))
    assert params.bn_params == BN_BINARIZE_SETS["c25_w14_l128_mlp"]
    fragment = Fragment.get(BnnCore(params), None)
    blocks = [o for sub, _name, _src in fragment.subfragments
              for o in getattr(sub, "origins", ()) or () if isinstance(o, BNBinarize)]
    assert len(blocks) == 1 and blocks[0].params == params.bn_params
    # it powers up with the core's threshold table
    assert blocks[0].init == [(row["threshold"], row["invert"]) for row in params.threshold_table]


def test_an_initial_table_is_checked_like_a_table_write():
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from golden.bn_binarize import BNBinarizeParams
    from periphery.bn_binarize import BNBinarize

    p = BNBinarizeParams(channels=2, acc_width=8, fan_in=100)
    with warnings.catch_warnings():
        # the refused blocks are never elaborated, by design: collect them while their
        # "created but never used" warning is ignored
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="init has 3 entries; the table has 2"):
            BNBinarize(p, init=[(0, 0)] * 3)
        with pytest.raises(ValueError, match=r"threshold 101 for channel 1 outside the "
                                             r"pre-activation range \[-100, 100\]"):
            BNBinarize(p, init=[(0, 0), (101, 1)])
        assert BNBinarize(p, init=[(5, True)]).init == [(5, 1)]
        gc.collect()
