"""Netlist of one physical crossbar array with its parasitic resistances.

The network is the one ``golden.analog.parasitics.CrossbarNetwork`` solves (see its module
docstring); the circuit simulators are independent checks of it, so it is restated here as the
netlist lays it out, with the node names it uses (``r`` row, ``c`` column, ``R x N`` array):

* ``in{r}``: word-line source ``vin{r}`` (ideal, ``v_in_v[r]`` to ground).
* ``in{r}`` --``rs{r}`` (``r_source_ohm``)-- ``ws{r}`` --``rw{r}_0`` (``r_wire_ohm``)--
  ``w{r}_0`` --``rw{r}_1``-- ``w{r}_1`` ... ``w{r}_{N-1}``: ``N`` wire segments, the first between
  the driver and cell ``(r, 0)``; column 0 is the driven end.
* Cell ``x{r}_{c}`` between ``w{r}_{c}`` and ``b{r}_{c}``, conductance ``g_s[r, c]``.
* ``b0_{c}`` --``rb0_{c}``-- ``b1_{c}`` ... ``b{R-1}_{c}`` --``rb{R-1}_{c}``-- ``bs{c}``
  --``rt{c}`` (``r_sense_ohm``)-- ``vg{c}``: ``R`` wire segments (``rb{r}_{c}`` leaves cell
  ``(r, c)`` towards the sense end), row ``R - 1`` is the sensed end.
* ``vsn{c}``: 0 V source from ``vg{c}`` to ground (the virtual ground); its branch current, into
  its ``+`` terminal, is the column current.

A zero resistance is never written: its two nodes get one name (``ws{r}`` becomes ``in{r}``,
``w{r}_{c}`` becomes the driver node, ``bs{c}`` becomes ``vg{c}``, ``b{r}_{c}`` becomes the
sense node), so the simulator solves exactly the merged network the golden solver does.

Two dialects: ``"vacask"`` (cells are instances of the Verilog-A model ``mbnn_cell``, wires
VACASK's builtin ``resistor``) and ``"spice"`` for ngspice (cells are resistors of ``1/g_s``,
so the linear law only). Every number is written with ``repr(float)``, the shortest string
that reads back as the same double.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from golden.analog.parasitics import Parasitics, check_conductances

__all__ = ["DIALECTS", "ArrayNetlist", "check_array", "crossbar_netlist",
           "CELL_MODULE", "ANALYSIS_NAME"]

DIALECTS = ("vacask", "spice")
# Verilog-A module name of the cell (rtl/analog/mbnn_cell.va) and the operating-point analysis
# name (VACASK writes its results to ANALYSIS_NAME + ".raw").
CELL_MODULE = "mbnn_cell"
ANALYSIS_NAME = "op1"


@dataclass(frozen=True)
class ArrayNetlist:
    """A written netlist and the names needed to read its results back.

    Attributes
    ----------
    text : str
        The netlist, ready to run.
    dialect : str
        ``"vacask"`` or ``"spice"``.
    word_node, bit_node : numpy.ndarray of str, shape (rows, columns)
        Node at each cell's word-line and bit-line terminal (merged nodes share a name).
    sense_sources : tuple of str, length columns
        The virtual-ground source of each column; its branch current is the column current.
    """

    text: str
    dialect: str
    word_node: np.ndarray
    bit_node: np.ndarray
    sense_sources: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.word_node.shape


def _check_resistance(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite resistance >= 0 ohms, not {value!r}")
    return float(value)


def check_array(g_s, v_in_v, parasitics: Parasitics, iv_v0_v: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Validate one array read; return ``(g_s, v_in_v, (r_wire, r_source, r_sense))`` as float64.

    Raises ``ValueError`` naming the parameter and the value at fault. The resistances are
    checked again here (not only by :class:`Parasitics`) because a netlist must never carry a
    negative or NaN resistor, whatever object the caller passed.
    """
    g = check_conductances(g_s)
    v = np.asarray(v_in_v, dtype=np.float64)
    if v.shape != (g.shape[0],):
        raise ValueError(f"v_in_v must have shape ({g.shape[0]},) (one voltage per row of g_s), "
                         f"not {v.shape}")
    if not np.isfinite(v).all():
        r = int(np.argwhere(~np.isfinite(v))[0, 0])
        raise ValueError(f"v_in_v must be finite volts; row {r} is {float(v[r])!r}")
    if iv_v0_v is not None and (isinstance(iv_v0_v, bool)
                                or not isinstance(iv_v0_v, (int, float, np.integer, np.floating))
                                or not np.isfinite(iv_v0_v) or iv_v0_v <= 0):
        raise ValueError(f"iv_v0_v must be None (linear cells) or a finite voltage > 0, "
                         f"not {iv_v0_v!r}")
    res = tuple(_check_resistance(name, getattr(parasitics, name))
                for name in ("r_wire_ohm", "r_source_ohm", "r_sense_ohm"))
    return g, v, res


def _grid(prefix: str, rows: int, cols: int) -> list[str]:
    """Names ``{prefix}{r}_{c}`` in row-major order (built from per-row and per-column pieces,
    which is several times faster than one f-string per element)."""
    col_suffix = [f"_{c}" for c in range(cols)]
    return [f"{prefix}{r}{s}" for r in range(rows) for s in col_suffix]


def _fmt(values: np.ndarray) -> list[str]:
    """Shortest round-trip decimal of every double (``repr`` of a Python float)."""
    return list(map(repr, np.asarray(values, dtype=np.float64).ravel().tolist()))


def crossbar_netlist(g_s, v_in_v, parasitics: Parasitics = Parasitics(), *,
                     dialect: str = "vacask", iv_v0_v: float | None = None,
                     cell_model: str = "mbnn_cell.va", options: Mapping[str, object] | None = None,
                     save_node_voltages: bool = False, title: str | None = None) -> ArrayNetlist:
    """Write the netlist of one array read (operating point).

    Parameters
    ----------
    g_s : array_like, shape (rows, columns)
        Programmed cell conductances, siemens (finite, > 0).
    v_in_v : array_like, shape (rows,)
        Word-line source voltages, volts.
    parasitics : Parasitics
        Wire (per cell segment), source and sense resistance, ohms (>= 0; 0 merges the nodes).
    dialect : {"vacask", "spice"}
        Simulator language. ``"spice"`` (ngspice) writes cells as resistors of ``1/g_s`` and
        refuses the non-linear law.
    iv_v0_v : float or None
        Characteristic voltage of the sinh I-V law (VACASK only); ``None`` for linear cells.
    cell_model : str
        Path of the Verilog-A cell model in VACASK's ``load`` directive (relative to the
        directory the netlist runs in).
    options : mapping, optional
        Simulator options (``options`` / ``.options`` line), written in the given order.
    save_node_voltages : bool
        Save every node voltage (for IR-drop maps); otherwise only the column currents.
    title : str, optional
        First line of the netlist.

    Returns
    -------
    ArrayNetlist
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
    g, v, (r_wire, r_source, r_sense) = check_array(g_s, v_in_v, parasitics, iv_v0_v)
    if dialect == "spice" and iv_v0_v is not None:
        raise ValueError(f"the spice dialect (ngspice) writes cells as plain resistors, linear "
                         f"only; iv_v0_v={iv_v0_v!r} (sinh law) needs the vacask dialect")
    rows, cols = g.shape
    vacask = dialect == "vacask"

    # --- node names, after merging zero resistances ------------------------------------------
    src = [f"in{r}" for r in range(rows)]
    drv = [f"ws{r}" for r in range(rows)] if r_source > 0 else src
    vg = [f"vg{c}" for c in range(cols)]
    sense = [f"bs{c}" for c in range(cols)] if r_sense > 0 else vg
    if r_wire > 0:
        word = _grid("w", rows, cols)
        bit = _grid("b", rows, cols)
    else:
        word = [d for d in drv for _ in range(cols)]
        bit = sense * rows

    # --- element lines -----------------------------------------------------------------------
    # A two-terminal element is "name (a b) master params" in VACASK, "name a b value" in SPICE.
    if vacask:
        def two(names, a, b, master, param, values):
            return [f"{n} ({p} {q}) {master} {param}={x}"
                    for n, p, q, x in zip(names, a, b, values)]
    else:
        def two(names, a, b, master, param, values):
            return [f"{n} {p} {q} {x}" for n, p, q, x in zip(names, a, b, values)]

    lines: list[str] = [title or f"mbnn crossbar {rows}x{cols} (sim.circuit.netlist, {dialect})"]
    if vacask:
        lines += [f'load "{cell_model}"', 'load "resistor.osdi"', "ground 0",
                  "model vsrc vsource", "model wire resistor",
                  f"model cell {CELL_MODULE} v0_v={0.0 if iv_v0_v is None else float(iv_v0_v)!r}"]
    zero = ["0"] * max(rows, cols)
    lines += two([f"vin{r}" for r in range(rows)], src, zero, "vsrc", "dc", _fmt(v))
    if r_source > 0:
        lines += two([f"rs{r}" for r in range(rows)], src, drv, "wire", "r",
                     [repr(r_source)] * rows)
    if r_wire > 0:
        rw = repr(r_wire)
        # word line: segment c joins the previous node (driver for c = 0) to w{r}_{c}
        prev_w = [drv[r] if c == 0 else word[r * cols + c - 1]
                  for r in range(rows) for c in range(cols)]
        lines += two(_grid("rw", rows, cols), prev_w, word, "wire", "r", [rw] * (rows * cols))
        # bit line: segment r+1 joins b{r}_{c} to the next node (sense node after the last row)
        next_b = bit[cols:] + sense
        lines += two(_grid("rb", rows, cols), bit, next_b, "wire", "r", [rw] * (rows * cols))
    if r_sense > 0:
        lines += two([f"rt{c}" for c in range(cols)], sense, vg, "wire", "r",
                     [repr(r_sense)] * cols)
    sense_sources = tuple(f"vsn{c}" for c in range(cols))
    lines += two(sense_sources, vg, zero, "vsrc", "dc", ["0.0"] * cols)
    cell_names = _grid("x" if vacask else "rx", rows, cols)
    if vacask:
        lines += two(cell_names, word, bit, "cell", "g_s", _fmt(g))
    else:
        lines += two(cell_names, word, bit, None, None, _fmt(1.0 / g))

    # --- analysis ----------------------------------------------------------------------------
    opts = " ".join(f"{k}={_option_value(x, vacask)}" for k, x in (options or {}).items())
    if vacask:
        lines += ["control", "  abort always"]
        if opts:
            lines.append(f"  options {opts}")
        if save_node_voltages:
            lines.append("  save default")
        else:
            lines.append("  save " + " ".join(f"i({s})" for s in sense_sources))
        lines += [f"  analysis {ANALYSIS_NAME} op", "endc"]
    else:
        if opts:
            lines.append(f".options {opts}")
        if not save_node_voltages:
            lines.append(".save " + " ".join(f"i({s})" for s in sense_sources))
        lines += [".op", ".end"]
    lines.append("")
    shape = (rows, cols)
    return ArrayNetlist("\n".join(lines), dialect, np.array(word).reshape(shape),
                        np.array(bit).reshape(shape), sense_sources)


def _option_value(x, vacask: bool) -> str:
    """An option value in the dialect's syntax (VACASK quotes strings and writes lists in
    brackets; SPICE options are bare numbers and words)."""
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, str):
        return f'"{x}"' if vacask else x
    if isinstance(x, (list, tuple)) and vacask:
        return "[" + ", ".join(_option_value(e, vacask) for e in x) + "]"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    raise ValueError(f"option value must be a number, string or (VACASK) list, not {x!r}")
