"""Write-verify programming: the golden controller that the RTL ``ProgrammingController``
(:mod:`periphery.programming`) follows command for command.

The controller walks the cells in index order. For each cell:

1. **read before write**: a verify read; a cell already inside its window gets no pulse
   (the low-power scheme of the Nguyen et al. review: skip cells that are already right);
2. otherwise a pulse towards the target -- SET when the read code is below the window, RESET
   when above -- then a verify read, and again, until the cell is inside its window or has
   had ``max_pulses`` pulses; then it is reported as failed (a stuck cell is never accepted,
   and no cell loops forever);
3. amplitude: step ``s`` means ``v_start_v + s * v_step_v``. The first pulse of a cell, and
   the first after a change of polarity, uses step 0; each further pulse of the same polarity
   one step more, up to the step of ``v_max_v`` (incremental step-pulse programming;
   ``v_step_v = 0`` is the fixed-pulse policy).

A verify read is digitised by the program-verify path's converter: ``code = floor((G - g_off)
/ (g_on - g_off) * (2**verify_bits - 1) + 0.5)``, clipped to ``[0, 2**verify_bits - 1]``
(:func:`verify_code`, these float64 operations in this order). Targets are levels ``0 ..
levels - 1`` evenly spaced from ``g_off`` to ``g_on``; level ``L``'s target code is the code of
its conductance, and the window is that code plus or minus ``window_codes``. The controller
itself sees only codes: it is integer logic.

The device (:class:`golden.analog.devices.Device`) answers pulses stochastically
(:meth:`~golden.analog.devices.Device.pulse_outcome`). Every draw of cell ``c``'s ``k``-th pulse
comes from a counter-based stream keyed by ``(seed, c, k)`` (:func:`cell_uniform`,
:func:`cell_normal`), not from a sequential generator: the outcome of a pulse does not depend
on the order cells are visited in, so this model runs vectorised over all cells while the RTL
(and its testbench's device) goes one cell at a time, and both see the same device. Stuck cells
are drawn the same way (stream ``STUCK_STREAM``, one draw per cell) and start at their stuck
conductance; a fresh chip's healthy cells start at ``g_off`` (formed and reset).

Time and energy
---------------
Programming time is ``pulses * width_sec + reads * read_time_sec``: the analog operations,
with the controller's own cycles left out (:class:`ProgrammingResult` reports the counts the
RTL's cycles follow from). Energy counts each pulse as ``V**2 * G * width`` with ``G`` the
cell's conductance before the pulse (the V*I*t estimate of write energy used by DNN+NeuroSim,
Peng et al., IEEE TCAD 2020, for RRAM writes), and each verify read as ``v_read**2 * G *
read_time_sec``. Word-line and driver energy is not included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analog.devices import RESET, SET, STUCK_OFF, STUCK_ON, Device
from .checks import check_int, check_real

__all__ = ["WriteVerifyPolicy", "chip_policy", "ProgrammingResult", "program_cells", "verify_code",
           "level_codes", "cell_uniform", "cell_normal", "initial_cells", "apply_pulse",
           "model_targets", "program_model", "READ", "PULSE"]

# Command kinds of the controller's command stream (periphery.programming uses the same codes)
READ, PULSE = 0, 1

# Streams of the counter-based draws
SWITCH_STREAM, STEP_STREAM_A, STEP_STREAM_B, STUCK_STREAM = 1, 2, 3, 4


@dataclass(frozen=True)
class WriteVerifyPolicy:
    """Pulse policy and acceptance rule of write-verify programming.

    Parameters
    ----------
    levels : int
        Target levels per cell (2: binary on/off), evenly spaced from ``g_off`` to ``g_on``.
    verify_bits : int
        Resolution of the verify read's converter, bits.
    window_codes : int
        Acceptance half-width around a level's target code, in verify codes.
    max_pulses : int
        Pulses a cell may take before it is reported as failed (>= 1).
    v_start_v, v_step_v, v_max_v : float
        First amplitude, increment per further pulse of the same polarity, and the largest
        amplitude (volts; ``v_step_v = 0``: fixed pulses at ``v_start_v``).
    width_sec : float
        Pulse width, seconds.
    read_time_sec : float
        Duration of one verify read, seconds (for the time and energy figures).
    """

    levels: int = 2
    verify_bits: int = 8
    window_codes: int = 8
    max_pulses: int = 16
    v_start_v: float = 1.0
    v_step_v: float = 0.05
    v_max_v: float = 1.4
    width_sec: float = 50e-9
    read_time_sec: float = 10e-9

    def __post_init__(self):
        check_int("levels", self.levels, 2, 1 << 16)
        check_int("verify_bits", self.verify_bits, 2, 24)
        check_int("window_codes", self.window_codes, 0, (1 << self.verify_bits) - 1)
        check_int("max_pulses", self.max_pulses, 1, 1 << 16)
        for name in ("v_start_v", "v_max_v", "width_sec", "read_time_sec"):
            check_real(name, getattr(self, name), 0.0, True, "positive")
        check_real("v_step_v", self.v_step_v, 0.0, False, "non-negative")
        if self.v_max_v < self.v_start_v:
            raise ValueError(f"v_max_v ({self.v_max_v}) must be at least v_start_v "
                             f"({self.v_start_v})")

    @property
    def max_step(self) -> int:
        """Largest amplitude step (0 for fixed pulses)."""
        if self.v_step_v == 0:
            return 0
        return int(np.floor((self.v_max_v - self.v_start_v) / self.v_step_v + 1e-9))

    def amplitude_v(self, step) -> np.ndarray:
        return self.v_start_v + np.asarray(step, np.float64) * self.v_step_v

    def check_device(self, device: Device) -> None:
        """Refuse a policy the device cannot follow: a window narrower than the device's
        step (no level could land in it), or targets the device cannot reach."""
        full = (1 << self.verify_bits) - 1
        if device.levels is not None:
            step_codes = full / (device.levels - 1) * device.switch_level_steps
            # every target must have a device level inside its window
            reach = verify_code(device, device.level_conductances(), self.verify_bits)
            for level, t in enumerate(level_codes(self.levels, self.verify_bits)):
                if not np.any(np.abs(reach - t) <= self.window_codes):
                    raise ValueError(
                        f"target level {level} (code {t}) is unreachable for device "
                        f"{device.preset!r}: its nearest level is "
                        f"{int(reach[np.argmin(np.abs(reach - t))])}, the window is "
                        f"±{self.window_codes} codes")
        elif device.switch_step_s is not None:
            step_codes = device.switch_step_s / (device.g_on_s - device.g_off_s) * full
        else:
            step_codes = 0.0          # a full switch lands on g_on/g_off exactly
        if device.levels is None and step_codes > 2 * self.window_codes + 1:
            raise ValueError(f"window_codes {self.window_codes} is narrower than device "
                             f"{device.preset!r}'s step of {step_codes:.1f} codes: a cell "
                             f"could step over its window")
        if self.v_start_v + self.max_step * self.v_step_v < device.switch_v_th_v:
            raise ValueError(f"v_max_v {self.v_max_v} V never reaches device "
                             f"{device.preset!r}'s switching threshold "
                             f"{device.switch_v_th_v} V")


def chip_policy(chip) -> WriteVerifyPolicy:
    """The default policy for a chip's arrays: the default pulses and window, with binary
    targets for differential pairs and three levels (off, middle, on) for a reference-column
    mapping, whose reference cells sit at the middle level."""
    return WriteVerifyPolicy(levels=2 if chip.mapping == "differential" else 3)


def verify_code(device: Device, g_s, bits: int) -> np.ndarray:
    """The verify read's code of conductances ``g_s`` (see the module docstring)."""
    full = (1 << bits) - 1
    x = (np.asarray(g_s, np.float64) - device.g_off_s) / (device.g_on_s - device.g_off_s)
    return np.clip(np.floor(x * full + 0.5), 0, full).astype(np.int64)


def level_codes(levels: int, bits: int) -> list[int]:
    """Target code of every level: the code of ``g_off + L / (levels - 1) * (g_on - g_off)``,
    i.e. ``floor(L / (levels - 1) * full + 0.5)``."""
    full = (1 << bits) - 1
    return [int(np.floor(L / (levels - 1) * full + 0.5)) for L in range(levels)]


# --- counter-based draws ----------------------------------------------------------------------

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood, OOPSLA 2014): a bijective avalanche of
    64-bit words."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, stream: int, cell, k) -> np.ndarray:
    with np.errstate(over="ignore"):
        c = np.asarray(cell, np.uint64)
        n = np.asarray(k, np.uint64)
        x = _mix64(np.asarray(seed, np.uint64) * _GOLDEN_GAMMA + np.uint64(stream))
        x = _mix64(x ^ (c * _GOLDEN_GAMMA))
        return _mix64(x ^ (n + np.uint64(1)) * np.uint64(0xD1B54A32D192ED03))


def cell_uniform(seed: int, stream: int, cell, k) -> np.ndarray:
    """Uniform draw in [0, 1) for ``(seed, stream, cell, k)`` (53 random bits)."""
    return (_hash(seed, stream, cell, k) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def cell_normal(seed: int, cell, k) -> np.ndarray:
    """Standard normal draw for ``(seed, cell, k)`` (Box-Muller of two uniforms)."""
    u1 = cell_uniform(seed, STEP_STREAM_A, cell, k)
    u2 = cell_uniform(seed, STEP_STREAM_B, cell, k)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def initial_cells(device: Device, cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fresh chip: ``(g_s, stuck)`` of ``cells`` cells -- healthy cells at ``g_off``, stuck
    ones (drawn per cell: ``u < stuck_on_rate`` stuck on, else ``u < stuck_on_rate +
    stuck_off_rate`` stuck off) at their stuck conductance."""
    u = cell_uniform(seed, STUCK_STREAM, np.arange(cells), 0)
    on = u < device.stuck_on_rate
    off = ~on & (u < device.stuck_on_rate + device.stuck_off_rate)
    stuck = np.where(on, STUCK_ON, np.where(off, STUCK_OFF, 0)).astype(np.int8)
    g = np.where(on, device.g_on_s, device.g_off_s)
    return g, stuck


def apply_pulse(device: Device, policy: WriteVerifyPolicy, g_s, cell, k, polarity, step,
                stuck, seed: int) -> np.ndarray:
    """Conductance of ``cell`` after its ``k``-th pulse (0-based) of ``polarity`` at amplitude
    step ``step`` (vectorised over the arguments; one cell at a time is what a testbench's
    device does)."""
    pol = np.asarray(polarity)
    u = cell_uniform(seed, SWITCH_STREAM, cell, k)
    # only a continuous device with a random step size uses its normal draw
    steps = device.levels is None and device.switch_step_s is not None \
        and device.switch_step_std_s
    z = cell_normal(seed, cell, k) if steps else 0.0
    return device.pulse_outcome(g_s, pol, pol * policy.amplitude_v(step), policy.width_sec, u, z,
                                stuck)


@dataclass
class ProgrammingResult:
    """What write-verify programming did, cell by cell and pulse by pulse.

    Attributes
    ----------
    g_s : float64 (cells,)
        Final conductances, siemens.
    first_code : int64 (cells,)
        Code of each cell's read-before-write.
    pulse_cell, pulse_index, pulse_polarity, pulse_step, pulse_code : int64 (pulses,)
        The pulse log in command order (cell, then pulse index): the cell, the pulse's index
        on its cell, polarity (+1 SET, -1 RESET), amplitude step, and the verify code read
        after it.
    pulse_g_s : float64 (pulses,)
        The cell's conductance after each pulse of the log, siemens: the device's outcome,
        which a behavioural crossbar replays (:mod:`periphery.generate_model`).
    failed : bool (cells,)
        Cells left outside their window after ``max_pulses`` pulses (stuck cells among them).
    final_code : int64 (cells,)
    policy : WriteVerifyPolicy
    device : Device
    energy_j, time_sec : float
    pulse_total : int or None
        The number of pulses when the log was not kept (``program_cells(keep_log=False)``:
        the pulse arrays are then empty).
    """

    g_s: np.ndarray
    first_code: np.ndarray
    pulse_cell: np.ndarray
    pulse_index: np.ndarray
    pulse_polarity: np.ndarray
    pulse_step: np.ndarray
    pulse_code: np.ndarray
    pulse_g_s: np.ndarray
    failed: np.ndarray
    final_code: np.ndarray
    policy: WriteVerifyPolicy
    device: Device
    energy_j: float
    time_sec: float
    pulse_total: int | None = None

    @property
    def pulses(self) -> int:
        return len(self.pulse_cell) if self.pulse_total is None else self.pulse_total

    @property
    def reads(self) -> int:
        return len(self.g_s) + self.pulses

    def _require_log(self, what: str) -> None:
        if self.pulse_total is not None:
            raise ValueError(f"{what} needs the pulse log, which this programming did not "
                             f"keep (program_cells(keep_log=False))")

    @property
    def skipped(self) -> np.ndarray:
        """Cells that took no pulse (already inside their window). Needs the pulse log."""
        self._require_log("skipped")
        return ~np.isin(np.arange(len(self.g_s)), self.pulse_cell)

    def commands(self) -> list[tuple]:
        """The controller's command stream: ``(READ, cell)`` and ``(PULSE, cell, polarity,
        step)`` in order (read before write, then pulse and verify read). Needs the pulse
        log."""
        self._require_log("commands()")
        out = []
        bounds = np.searchsorted(self.pulse_cell, np.arange(len(self.g_s) + 1))
        for c in range(len(self.g_s)):
            out.append((READ, c))
            for j in range(bounds[c], bounds[c + 1]):
                out += [(PULSE, c, int(self.pulse_polarity[j]), int(self.pulse_step[j])),
                        (READ, c)]
        return out


def model_targets(mapped, levels: int) -> np.ndarray:
    """Target level of every physical cell of a mapped model's arrays, flattened in the order
    (tile, row, physical column) of :func:`golden.analog.parasitics.physical_conductances`:
    the mapping's target conductances (:func:`golden.conductance.program`) as levels of a
    ``levels``-level policy.

    Raises
    ------
    ValueError
        A target conductance that is not one of the levels (a reference column needs the
        middle level: ``levels`` odd).
    """
    from .analog.parasitics import physical_conductances
    from .conductance import program

    chip, device = mapped.chip, mapped.chip.device
    target = program(mapped, device)
    phys = np.stack([physical_conductances(target.g_pos_s[t], target.g_neg_s[t], chip.mapping)
                     for t in range(mapped.tiles)])
    x = (phys - device.g_off_s) / (device.g_on_s - device.g_off_s) * (levels - 1)
    level = np.rint(x)
    off = np.abs(x - level) > 1e-9
    if off.any():
        g = phys[off].flat[0]
        raise ValueError(f"target conductance {g:.6g} S of the {chip.mapping} mapping is not one "
                         f"of {levels} levels from g_off to g_on (a reference column needs an "
                         f"odd number of levels)")
    return level.astype(np.int64).reshape(-1)


def program_cells(device: Device, policy: WriteVerifyPolicy, targets, g_s, stuck,
                  seed: int, progress=None, cell_ids=None,
                  keep_log: bool = True) -> ProgrammingResult:
    """Write-verify programming of cells ``g_s`` (with ``stuck`` map) to target levels
    ``targets`` (ints in ``0 .. policy.levels - 1``), vectorised over cells: one iteration per
    pulse index. ``seed`` keys the device's switching draws (module docstring), with each
    cell's key its position in ``g_s`` or, given ``cell_ids``, its id there (a subset of a
    chip's cells drawing as those cells; the result and its log still count positions).
    ``progress(k, max_pulses, cells_left)`` is called after each pulse index. Without
    ``keep_log`` the pulse log is not kept, only counted (``pulse_total``).

    Raises
    ------
    ValueError
        Targets out of range, or a policy the device cannot follow
        (:meth:`WriteVerifyPolicy.check_device`).
    """
    policy.check_device(device)
    targets = np.asarray(targets)
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError("targets must be a 1-D array of integer levels")
    bad = (targets < 0) | (targets >= policy.levels)
    if bad.any():
        raise ValueError(f"target level {int(targets[bad][0])} of cell "
                         f"{int(np.flatnonzero(bad)[0])} is outside 0..{policy.levels - 1}")
    g = np.array(g_s, np.float64)
    stuck = np.asarray(stuck)
    if g.shape != targets.shape or stuck.shape != targets.shape:
        raise ValueError(f"targets, g_s and stuck must have one entry per cell: "
                         f"{targets.shape}, {g.shape}, {stuck.shape}")
    target_code = np.asarray(level_codes(policy.levels, policy.verify_bits))[targets]
    cells = np.arange(len(g))
    ids = cells if cell_ids is None else np.asarray(cell_ids, np.int64)
    if ids.shape != cells.shape:
        raise ValueError(f"cell_ids has shape {ids.shape}, expected {cells.shape}")
    energy = 0.0
    code = verify_code(device, g, policy.verify_bits)
    first_code = code.copy()
    energy += float(np.sum(device.v_read_v ** 2 * g * policy.read_time_sec))
    active = np.abs(code - target_code) > policy.window_codes
    last_pol = np.zeros(len(g), np.int64)
    step = np.zeros(len(g), np.int64)
    log = []
    pulses = 0
    for k in range(policy.max_pulses):
        idx = cells[active]
        if len(idx) == 0:
            break
        pol = np.where(code[idx] < target_code[idx], SET, RESET)
        step[idx] = np.where(pol == last_pol[idx], np.minimum(step[idx] + 1, policy.max_step), 0)
        last_pol[idx] = pol
        amp = policy.amplitude_v(step[idx])
        energy += float(np.sum(amp ** 2 * g[idx] * policy.width_sec))
        g[idx] = apply_pulse(device, policy, g[idx], ids[idx], k, pol, step[idx], stuck[idx],
                             seed)
        code[idx] = verify_code(device, g[idx], policy.verify_bits)
        energy += float(np.sum(device.v_read_v ** 2 * g[idx] * policy.read_time_sec))
        pulses += len(idx)
        if keep_log:
            log.append((idx, np.full(len(idx), k), pol, step[idx].copy(), code[idx].copy(),
                        g[idx].copy()))
        active[idx] = np.abs(code[idx] - target_code[idx]) > policy.window_codes
        if progress is not None:
            progress(k + 1, policy.max_pulses, int(active.sum()))
    if log:
        cat = [np.concatenate([entry[i] for entry in log]) for i in range(6)]
        order = np.lexsort((cat[1], cat[0]))
        cat = [a[order].astype(np.int64) for a in cat[:5]] + [cat[5][order]]
    else:
        cat = [np.zeros(0, np.int64)] * 5 + [np.zeros(0, np.float64)]
    return ProgrammingResult(
        g_s=g, first_code=first_code, pulse_cell=cat[0], pulse_index=cat[1],
        pulse_polarity=cat[2], pulse_step=cat[3], pulse_code=cat[4], pulse_g_s=cat[5],
        failed=active.copy(),
        final_code=code, policy=policy, device=device, energy_j=energy,
        time_sec=pulses * policy.width_sec + (len(g) + pulses) * policy.read_time_sec,
        pulse_total=None if keep_log else pulses)


def program_model(mapped, policy: WriteVerifyPolicy, seed: int, over=None, progress=None,
                  targets=None):
    """Write-verify programming of every cell of a mapped model's arrays: ``(result, chip)``,
    the :class:`ProgrammingResult` and the chip it leaves
    (:func:`golden.analog.chip_state.chip_from_cells`; ADC errors drawn from ``seed``).

    ``over``: the ``(result, chip)`` of an earlier programming of the same arrays to start
    from, its stuck cells included (this second session draws with ``seed + 1``); default a
    fresh chip drawn from ``seed``. ``targets``: :func:`model_targets` of ``mapped``, when the
    caller has them already."""
    from .analog.chip_state import chip_from_cells
    device = mapped.chip.device
    if targets is None:
        targets = model_targets(mapped, policy.levels)
    if over is None:
        g, stuck = initial_cells(device, len(targets), seed)
        session = seed
    else:
        g, stuck = over[0].g_s, over[1].stuck.reshape(-1)
        session = seed + 1
        if len(g) != len(targets):
            raise ValueError(f"the earlier programming has {len(g)} cells, these arrays "
                             f"{len(targets)}")
    result = program_cells(device, policy, targets, g, stuck, session, progress)
    shape = (mapped.tiles, mapped.chip.rows, len(targets) // (mapped.tiles * mapped.chip.rows))
    chip = chip_from_cells(mapped, result.g_s.reshape(shape), np.asarray(stuck).reshape(shape),
                           seed)
    return result, chip
