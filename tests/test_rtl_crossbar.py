"""The behavioural crossbar (rtl/analog/mbnn_crossbar.v) on Icarus and Verilator against the
golden crossbar read, for both weight mapping schemes, partly filled arrays, weightless cells
and saturating ADCs (tests in sim/tb/tb_crossbar.py); and the conductance programming."""

import numpy as np
import pytest

from golden.conductance import IdealDevice, hex_lines, program_tiles
from sim.regressions import CROSSBAR_SETS, run_crossbar

from conftest import check_cocotb_run, require_simulator


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator", "icarus-vpi"])
@pytest.mark.parametrize("name", list(CROSSBAR_SETS))
def test_crossbar_rtl(name, simulator, seed, build_root, record_property):
    """``icarus-vpi``: Icarus with the crossbar's compiled read (rtl/analog/mbnn_crossbar_vpi.c)
    in place of its Verilog loops -- held to the same golden codes, bit for bit, boundary set
    included."""
    sim, _, vpi = simulator.partition("-")
    require_simulator(sim)
    result = run_crossbar(name, sim, build_root, seed=seed, crossbar_vpi=bool(vpi))
    check_cocotb_run(result, record_property, tests=2)


@pytest.mark.parametrize("mapping", ["differential", "reference_column"])
def test_conductance_difference_is_the_weight(mapping, seed):
    """(G+ - G-) / G_unit is the weight on cells that carry one and exactly 0 elsewhere."""
    rng = np.random.default_rng(seed)
    w = rng.choice(np.array([-1, 0, 1], np.int8), size=(4, 9, 5))
    used = rng.random(w.shape) < 0.8
    c = program_tiles(w, used, mapping, IdealDevice(g_on_s=50e-6, g_off_s=2e-6))
    ratio = (c.g_pos_s - c.g_neg_s) / c.g_unit_s
    assert np.allclose(ratio, np.where(used, w, 0), atol=1e-12)
    assert np.all(ratio[~used | (w == 0)] == 0)
    assert set(np.unique(c.g_pos_s)) <= {50e-6, 2e-6, (50e-6 + 2e-6) / 2}


def test_bad_device_and_mapping_are_rejected():
    with pytest.raises(ValueError, match=r"g_on_s \(1e-05\) must exceed g_off_s \(2e-05\)"):
        IdealDevice(g_on_s=1e-5, g_off_s=2e-5)
    with pytest.raises(ValueError, match="v_read_v must be a positive finite number, not -0.1"):
        IdealDevice(v_read_v=-0.1)
    with pytest.raises(ValueError, match="mapping must be 'differential' or 'reference_column'"):
        program_tiles(np.zeros((1, 2, 2), np.int8), np.ones((1, 2, 2), bool), "crossed")


def test_hex_lines_round_trip_exactly():
    x = np.array([100e-6, 10e-6, 55e-6, 1 / 3, -0.0])
    text = hex_lines(x).decode().split()
    back = np.array([int(t, 16) for t in text], np.uint64).view(np.float64)
    assert np.array_equal(back.view(np.uint64), x.view(np.uint64))
