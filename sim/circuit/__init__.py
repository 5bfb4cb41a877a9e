"""Circuit-simulator side of the co-design: array netlists and the VACASK/ngspice drivers.

``netlist`` writes one physical crossbar array with its wire, source and sense resistance (the
network of ``golden.analog.parasitics``) for VACASK (cells are the Verilog-A model
``rtl/analog/mbnn_cell.va``) or for ngspice (plain resistors). ``vacask`` and ``ngspice`` run
the simulators and return a :class:`CircuitResult`. Failures raise a subclass of
:class:`CircuitSimulationError` with a one-line message; a missing simulator raises
:class:`sim.toolchain.SimulatorMissing`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["CircuitSimulationError", "ModelCompileError", "NotConverged", "SimulationTimeout",
           "SimulatorFailed", "CircuitResult", "array_result", "work_directory", "run_simulator",
           "last_lines"]


class CircuitSimulationError(RuntimeError):
    """A circuit simulation did not produce a result."""


class ModelCompileError(CircuitSimulationError):
    """The Verilog-A compiler rejected a model (the message quotes its first error)."""


class NotConverged(CircuitSimulationError):
    """The simulator's Newton iteration found no operating point."""


class SimulationTimeout(CircuitSimulationError):
    """The simulator ran longer than the time limit and was killed."""


class SimulatorFailed(CircuitSimulationError):
    """Any other failure: the simulator exited with an error or wrote no usable results."""


@dataclass(frozen=True)
class CircuitResult:
    """Operating point of one array read.

    Attributes
    ----------
    i_col_a : numpy.ndarray, shape (columns,)
        Current into each column's virtual ground, amperes (positive for positive inputs).
    word_line_v, bit_line_v : numpy.ndarray, shape (rows, columns), or None
        Voltage at every cell's word-line and bit-line terminal, volts (``None`` unless node
        voltages were asked for).
    wall_time_s : float
        Wall-clock time of the simulator process (parsing, model loading, analysis, output).
    analysis_time_s : float or None
        The analysis time the simulator itself reports, where it prints one.
    simulator : str
        ``"vacask"`` or ``"ngspice"``.
    """

    i_col_a: np.ndarray
    word_line_v: np.ndarray | None
    bit_line_v: np.ndarray | None
    wall_time_s: float
    analysis_time_s: float | None
    simulator: str

    @property
    def cell_v(self) -> np.ndarray:
        """Voltage across every cell (V, rows x columns); needs the node voltages."""
        if self.word_line_v is None or self.bit_line_v is None:
            raise ValueError("cell_v needs node voltages: simulate with node_voltages=True")
        return self.word_line_v - self.bit_line_v


def array_result(raw: dict, netlist, current_name, voltage_name, node_voltages: bool,
                 what: str, wall_time_s: float, analysis_time_s: float | None,
                 simulator: str) -> CircuitResult:
    """The :class:`CircuitResult` of one solved array netlist from its raw-file variables:
    ``current_name(source)`` and ``voltage_name(node)`` give a simulator's variable names."""
    try:
        i_col = np.array([raw[current_name(s)][0] for s in netlist.sense_sources])
        word = bit = None
        if node_voltages:
            word, bit = (np.array([raw[voltage_name(n)][0] for n in names.ravel().tolist()])
                         .reshape(names.shape) for names in (netlist.word_node, netlist.bit_node))
    except KeyError as exc:
        raise SimulatorFailed(f"{what}: result {exc} missing from the raw file") from None
    return CircuitResult(i_col, word, bit, wall_time_s, analysis_time_s, simulator)


# --- process handling shared by the drivers and the VACASK co-simulation ------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    """Text without terminal colour codes (OpenVAF colours its diagnostics)."""
    return _ANSI.sub("", text)


def last_lines(text: str, n: int = 3) -> str:
    """The last ``n`` non-empty lines joined with `` | `` (for one-line error messages)."""
    lines = [ln.strip() for ln in _strip_ansi(text).splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


@contextmanager
def work_directory(work_dir: str | Path | None, prefix: str) -> Iterator[Path]:
    """``work_dir`` (created if needed, kept) or a fresh temporary directory that is removed
    afterwards, also when the simulation fails."""
    if work_dir is not None:
        path = Path(work_dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@dataclass(frozen=True)
class Completed:
    returncode: int
    output: str        # stdout and stderr, interleaved as the simulator wrote them
    wall_time_s: float


def run_simulator(argv: list[str], cwd: Path, timeout_s: float, what: str) -> Completed:
    """Run a simulator; on timeout kill its whole process group (VACASK starts the Verilog-A
    compiler as a child process) and raise :class:`SimulationTimeout` naming the limit."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) \
            or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a number of seconds > 0, not {timeout_s!r}")
    start = time.perf_counter()
    # A session of its own, so that the whole group can be killed at once.
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SimulationTimeout(f"{what} did not finish within the time limit of "
                                f"{timeout_s:g} s (timeout_s); the process was killed") from None
    except BaseException:
        _kill_group(proc)
        raise
    return Completed(proc.returncode, out.decode("utf-8", "replace"),
                      time.perf_counter() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()   # reap it and close the pipes
