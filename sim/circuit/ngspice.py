"""Run one crossbar array read in ngspice (cells as plain resistors: linear law only).

Debian's ngspice loads no Verilog-A (no OSDI), so the cells are resistors of ``1 / g_s``.
ngspice writes a binary raw file (``-r``): the node voltages and branch currents as IEEE-754
doubles, read by :func:`sim.spice_raw.read_raw`; nothing is lost to printed digits.
"""

from __future__ import annotations

import re
from pathlib import Path

from golden.analog.parasitics import Parasitics
from sim import toolchain
from sim.circuit import (CircuitResult, NotConverged, SimulatorFailed, _strip_ansi, array_result,
                         last_lines, run_simulator, work_directory)
from sim.circuit.netlist import crossbar_netlist
from sim.spice_raw import RawFormatError, read_raw

__all__ = ["simulate"]

# ngspice's messages when Newton (with its gmin and source stepping) gives up or the matrix
# cannot be factored.
_NO_CONVERGENCE = ("no convergence", "iteration limit reached", "singular matrix",
                   "gmin stepping failed", "source stepping failed")


def simulate(g_s, v_in_v, parasitics: Parasitics = Parasitics(), *,
             node_voltages: bool = False, timeout_s: float = 600.0,
             work_dir: str | Path | None = None) -> CircuitResult:
    """Solve one array read (operating point) of linear cells in ngspice.

    Parameters
    ----------
    g_s : array_like, shape (rows, columns)
        Programmed conductances, siemens (finite, > 0); written as resistors of ``1 / g_s``.
    v_in_v : array_like, shape (rows,)
        Word-line source voltages, volts.
    parasitics : Parasitics
        Wire, source and sense resistance, ohms.
    node_voltages : bool
        Also return the word-line and bit-line voltage at every cell.
    timeout_s : float
        Time limit for the ngspice process, seconds (then killed,
        :class:`~sim.circuit.SimulationTimeout`).
    work_dir : path, optional
        Directory for netlist and results (kept). Default: a temporary directory, removed
        afterwards.

    Returns
    -------
    CircuitResult

    Raises
    ------
    sim.toolchain.SimulatorMissing
        ngspice is not installed.
    ValueError
        Invalid conductances, voltages or resistances.
    NotConverged, SimulationTimeout, SimulatorFailed
        See :mod:`sim.circuit`.
    """
    netlist = crossbar_netlist(g_s, v_in_v, parasitics, dialect="spice",
                               save_node_voltages=node_voltages)
    exe = toolchain.require("ngspice").executable
    rows, cols = netlist.shape
    what = f"ngspice ({rows}x{cols} array)"
    with work_directory(work_dir, "mbnn-ngspice-") as wd:
        (wd / "crossbar.cir").write_text(netlist.text)
        raw_path = wd / "crossbar.raw"
        # -b batch, -n: no ~/.spiceinit or local init file (their settings would change the
        # run), -r: binary raw file with every saved vector in full double precision
        done = run_simulator([exe, "-b", "-n", "-r", raw_path.name, "crossbar.cir"], wd,
                             timeout_s, what)
        text = _strip_ansi(done.output)
        lowered = text.lower()
        if any(m in lowered for m in _NO_CONVERGENCE):
            raise NotConverged(f"{what} found no operating point: {last_lines(text)}")
        # ngspice in batch mode can exit 0 after an error: the raw file is the evidence
        if done.returncode != 0 or not raw_path.is_file():
            raise SimulatorFailed(f"{what} failed (exit code {done.returncode}, "
                                  f"{'no' if not raw_path.is_file() else 'a'} raw file): "
                                  f"{last_lines(text)}")
        try:
            raw = read_raw(raw_path)
        except RawFormatError as exc:
            raise SimulatorFailed(f"{what} wrote an unreadable raw file: {exc}") from None
    found = re.search(r"Total analysis time \(seconds\)\s*=\s*([0-9.eE+-]+)", text)
    return array_result(raw, netlist, lambda s: f"i({s})", lambda n: f"v({n})", node_voltages,
                        what, done.wall_time_s, float(found.group(1)) if found else None,
                        "ngspice")
