"""The parasitic crossbar solver against independent references.

References, none of which shares code with the solver: a dense nodal analysis written out
cell by cell (small arrays, every resistance non-zero), closed-form solutions of the cases in
which zero resistances collapse the network (each word line or bit line one node), the ideal
product, and Kirchhoff's laws checked on the solved node voltages. The circuit simulators
(VACASK, ngspice) are the third opinion, in ``tests/test_circuit.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.analog.parasitics import (ConvergenceError, CrossbarNetwork, Parasitics,
                                      physical_conductances, solve_memory_bytes,
                                      weight_currents)
from golden.conductance import program_tiles

V_READ = 0.2


def dense_reference(g, p: Parasitics, v, v0=None, iterations=60):
    """Dense nodal analysis of the network of ``golden.analog.parasitics`` (every resistance
    non-zero): node voltages of all 2*R*N cell nodes, then the column currents as the current
    through each column's output resistor. Non-linear cells by plain dense Newton."""
    R, N = g.shape
    n = 2 * R * N
    wl = lambda r, c: r * N + c
    bl = lambda r, c: R * N + r * N + c
    A = np.zeros((n, n))
    b = np.zeros(n)

    def resistor(i, j, gg):
        A[i, i] += gg
        A[j, j] += gg
        A[i, j] -= gg
        A[j, i] -= gg

    g_in = 1 / (p.r_source_ohm + p.r_wire_ohm)
    g_out = 1 / (p.r_wire_ohm + p.r_sense_ohm)
    for r in range(R):
        A[wl(r, 0), wl(r, 0)] += g_in
        b[wl(r, 0)] += g_in * v[r]
        for c in range(N - 1):
            resistor(wl(r, c), wl(r, c + 1), 1 / p.r_wire_ohm)
    for c in range(N):
        for r in range(R - 1):
            resistor(bl(r, c), bl(r + 1, c), 1 / p.r_wire_ohm)
        A[bl(R - 1, c), bl(R - 1, c)] += g_out
    wires = A.copy()
    for r in range(R):
        for c in range(N):
            resistor(wl(r, c), bl(r, c), g[r, c])
    x = np.linalg.solve(A, b)
    if v0 is not None:
        for _ in range(iterations):
            vc = x[:R * N] - x[R * N:]
            i_cell = g.ravel() * v0 * np.sinh(vc / v0)
            d_cell = g.ravel() * np.cosh(vc / v0)
            f = wires @ x - b
            f[:R * N] += i_cell
            f[R * N:] -= i_cell
            J = wires.copy()
            idx = np.arange(R * N)
            J[idx, idx] += d_cell
            J[R * N + idx, R * N + idx] += d_cell
            J[idx, R * N + idx] -= d_cell
            J[R * N + idx, idx] -= d_cell
            x = x - np.linalg.solve(J, f)
    return x[R * N + (R - 1) * N: 2 * R * N] * g_out, x[:R * N].reshape(R, N), \
        x[R * N:].reshape(R, N)


def random_case(rng, rows, cols):
    g = rng.uniform(10e-6, 100e-6, (rows, cols))
    v = rng.choice([0.0, V_READ], rows)
    v[rng.integers(rows)] = V_READ
    return g, v


def rel_err(a, b):
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("p", [Parasitics(2.0, 10.0, 10.0), Parasitics(0.5, 100.0, 1.0),
                               Parasitics(5.0, 1e-3, 1e-3)])
def test_solver_equals_dense_nodal_analysis(seed, p):
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    g, v = random_case(rng, 6, 9)
    ref, ref_wl, ref_bl = dense_reference(g, p, v)
    net = CrossbarNetwork(g, p)
    assert rel_err(net.column_currents(v), ref) < 1e-12
    assert rel_err(net.read(v), ref) < 1e-12
    nv = net.solve(v)
    np.testing.assert_allclose(nv.word_line_v, ref_wl, rtol=0, atol=1e-12)  # 5e-12 of V_read: both solves round
    np.testing.assert_allclose(nv.bit_line_v, ref_bl, rtol=0, atol=1e-12)  # 5e-12 of V_read: both solves round
    # the parasitics matter in this case (the test would notice an ideal product)
    assert rel_err(v @ g, ref) > 1e-4


def test_zero_resistances_give_the_ideal_product(seed):
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 17, 23)
    net = CrossbarNetwork(g, Parasitics())
    assert net.unknowns == 0
    np.testing.assert_allclose(net.column_currents(v), v @ g, rtol=1e-15)
    np.testing.assert_allclose(net.read(v), v @ g, rtol=1e-15)
    np.testing.assert_array_equal(net.effective_conductance(), g)


def test_merged_word_lines_closed_form(seed):
    """r_wire = 0, r_sense = 0: each word line is one node behind its driver resistance and
    every bit line sits on the virtual ground; V_r = v_r g_s / (g_s + sum_c g[r, c])."""
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 12, 7)
    p = Parasitics(r_source_ohm=25.0)
    g_s = 1 / 25.0
    v_wl = v * g_s / (g_s + g.sum(axis=1))
    net = CrossbarNetwork(g, p)
    assert net.unknowns == 12
    assert rel_err(net.column_currents(v), v_wl @ g) < 1e-13
    assert rel_err(net.read(v), v_wl @ g) < 1e-13


def test_merged_bit_lines_closed_form(seed):
    """r_wire = 0, r_source = 0: word lines at their source voltage, each bit line one node
    above its sense resistance: V_c = sum_r g v_r / (g_o + sum_r g[r, c]), I_c = g_o V_c."""
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 9, 14)
    p = Parasitics(r_sense_ohm=40.0)
    g_o = 1 / 40.0
    i = g_o * (v @ g) / (g_o + g.sum(axis=0))
    net = CrossbarNetwork(g, p)
    assert net.unknowns == 14
    assert rel_err(net.column_currents(v), i) < 1e-13
    assert rel_err(net.read(v), i) < 1e-13


def test_wire_resistance_alone_against_the_limit_of_the_dense_reference(seed):
    """r_source = r_sense = 0 merges the first word-line and last bit-line segments with the
    source and sense ends; the dense reference with micro-ohm driver and sense resistance
    converges to it."""
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 5, 6)
    exact = CrossbarNetwork(g, Parasitics(r_wire_ohm=3.0)).column_currents(v)
    near, _, _ = dense_reference(g, Parasitics(3.0, 1e-7, 1e-7), v)
    assert rel_err(exact, near) < 1e-9


@pytest.mark.parametrize("size", [32, 64])
def test_effective_matrix_read_equals_the_direct_solve(seed, size):
    """The effective conductance matrix (interface block of the inverse) and a direct solve of
    the nodal equations with refinement are two computations of the same currents."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(10e-6, 100e-6, (size, size))
    net = CrossbarNetwork(g, Parasitics(2.0, 10.0, 10.0))
    v = rng.choice([0.0, V_READ], (8, size))
    assert rel_err(net.read(v), net.column_currents(v)) < 1e-11
    # superposition: a read of the sum is the sum of the reads (and the solve is linear)
    assert rel_err(net.column_currents(v[0] + v[1]),
                   net.column_currents(v[0]) + net.column_currents(v[1])) < 1e-12
    # memory: factors + effective matrix, far below a dense (rows*cols)^2 matrix
    assert net.precomputed_bytes() < (2 * size * size) ** 2 * 8 / 20
    assert net.precomputed_bytes() < solve_memory_bytes(size, size)


def test_kirchhoff_on_the_solved_network(seed):
    """Current conservation checked on the solved node voltages of a 40x30 array: at every
    word-line node the wire currents and the cell current balance, and the column current is
    the current through the sense end."""
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 40, 30)
    p = Parasitics(1.5, 7.0, 12.0)
    nv = CrossbarNetwork(g, p).solve(v)
    wl, bl = nv.word_line_v, nv.bit_line_v
    cell = g * (wl - bl)
    i_in = np.empty_like(wl)                 # current arriving from the left of each node
    i_in[:, 0] = (v - wl[:, 0]) / (p.r_source_ohm + p.r_wire_ohm)
    i_in[:, 1:] = (wl[:, :-1] - wl[:, 1:]) / p.r_wire_ohm
    i_right = np.zeros_like(wl)
    i_right[:, :-1] = (wl[:, :-1] - wl[:, 1:]) / p.r_wire_ohm
    scale = np.abs(cell).max()
    assert np.max(np.abs(i_in - i_right - cell)) < 1e-10 * scale
    i_col = bl[-1] / (p.r_wire_ohm + p.r_sense_ohm)
    assert rel_err(cell.sum(axis=0), i_col) < 1e-10


def test_nonlinear_cells_against_dense_newton(seed):
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 6, 8)
    p = Parasitics(2.0, 10.0, 10.0)
    ref, _, _ = dense_reference(g, p, v, v0=0.25)
    net = CrossbarNetwork(g, p, iv_v0_v=0.25)
    got = net.column_currents(v)
    assert rel_err(got, ref) < 1e-12
    # the law matters: the linear array is >= 10 % off at 0.2 V with v0 = 0.25 V
    assert rel_err(CrossbarNetwork(g, p).column_currents(v), ref) > 0.05
    with pytest.raises(ValueError, match="needs linear cells"):
        net.effective_conductance()


def test_nonlinear_solver_reports_non_convergence(seed):
    rng = np.random.default_rng(seed)
    g, v = random_case(rng, 8, 8)
    net = CrossbarNetwork(g, Parasitics(2.0, 10.0, 10.0), iv_v0_v=0.05)
    net.newton_max_iterations = 1
    with pytest.raises(ConvergenceError, match=r"did not converge in 1 iterations"):
        net.column_currents(v)


def test_ir_drop():
    g = np.full((32, 32), 100e-6)
    v = np.full(32, V_READ)
    drops = [CrossbarNetwork(g, Parasitics(r, 10.0, 10.0)).worst_ir_drop_v(v)
             for r in (0.5, 1.0, 2.0)]
    assert 0 < drops[0] < drops[1] < drops[2] < V_READ
    # the worst cell is the far corner: last column (word line end), first row (bit line top)
    nv = CrossbarNetwork(g, Parasitics(2.0, 10.0, 10.0)).solve(v)
    assert np.unravel_index(np.argmin(nv.cell_v), nv.cell_v.shape) == (0, 31)
    assert CrossbarNetwork(g, Parasitics()).worst_ir_drop_v(v) == 0


@pytest.mark.parametrize("mapping", ["differential", "reference_column"])
def test_weight_columns_from_physical_columns(seed, mapping):
    """With ideal wiring the differential currents of the physical layout are the signed
    column sums times V_read * G_unit, for both mapping schemes."""
    rng = np.random.default_rng(seed)
    w = rng.choice([-1, 1], (1, 16, 10)).astype(np.int8)
    cond = program_tiles(w, np.ones(w.shape, bool), mapping)
    g_phys = physical_conductances(cond.g_pos_s[0], cond.g_neg_s[0], mapping)
    assert g_phys.shape == (16, 20 if mapping == "differential" else 11)
    x = rng.integers(0, 2, 16)
    i = CrossbarNetwork(g_phys, Parasitics()).read(x * cond.v_read_v)
    sums = weight_currents(i, mapping) / (cond.v_read_v * cond.g_unit_s)
    np.testing.assert_allclose(sums, x @ w[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    (dict(r_wire_ohm=-1.0), "r_wire_ohm must be a finite number of ohms >= 0, not -1.0"),
    (dict(r_source_ohm=float("nan")), "r_source_ohm must be a finite number of ohms >= 0, not nan"),
    (dict(r_sense_ohm=float("inf")), "r_sense_ohm must be a finite number of ohms >= 0, not inf"),
])
def test_bad_resistances(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Parasitics(**kwargs)


def test_bad_arrays_and_inputs():
    g = np.full((4, 3), 1e-4)
    g[2, 1] = -1e-6
    with pytest.raises(ValueError, match=r"cell \(2, 1\) is -1e-06"):
        CrossbarNetwork(g)
    g[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"cell \(2, 1\) is nan"):
        CrossbarNetwork(g)
    with pytest.raises(ValueError, match="iv_v0_v must be None .* not -0.1"):
        CrossbarNetwork(np.full((2, 2), 1e-4), iv_v0_v=-0.1)
    net = CrossbarNetwork(np.full((4, 3), 1e-4), Parasitics(1.0))
    with pytest.raises(ValueError, match=r"v_in_v must have shape \(4,\)"):
        net.read(np.zeros(3))


def test_too_large_array_is_refused_before_allocating():
    with pytest.raises(MemoryError, match=r"a 4096x4096 array needs about .* GiB .* 1.0 GiB "
                                          r"available"):
        CrossbarNetwork(np.broadcast_to(np.float64(1e-4), (4096, 4096)), Parasitics(1.0),
                        memory_limit_bytes=2**30)
