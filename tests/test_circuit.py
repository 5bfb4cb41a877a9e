"""Circuit-simulator side of the crossbar: the Verilog-A cell, the array netlists, and the VACASK
and ngspice drivers, checked against the golden parasitic solver
(``golden.analog.parasitics``) and, on small arrays, against a dense modified-nodal solve
written here (a third, independent opinion: zero resistances are 0 V sources there, not merged
nodes).

Tolerances (max over columns of |dI| / |I|): 1e-9 for linear cells, 1e-6 for the sinh law.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from golden.analog.parasitics import CrossbarNetwork, Parasitics
from sim import toolchain
from sim.circuit import (ModelCompileError, NotConverged, SimulationTimeout, netlist as nl,
                         ngspice, vacask)
from sim.spice_raw import read_raw

from conftest import require_simulator

LINEAR_REL = 1e-9
SINH_REL = 1e-6
V_READ_V = 0.2
NOMINAL = Parasitics(r_wire_ohm=2.0, r_source_ohm=10.0, r_sense_ohm=10.0)
# Every combination of zero and non-zero wire / source / sense resistance: the merging cases.
ALL_MERGES = [Parasitics(w, s, t) for w in (0.0, 2.0) for s in (0.0, 10.0) for t in (0.0, 10.0)]


def _rng(seed: int, *case) -> np.random.Generator:
    print(f"seed {seed} (replay: --seed {seed}), case {case}")
    return np.random.default_rng([seed, *[zlib.crc32(str(c).encode()) for c in case]])


def _programmed(rng, rows: int, cols: int, kind: str) -> np.ndarray:
    """Programmed states: uniform 10..100 uS, or a random mix of two levels."""
    if kind == "uniform":
        return rng.uniform(10e-6, 100e-6, (rows, cols))
    return rng.choice([10e-6, 100e-6], (rows, cols))


def _inputs(rng, rows: int) -> np.ndarray:
    """Random 0 / V_READ word-line inputs with at least one row on."""
    v = rng.choice([0.0, V_READ_V], rows)
    v[rng.integers(rows)] = V_READ_V
    return v


def _rel(i_a: np.ndarray, ref_a: np.ndarray) -> float:
    return float(np.max(np.abs(i_a - ref_a) / np.abs(ref_a)))


def _mna_reference(g_s, v_in_v, p: Parasitics, iv_v0_v: float | None = None):
    """Dense modified nodal analysis of the array: every node of the description kept, every
    resistance a conductance stamp, or a 0 V source stamp when it is zero (no merging). Sinh
    cells by Newton's method. Returns column currents (A) and word/bit-line node voltages.
    For small arrays only (dense)."""
    g_s = np.asarray(g_s, float)
    rows, cols = g_s.shape
    names: dict[str, int] = {}

    def node(name):
        return names.setdefault(name, len(names))

    resistors, sources = [], []           # (a, b, ohm), (p, n, volts); node -1 is ground
    for r in range(rows):
        sources.append((node(f"in{r}"), -1, v_in_v[r]))
        resistors.append((node(f"in{r}"), node(f"ws{r}"), p.r_source_ohm))
        resistors.append((node(f"ws{r}"), node(f"w{r},0"), p.r_wire_ohm))
        for c in range(1, cols):
            resistors.append((node(f"w{r},{c - 1}"), node(f"w{r},{c}"), p.r_wire_ohm))
    for c in range(cols):
        for r in range(rows - 1):
            resistors.append((node(f"b{r},{c}"), node(f"b{r + 1},{c}"), p.r_wire_ohm))
        resistors.append((node(f"b{rows - 1},{c}"), node(f"bs{c}"), p.r_wire_ohm))
        resistors.append((node(f"bs{c}"), node(f"vg{c}"), p.r_sense_ohm))
    sense_index = len(sources)
    for c in range(cols):
        sources.append((node(f"vg{c}"), -1, 0.0))
    zero = [(a, b) for a, b, ohm in resistors if ohm == 0]
    n_nodes = len(names)
    n = n_nodes + len(sources) + len(zero)
    a_mat = np.zeros((n, n))
    rhs = np.zeros(n)
    for a, b, ohm in resistors:
        if ohm > 0:
            for x, y in ((a, b), (b, a)):
                a_mat[x, x] += 1 / ohm
                a_mat[x, y] -= 1 / ohm
    for k, (pn, nn, volts) in enumerate(sources + [(a, b, 0.0) for a, b in zero]):
        j = n_nodes + k   # branch current, from pn through the element to nn
        for x, s in ((pn, 1.0), (nn, -1.0)):
            if x >= 0:
                a_mat[x, j] += s
                a_mat[j, x] += s
        rhs[j] = volts
    wl = np.array([[names[f"w{r},{c}"] for c in range(cols)] for r in range(rows)])
    bl = np.array([[names[f"b{r},{c}"] for c in range(cols)] for r in range(rows)])

    def cells(x):
        v = x[wl] - x[bl]
        if iv_v0_v is None:
            return g_s * v, g_s
        return (g_s * iv_v0_v * np.sinh(v / iv_v0_v), g_s * np.cosh(v / iv_v0_v))

    x = np.zeros(n)
    for _ in range(60):
        i_cell, g_diff = cells(x)
        f = a_mat @ x - rhs
        jac = a_mat.copy()
        np.add.at(f, wl.ravel(), i_cell.ravel())
        np.add.at(f, bl.ravel(), -i_cell.ravel())
        for (wa, ba), gd in zip(zip(wl.ravel(), bl.ravel()), g_diff.ravel()):
            jac[wa, wa] += gd
            jac[ba, ba] += gd
            jac[wa, ba] -= gd
            jac[ba, wa] -= gd
        dx = np.linalg.solve(jac, -f)
        x += dx
        if np.max(np.abs(dx)) < 1e-15:
            break
    i_col = x[n_nodes + sense_index: n_nodes + sense_index + cols]
    return i_col, x[wl], x[bl]


# --- the model-free parts: validation and netlist structure (no simulator needed) -------------

def test_mna_reference_agrees_with_the_ideal_product_and_ohms_law():
    """The test module's own reference is itself right: with no parasitics it gives
    ``v_in @ g_s``, and a 1x1 array with source, wire and sense resistance is a series circuit."""
    g = np.array([[1e-5, 2e-5], [3e-5, 4e-5]])
    v = np.array([0.2, 0.1])
    i, _, _ = _mna_reference(g, v, Parasitics())
    np.testing.assert_allclose(i, v @ g, rtol=1e-14)
    i, wl, bl = _mna_reference(np.array([[1e-4]]), np.array([0.2]), Parasitics(2.0, 10.0, 5.0))
    r_total = 10.0 + 2.0 + 1e4 + 2.0 + 5.0
    assert i[0] == pytest.approx(0.2 / r_total, rel=1e-14)
    assert wl[0, 0] == pytest.approx(0.2 - 12.0 * 0.2 / r_total, rel=1e-14)
    assert bl[0, 0] == pytest.approx(7.0 * 0.2 / r_total, rel=1e-14)


@pytest.mark.parametrize("p", ALL_MERGES, ids=str)
def test_netlist_merges_zero_resistances_and_writes_exact_values(p, seed):
    """No 0-ohm resistor is ever written, the element count is the one the topology asks
    for, and every number reads back as the exact double it came from."""
    rng = _rng(seed, "netlist", p)
    rows, cols = 3, 4
    g = rng.uniform(10e-6, 100e-6, (rows, cols))
    v = rng.uniform(-0.3, 0.3, rows)
    for dialect in nl.DIALECTS:
        net = nl.crossbar_netlist(g, v, p, dialect=dialect)
        lines = net.text.splitlines()
        wires = [ln for ln in lines if ln.split(" ", 1)[0][:2] in ("rs", "rw", "rb", "rt")]
        expect = (rows if p.r_source_ohm else 0) + (cols if p.r_sense_ohm else 0) \
            + (2 * rows * cols if p.r_wire_ohm else 0)
        assert len(wires) == expect, net.text
        values = [float(ln.split()[-1].split("=")[-1]) for ln in wires]
        assert all(x > 0 for x in values)
        cells = [ln for ln in lines if ln.startswith(("x", "rx"))]
        assert len(cells) == rows * cols
        cell_values = np.array([float(ln.split()[-1].split("=")[-1]) for ln in cells])
        expected = g.ravel() if dialect == "vacask" else 1.0 / g.ravel()
        assert np.array_equal(cell_values, expected)         # exact, not approx
        src = [float(ln.split()[-1].split("=")[-1]) for ln in lines if ln.startswith("vin")]
        assert np.array_equal(src, v)
        # merged nodes share one name; distinct wire nodes are distinct
        if p.r_wire_ohm == 0:
            assert len(set(net.word_node.ravel())) == rows
            assert len(set(net.bit_node.ravel())) == cols
        else:
            assert len(set(net.word_node.ravel()) | set(net.bit_node.ravel())) == 2 * rows * cols
        if p.r_wire_ohm == 0 and p.r_source_ohm == 0:
            assert list(net.word_node[:, 0]) == [f"in{r}" for r in range(rows)]
        if p.r_wire_ohm == 0 and p.r_sense_ohm == 0:
            assert list(net.bit_node[0]) == [f"vg{c}" for c in range(cols)]
        # deterministic: the same inputs give the same text
        assert nl.crossbar_netlist(g, v, p, dialect=dialect).text == net.text


@pytest.mark.parametrize("kwargs, message", [
    (dict(g_s=np.full(4, 1e-5)), "g_s must be a non-empty 2-D"),
    (dict(g_s=np.array([[1e-5, 0.0], [1e-5, 1e-5]])), "cell (0, 1) is 0.0"),
    (dict(g_s=np.array([[1e-5, 1e-5], [-1e-5, 1e-5]])), "cell (1, 0) is -1e-05"),
    (dict(g_s=np.array([[1e-5, np.nan], [1e-5, 1e-5]])), "cell (0, 1) is nan"),
    (dict(v_in_v=np.zeros(3)), "v_in_v must have shape (2,)"),
    (dict(v_in_v=np.array([0.2, np.inf])), "row 1 is inf"),
    (dict(parasitics=SimpleNamespace(r_wire_ohm=-2.0, r_source_ohm=0.0, r_sense_ohm=0.0)),
     "r_wire_ohm must be a finite resistance >= 0 ohms, not -2.0"),
    (dict(parasitics=SimpleNamespace(r_wire_ohm=2.0, r_source_ohm=float("nan"),
                                     r_sense_ohm=0.0)),
     "r_source_ohm must be a finite resistance >= 0 ohms, not nan"),
    (dict(parasitics=SimpleNamespace(r_wire_ohm=2.0, r_source_ohm=1.0, r_sense_ohm=-1)),
     "r_sense_ohm must be a finite resistance >= 0 ohms, not -1"),
    (dict(iv_v0_v=0.0), "iv_v0_v must be None (linear cells) or a finite voltage > 0, not 0.0"),
    (dict(iv_v0_v=0.25, dialect="spice"), "linear only; iv_v0_v=0.25 (sinh law) needs"),
    (dict(dialect="hspice"), "dialect must be one of vacask, spice, not 'hspice'"),
])
def test_bad_inputs_are_refused_naming_parameter_and_value(kwargs, message):
    args = dict(g_s=np.full((2, 2), 1e-5), v_in_v=np.array([0.2, 0.0]), parasitics=NOMINAL)
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        nl.crossbar_netlist(args.pop("g_s"), args.pop("v_in_v"), **args)
    assert message in str(info.value)


def test_drivers_validate_before_running_anything(tmp_path):
    """The drivers refuse bad input with the netlist writer's message (no simulator needed),
    including ngspice given the sinh law and a non-positive time limit."""
    g, v = np.full((2, 2), 1e-5), np.array([0.2, 0.0])
    with pytest.raises(ValueError, match=r"v_in_v must have shape \(2,\)"):
        vacask.simulate(g, np.zeros(5), NOMINAL, work_dir=tmp_path)
    with pytest.raises(ValueError, match="cell \\(1, 1\\) is -1e-05"):
        ngspice.simulate(np.array([[1e-5, 1e-5], [1e-5, -1e-5]]), v, NOMINAL, work_dir=tmp_path)
    with pytest.raises(ValueError, match="max_newton_iterations must be an integer >= 1, not 0"):
        vacask.simulate(g, v, NOMINAL, max_newton_iterations=0, work_dir=tmp_path)
    with pytest.raises(TypeError):
        ngspice.simulate(g, v, NOMINAL, iv_v0_v=0.25)     # ngspice has no sinh cells at all
    if toolchain.find("vacask"):
        with pytest.raises(ValueError, match="timeout_s must be a number of seconds > 0, not 0"):
            vacask.simulate(g, v, NOMINAL, timeout_s=0, work_dir=tmp_path)


# --- the Verilog-A cell -----------------------------------------------------------------------

CELL_TEST_VOLTAGES_V = (-0.6, -0.2, -0.05, 0.0, 0.03, 0.2, 0.45)


@pytest.mark.parametrize("v0_v", [0.0, 0.25, 0.1])
def test_cell_compiles_and_follows_its_iv_law(tmp_path, v0_v):
    """OpenVAF compiles rtl/analog/mbnn_cell.va inside VACASK; one cell per voltage source
    (nothing else in the circuit) carries g V (v0_v = 0) or g v0 sinh(V / v0) to 1e-12."""
    require_simulator("vacask")
    shutil.copyfile(vacask.CELL_MODEL, tmp_path / "mbnn_cell.va")
    g_s = 37e-6
    lines = ["one mbnn_cell per source", 'load "mbnn_cell.va"', "ground 0",
             "model vsrc vsource", f"model cell mbnn_cell v0_v={v0_v!r}"]
    for k, v in enumerate(CELL_TEST_VOLTAGES_V):
        lines += [f"v{k} (n{k} 0) vsrc dc={v!r}", f"x{k} (n{k} 0) cell g_s={g_s!r}"]
    lines += ["control", "  abort always", "  analysis op1 op", "endc", ""]
    (tmp_path / "cell.sim").write_text("\n".join(lines))
    run = subprocess.run([toolchain.require("vacask").executable, "cell.sim"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    op = read_raw(tmp_path / "op1.raw")
    for k, v in enumerate(CELL_TEST_VOLTAGES_V):
        # the source's branch current flows into its + terminal: minus the cell current
        i_cell = -op[f"v{k}:flow(br)"][0]
        expect = g_s * v if v0_v == 0 else g_s * v0_v * np.sinh(v / v0_v)
        print(f"v0 {v0_v} V, V {v:+.2f} V: I {i_cell:.17g} A, expected {expect:.17g} A")
        assert i_cell == pytest.approx(expect, rel=1e-12, abs=1e-300)
        if v != 0:
            assert np.sign(i_cell) == np.sign(v)


# --- VACASK against the golden solver ---------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("states", ["uniform", "two-level"])
def test_vacask_matches_golden_linear(size, states, seed):
    require_simulator("vacask")
    rng = _rng(seed, "vacask-linear", size, states)
    g, v = _programmed(rng, size, size, states), _inputs(rng, size)
    ref = CrossbarNetwork(g, NOMINAL).column_currents(v)
    res = vacask.simulate(g, v, NOMINAL)
    err = _rel(res.i_col_a, ref)
    print(f"{size}x{size} {states}: max |dI|/|I| = {err:.3g}, VACASK wall {res.wall_time_s:.3f} s")
    assert err <= LINEAR_REL
    # the parasitics matter at this size: the ideal product is far off (the check can fail)
    assert _rel(v @ g, ref) > 1e-4


def test_vacask_ideal_array_is_the_ideal_product(seed):
    """All three resistances zero: every cell sits between its source and its virtual ground,
    so the column currents are ``v_in @ g_s`` to rounding."""
    require_simulator("vacask")
    rng = _rng(seed, "vacask-ideal")
    g, v = _programmed(rng, 64, 64, "uniform"), _inputs(rng, 64)
    res = vacask.simulate(g, v, Parasitics())
    err = _rel(res.i_col_a, v @ g)
    print(f"ideal 64x64: max |dI|/|I| against v @ g = {err:.3g}")
    assert err <= 1e-13
    assert _rel(res.i_col_a, CrossbarNetwork(g, Parasitics()).column_currents(v)) <= 1e-13


@pytest.mark.parametrize("p", [p for p in ALL_MERGES if p != NOMINAL and p != Parasitics()],
                         ids=str)
def test_vacask_matches_golden_with_merged_nodes(p, seed):
    require_simulator("vacask")
    rng = _rng(seed, "vacask-merge", p)
    g, v = _programmed(rng, 32, 32, "uniform"), _inputs(rng, 32)
    err = _rel(vacask.simulate(g, v, p).i_col_a, CrossbarNetwork(g, p).column_currents(v))
    print(f"{p}: max |dI|/|I| = {err:.3g}")
    assert err <= LINEAR_REL


@pytest.mark.parametrize("p", [NOMINAL, Parasitics(2.0, 0.0, 10.0)], ids=str)
def test_vacask_matches_golden_sinh(p, seed):
    require_simulator("vacask")
    rng = _rng(seed, "vacask-sinh", p)
    v0 = 0.25
    g, v = _programmed(rng, 32, 32, "uniform"), _inputs(rng, 32)
    ref = CrossbarNetwork(g, p, iv_v0_v=v0).column_currents(v)
    err = _rel(vacask.simulate(g, v, p, iv_v0_v=v0).i_col_a, ref)
    print(f"sinh v0 {v0} V, {p}: max |dI|/|I| = {err:.3g}")
    assert err <= SINH_REL
    # the law matters: the same array with linear cells differs by far more than the tolerance
    assert _rel(CrossbarNetwork(g, p).column_currents(v), ref) > 1e-3


def test_vacask_node_voltages_match_golden(seed):
    """Word- and bit-line voltages at every cell (the IR-drop map) agree with the golden
    solve to 1e-12 V."""
    require_simulator("vacask")
    rng = _rng(seed, "vacask-nodes")
    g, v = _programmed(rng, 32, 32, "two-level"), _inputs(rng, 32)
    res = vacask.simulate(g, v, NOMINAL, node_voltages=True)
    ref = CrossbarNetwork(g, NOMINAL).solve(v)
    assert res.word_line_v.shape == res.bit_line_v.shape == (32, 32)
    dw = np.max(np.abs(res.word_line_v - ref.word_line_v))
    db = np.max(np.abs(res.bit_line_v - ref.bit_line_v))
    print(f"max |dV| word lines {dw:.3g} V, bit lines {db:.3g} V")
    assert dw <= 1e-12 and db <= 1e-12
    # a real IR drop is there to be measured
    assert np.max(v[:, None] - res.cell_v) > 1e-3


@pytest.mark.parametrize("p", [Parasitics(1e-3, 0.0, 0.0), Parasitics(1e4, 1e4, 1e4)], ids=str)
def test_extreme_parasitics_converge_and_match(p, seed):
    """A 1 mOhm wire (1000 S next to 10 uS cells: residuals cannot get below ~1e-14 A, so a
    fixed 1 fA abstol would never converge) and resistances as large as the cells: VACASK and
    ngspice still match the golden solver."""
    require_simulator("vacask")
    rng = _rng(seed, "extreme", p)
    g, v = _programmed(rng, 32, 32, "uniform"), _inputs(rng, 32)
    ref = CrossbarNetwork(g, p).column_currents(v)
    err = _rel(vacask.simulate(g, v, p).i_col_a, ref)
    print(f"{p}: VACASK max |dI|/|I| = {err:.3g}")
    assert err <= LINEAR_REL
    require_simulator("ngspice")
    assert _rel(ngspice.simulate(g, v, p).i_col_a, ref) <= LINEAR_REL


# --- small arrays: the dense MNA reference as a third opinion ---------------------------------

@pytest.mark.parametrize("p", ALL_MERGES, ids=str)
def test_small_array_three_way(p, seed):
    """4x5 array, every zero/non-zero combination: the dense MNA reference (zero resistances
    as 0 V sources), the golden solver, VACASK (linear and sinh) and ngspice all agree."""
    rng = _rng(seed, "small", p)
    g, v = _programmed(rng, 4, 5, "uniform"), _inputs(rng, 4)
    v[rng.integers(4)] = -0.1          # a negative input too: signs must survive
    ref, wl, bl = _mna_reference(g, v, p)
    ref_sinh, _, _ = _mna_reference(g, v, p, iv_v0_v=0.25)
    assert _rel(CrossbarNetwork(g, p).column_currents(v), ref) <= 1e-12
    assert _rel(CrossbarNetwork(g, p, iv_v0_v=0.25).column_currents(v), ref_sinh) <= 1e-10
    require_simulator("vacask")
    res = vacask.simulate(g, v, p, node_voltages=True)
    assert _rel(res.i_col_a, ref) <= 1e-12
    np.testing.assert_allclose(res.word_line_v, wl, rtol=0, atol=1e-14)
    np.testing.assert_allclose(res.bit_line_v, bl, rtol=0, atol=1e-14)
    assert _rel(vacask.simulate(g, v, p, iv_v0_v=0.25).i_col_a, ref_sinh) <= 1e-10
    require_simulator("ngspice")
    res = ngspice.simulate(g, v, p, node_voltages=True)
    assert _rel(res.i_col_a, ref) <= 1e-12
    np.testing.assert_allclose(res.word_line_v, wl, rtol=0, atol=1e-14)
    np.testing.assert_allclose(res.bit_line_v, bl, rtol=0, atol=1e-14)


# --- ngspice ----------------------------------------------------------------------------------

def test_ngspice_matches_golden_and_vacask(seed):
    require_simulator("ngspice")
    rng = _rng(seed, "ngspice")
    g, v = _programmed(rng, 32, 32, "uniform"), _inputs(rng, 32)
    ref = CrossbarNetwork(g, NOMINAL).column_currents(v)
    res = ngspice.simulate(g, v, NOMINAL, node_voltages=True)
    err = _rel(res.i_col_a, ref)
    print(f"ngspice 32x32: max |dI|/|I| = {err:.3g}, wall {res.wall_time_s:.3f} s")
    assert err <= LINEAR_REL
    nodes = CrossbarNetwork(g, NOMINAL).solve(v)
    assert np.max(np.abs(res.word_line_v - nodes.word_line_v)) <= 1e-12
    assert np.max(np.abs(res.bit_line_v - nodes.bit_line_v)) <= 1e-12
    require_simulator("vacask")
    other = vacask.simulate(g, v, NOMINAL)
    assert _rel(res.i_col_a, other.i_col_a) <= LINEAR_REL


# --- errors -----------------------------------------------------------------------------------

def test_missing_simulators_are_named(monkeypatch, tmp_path):
    g, v = np.full((2, 2), 1e-5), np.array([0.2, 0.0])
    # ngspice: really absent from PATH (prepare_path adds only the venv's and Verilator's bin)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(toolchain.SimulatorMissing) as info:
        ngspice.simulate(g, v, NOMINAL)
    assert "simulator 'ngspice' not found" in str(info.value)
    assert "apt-get install ngspice" in str(info.value)
    # VACASK lives in the venv's bin, which prepare_path always restores: hide it in find()
    real_find = toolchain.find
    monkeypatch.setattr(toolchain, "find", lambda name: None if name == "vacask"
                        else real_find(name))
    with pytest.raises(toolchain.SimulatorMissing, match="simulator 'vacask' not found"):
        vacask.simulate(g, v, NOMINAL)


def test_verilog_a_that_does_not_compile_is_reported(tmp_path):
    require_simulator("vacask")
    broken = tmp_path / "src" / "mbnn_cell_broken.va"
    broken.parent.mkdir()
    text = vacask.CELL_MODEL.read_text()
    assert "g_s * V(p, n);" in text
    broken.write_text(text.replace("g_s * V(p, n);", "g_s * V(p, n)"))   # lose a semicolon
    with pytest.raises(ModelCompileError) as info:
        vacask.simulate(np.full((2, 2), 1e-5), np.array([0.2, 0.0]), NOMINAL,
                        cell_model=broken, work_dir=tmp_path / "run")
    message = str(info.value)
    print(message)
    assert "mbnn_cell_broken.va does not compile" in message
    assert "expected ';'" in message
    assert "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize("simulator", ["vacask", "ngspice"])
def test_timeout_kills_the_simulator_and_cleans_up(simulator, monkeypatch, tmp_path):
    """A time limit far below the run time: the error names the limit, the process (group) is
    killed and reaped, and the temporary work directory is gone."""
    require_simulator(simulator)
    module = vacask if simulator == "vacask" else ngspice
    started = []
    real_popen = subprocess.Popen

    def spy(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(subprocess, "Popen", spy)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    size = 128 if simulator == "vacask" else 64     # ~1 s in VACASK, ~5 s in ngspice
    rng = np.random.default_rng(0)
    g, v = rng.uniform(10e-6, 100e-6, (size, size)), np.full(size, V_READ_V)
    with pytest.raises(SimulationTimeout) as info:
        module.simulate(g, v, NOMINAL, timeout_s=0.1)
    message = str(info.value)
    print(message)
    assert "time limit of 0.1 s (timeout_s)" in message and "killed" in message
    runs = [proc for proc in started if "-v" not in proc.args]   # not the version probe
    assert len(runs) == 1
    assert runs[0].returncode == -signal.SIGKILL
    assert list(scratch.iterdir()) == []


def test_no_convergence_is_reported():
    """A strongly non-linear cell (v0 = 5 mV at 0.2 V: sinh(40)) needs tens of Newton steps from
    VACASK's zero start; allowed three, without homotopy, VACASK gives up and says so. With its
    default limit the same circuit converges (so the failure is the limit, not the netlist)."""
    require_simulator("vacask")
    g, v = np.full((2, 2), 20e-6), np.array([0.2, 0.2])
    with pytest.raises(NotConverged) as info:
        vacask.simulate(g, v, NOMINAL, iv_v0_v=0.005, max_newton_iterations=3, homotopy=False)
    message = str(info.value)
    print(message)
    assert "found no operating point" in message and "failed to converge" in message
    res = vacask.simulate(g, v, NOMINAL, iv_v0_v=0.005)
    assert np.all(res.i_col_a > 0)
