"""Run one crossbar array read in VACASK (cells: the Verilog-A model ``rtl/analog/mbnn_cell.va``).

VACASK compiles the model with its built-in OpenVAF (a ``.osdi`` next to the copy of the
``.va`` in the work directory), solves the operating point and writes a binary raw file that
:func:`sim.spice_raw.read_raw` reads.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from golden.analog.parasitics import Parasitics
from sim import toolchain
from sim.circuit import (CircuitResult, ModelCompileError, NotConverged, SimulatorFailed,
                         _strip_ansi, array_result, last_lines, run_simulator, work_directory)
from sim.circuit.netlist import ANALYSIS_NAME, check_array, crossbar_netlist
from sim.runner import REPO_ROOT
from sim.spice_raw import RawFormatError, read_raw

__all__ = ["CELL_MODEL", "TOLERANCE_OPTIONS", "tolerance_options", "simulate"]

CELL_MODEL = REPO_ROOT / "rtl" / "analog" / "mbnn_cell.va"
MEMRISTOR_MODEL = REPO_ROOT / "rtl" / "analog" / "mbnn_memristor.va"

# Tolerances far below VACASK's SPICE-like defaults (reltol 1e-3, vntol 1 uV, abstol 1 pA):
# these runs check a solver to 1e-9 (linear) and 1e-6 (sinh) relative, not a design margin.
# Newton stops when every update is below max(reltol * |x|, vntol or abstol) and every
# Kirchhoff residual below max(reltol * reference, abstol). For a linear network the second
# iteration only confirms the first (exact) one, and for the sinh law Newton converges
# quadratically, so the tight values cost an iteration or two, not accuracy. gmin = 0: no
# shunt conductance handed to the models (a 1 pS shunt would be 1e-7 of a 10 uS cell).
TOLERANCE_OPTIONS: dict[str, object] = {
    "reltol": 1e-12,
    "vntol": 1e-13,
    "abstol": 1e-15,
    "gmin": 0.0,
}
# The residual of a node cannot get below rounding: a wire of conductance G carrying the
# difference of two voltages near V is only known to about G * V * eps. With a 1 mOhm wire
# (1000 S) at 0.2 V that is 4e-14 A, above the 1 fA abstol, and VACASK would never declare
# convergence. So abstol is raised to this many times that floor when the network needs it.
_ROUNDING_MARGIN = 64


def tolerance_options(g_s, v_in_v, parasitics: Parasitics) -> dict[str, object]:
    """VACASK options for one array: :data:`TOLERANCE_OPTIONS`, with ``abstol`` (A) raised to
    a margin above the rounding floor of the largest conductance in the network."""
    g_max = float(np.max(g_s))
    for name in ("r_wire_ohm", "r_source_ohm", "r_sense_ohm"):
        r = float(getattr(parasitics, name))
        if r > 0:
            g_max = max(g_max, 1.0 / r)
    v_max = float(np.max(np.abs(v_in_v), initial=0.0))
    floor_a = float(_ROUNDING_MARGIN * np.finfo(np.float64).eps * g_max * v_max)
    return dict(TOLERANCE_OPTIONS, abstol=max(float(TOLERANCE_OPTIONS["abstol"]), floor_a))


def simulate(g_s, v_in_v, parasitics: Parasitics = Parasitics(), *,
             iv_v0_v: float | None = None, node_voltages: bool = False,
             timeout_s: float = 600.0, work_dir: str | Path | None = None,
             cell_model: str | Path = CELL_MODEL, max_newton_iterations: int = 100,
             homotopy: bool = True) -> CircuitResult:
    """Solve one array read (operating point) in VACASK.

    Parameters
    ----------
    g_s : array_like, shape (rows, columns)
        Programmed conductances, siemens (finite, > 0).
    v_in_v : array_like, shape (rows,)
        Word-line source voltages, volts.
    parasitics : Parasitics
        Wire, source and sense resistance, ohms.
    iv_v0_v : float or None
        Characteristic voltage of the cells' sinh I-V law; ``None`` for linear cells.
    node_voltages : bool
        Also return the word-line and bit-line voltage at every cell (for IR-drop maps).
    timeout_s : float
        Time limit for the simulator process, seconds; past it the process is killed and
        :class:`~sim.circuit.SimulationTimeout` raised.
    work_dir : path, optional
        Directory for netlist, model and results (kept). Default: a temporary directory,
        removed afterwards.
    cell_model : path
        Verilog-A model of the cell (module ``mbnn_cell``).
    max_newton_iterations : int
        VACASK's ``op_itl``: Newton iterations before the plain operating point gives up.
    homotopy : bool
        Let VACASK fall back on its homotopies (gdev, gshunt, source stepping) when plain
        Newton fails.

    Returns
    -------
    CircuitResult

    Raises
    ------
    sim.toolchain.SimulatorMissing
        VACASK is not installed.
    ValueError
        Invalid conductances, voltages, resistances or options.
    ModelCompileError, NotConverged, SimulationTimeout, SimulatorFailed
        See :mod:`sim.circuit`.
    """
    if isinstance(max_newton_iterations, bool) or not isinstance(max_newton_iterations, int) \
            or max_newton_iterations < 1:
        raise ValueError(f"max_newton_iterations must be an integer >= 1, "
                         f"not {max_newton_iterations!r}")
    cell_model = Path(cell_model)
    g, v, _ = check_array(g_s, v_in_v, parasitics, iv_v0_v)
    options = dict(tolerance_options(g, v, parasitics), op_itl=max_newton_iterations)
    if not homotopy:
        options["op_homotopy"] = []
    netlist = crossbar_netlist(g, v, parasitics, dialect="vacask", iv_v0_v=iv_v0_v,
                               cell_model=cell_model.name, options=options,
                               save_node_voltages=node_voltages)
    if not cell_model.is_file():
        raise FileNotFoundError(f"Verilog-A cell model {cell_model} does not exist")
    exe = toolchain.require("vacask").executable
    rows, cols = netlist.shape
    what = f"VACASK ({rows}x{cols} array)"
    with work_directory(work_dir, "mbnn-vacask-") as wd:
        shutil.copyfile(cell_model, wd / cell_model.name)
        (wd / "crossbar.sim").write_text(netlist.text)
        # VACASK uses one thread unless told otherwise (-n): right for the two shared cores of
        # the reference machine. Its progress messages carry the analysis time.
        done = run_simulator([exe, "crossbar.sim"], wd, timeout_s, what)
        limits = (f"op_itl={max_newton_iterations} Newton iterations, homotopy "
                  f"{'on' if homotopy else 'off'}")
        check_output(done.returncode, done.output, cell_model.name, what, limits)
        raw_path = wd / f"{ANALYSIS_NAME}.raw"
        try:
            raw = read_raw(raw_path)
        except (OSError, RawFormatError) as exc:
            raise SimulatorFailed(f"{what} wrote no readable results ({exc}); output: "
                                  f"{last_lines(done.output)}") from None
    found = re.search(r"Elapsed time:\s*([0-9.eE+-]+)", done.output)
    return array_result(raw, netlist, lambda s: f"{s}:flow(br)", lambda n: n, node_voltages,
                        what, done.wall_time_s, float(found.group(1)) if found else None,
                        "vacask")


def check_output(returncode: int, output: str, model_name: str, what: str, limits: str
                  ) -> None:
    """Turn VACASK's failure reports into one-line exceptions."""
    text = _strip_ansi(output)
    if "Failed to compile" in text or "Error running 'openvaf" in text:
        first = next((ln.strip() for ln in text.splitlines()
                      if ln.strip().lower().startswith("error")
                      and not ln.strip().startswith("Error running")), "no error line found")
        raise ModelCompileError(f"Verilog-A model {model_name} does not compile: {first}")
    if "failed to converge" in text or "OP analysis failed" in text \
            or "Homotopy failed" in text:
        # VACASK reports the failure over several lines; keep the ones that say what failed
        keys = ("failed to converge", "Leaving core NR loop", "Homotopy failed")
        said = list(dict.fromkeys(ln.strip() for ln in text.splitlines()
                                  if any(k in ln for k in keys)))
        raise NotConverged(f"{what} found no operating point ({limits}): "
                           f"{' | '.join(said[-4:])}")
    if returncode != 0:
        raise SimulatorFailed(f"{what} exited with code {returncode}: {last_lines(text)}")
