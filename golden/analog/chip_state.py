"""A programmed chip: the static analog state every array read sees, and the exact read.

A chip is (chip configuration, device, seed, read time). :func:`program_chip` programs every
array of a mapped model through the device model and reduces it to what a read returns:

1. the target conductances of the mapping (:func:`golden.conductance.program`), laid out as
   the physical array (:func:`golden.analog.parasitics.physical_conductances`: a differential
   pair on two adjacent columns, or the weight columns plus one reference column);
2. :meth:`Device.program` -- programming error, stuck cells, level snapping -- drawn once per
   array from one generator seeded with ``seed``, arrays in tile order;
3. drift to ``read_time_sec`` (:meth:`Device.drift`), when given;
4. a non-linear I-V at the read voltage: every driven word line is at exactly ``V_read`` and
   the others at 0 V, so without wire resistance each cell conducts
   ``g * v0 * sinh(V_read / v0) / V_read`` times ``V_read`` -- an exact effective conductance;
5. the parasitic network of the configuration: the array's effective conductance matrix
   (:meth:`CrossbarNetwork.effective_conductance`), which makes the read a linear map again
   (with non-linear cells *and* wire resistance it is not, and such a chip is refused);
6. the column ADCs' gain and offset errors, drawn per array after its cells.

The result holds, per array, the effective conductance of the ``+`` and ``-`` side of every
weight column (``g_pos_s``, ``g_neg_s``: the reference column's effective conductances are
the ``-`` side of every column). That is what ``mbnn generate`` writes for the behavioural
crossbar.

:func:`analog_read` is the specification of one read, operation for operation as
``rtl/analog/mbnn_crossbar.v`` performs it in IEEE-754 doubles:

* per cell ``d = g_pos - g_neg`` (one subtraction, at load time);
* per column ``s = 0.0``, then ``s = s + d[r]`` for every driven row ``r`` in ascending order;
* the column current ``I = V_read * s``;
* the ADC (:meth:`golden.analog.adc.Adc.convert`): ``x = I / lsb_a``, ``x * gain``,
  ``+ offset``, ``floor(x + 0.5)``, saturation.

Cycle-to-cycle read noise is not part of the static state (it needs a fresh draw per read;
the Monte-Carlo evaluation adds it in the golden model only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..chip import ChipConfig
from ..conductance import ArrayConductances, program
from ..mapping import MappedModel, mapped_infer
from ..model import Inference
from .adc import AdcErrors
from .parasitics import CrossbarNetwork, Parasitics, available_memory_bytes, physical_conductances

__all__ = ["ProgrammedChip", "program_chip", "program_arrays", "check_adc_range", "analog_read",
           "analog_infer", "programming_memory_bytes", "check_programming_memory",
           "chip_from_cells"]

# Peak memory of programming one chip, bytes per weight cell of its arrays: the target planes,
# the device's draws, the programmed and drifted cells, the stuck map and the two effective
# conductance planes, float64 nearly all. Measured with `resource.getrusage` peak RSS: 75 bytes
# per cell for the MLP on 4 arrays of 2048x2048 (ideal and rram devices alike).
PROGRAMMING_BYTES_PER_CELL = 80


@dataclass(frozen=True)
class ProgrammedChip:
    """The static analog state of every array of a mapped model.

    Attributes
    ----------
    chip : ChipConfig
    seed : int or None
        Seed of the generator that programmed it (None: an ideal chip draws nothing).
    read_time_sec : float or None
        Time after programming at which drift is evaluated (None: at the device's ``t0``).
    g_pos_s, g_neg_s : float64 arrays (tiles, rows, columns)
        Effective conductance, siemens, of the ``+`` and ``-`` side of every weight column.
    g_unit_s, v_read_v : float
        Nominal conductance of one weight and the read voltage (the ADC's LSB reference).
    adc_gain, adc_offset_lsb : float64 arrays (tiles, columns)
        Per-column ADC errors of every array.
    stuck : int8 array (tiles, rows, physical columns)
        +1 stuck at G_on, -1 stuck at G_off, 0 healthy (the physical layout of
        :func:`physical_conductances`).
    g_phys_s : float64 array (tiles, rows, physical columns), or None
        The programmed cells themselves, drifted to the read time, before the sinh law and
        the parasitic reduction: what a circuit simulator of the physical arrays needs (None
        when the state was read back from generated files, which hold only the reduction).
    """

    chip: ChipConfig
    seed: int | None
    read_time_sec: float | None
    g_pos_s: np.ndarray
    g_neg_s: np.ndarray
    g_unit_s: float
    v_read_v: float
    adc_gain: np.ndarray
    adc_offset_lsb: np.ndarray
    stuck: np.ndarray
    g_phys_s: np.ndarray | None = None

    @property
    def tiles(self) -> int:
        return self.g_pos_s.shape[0]

    @property
    def g_diff_s(self) -> np.ndarray:
        """``g_pos - g_neg`` per cell: the one subtraction the behavioural crossbar does.
        Computed for the whole chip at every access: a caller reading one array subtracts
        that array's cells instead (the same values)."""
        return self.g_pos_s - self.g_neg_s

    def adc_errors(self, tile: int) -> AdcErrors:
        return AdcErrors(self.adc_gain[tile], self.adc_offset_lsb[tile])


def _split(g_phys: np.ndarray, mapping: str, columns: int) -> tuple[np.ndarray, np.ndarray]:
    if mapping == "differential":
        return g_phys[:, 0::2], g_phys[:, 1::2]
    return g_phys[:, :columns], np.repeat(g_phys[:, columns:columns + 1], columns, axis=1)


def programming_memory_bytes(mapped: MappedModel) -> int:
    """Peak memory, bytes, that :func:`program_chip` needs for ``mapped`` (an estimate from
    :data:`PROGRAMMING_BYTES_PER_CELL`; a parasitic solve checks its own on top)."""
    return mapped.tiles * mapped.chip.rows * mapped.chip.columns * PROGRAMMING_BYTES_PER_CELL


def check_programming_memory(mapped: MappedModel, chips_at_once: int = 1,
                             available_bytes: int | None = None) -> None:
    """Refuse, before anything is allocated, to program ``chips_at_once`` chips of ``mapped``
    whose arrays cannot fit in memory (default: the machine's available memory).

    Raises
    ------
    MemoryError
        Saying how much programming would need and how much there is.
    """
    need = programming_memory_bytes(mapped) * chips_at_once
    have = available_memory_bytes() if available_bytes is None else available_bytes
    if need > have:
        chip = mapped.chip
        at_once = f", {chips_at_once} chips at once" if chips_at_once > 1 else ""
        raise MemoryError(
            f"programming {mapped.tiles} arrays of {chip.rows}x{chip.columns} cells needs about "
            f"{need / 2**30:.1f} GiB{at_once} ({PROGRAMMING_BYTES_PER_CELL} bytes per cell); "
            f"{have / 2**30:.1f} GiB available -- choose smaller [array] rows and columns")


def program_chip(mapped: MappedModel, seed: int | None = None,
                 read_time_sec: float | None = None, workers: int | None = None
                 ) -> ProgrammedChip:
    """Program every array of ``mapped`` on its chip (see the module docstring for the steps).

    Raises
    ------
    ValueError
        A random device or ADC without a seed, a read time before the device's ``t0``, an
        ADC whose LSB is not one weight, or non-linear cells with wire/source/sense resistance
        (not a linear map).
    MemoryError
        Arrays too large for the machine's memory (:func:`check_programming_memory`), before
        anything is allocated.
    """
    check_programming_memory(mapped)
    state = program_arrays(program(mapped, mapped.chip.device), mapped.chip, seed,
                           read_time_sec, workers)
    check_adc_range(mapped, state)
    return state


def check_adc_range(mapped: MappedModel, state: ProgrammedChip) -> None:
    """Refuse a chip whose ADCs, sized to hold every code (``adc_bits`` at least the exact
    width, :attr:`ChipConfig.exact_adc_bits`), cannot hold the codes its programmed arrays
    can produce: the widest reachable code of a column is its ADC's gain and offset applied
    to the sum of its positive (or negative) effective cells over the rows the mapping uses.
    A narrower ADC was chosen to saturate, and saturation is modelled; this one was not.

    Raises
    ------
    ValueError
        Naming the array, column, code, range, and the chip's device and seed.
    """
    chip = mapped.chip
    adc = chip.adc
    if chip.adc_bits < chip.exact_adc_bits:
        return
    lsb_a = (state.v_read_v * state.g_unit_s) * (adc.full_scale / (1 << (adc.bits - 1)))
    g_diff = state.g_diff_s
    for layer in mapped.layers:
        rows_total, out = layer.weights.shape
        for r in range(layer.row_tiles):
            n = min(chip.rows, rows_total - r * chip.rows)
            for c in range(layer.column_tiles):
                k = min(chip.columns, out - c * chip.columns)
                tile = layer.tile_base + c * layer.row_tiles + r
                d = g_diff[tile, :n, :k] * (state.v_read_v / lsb_a)
                ends = np.stack([np.minimum(d, 0).sum(axis=0), np.maximum(d, 0).sum(axis=0)])
                x = ends * state.adc_gain[tile, :k] + state.adc_offset_lsb[tile, :k]
                codes = np.floor(x + 0.5)
                bad = (codes < adc.code_min) | (codes > adc.code_max)
                if bad.any():
                    end, col = (int(v[0]) for v in np.nonzero(bad))
                    raise ValueError(
                        f"[adc] bits = {adc.bits}: array {tile} column {col} of this chip "
                        f"(device {chip.device.preset}, seed {state.seed}) reaches code "
                        f"{int(codes[end, col])}, outside the ADC's {adc.code_min}.."
                        f"{adc.code_max}; raise [adc] bits (an ADC narrower than "
                        f"{chip.exact_adc_bits} bits is taken to saturate by design)")


def program_arrays(target: ArrayConductances, chip: ChipConfig, seed: int | None = None,
                   read_time_sec: float | None = None, workers: int | None = None,
                   same_chip: ProgrammedChip | None = None) -> ProgrammedChip:
    """:func:`program_chip` for arrays given by their target conductances (tiles, rows,
    columns) -- e.g. :func:`golden.conductance.program_tiles` of test weights. The arrays'
    parasitic solves run on ``workers`` processes (default: every core).

    ``same_chip`` reprograms a chip already made: its stuck cells stay stuck (passed to
    :meth:`Device.program` as the explicit map) and its ADC errors stay (none are drawn), only
    programming error is drawn from ``seed``."""
    device, adc, parasitics = chip.device, chip.adc, chip.parasitics
    draws = set(device.non_ideal_parameters()) - {"iv_v0_v", "levels"}
    if seed is None and (draws or adc.gain_dtod or adc.offset_dtod_lsb):
        raise ValueError("this chip's device or ADC is random: give a seed (--seed) to "
                         "program it")
    if not adc.unit_lsb:
        raise ValueError(f"[adc] full_scale = {adc.full_scale!r}: an LSB of "
                         f"{adc.lsb_weights!r} weights needs the accumulator to scale the codes, "
                         f"not yet supported (use full_scale = {float(1 << (adc.bits - 1))!r})")
    if device.iv_v0_v and not parasitics.ideal:
        raise ValueError(f"device iv_v0_v = {device.iv_v0_v} (non-linear cells) with "
                         f"parasitic resistance is not a linear map; the RTL crossbar needs one")
    if read_time_sec is not None and device.drift_t0_sec > read_time_sec:
        raise ValueError(f"read time {read_time_sec} s is before the device's drift t0 "
                         f"({device.drift_t0_sec} s)")
    tiles, rows, cols = target.g_pos_s.shape
    if same_chip is not None and same_chip.chip != chip:
        raise ValueError("the chip to reprogram was programmed for another chip configuration")
    if same_chip is not None and same_chip.tiles != tiles:
        raise ValueError(f"the chip to reprogram has {same_chip.tiles} arrays, the target "
                         f"{tiles}")
    rng = np.random.default_rng(seed)
    gain = np.ones((tiles, cols))
    offset = np.zeros((tiles, cols))
    phys, cells_g, stuck = [], [], []
    for t in range(tiles):          # the draws, in a fixed order: tile by tile, cells then ADC
        phys_target = physical_conductances(target.g_pos_s[t], target.g_neg_s[t], chip.mapping)
        cells = device.program(phys_target, rng, stuck_map=None if same_chip is None
                               else same_chip.stuck[t])
        g = cells.g_s
        if read_time_sec is not None:
            g = device.drift(g, read_time_sec, cells.nu)
        phys.append(g)
        if device.iv_v0_v:
            v, v0 = target.v_read_v, device.iv_v0_v
            g = g * (v0 * np.sinh(v / v0)) / v
        cells_g.append(g)
        stuck.append(cells.stuck)
        if same_chip is None:
            errors = adc.draw_errors(cols, rng)
            gain[t], offset[t] = errors.gain, errors.offset_lsb
    if same_chip is not None:
        gain, offset = same_chip.adc_gain.copy(), same_chip.adc_offset_lsb.copy()
    return _read_state(chip, seed, read_time_sec, cells_g, target, gain, offset, stuck, phys,
                       workers)


def _read_state(chip, seed, read_time_sec, cells_g, target, gain, offset, stuck, phys,
                workers) -> ProgrammedChip:
    """The chip's static read state from its cells as the read sees them (after drift and the
    I-V law): the parasitic reduction and the split into the two sides of each column."""
    tiles, rows, cols = target.g_pos_s.shape
    if not chip.parasitics.ideal:
        cells_g = effective_conductances(cells_g, chip.parasitics, workers)
    g_pos = np.empty((tiles, rows, cols))
    g_neg = np.empty((tiles, rows, cols))
    for t, g in enumerate(cells_g):
        g_pos[t], g_neg[t] = _split(g, chip.mapping, cols)
    return ProgrammedChip(chip, seed, read_time_sec, g_pos, g_neg, target.g_unit_s,
                          target.v_read_v, gain, offset, np.stack(stuck).astype(np.int8),
                          np.stack(phys))


def chip_from_cells(mapped: MappedModel, g_phys_s: np.ndarray, stuck: np.ndarray,
                    seed: int | None = None, workers: int | None = None) -> ProgrammedChip:
    """The chip whose physical cells are ``g_phys_s`` (tiles, rows, physical columns; what
    write-verify programming left, :mod:`golden.programming`), read as :func:`program_chip`
    reads a chip: the I-V law at the read voltage, the parasitic reduction, and ADC errors
    drawn from ``seed`` (a generator of its own: the cells drew nothing from it). Read at the
    device's ``t0`` (no drift).

    Raises
    ------
    ValueError
        Cells of another shape than the mapped arrays, a random ADC without a seed, or
        non-linear cells with parasitic resistance.
    """
    chip = mapped.chip
    target = program(mapped, chip.device)
    tiles, rows, cols = target.g_pos_s.shape
    phys_cols = physical_conductances(target.g_pos_s[0], target.g_neg_s[0], chip.mapping).shape[1]
    g_phys = np.asarray(g_phys_s, np.float64)
    if g_phys.shape != (tiles, rows, phys_cols) or np.shape(stuck) != g_phys.shape:
        raise ValueError(f"cells of shape {g_phys.shape} (stuck map {np.shape(stuck)}) for "
                         f"{tiles} arrays of {rows}x{phys_cols} physical cells")
    adc, device = chip.adc, chip.device
    if seed is None and (adc.gain_dtod or adc.offset_dtod_lsb):
        raise ValueError("this chip's ADC is random: give a seed to draw its errors")
    if device.iv_v0_v and not chip.parasitics.ideal:
        raise ValueError(f"device iv_v0_v = {device.iv_v0_v} (non-linear cells) with "
                         f"parasitic resistance is not a linear map; the RTL crossbar needs one")
    rng = np.random.default_rng(seed)
    gain = np.ones((tiles, cols))
    offset = np.zeros((tiles, cols))
    for t in range(tiles):
        errors = adc.draw_errors(cols, rng)
        gain[t], offset[t] = errors.gain, errors.offset_lsb
    cells_g = list(g_phys)
    if device.iv_v0_v:
        v, v0 = target.v_read_v, device.iv_v0_v
        cells_g = [g * (v0 * np.sinh(v / v0)) / v for g in cells_g]
    state = _read_state(chip, seed, None, cells_g, target, gain, offset, list(stuck),
                        list(g_phys), workers)
    check_adc_range(mapped, state)
    return state


def _effective(args) -> np.ndarray:
    g, parasitics = args
    # an open cell (programmed to 0 S) has no finite resistance: the network needs a
    # conductance, and a femtosiemens is an open circuit at these currents
    return CrossbarNetwork(np.maximum(g, 1e-15), parasitics).effective_conductance()


def effective_conductances(arrays: list[np.ndarray], parasitics: Parasitics,
                           workers: int | None = None) -> list[np.ndarray]:
    """Effective conductance matrices of many physical arrays with the same parasitics, on
    ``workers`` processes (default: every core; each solve is independent and
    deterministic, so the result does not depend on the split)."""
    workers = min(len(arrays), os.cpu_count() or 1) if workers is None else workers
    jobs = [(g, parasitics) for g in arrays]
    if workers <= 1 or len(arrays) < 4:
        return [_effective(j) for j in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_effective, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def analog_read(bits: np.ndarray, state: ProgrammedChip, tile: int, columns: int | None = None,
                g_diff_s: np.ndarray | None = None) -> np.ndarray:
    """ADC codes (P, columns) of ``P`` reads of array ``tile`` with word-line bits ``bits``
    (P, r <= rows) -- the exact operations of the behavioural crossbar (module docstring).

    ``g_diff_s`` may pass ``state.g_diff_s`` precomputed (it is the same subtraction)."""
    d = (state.g_diff_s if g_diff_s is None else g_diff_s)[tile]
    cols = d.shape[1] if columns is None else columns
    d = d[:, :cols]
    b = np.asarray(bits, np.float64)
    s = np.zeros((b.shape[0], cols))
    for r in range(b.shape[1]):
        # bit 0 adds 0.0 * d (a signed zero), which leaves every sum unchanged: the same as
        # the Verilog's skipping the row
        s += b[:, r:r + 1] * d[r]
    current_a = state.v_read_v * s
    return state.chip.adc.convert(current_a, state.v_read_v, state.g_unit_s,
                                  AdcErrors(state.adc_gain[tile, :cols],
                                            state.adc_offset_lsb[tile, :cols]))


def analog_infer(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray,
                 keep_layers: bool = False) -> Inference:
    """Inference of ``mapped`` on the programmed chip ``state``: every tile read through
    :func:`analog_read`, then the same accumulation, sign-constant correction, thresholds and
    argmax as :func:`golden.mapping.mapped_infer` (which this equals on an ideal chip)."""
    if state.chip != mapped.chip:
        raise ValueError("the programmed chip was programmed for another chip configuration")
    g_diff = state.g_diff_s

    def read(bits, layer, row_tile, column_tile):
        tile = layer.tile_base + column_tile * layer.row_tiles + row_tile
        columns = min(mapped.chip.columns, layer.out_channels - column_tile * mapped.chip.columns)
        return analog_read(bits, state, tile, columns, g_diff)

    return mapped_infer(mapped, pixels, keep_layers, read)
