"""Golden parasitic solver against the circuit simulators on one random programmed array.

This is what ``mbnn spice-check`` runs and what ``bench/bench_analog.py`` times: a random
binary state programmed through a device model, a random read input, the column currents from
the golden solver (through the effective conductance matrix for linear cells, Newton for the
sinh law) and from VACASK (and optionally ngspice) on the same network, their largest relative
difference, and the array's worst-case IR drop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from golden.analog.devices import Device, device_preset
from golden.analog.parasitics import CrossbarNetwork, Parasitics

__all__ = ["LINEAR_TOLERANCE", "NONLINEAR_TOLERANCE", "SpiceCheck", "random_array",
           "spice_check"]

# Agreement required of the golden solver and a circuit simulator, largest over columns of
# |I_sim - I_golden| / |I_golden|: both solve the same linear network in double precision, so
# the difference is rounding (measured ~1e-12 and below); the sinh law is solved by Newton in
# both, each to its own convergence criterion (VACASK's tolerances in sim/circuit/vacask.py).
LINEAR_TOLERANCE = 1e-9
NONLINEAR_TOLERANCE = 1e-6


def random_array(rows: int, columns: int, device: Device, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A random binary state programmed through ``device`` (half the cells targeted at G_on,
    half at G_off, then the device's programming error and stuck cells), and a random read
    input with every row at 0 V or ``v_read_v`` (at least one row driven)."""
    target = np.where(rng.random((rows, columns)) < 0.5, device.g_on_s, device.g_off_s)
    g_s = device.program(target, rng).g_s
    # a programmed conductance of exactly 0 (a clipped programming error) is an open cell; the
    # network needs a finite resistance, so give it the smallest positive conductance we model
    g_s = np.maximum(g_s, device.g_off_s * 1e-6)
    v_in_v = np.where(rng.random(rows) < 0.5, device.v_read_v, 0.0)
    v_in_v[rng.integers(rows)] = device.v_read_v
    return g_s, v_in_v


@dataclass(frozen=True)
class SpiceCheck:
    """Outcome of one check (currents in A, voltages in V, times in s)."""

    rows: int
    columns: int
    device: str
    seed: int
    parasitics: dict
    nonlinear: bool
    max_rel_err: float
    tolerance: float
    golden_precompute_s: float
    golden_read_s: float
    vacask_s: float
    ngspice_max_rel_err: float | None
    ngspice_s: float | None
    ir_drop_v: float
    precomputed_bytes: int

    @property
    def passed(self) -> bool:
        errs = [self.max_rel_err] + ([self.ngspice_max_rel_err]
                                     if self.ngspice_max_rel_err is not None else [])
        return all(e <= self.tolerance for e in errs)

    def as_dict(self) -> dict:
        return dict(asdict(self), passed=self.passed)


def _max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref) / np.abs(ref)))


def spice_check(rows: int, columns: int, parasitics: Parasitics, device_name: str = "ideal",
                seed: int = 1, ngspice: bool = False, iv_v0_v: float | None = None,
                timeout_s: float = 600.0) -> SpiceCheck:
    """Run the check; every input is validated (and the solve's memory checked) before any
    simulator starts. ``iv_v0_v`` overrides the device's I-V law (sinh characteristic
    voltage, volts).

    Raises
    ------
    ValueError
        Bad sizes, resistances or device name (the message names the parameter).
    MemoryError
        The golden solve would not fit in memory.
    sim.toolchain.SimulatorMissing, sim.circuit.CircuitSimulationError
        From the circuit simulators.
    """
    from sim import toolchain
    from sim.circuit import ngspice as ngspice_driver
    from sim.circuit import vacask

    for name, value in (("rows", rows), ("columns", columns)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 1 <= value <= 4096:
            raise ValueError(f"{name} must be an integer in 1..4096, not {value!r}")
    device = device_preset(device_name) if iv_v0_v is None else \
        device_preset(device_name, iv_v0_v=iv_v0_v)
    nonlinear = device.iv_v0_v is not None and device.iv_v0_v > 0
    if ngspice and nonlinear:
        raise ValueError(f"--ngspice runs plain resistors: device {device_name!r} has a "
                         f"non-linear I-V (iv_v0_v = {device.iv_v0_v})")
    toolchain.require("vacask")
    if ngspice:
        toolchain.require("ngspice")
    rng = np.random.default_rng(seed)
    g_s, v_in_v = random_array(rows, columns, device, rng)
    iv = device.iv_v0_v if nonlinear else None

    t0 = time.perf_counter()
    net = CrossbarNetwork(g_s, parasitics, iv_v0_v=iv)    # checks the memory it needs first
    if not nonlinear:
        net.effective_conductance()
    t1 = time.perf_counter()
    golden = net.column_currents(v_in_v) if nonlinear else net.read(v_in_v)
    t2 = time.perf_counter()
    ir_drop = net.worst_ir_drop_v(np.full(rows, device.v_read_v))

    sim = vacask.simulate(g_s, v_in_v, parasitics, iv_v0_v=iv, timeout_s=timeout_s)
    ng_err = ng_s = None
    if ngspice:
        ng = ngspice_driver.simulate(g_s, v_in_v, parasitics, timeout_s=timeout_s)
        ng_err, ng_s = _max_rel_err(ng.i_col_a, golden), ng.wall_time_s
    return SpiceCheck(
        rows=rows, columns=columns, device=device_name, seed=seed,
        parasitics=asdict(parasitics), nonlinear=nonlinear,
        max_rel_err=_max_rel_err(sim.i_col_a, golden),
        tolerance=NONLINEAR_TOLERANCE if nonlinear else LINEAR_TOLERANCE,
        golden_precompute_s=t1 - t0, golden_read_s=t2 - t1, vacask_s=sim.wall_time_s,
        ngspice_max_rel_err=ng_err, ngspice_s=ng_s, ir_drop_v=ir_drop,
        precomputed_bytes=net.precomputed_bytes())
