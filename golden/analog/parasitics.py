"""Exact nodal solution of one crossbar array with wire, source and sense resistance.

The network (Nguyen et al., Neuromorph. Comput. Eng. 2022, review of source, line and neuron
parasitics; the same topology is written as a netlist by ``sim.circuit.netlist`` and solved by
VACASK and ngspice as independent checks):

* Word line ``r`` is driven at its column-0 end by an ideal source ``v_in[r]`` through the
  driver (source) resistance ``r_source_ohm``. Every cell owns one wire segment of
  ``r_wire_ohm`` on its word line, so the word line has ``N`` segments, the first between
  the driver and cell ``(r, 0)``.
* Cell ``(r, c)`` joins word-line node ``(r, c)`` to bit-line node ``(r, c)``; its current is
  ``g * v`` (linear) or ``g * v0 * sinh(v / v0)`` (the non-linear law, small-signal
  conductance ``g`` at 0 V).
* Bit line ``c`` runs from row 0 to row ``R - 1`` with one ``r_wire_ohm`` segment per cell (the
  last between cell ``(R - 1, c)`` and the sense end), then the sense (neuron) resistance
  ``r_sense_ohm`` to a virtual ground at 0 V. The column current is the current into that
  virtual ground, equal by Kirchhoff's current law to the sum of the column's cell currents.

A zero resistance joins its two nodes into one (exactly: no small stand-in resistor), and a
node joined to a source or to the virtual ground is no longer an unknown. With every
resistance zero there are no unknowns left and the column currents are the ideal product
``v_in @ g`` (to rounding).

For linear cells the array is a linear map from word-line voltages to column currents. One
sparse LU factorisation of the nodal matrix gives that map as an *effective conductance
matrix* ``g_eff`` (rows x columns, the same shape as the programmed conductances): a
parasitic-aware read is then ``v_in @ g_eff``, one matrix-vector product. With wire resistance
the inputs enter the network only at the word lines' first nodes and the column currents
leave only through the bit lines' last nodes, so ``g_eff[r, c] = g_in * g_out *
inv(A)[out_c, in_r]`` needs just the block of the inverse nodal matrix on those ``rows +
columns`` interface nodes. The nodes are ordered by geometric nested dissection of the cell
grid with the interface last; the trailing block of the LU factors is then the Schur
complement ``S`` on the interface, and that block of the inverse is ``inv(S)`` -- no solve per
row or column (George, "Nested dissection of a regular finite element mesh", SIAM J. Numer.
Anal. 10, 1973, for the ordering; the Schur complement identity is textbook block
elimination). Non-linear cells are
solved by Newton's method in which each linear system is solved by conjugate gradients
preconditioned with the same factorisation (see :meth:`CrossbarNetwork.solve`).

A differential weight pair sits on two adjacent columns of one physical array (``G+`` on even,
``G-`` on odd columns), so both cells of a pair see nearly the same word-line drop and most of
it cancels in the difference; the reference-column scheme puts its one reference column after
the weight columns (the far end of the word lines, the worst place, so the figures are not
flattering). :func:`physical_conductances` builds that layout and :func:`weight_currents`
takes the differences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

__all__ = ["Parasitics", "check_conductances", "CrossbarNetwork", "ConvergenceError", "NodeVoltages",
           "physical_conductances", "weight_currents", "solve_memory_bytes",
           "available_memory_bytes"]


def _check_resistance(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a finite number of ohms >= 0, not {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of ohms >= 0, not {float(value)!r}")
    return float(value)


def check_conductances(g_s) -> np.ndarray:
    """``g_s`` as a float64 (rows, columns) array of cell conductances, each finite and > 0
    siemens; otherwise ``ValueError`` naming the shape or the first bad cell and its value."""
    g = np.asarray(g_s, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"g_s must be a non-empty 2-D (rows, columns) array of siemens, "
                         f"not shape {g.shape}")
    bad = ~np.isfinite(g) | (g <= 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"g_s must be finite and > 0 siemens; cell ({r}, {c}) is "
                         f"{float(g[r, c])!r}")
    return g


@dataclass(frozen=True)
class Parasitics:
    """Resistances of one array's wiring, in ohms (zero = ideal).

    Parameters
    ----------
    r_wire_ohm : float
        Wire resistance of one cell segment, on word lines and bit lines alike.
    r_source_ohm : float
        Output resistance of each word-line driver.
    r_sense_ohm : float
        Input resistance of each column's sense circuit (to its virtual ground).
    """

    r_wire_ohm: float = 0.0
    r_source_ohm: float = 0.0
    r_sense_ohm: float = 0.0

    def __post_init__(self):
        for name in ("r_wire_ohm", "r_source_ohm", "r_sense_ohm"):
            object.__setattr__(self, name, _check_resistance(name, getattr(self, name)))

    @property
    def ideal(self) -> bool:
        return self.r_wire_ohm == 0 and self.r_source_ohm == 0 and self.r_sense_ohm == 0


class ConvergenceError(RuntimeError):
    """Newton's method did not meet its convergence criterion."""


@dataclass(frozen=True)
class NodeVoltages:
    """Voltages (V) at every cell's word-line and bit-line node, shape (rows, columns)."""

    word_line_v: np.ndarray
    bit_line_v: np.ndarray

    @property
    def cell_v(self) -> np.ndarray:
        """Voltage across every cell."""
        return self.word_line_v - self.bit_line_v


# Bytes per stored non-zero of the LU factors (value + row index) and their fill-in under the
# nested dissection ordering below, measured with SuperLU on 64x64 ... 512x512 arrays:
# nnz(L + U) stayed below 6 * n * log2(n) for n unknowns; the bound leaves a margin. Used to
# refuse arrays whose factorisation would not fit in memory before anything is allocated.
_LU_BYTES_PER_NNZ = 12
_FILL_PER_N_LOG_N = 8
# Leaves of the nested dissection: blocks of at most this many cells are ordered as they are.
_DISSECTION_LEAF_CELLS = 64


def _nested_dissection(wl: np.ndarray, bl: np.ndarray) -> list[np.ndarray]:
    """Node ids (word-line and bit-line node id grids, shape (rows, columns)) in nested
    dissection order: each half of a block before the line of cells that separates them.
    Removing both nodes of every cell on one row (or column) of cells cuts the bit lines (word
    lines) crossing it, and no other wire, so that line is a separator."""
    out: list[np.ndarray] = []

    def visit(r0, r1, c0, c1):
        h, w = r1 - r0, c1 - c0
        if h <= 0 or w <= 0:
            return
        if h * w <= _DISSECTION_LEAF_CELLS:
            out.extend((wl[r0:r1, c0:c1].ravel(), bl[r0:r1, c0:c1].ravel()))
        elif h >= w:
            m = (r0 + r1) // 2
            visit(r0, m, c0, c1)
            visit(m + 1, r1, c0, c1)
            out.extend((wl[m, c0:c1], bl[m, c0:c1]))
        else:
            m = (c0 + c1) // 2
            visit(r0, r1, c0, m)
            visit(r0, r1, m + 1, c1)
            out.extend((wl[r0:r1, m], bl[r0:r1, m]))

    visit(0, wl.shape[0], 0, wl.shape[1])
    return out


def solve_memory_bytes(rows: int, columns: int) -> int:
    """Upper estimate (bytes) of the memory a parasitic solve of a ``rows x columns`` array
    needs: LU factors, nodal matrix and the effective conductance matrix."""
    n = 2 * rows * columns
    fill = _FILL_PER_N_LOG_N * n * max(1.0, np.log2(n))
    return int(fill * _LU_BYTES_PER_NNZ + 7 * n * 12 + 2 * rows * columns * 8)


def available_memory_bytes() -> int:
    """Memory the machine can give a solve now (``MemAvailable`` of /proc/meminfo; the physical
    memory where that is not readable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class CrossbarNetwork:
    """One programmed physical array with its parasitic network.

    Parameters
    ----------
    g_s : array_like, shape (rows, columns)
        Cell conductances in siemens (finite, > 0).
    parasitics : Parasitics
        Wire, source and sense resistance.
    iv_v0_v : float or None
        Characteristic voltage of the sinh I-V law, ``i = g * v0 * sinh(v / v0)``; ``None`` for
        linear cells.
    memory_limit_bytes : int, optional
        Refuse (``MemoryError``, before allocating) arrays whose solve would need more than this;
        default: the machine's available memory.
    """

    # Newton: stop when the largest node-voltage update is below this (V) ...
    newton_v_tol_v = 1e-13
    # ... and the largest Kirchhoff residual below this fraction of the largest cell current.
    newton_residual_rel = 1e-11
    newton_max_iterations = 50

    def __init__(self, g_s, parasitics: Parasitics = Parasitics(), iv_v0_v: float | None = None,
                 memory_limit_bytes: int | None = None):
        g = np.asarray(g_s, dtype=np.float64)
        if g.ndim != 2 or g.size == 0:
            check_conductances(g)            # raises, naming the shape
        rows, cols = g.shape
        need = solve_memory_bytes(rows, cols)
        limit = available_memory_bytes() if memory_limit_bytes is None else memory_limit_bytes
        if need > limit:
            raise MemoryError(f"a {rows}x{cols} array needs about {need / 2**30:.1f} GiB for its "
                              f"parasitic solve; {limit / 2**30:.1f} GiB available")
        g = check_conductances(g)
        if iv_v0_v is not None and (isinstance(iv_v0_v, bool)
                                    or not isinstance(iv_v0_v, (int, float, np.number))
                                    or not np.isfinite(iv_v0_v) or iv_v0_v <= 0):
            shown = float(iv_v0_v) if isinstance(iv_v0_v, np.number) else iv_v0_v
            raise ValueError(f"iv_v0_v must be None (linear) or a finite voltage > 0, "
                             f"not {shown!r}")
        self.g_s = g
        self.parasitics = parasitics
        self.iv_v0_v = None if iv_v0_v is None else float(iv_v0_v)
        self.rows, self.columns = rows, cols
        self._build()
        self._lu = None
        self._g_eff = None

    # --- network construction -------------------------------------------------------------
    def _build(self) -> None:
        """Number the nodes after merging zero resistances, and assemble the nodal matrix of
        the wires plus the cells' small-signal conductances."""
        R, N = self.rows, self.columns
        p = self.parasitics
        cells = R * N
        # node ids: word-line nodes 0..cells-1, bit-line nodes cells..2cells-1 (row-major),
        # then one source node per row, then ground.
        wl = np.arange(cells).reshape(R, N)
        bl = cells + wl
        src = 2 * cells + np.arange(R)
        gnd = 2 * cells + R
        total = gnd + 1
        r_in = p.r_source_ohm + p.r_wire_ohm
        r_out = p.r_wire_ohm + p.r_sense_ohm
        edges_a, edges_b, edges_g = [], [], []   # resistors with non-zero resistance
        zero_a, zero_b = [], []                  # zero-resistance joins

        def add(a, b, r_ohm):
            a, b = np.ravel(a), np.ravel(b)
            if r_ohm == 0:
                zero_a.append(a)
                zero_b.append(b)
            else:
                edges_a.append(a)
                edges_b.append(b)
                edges_g.append(np.full(a.shape, 1.0 / r_ohm))

        add(src, wl[:, 0], r_in)
        add(wl[:, :-1], wl[:, 1:], p.r_wire_ohm)
        add(bl[:-1, :], bl[1:, :], p.r_wire_ohm)
        add(bl[-1, :], np.full(N, gnd), r_out)

        # Zero resistances join nodes: the classes are the connected components of the graph
        # of zero-resistance edges.
        za = np.concatenate(zero_a) if zero_a else np.zeros(0, int)
        zb = np.concatenate(zero_b) if zero_b else np.zeros(0, int)
        joins = sp.coo_matrix((np.ones(len(za)), (za, zb)), shape=(total, total))
        n_class, klass = connected_components(joins, directed=False)
        # A class holding a source has that source's voltage, one holding ground 0 V; no class
        # holds two of them (a path of zero resistances between them would need a 0-ohm cell).
        class_source = np.full(n_class, -1)       # -1 unknown, row index, or -2 for ground
        class_source[klass[src]] = np.arange(R)
        class_source[klass[gnd]] = -2
        node_known = class_source[klass]
        unknown_classes = np.unique(klass[node_known == -1])
        index = np.full(n_class, -1)
        index[unknown_classes] = np.arange(len(unknown_classes))
        self._node_unknown = index[klass]         # per node: unknown index or -1
        self._node_source = np.where(node_known >= 0, node_known, -1)  # per node: row or -1
        self._n_unknown = len(unknown_classes)
        self._wl, self._bl = wl, bl

        # Resistors and cells as one edge list (cells carry their small-signal conductance).
        a = np.concatenate(edges_a + [wl.ravel()]) if edges_a else wl.ravel()
        b = np.concatenate(edges_b + [bl.ravel()]) if edges_b else bl.ravel()
        g = np.concatenate(edges_g + [self.g_s.ravel()]) if edges_g else self.g_s.ravel().copy()
        self._wire_count = len(g) - cells
        self._edge_a, self._edge_b, self._edge_g = a, b, g
        self._a_matrix, self._b_matrix = self._assemble(g)

    def _assemble(self, edge_g: np.ndarray):
        """Nodal matrix ``A`` (unknowns x unknowns) and source coupling ``B`` (unknowns x rows)
        of the edges with conductances ``edge_g``: ``A x = B v_in`` for linear cells."""
        n = self._n_unknown
        ua, ub = self._node_unknown[self._edge_a], self._node_unknown[self._edge_b]
        sa, sb = self._node_source[self._edge_a], self._node_source[self._edge_b]
        rows, cols, vals = [], [], []
        brow, bcol, bval = [], [], []
        for u, v, s in ((ua, ub, sb), (ub, ua, sa)):
            m = u >= 0
            rows.append(u[m]); cols.append(u[m]); vals.append(edge_g[m])     # diagonal
            mv = m & (v >= 0) & (u != v)
            rows.append(u[mv]); cols.append(v[mv]); vals.append(-edge_g[mv])  # coupling
            # an edge inside one merged class adds g and -g on the diagonal: cancel it
            mself = m & (u == v)
            rows.append(u[mself]); cols.append(u[mself]); vals.append(-edge_g[mself])
            ms = m & (s >= 0)
            brow.append(u[ms]); bcol.append(s[ms]); bval.append(edge_g[ms])
        a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, n))
        b = sp.csr_matrix((np.concatenate(bval), (np.concatenate(brow), np.concatenate(bcol))),
                          shape=(n, self.rows))
        return a, b

    @property
    def unknowns(self) -> int:
        """Node voltages left to solve for after merging zero resistances."""
        return self._n_unknown

    def _interface(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Unknown indices of the word lines' first nodes and the bit lines' last nodes, when
        those are the only places inputs enter and currents leave (wire resistance > 0:
        then ``r_source + r_wire`` and ``r_wire + r_sense`` are both non-zero)."""
        if self.parasitics.r_wire_ohm == 0:
            return None
        return self._node_unknown[self._wl[:, 0]], self._node_unknown[self._bl[-1, :]]

    def _factor(self) -> "_Factor | None":
        if self._lu is None and self._n_unknown:
            self._lu = _Factor(self._a_matrix, self._ordering())
        return self._lu

    def _ordering(self) -> np.ndarray | None:
        """Nested dissection order of the unknowns with the interface last, or ``None`` (let
        SuperLU order: without wire resistance there are at most rows + columns unknowns)."""
        interface = self._interface()
        if interface is None:
            return None
        first, last = interface
        uw, ub = self._node_unknown[self._wl], self._node_unknown[self._bl]
        order = np.concatenate(_nested_dissection(uw, ub))
        tail = np.concatenate([first, last])
        in_tail = np.zeros(self._n_unknown, bool)
        in_tail[tail] = True
        order = np.concatenate([order[(order >= 0) & ~in_tail[np.maximum(order, 0)]], tail])
        if len(order) != self._n_unknown:
            raise AssertionError("nested dissection lost or repeated nodes")
        return order

    # --- solving --------------------------------------------------------------------------
    def _node_values(self, x: np.ndarray, v_in: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Voltages of ``nodes`` for unknown values ``x`` (unknowns, B) and inputs (B, rows)."""
        u = self._node_unknown[nodes]
        s = self._node_source[nodes]
        out = np.zeros(nodes.shape + (v_in.shape[0],))
        if x.size:
            out[u >= 0] = x[u[u >= 0]]
        out[s >= 0] = v_in[:, s[s >= 0]].T
        return np.moveaxis(out, -1, 0)

    def _cell_current(self, g, v):
        if self.iv_v0_v is None:
            return g * v
        v0 = self.iv_v0_v
        return g * v0 * np.sinh(v / v0)

    def _inputs(self, v_in_v) -> tuple[np.ndarray, bool]:
        v = np.asarray(v_in_v, dtype=np.float64)
        single = v.ndim == 1
        v = np.atleast_2d(v)
        if v.ndim != 2 or v.shape[1] != self.rows:
            raise ValueError(f"v_in_v must have shape ({self.rows},) or (batch, {self.rows}), "
                             f"not {np.shape(v_in_v)}")
        if not np.isfinite(v).all():
            raise ValueError("v_in_v must be finite")
        return v, single

    def solve(self, v_in_v) -> NodeVoltages:
        """Node voltages for word-line inputs ``v_in_v`` (V, shape (rows,) or (batch, rows)).

        Linear cells: one solve with the LU factors. Sinh cells: Newton's method from the
        linear solution; each Newton step ``J dx = -F`` is solved by conjugate gradients
        preconditioned with the linear factorisation (the Jacobian differs from the linear
        matrix only by the cells' ``g * (cosh(v / v0) - 1)``, so the preconditioned system has
        eigenvalues in ``[1, max cosh]`` and converges in a few iterations). Converged when the
        largest voltage update is below :attr:`newton_v_tol_v` and the largest Kirchhoff
        residual below :attr:`newton_residual_rel` times the largest cell current; otherwise
        :class:`ConvergenceError` after :attr:`newton_max_iterations` steps.
        """
        v, single = self._inputs(v_in_v)
        x = np.zeros((self._n_unknown, v.shape[0]))
        if self._n_unknown:
            factor = self._factor()
            rhs = np.asarray(self._b_matrix @ v.T)
            x = factor.solve(rhs)
            # One step of iterative refinement: the no-pivot factorisation in dissection order
            # loses about a decade of accuracy on the column currents; one residual solve
            # recovers it (measured: 3.6e-12 -> 3e-13 relative on a 128x128 array).
            x += factor.solve(rhs - self._a_matrix @ x)
            if self.iv_v0_v is not None:
                x = np.stack([self._newton(x[:, k], v[k]) for k in range(v.shape[0])], axis=1)
        wl = self._node_values(x, v, self._wl)
        bl = self._node_values(x, v, self._bl)
        if single:
            wl, bl = wl[0], bl[0]
        return NodeVoltages(wl, bl)

    def _residual(self, x: np.ndarray, v_in: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Kirchhoff residual (sum of currents leaving each unknown node, A), the cells'
        differential conductances, and the largest cell current."""
        va = self._node_values(x[:, None], v_in[None], self._edge_a)[0]
        vb = self._node_values(x[:, None], v_in[None], self._edge_b)[0]
        dv = va - vb
        w = self._wire_count
        cur = np.empty_like(dv)
        cur[:w] = self._edge_g[:w] * dv[:w]
        g_cell = self._edge_g[w:]
        cur[w:] = self._cell_current(g_cell, dv[w:])
        f = np.zeros(self._n_unknown)
        ua, ub = self._node_unknown[self._edge_a], self._node_unknown[self._edge_b]
        np.add.at(f, ua[ua >= 0], cur[ua >= 0])
        np.add.at(f, ub[ub >= 0], -cur[ub >= 0])
        deriv = self._edge_g.copy()
        deriv[w:] = g_cell * np.cosh(dv[w:] / self.iv_v0_v)
        return f, deriv, float(np.max(np.abs(cur[w:]), initial=0.0))

    def _newton(self, x: np.ndarray, v_in: np.ndarray) -> np.ndarray:
        factor = self._factor()
        precond = spla.LinearOperator(self._a_matrix.shape, matvec=factor.solve,
                                      dtype=np.float64)
        f, deriv, i_max = self._residual(x, v_in)
        for _ in range(self.newton_max_iterations):
            jac, _ = self._assemble(deriv)
            dx, info = spla.cg(jac, -f, rtol=1e-14, atol=0.0, M=precond, maxiter=200)
            if info != 0:
                raise ConvergenceError(f"Newton step: preconditioned CG did not converge "
                                       f"(info {info})")
            x = x + dx
            f, deriv, i_max = self._residual(x, v_in)
            step = float(np.max(np.abs(dx), initial=0.0))
            resid = float(np.max(np.abs(f), initial=0.0))
            if step <= self.newton_v_tol_v and resid <= self.newton_residual_rel * i_max:
                return x
        raise ConvergenceError(
            f"Newton's method did not converge in {self.newton_max_iterations} iterations "
            f"(last voltage step {step:.3g} V, Kirchhoff residual {resid:.3g} A against "
            f"{self.newton_residual_rel:g} x {i_max:.3g} A)")

    def column_currents(self, v_in_v) -> np.ndarray:
        """Exact column currents (A) for word-line inputs (V): shape (columns,) or
        (batch, columns). Solves the network (no effective matrix needed)."""
        nv = self.solve(v_in_v)
        return self._cell_current(self.g_s, nv.cell_v).sum(axis=-2)

    def effective_conductance(self) -> np.ndarray:
        """The effective conductance matrix ``g_eff`` (S, shape (rows, columns)) of linear
        cells: ``column_currents(v) == v @ g_eff`` for every input ``v``.

        Column ``c`` of ``g_eff`` is computed by the adjoint method (the nodal matrix is
        symmetric): solve ``A y = K_c`` with ``K_c`` the gradient of column ``c``'s current
        with respect to the unknown node voltages, then ``g_eff[:, c] = B^T y + (direct
        source terms)``. That is ``columns`` solves with one factorisation, done in blocks so
        that memory stays at (unknowns x block) doubles, never dense (rows*columns)^2.
        """
        if self.iv_v0_v is not None:
            raise ValueError("effective_conductance needs linear cells (iv_v0_v is None): a "
                             "non-linear array is not a linear map; use column_currents()")
        if self._g_eff is not None:
            return self._g_eff
        if self._interface() is not None:
            self._g_eff = self._effective_from_interface()
            return self._g_eff
        R, N = self.rows, self.columns
        g = self.g_s
        # d I_c / d V(node) = +g on the cell's word-line node, -g on its bit-line node.
        cell_rows = np.repeat(np.arange(R), N)
        cell_cols = np.tile(np.arange(N), R)
        g_flat = g.ravel()
        g_eff = np.zeros((R, N))
        # Direct part: cell terminals that sit on a source node (merged word lines).
        for nodes, sign in ((self._wl.ravel(), 1.0), (self._bl.ravel(), -1.0)):
            s = self._node_source[nodes]
            m = s >= 0
            np.add.at(g_eff, (s[m], cell_cols[m]), sign * g_flat[m])
        if self._n_unknown:
            n = self._n_unknown
            rows_k, cols_k, vals_k = [], [], []
            for nodes, sign in ((self._wl.ravel(), 1.0), (self._bl.ravel(), -1.0)):
                u = self._node_unknown[nodes]
                m = u >= 0
                rows_k.append(u[m]); cols_k.append(cell_cols[m]); vals_k.append(sign * g_flat[m])
            k = sp.csc_matrix((np.concatenate(vals_k), (np.concatenate(rows_k),
                                                        np.concatenate(cols_k))), shape=(n, N))
            lu = self._factor()
            bt = self._b_matrix.T.tocsr()
            block = max(1, min(N, (256 << 20) // (8 * n)))
            for c0 in range(0, N, block):
                c1 = min(N, c0 + block)
                y = lu.solve(k[:, c0:c1].toarray())
                g_eff[:, c0:c1] += bt @ y
        del cell_rows
        self._g_eff = g_eff
        return g_eff

    def _effective_from_interface(self) -> np.ndarray:
        """``g_eff[r, c] = g_in * g_out * inv(A)[out_c, in_r]``, the interface block of the
        inverse taken from the trailing block of the factors (see the module docstring)."""
        p = self.parasitics
        g_in = 1.0 / (p.r_source_ohm + p.r_wire_ohm)
        g_out = 1.0 / (p.r_wire_ohm + p.r_sense_ohm)
        inv = self._factor().interface_inverse(self.rows + self.columns)
        # interface order: word-line first nodes (rows), then bit-line last nodes (columns)
        return g_in * g_out * inv[self.rows:, :self.rows].T

    def read(self, v_in_v) -> np.ndarray:
        """Column currents (A) through the effective conductance matrix (linear cells)."""
        v, single = self._inputs(v_in_v)
        i = v @ self.effective_conductance()
        return i[0] if single else i

    def precomputed_bytes(self) -> int:
        """Memory held for fast reads: the LU factors and the effective matrix (bytes)."""
        total = 0
        if self._lu is not None:
            total += self._lu.nnz * _LU_BYTES_PER_NNZ
        if self._g_eff is not None:
            total += self._g_eff.nbytes
        return total

    def worst_ir_drop_v(self, v_in_v) -> float:
        """Largest loss of voltage across any driven cell (V): ``v_in[r] - v_cell[r, c]`` over
        the cells of rows with a non-zero input (the drop the wires, driver and sense cost)."""
        v, single = self._inputs(v_in_v)
        if not single:
            raise ValueError("worst_ir_drop_v takes one input vector")
        cell = self.solve(v[0]).cell_v
        drop = v[0][:, None] - cell
        driven = v[0] != 0
        return float(drop[driven].max()) if driven.any() else 0.0


class _Factor:
    """Sparse LU factors of a nodal matrix in a given elimination order (or SuperLU's own).

    With an order, the permuted matrix is factored without pivoting or re-ordering (the nodal
    matrix is symmetric positive definite, so no pivot is needed): its last unknowns stay last,
    which :meth:`interface_inverse` relies on.
    """

    def __init__(self, a: sp.csc_matrix, order: np.ndarray | None):
        self.order = order
        if order is None:
            self.lu = spla.splu(a, permc_spec="COLAMD")
        else:
            self.lu = spla.splu(a[order][:, order].tocsc(), permc_spec="NATURAL",
                                diag_pivot_thresh=0.0, options={"SymmetricMode": True})
            n = a.shape[0]
            if not (np.array_equal(self.lu.perm_c, np.arange(n))
                    and np.array_equal(self.lu.perm_r, np.arange(n))):
                raise AssertionError("SuperLU re-ordered a matrix given in elimination order")

    @property
    def nnz(self) -> int:
        return self.lu.L.nnz + self.lu.U.nnz

    def solve(self, b: np.ndarray) -> np.ndarray:
        if self.order is None:
            return self.lu.solve(b)
        x = np.empty_like(b, dtype=np.float64)
        x[self.order] = self.lu.solve(np.ascontiguousarray(b[self.order]))
        return x

    def interface_inverse(self, k: int) -> np.ndarray:
        """Block of the inverse matrix on the last ``k`` unknowns of the order, in that order:
        for ``A = L U`` with the interface last, it is ``inv(L22 @ U22)``, the inverse of the
        Schur complement."""
        n = self.lu.shape[0]
        # the factors are CSC: slice the last columns first (cheap), then their last rows
        l22 = self.lu.L[:, n - k:][n - k:, :].toarray()
        u22 = self.lu.U[:, n - k:][n - k:, :].toarray()
        return np.linalg.inv(l22 @ u22)


def physical_conductances(g_pos_s: np.ndarray, g_neg_s: np.ndarray, mapping: str) -> np.ndarray:
    """Physical conductance matrix of one array tile (rows, weight columns) for the parasitic
    network: ``differential`` interleaves G+ (even) and G- (odd) columns; ``reference_column``
    puts the weight cells first and the one shared reference column (``g_neg_s[:, 0]``) last."""
    g_pos_s, g_neg_s = np.asarray(g_pos_s, np.float64), np.asarray(g_neg_s, np.float64)
    if mapping == "differential":
        out = np.empty((g_pos_s.shape[0], 2 * g_pos_s.shape[1]))
        out[:, 0::2] = g_pos_s
        out[:, 1::2] = g_neg_s
        return out
    if mapping == "reference_column":
        return np.concatenate([g_pos_s, g_neg_s[:, :1]], axis=1)
    raise ValueError(f"mapping must be 'differential' or 'reference_column', not {mapping!r}")


def weight_currents(i_col_a: np.ndarray, mapping: str) -> np.ndarray:
    """Differential current (A) of every weight column from the physical column currents of
    :func:`physical_conductances`' layout (last axis)."""
    i = np.asarray(i_col_a)
    if mapping == "differential":
        return i[..., 0::2] - i[..., 1::2]
    if mapping == "reference_column":
        return i[..., :-1] - i[..., -1:]
    raise ValueError(f"mapping must be 'differential' or 'reference_column', not {mapping!r}")
