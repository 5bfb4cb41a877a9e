"""VACASK in the loop: a whole-network RTL run whose every array read is answered by the
Verilog-A arrays solved in VACASK.

The digital half is the generated core (:class:`periphery.core.BnnCore` as the toplevel, its
crossbar port ``xb`` open); the analog half is every programmed array of the chip as a
netlist of Verilog-A cells (``rtl/analog/mbnn_cell.va``) with the chip's wire, driver and
sense resistance (:mod:`sim.circuit.netlist`), solved by VACASK. Between them, the testbench
``sim.tb.tb_core_vacask`` answers each ``xb.read`` with the codes of the read the RTL actually
drove, and the whole-network scoreboard of ``sim.tb.tb_core`` checks classes, scores and every
layer's bits against the golden read of the same programmed chip
(:func:`golden.analog.chip_state.analog_infer`).

Why batched: a VACASK process costs ~0.15 s to start. So the reads are known ahead -- the
golden model's schedule of the images to be run (the reads :func:`golden.mapping.mapped_infer`
makes through :func:`analog_infer`'s read), distinct (tile, word-line pattern) pairs only --
and solved in **one** VACASK run: every tile is a subcircuit of one netlist, instantiated as
often as needed (a tile read with many patterns gets several copies), each copy with its own
word-line sources; operating point ``k`` drives copy ``j`` of a tile with that tile's pattern
``j * analyses + k`` (``alter`` of the sources between operating points, so the netlist is
parsed once). The results are a lookup table keyed by (tile, word-line bits). A read the RTL
issues that is not in the table is not guessed or computed: the testbench fails naming the
tile and the pattern.

The physical truth VACASK solves is the array **before** the golden parasitic reduction: the
device-programmed cell conductances in the physical layout
(:func:`golden.analog.parasitics.physical_conductances`), drifted to the read time, with the
chip's resistances as real resistors and the sinh I-V law (if any) inside the Verilog-A cell.
:func:`physical_chip` takes those cells from the programmed chip
(:attr:`golden.analog.chip_state.ProgrammedChip.g_phys_s`), the same draws the golden state
was reduced from.

From the column currents on, the golden path is used as it is: the differential current of
each weight column (:func:`golden.analog.parasitics.weight_currents`), then the golden ADC
(:meth:`golden.analog.adc.Adc.convert`) with that tile's gain and offset errors.

Agreement: VACASK's currents are not the golden effective-matrix product bit for bit (another
solver, another rounding; ~1e-12 relative at the tolerances of :mod:`sim.circuit.vacask`), so
a code could differ where a read's ADC input ``x`` sits within that much of a rounding
boundary ``k + 0.5``. Every batched read is compared column by column with the golden read:
codes that disagree and reads whose golden ``x`` lies within ``boundary_margin_lsb`` of a
boundary are counted and reported (:class:`LookupTable`), never smoothed over.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from golden.analog.adc import AdcErrors
from golden.analog.chip_state import ProgrammedChip, analog_read, program_chip
from golden.analog.parasitics import weight_currents
from golden.chip import ChipConfig
from golden.core import CoreParams
from golden.fileio import atomic_write_text
from golden.mapping import MappedModel, compile_model, mapped_infer
from golden.model import load_model
from sim import toolchain
from sim.circuit import SimulatorFailed, last_lines, run_simulator, work_directory
from sim.circuit.netlist import crossbar_netlist
from sim.circuit.vacask import CELL_MODEL, check_output, tolerance_options
from sim.regressions import CoreRun
from sim.runner import DEFAULT_SEED, run_cocotb
from sim.spice_raw import RawFormatError, read_raw

__all__ = ["BOUNDARY_MARGIN_LSB", "OPEN_CELL_S", "CORE_TOPLEVEL", "PhysicalChip",
           "physical_chip", "ReadSet", "schedule_reads", "BatchSolution", "solve_reads",
           "LookupTable", "build_table", "prepare_table", "core_verilog", "run_core_vacask"]

# A read counts as near an ADC decision boundary when its golden x (LSB, after gain and
# offset) is closer than this to some k + 0.5 inside the code range. VACASK and the golden
# effective matrix differ by ~1e-12 relative, i.e. ~1e-11 LSB on the |x| <= 2**(bits-1) of
# small arrays: the margin is a hundred times that, and the tables report the largest
# difference seen so that a margin too small would show.
BOUNDARY_MARGIN_LSB = 1e-9
# program_arrays gives an open cell (0 S) this conductance before the parasitic solve; the
# netlist needs a finite resistance too, and uses the same value.
OPEN_CELL_S = 1e-15
# Toplevel name of the generated core without a crossbar.
CORE_TOPLEVEL = "bnn_core"
# Operating point k of the batch netlist is analysis "rd{k}" (results in rd{k}.raw). Tile t is
# subcircuit "tile{t}"; its copy j is instance "t{t}_{j}", whose word line r is driven by
# source "v{t}_{j}_{r}" on node "i{t}_{j}_{r}".
_ANALYSIS_PREFIX = "rd"


# --- the physical arrays -----------------------------------------------------------------


@dataclass(frozen=True)
class PhysicalChip:
    """A programmed chip as the circuit simulator sees it.

    Attributes
    ----------
    state : ProgrammedChip
        The golden state of the same chip (effective conductances, ADC errors).
    g_s : float64 array (tiles, rows, physical columns)
        Device-programmed cell conductances, siemens, drifted to the read time, in the
        physical layout of :func:`physical_conductances`, before any parasitic reduction and
        before the sinh I-V law (which the Verilog-A cell applies itself).
    iv_v0_v : float or None
        The cells' sinh characteristic voltage (None: linear).
    open_cells : int
        Cells programmed to exactly 0 S, netlisted as :data:`OPEN_CELL_S`.
    """

    state: ProgrammedChip
    g_s: np.ndarray
    iv_v0_v: float | None
    open_cells: int

    @property
    def chip(self) -> ChipConfig:
        return self.state.chip


def physical_chip(mapped: MappedModel, seed: int | None = None,
                  read_time_sec: float | None = None) -> PhysicalChip:
    """The physical cells of ``program_chip(mapped, seed, read_time_sec)``: the programmed,
    drifted cells before the golden model's sinh factor and parasitic reduction (the circuit
    simulator applies both itself, with the Verilog-A cell and the wires of the netlist)."""
    state = program_chip(mapped, seed, read_time_sec)
    g_s = state.g_phys_s
    return PhysicalChip(state, g_s, mapped.chip.device.iv_v0_v or None, int(np.sum(g_s == 0)))


# --- the reads of a run ------------------------------------------------------------------


@dataclass(frozen=True)
class ReadSet:
    """The array reads of a run, as the golden model makes them.

    Attributes
    ----------
    patterns : dict tile -> uint8 array (P_t, rows)
        Distinct word-line patterns of every tile read, all ``chip.rows`` bits (rows a layer
        does not use are 0, as the core drives them), in order of first use.
    reads : int
        Reads of the run, repeats included (each distinct one is solved once).
    first : list of (tile, pattern index)
        The distinct reads in the order the golden schedule first makes them.
    """

    patterns: dict[int, np.ndarray]
    reads: int
    first: list[tuple[int, int]]

    @property
    def distinct(self) -> int:
        return sum(len(p) for p in self.patterns.values())


def schedule_reads(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray) -> ReadSet:
    """Every (tile, word-line pattern) the inference of ``pixels`` on ``state`` reads: the
    reads :func:`golden.analog.chip_state.analog_infer` makes, recorded as it makes them (the
    codes of one layer decide the next layer's patterns, so they come from the same golden
    read)."""
    chip = mapped.chip
    seen: dict[int, dict[bytes, int]] = {}
    first: list[tuple[int, int]] = []
    total = 0
    g_diff = state.g_diff_s

    def read(bits, layer, row_tile, column_tile):
        nonlocal total
        tile = layer.tile_base + column_tile * layer.row_tiles + row_tile
        columns = min(chip.columns, layer.out_channels - column_tile * chip.columns)
        padded = np.zeros((len(bits), chip.rows), np.uint8)
        padded[:, :bits.shape[1]] = bits
        known = seen.setdefault(tile, {})
        for row in padded:
            key = row.tobytes()
            if key not in known:
                known[key] = len(known)
                first.append((tile, known[key]))
        total += len(bits)
        return analog_read(bits, state, tile, columns, g_diff)

    mapped_infer(mapped, pixels, read=read)
    patterns = {t: np.frombuffer(b"".join(k), np.uint8).reshape(len(k), chip.rows)
                for t, k in sorted(seen.items())}
    return ReadSet(patterns, total, first)


# --- one VACASK run for all of them --------------------------------------------------------


@dataclass(frozen=True)
class BatchSolution:
    """Column currents of every distinct read, from VACASK.

    Attributes
    ----------
    i_col_a : dict tile -> float64 array (P_t, physical columns)
        Current into each physical column's virtual ground, amperes.
    runs : int
        VACASK processes started.
    analyses : int
        Operating points solved (each solves every array copy of the netlist at once).
    copies : int
        Array copies in the netlist.
    wall_time_s : float
        Wall-clock time of the VACASK processes.
    analysis_time_s : float
        Sum of the analysis times VACASK reports.
    netlist_lines : int
    """

    i_col_a: dict[int, np.ndarray]
    runs: int
    analyses: int
    copies: int
    wall_time_s: float
    analysis_time_s: float
    netlist_lines: int


def _tile_netlist(g_s: np.ndarray, phys: PhysicalChip, options: dict, cell_model: str
                  ) -> tuple[list[str], list[str], list[str], tuple[str, ...]]:
    """(header lines, element lines without the word-line sources, the options line, sense
    source names) of one tile, from :func:`crossbar_netlist` -- so the topology is the one
    the netlist module writes for the golden network, not a second copy of it."""
    rows = g_s.shape[0]
    net = crossbar_netlist(np.maximum(g_s, OPEN_CELL_S), np.zeros(rows), phys.chip.parasitics,
                           dialect="vacask", iv_v0_v=phys.iv_v0_v, cell_model=cell_model,
                           options=options)
    lines = net.text.splitlines()
    try:
        models_end = max(i for i, ln in enumerate(lines) if ln.startswith("model "))
        control = lines.index("control")
    except ValueError:
        raise SimulatorFailed("sim.circuit.netlist wrote an unexpected VACASK netlist layout "
                              "(no model lines or control block)") from None
    header = lines[1:models_end + 1]
    body = lines[models_end + 1:control]
    sources = [ln for ln in body if re.match(r"vin\d+ \(", ln)]
    if len(sources) != rows:
        raise SimulatorFailed(f"sim.circuit.netlist wrote {len(sources)} word-line sources "
                              f"for {rows} rows")
    elements = [ln for ln in body if not re.match(r"vin\d+ \(", ln)]
    option_line = [ln.strip() for ln in lines[control:] if ln.strip().startswith("options ")]
    return header, elements, option_line, net.sense_sources


def _batch_layout(patterns: dict[int, np.ndarray], analyses: int) -> dict[int, int]:
    """Copies of every tile so that ``analyses`` operating points cover all its patterns."""
    return {t: -(-len(p) // analyses) for t, p in patterns.items()}


def _batch_netlist(phys: PhysicalChip, patterns: dict[int, np.ndarray], analyses: int,
                   cell_model: str) -> tuple[str, dict[int, tuple[str, ...]]]:
    """The netlist of every read: (text, sense sources per tile).

    Copy ``j`` of tile ``t`` (subcircuit instance ``t{t}_{j}``, word-line sources
    ``v{t}_{j}_{r}``) is driven in analysis ``k`` with the tile's pattern ``j * analyses + k``;
    a copy whose patterns are done keeps its last one (solved again, never read)."""
    chip = phys.chip
    v_read = phys.state.v_read_v
    tiles = sorted(patterns)
    copies = _batch_layout(patterns, analyses)
    options = dict(tolerance_options(phys.g_s[tiles], np.array([v_read]), chip.parasitics),
                   op_itl=100)
    out = [f"mbnn VACASK-in-the-loop batch: {len(tiles)} arrays {chip.rows}x"
           f"{phys.g_s.shape[2]} (sim.cosim_vacask)"]
    sense: dict[int, tuple[str, ...]] = {}
    option_line: list[str] = []
    terminals = " ".join(f"in{r}" for r in range(chip.rows))
    for n, t in enumerate(tiles):
        header, elements, option_line, sense[t] = _tile_netlist(phys.g_s[t], phys, options,
                                                               cell_model)
        if n == 0:
            out += header
        out.append(f"subckt tile{t}({terminals})")
        out += ["  " + ln for ln in elements]
        out.append("ends")
    copy_names = [(t, f"{t}_{j}") for t in tiles for j in range(copies[t])]
    for t, c in copy_names:
        out += [f"v{c}_{r} (i{c}_{r} 0) vsrc dc=0.0" for r in range(chip.rows)]
        out.append(f"t{c} ({' '.join(f'i{c}_{r}' for r in range(chip.rows))}) tile{t}")
    out += ["control", "  abort always"] + ["  " + ln for ln in option_line]
    out.append("  save " + " ".join(f'i("t{c}:{s}")' for t, c in copy_names for s in sense[t]))
    level = {c: np.zeros(chip.rows, np.uint8) for _, c in copy_names}
    v_on = repr(float(v_read))
    for k in range(analyses):
        on, off = [], []
        for t in tiles:
            for j in range(copies[t]):
                index = j * analyses + k
                if index >= len(patterns[t]):
                    continue
                c = f"{t}_{j}"
                want = patterns[t][index]
                changed = np.flatnonzero(want != level[c])
                on += [f'"v{c}_{r}"' for r in changed if want[r]]
                off += [f'"v{c}_{r}"' for r in changed if not want[r]]
                level[c] = want
        if on:
            out.append(f"  alter instance({', '.join(on)}) dc={v_on}")
        if off:
            out.append(f"  alter instance({', '.join(off)}) dc=0.0")
        out.append(f"  analysis {_ANALYSIS_PREFIX}{k} op")
    out += ["endc", ""]
    return "\n".join(out), sense


def solve_reads(phys: PhysicalChip, patterns: dict[int, np.ndarray], *,
                analyses: int | None = None, work_dir: str | Path | None = None,
                timeout_s: float = 600.0, cell_model: str | Path = CELL_MODEL
                ) -> BatchSolution:
    """Solve every read of ``patterns`` (tile -> (P, rows) word-line bits) in one VACASK run.

    Parameters
    ----------
    phys : PhysicalChip
    patterns : dict
        Word-line bits per tile (1 = driven at ``V_read``, 0 = 0 V).
    analyses : int, optional
        Operating points of the run. Each solves every array copy in the netlist, so a tile
        with ``P`` patterns gets ``ceil(P / analyses)`` copies: fewer analyses, larger
        netlist. Default: about the square root of the number of distinct reads, which keeps
        both the per-analysis overhead and the copies of idle tiles small.
    work_dir : path, optional
        Directory for the netlist, the compiled model and the raw files (kept); default a
        temporary directory.
    timeout_s : float
        Time limit of the VACASK process, seconds.
    cell_model : path
        Verilog-A cell model (module ``mbnn_cell``).

    Raises
    ------
    sim.toolchain.SimulatorMissing, sim.circuit.CircuitSimulationError
    """
    if not patterns:
        raise ValueError("no reads to solve")
    cell_model = Path(cell_model)
    exe = toolchain.require("vacask").executable
    most = max(len(p) for p in patterns.values())
    if analyses is None:
        analyses = int(np.ceil(np.sqrt(sum(len(p) for p in patterns.values()))))
    if isinstance(analyses, bool) or not isinstance(analyses, (int, np.integer)) \
            or analyses < 1:
        raise ValueError(f"analyses must be a positive integer, not {analyses!r}")
    analyses = min(int(analyses), most)
    text, sense = _batch_netlist(phys, patterns, analyses, cell_model.name)
    copies = _batch_layout(patterns, analyses)
    what = (f"VACASK ({sum(copies.values())} copies of {len(patterns)} arrays, {analyses} "
            f"operating points)")
    with work_directory(work_dir, "mbnn-vacask-loop-") as wd:
        for old in wd.glob(f"{_ANALYSIS_PREFIX}*.raw"):
            old.unlink()
        shutil.copyfile(cell_model, wd / cell_model.name)
        (wd / "batch.sim").write_text(text)
        done = run_simulator([exe, "batch.sim"], wd, timeout_s, what)
        check_output(done.returncode, done.output, cell_model.name, what,
                      "op_itl=100 Newton iterations, homotopy on")
        i_col: dict[int, np.ndarray] = {}
        for t, p in patterns.items():
            i_col[t] = np.empty((len(p), len(sense[t])))
        for k in range(analyses):
            path = wd / f"{_ANALYSIS_PREFIX}{k}.raw"
            try:
                raw = read_raw(path)
            except (OSError, RawFormatError) as exc:
                raise SimulatorFailed(f"{what}: no readable results of analysis {k} ({exc}); "
                                      f"output: {last_lines(done.output)}") from None
            for t, p in patterns.items():
                for j in range(copies[t]):
                    index = j * analyses + k
                    if index >= len(p):
                        continue
                    try:
                        i_col[t][index] = [raw[f"t{t}_{j}:{s}:flow(br)"][0] for s in sense[t]]
                    except KeyError as exc:
                        raise SimulatorFailed(f"{what}: result {exc} missing from "
                                              f"{path.name}") from None
    elapsed = sum(float(x) for x in re.findall(r"Elapsed time:\s*([0-9.eE+-]+)", done.output))
    return BatchSolution(i_col, 1, analyses, sum(copies.values()), done.wall_time_s, elapsed,
                         text.count("\n"))


# --- codes, agreement, the lookup table ------------------------------------------------------


def _adc_input_lsb(state: ProgrammedChip, tile: int, current_a: np.ndarray) -> np.ndarray:
    """The ADC's x (LSB) before rounding: steps 1-3 of :meth:`Adc.convert`, same operations
    (the codes themselves always come from ``convert``; x is for the boundary statistics)."""
    adc = state.chip.adc
    lsb_a = (float(state.v_read_v) * float(state.g_unit_s)) * (adc.full_scale
                                                               / (1 << (adc.bits - 1)))
    x = np.asarray(current_a, np.float64) / lsb_a
    return x * state.adc_gain[tile] + state.adc_offset_lsb[tile]


def _golden_current_a(state: ProgrammedChip, tile: int, bits: np.ndarray) -> np.ndarray:
    """``V_read * s`` of :func:`analog_read` for all columns (rows summed in ascending order)."""
    # this array's own G+ - G- (the same subtraction per cell as state.g_diff_s, which
    # subtracts the whole chip at every access)
    d = state.g_pos_s[tile] - state.g_neg_s[tile]
    b = np.asarray(bits, np.float64)
    s = np.zeros((b.shape[0], d.shape[1]))
    for r in range(b.shape[1]):
        s += b[:, r:r + 1] * d[r]
    return state.v_read_v * s


@dataclass(frozen=True)
class LookupTable:
    """VACASK's answer to every distinct read, and how it compares with the golden read.

    Attributes
    ----------
    tile : int64 array (N,)
    bits : uint8 array (N, rows)
        Word-line bits (row r = bit r of the core's ``xb.wl``).
    codes : int64 array (N, columns)
        The golden ADC's codes of VACASK's currents: what the testbench answers.
    golden_codes : int64 array (N, columns)
        :func:`analog_read`'s codes of the same read (all columns of the tile).
    x_vacask_lsb, x_golden_lsb : float64 arrays (N, columns)
        The ADC input x (after gain and offset) from VACASK's and the golden current.
    boundary_margin_lsb : float
    near_boundary : bool array (N,)
        Reads with a column whose golden x is within the margin of a rounding boundary.
    omitted : list of (tile, wl int)
        Reads deliberately left out of the table (negative tests).
    """

    tile: np.ndarray
    bits: np.ndarray
    codes: np.ndarray
    golden_codes: np.ndarray
    x_vacask_lsb: np.ndarray
    x_golden_lsb: np.ndarray
    boundary_margin_lsb: float
    near_boundary: np.ndarray
    max_rel_current_error: float
    omitted: list = field(default_factory=list)

    @property
    def disagreeing(self) -> np.ndarray:
        """Reads whose VACASK codes differ from the golden codes in some column."""
        return np.any(self.codes != self.golden_codes, axis=1)

    @property
    def max_dx_lsb(self) -> float:
        return float(np.max(np.abs(self.x_vacask_lsb - self.x_golden_lsb), initial=0.0))

    def describe_disagreements(self, limit: int = 5) -> list[str]:
        """One line per disagreeing read: tile, pattern, column, golden and VACASK x."""
        out = []
        for n in np.flatnonzero(self.disagreeing)[:limit]:
            c = int(np.flatnonzero(self.codes[n] != self.golden_codes[n])[0])
            out.append(f"tile {int(self.tile[n])} wl {_wl_hex(self.bits[n])} column {c}: "
                       f"golden x {self.x_golden_lsb[n, c]!r} -> {int(self.golden_codes[n, c])}, "
                       f"VACASK x {self.x_vacask_lsb[n, c]!r} -> {int(self.codes[n, c])}")
        return out


def _wl_hex(bits: np.ndarray) -> str:
    """Word-line bits as the core's ``xb.wl`` value (row r = bit r), in hex."""
    return hex(int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little"))


def build_table(phys: PhysicalChip, reads: ReadSet, solution: BatchSolution,
                boundary_margin_lsb: float = BOUNDARY_MARGIN_LSB,
                omit_reads: Sequence[int] = ()) -> LookupTable:
    """Codes of every solved read through the golden ADC, compared with the golden read.

    ``omit_reads`` leaves reads out of the table (negative tests: the RTL then issues a read
    the table does not have): indices into :attr:`ReadSet.first`, the distinct reads in the
    order the golden schedule first makes them (``-1``: the last new read of the run)."""
    state, chip = phys.state, phys.chip
    adc = chip.adc
    omitted = [reads.first[i] for i in omit_reads]
    omit = set(omitted)
    cols = []
    worst_rel = 0.0
    for t, p in sorted(reads.patterns.items()):
        errors = AdcErrors(state.adc_gain[t], state.adc_offset_lsb[t])
        i_vacask = weight_currents(solution.i_col_a[t], chip.mapping)
        i_golden = _golden_current_a(state, t, p)
        codes = adc.convert(i_vacask, state.v_read_v, state.g_unit_s, errors)
        golden = analog_read(p, state, t)
        x_v = _adc_input_lsb(state, t, i_vacask)
        x_g = _adc_input_lsb(state, t, i_golden)
        if not np.array_equal(np.clip(np.floor(x_g + 0.5), adc.code_min, adc.code_max),
                              golden):
            raise AssertionError("sim.cosim_vacask._adc_input_lsb no longer follows "
                                 "Adc.convert / analog_read")
        # relative to the read's largest physical column current (at least one LSB's worth,
        # so that a read with no word line driven does not divide by zero)
        scale = np.maximum(np.abs(solution.i_col_a[t]).max(axis=1, keepdims=True),
                           state.v_read_v * state.g_unit_s)
        worst_rel = max(worst_rel, float(np.max(np.abs(i_vacask - i_golden) / scale,
                                                initial=0.0)))
        keep = [k for k in range(len(p)) if (t, k) not in omit]
        cols.append((np.full(len(keep), t), p[keep], codes[keep], golden[keep], x_v[keep],
                     x_g[keep]))
    tile, bits, codes, golden, x_v, x_g = (np.concatenate(c) for c in zip(*cols))
    boundary = np.floor(x_g) + 0.5
    in_range = (boundary >= adc.code_min - 0.5) & (boundary <= adc.code_max + 0.5)
    near = np.any(in_range & (np.abs(x_g - boundary) < boundary_margin_lsb), axis=1)
    return LookupTable(tile.astype(np.int64), bits, codes, golden, x_v, x_g,
                       float(boundary_margin_lsb), near, worst_rel,
                       [(t, int(_wl_hex(reads.patterns[t][k]), 16)) for t, k in omitted])


# --- the RTL run ---------------------------------------------------------------------------


def core_verilog(params: CoreParams) -> str:
    """Verilog of the core alone (toplevel :data:`CORE_TOPLEVEL`, crossbar port ``xb__*``
    open): the same Amaranth component ``BnnSystem`` instantiates."""
    from periphery.generate import verilog_source
    from periphery.pipeline import core_component
    return verilog_source(core_component(params), CORE_TOPLEVEL, params.describe())


def prepare_table(gen_dir: str | Path, pixels: np.ndarray, work_dir: str | Path, *,
                  omit_reads: Sequence[int] = (),
                  boundary_margin_lsb: float = BOUNDARY_MARGIN_LSB,
                  analyses: int | None = None, timeout_s: float = 600.0
                  ) -> tuple[LookupTable, dict]:
    """The lookup table of a run of ``pixels`` on the chip generated in ``gen_dir``: its
    physical arrays (:func:`physical_chip`, programmed from the manifest's seed and read
    time), the golden schedule's reads (:func:`schedule_reads`), one VACASK run
    (:func:`solve_reads`, files in ``work_dir``) and the comparison (:func:`build_table`).

    Returns
    -------
    (LookupTable, dict)
        The table and its figures for the run's summary: ``reads_scheduled``,
        ``reads_distinct``, ``vacask_runs``, ``vacask_analyses``, ``vacask_copies``,
        ``vacask_wall_s``, ``vacask_analysis_s``, ``vacask_netlist_lines``,
        ``code_disagreements``, ``disagreements`` (descriptions), ``near_boundary_reads``,
        ``boundary_margin_lsb``, ``max_dx_lsb``, ``max_rel_current_error``, ``open_cells``,
        ``omitted_reads``, ``prepare_s``.
    """
    t0 = time.perf_counter()
    gen_dir = Path(gen_dir)
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    mapped = compile_model(load_model(gen_dir / "model.npz"), ChipConfig(**manifest["chip"]))
    prog = manifest["programming"]
    phys = physical_chip(mapped, prog["seed"], prog["read_time_sec"])
    reads = schedule_reads(mapped, phys.state, pixels)
    solution = solve_reads(phys, reads.patterns, analyses=analyses, work_dir=work_dir,
                           timeout_s=timeout_s)
    table = build_table(phys, reads, solution, boundary_margin_lsb, omit_reads)
    figures = {
        "reads_scheduled": reads.reads,
        "reads_distinct": reads.distinct,
        "vacask_runs": solution.runs,
        "vacask_analyses": solution.analyses,
        "vacask_copies": solution.copies,
        "vacask_wall_s": solution.wall_time_s,
        "vacask_analysis_s": solution.analysis_time_s,
        "vacask_netlist_lines": solution.netlist_lines,
        "code_disagreements": int(table.disagreeing.sum()),
        "disagreements": table.describe_disagreements(),
        "near_boundary_reads": int(table.near_boundary.sum()),
        "boundary_margin_lsb": table.boundary_margin_lsb,
        "max_dx_lsb": table.max_dx_lsb,
        "max_rel_current_error": table.max_rel_current_error,
        "open_cells": phys.open_cells,
        "omitted_reads": [[t, hex(w)] for t, w in table.omitted],
        "prepare_s": time.perf_counter() - t0,
    }
    return table, figures


def run_core_vacask(gen_dir: Path, simulator: str, build_root: Path, name: str, images: int,
                    offset: int = 0, dataset: str = "mnist", check_layers: bool = True,
                    seed: int = DEFAULT_SEED, waves: bool = False,
                    omit_reads: Sequence[int] = (),
                    boundary_margin_lsb: float = BOUNDARY_MARGIN_LSB,
                    analyses: int | None = None, vacask_timeout_s: float = 600.0) -> CoreRun:
    """Run ``images`` images through the core generated in ``gen_dir`` on ``simulator``, every
    array read answered from the VACASK solution of the chip's Verilog-A arrays.

    The testbench (``sim.tb.tb_core_vacask``) draws the images exactly as ``sim.tb.tb_core``
    does, builds the table with :func:`prepare_table` before the clock starts, then runs
    tb_core's whole-network test against it.

    Parameters
    ----------
    gen_dir : path
        A directory written by :func:`periphery.generate_model.generate_model` (its model,
        chip and programming seed define the chip; its ``bnn_system.v`` is not used: the core
        is generated alone, as ``bnn_core.v`` in the build directory).
    simulator : {"icarus", "verilator"}
    build_root : path
        Builds go to ``build_root/core_vacask/<name>/<simulator>``, VACASK's files to its
        ``vacask`` subdirectory.
    name : str
        Name of the run (build directory).
    images, offset, dataset, check_layers, seed, waves
        As :func:`sim.regressions.run_core`. Random images derive from ``seed`` and the
        cocotb test's name, as in every cocotb test: a VACASK run and a behavioural-crossbar
        run of the same seed draw different random images (MNIST images are the same).
    omit_reads : sequence of int
        Reads to leave out of the table, as indices into the distinct reads in the order the
        golden schedule first makes them (``-1``: the last new one). Negative tests: the run
        must fail naming the missing read.
    boundary_margin_lsb : float
        See :data:`BOUNDARY_MARGIN_LSB`.
    analyses : int, optional
        Operating points of the VACASK run (:func:`solve_reads`).
    vacask_timeout_s : float
        Time limit of the VACASK run, seconds.

    Returns
    -------
    CoreRun
        The cocotb result and the summary: ``sim.tb.tb_core``'s keys (``images``,
        ``mismatches``, ``scores_off_ideal``, ...), :func:`prepare_table`'s figures, and
        ``crossbar`` ("vacask"), ``reads_answered`` (reads the RTL issued and VACASK
        answered), ``reads_missing`` (the first read the table lacked, or None). None only
        when the testbench never started.
    """
    gen_dir = Path(gen_dir).resolve()
    build_dir = (Path(build_root) / "core_vacask" / name / simulator).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    mapped = compile_model(load_model(gen_dir / "model.npz"), ChipConfig(**manifest["chip"]))
    params = CoreParams(mapped)
    source = atomic_write_text(build_dir / f"{CORE_TOPLEVEL}.v", core_verilog(params))
    summary_file, stats_file = build_dir / "summary.json", build_dir / "vacask.json"
    for f in (summary_file, stats_file):
        f.unlink(missing_ok=True)
    # a generous simulated-time limit, so that a read left unanswered cannot hang the run
    timeout_ns = 10 * 20 * (images + 2) * max(params.compute_cycles_per_image, 100)
    result = run_cocotb(
        simulator=simulator, sources=[source], toplevel=CORE_TOPLEVEL,
        test_module="sim.tb.tb_core_vacask", build_dir=build_dir,
        params={"dir": str(gen_dir), "images": images, "offset": offset, "dataset": dataset,
                "check_layers": check_layers, "summary": str(summary_file),
                "stats": str(stats_file), "timeout_ns": timeout_ns,
                "vacask": {"work_dir": str(build_dir / "vacask"),
                           "omit_reads": [int(i) for i in omit_reads],
                           "boundary_margin_lsb": boundary_margin_lsb, "analyses": analyses,
                           "timeout_s": vacask_timeout_s}},
        seed=seed, waves=waves)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
    if summary is None and stats is None:
        return CoreRun(result, None)
    summary = dict(summary or {"images": images, "offset": offset, "dataset": dataset})
    summary["crossbar"] = "vacask"
    summary.update(stats or {})
    atomic_write_text(summary_file, json.dumps(summary, indent=2) + "\n")
    return CoreRun(result, summary)
