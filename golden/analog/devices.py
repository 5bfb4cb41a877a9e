"""Memristive device models: one interface, presets chosen by name.

A :class:`Device` is a frozen, validated set of physical parameters plus vectorised methods
that act on whole arrays of cells (any shape; no Python loop per cell):

* :meth:`Device.program` -- target conductances to programmed ones: snapped to the reachable
  levels, device-to-device programming error, stuck-at faults, per-cell drift exponents;
* :meth:`Device.read` -- cycle-to-cycle read noise, fresh on every call;
* :meth:`Device.drift` -- the power law ``G(t) = G0 * (t / t0) ** -nu``;
* :meth:`Device.cell_current` -- the cell's I-V law (linear, or ``I = g v0 sinh(V / v0)``);
* :meth:`Device.switching_probability` and :meth:`Device.pulse` -- the stochastic response to
  SET/RESET pulses (for write-verify programming and in-situ training).

The ideal device is the case where every non-ideal parameter is zero/None: programming returns
the targets bit for bit, reads are exact, nothing drifts, the I-V law is linear.

Randomness
----------
Every draw comes from a ``numpy.random.Generator`` the caller passes in; a method that has
nothing to draw (an ideal parameter) draws nothing, so ``rng`` may be ``None`` there. Device-to-
device quantities (programming error, stuck cells, drift exponents) are drawn once per
:meth:`Device.program` call, i.e. once per programmed array; cycle-to-cycle ones (read noise,
switching outcomes) on every call. The draw order inside each method is fixed and documented,
so the same seed gives the same chip.

Units
-----
Conductances end in ``_s`` (siemens), voltages in ``_v``, times in ``_sec`` (seconds; ``_s``
is taken by siemens). Relative quantities (``read_noise_std``, ``g_dtod_sigma_ln``) are
dimensionless.

Presets
-------
:data:`DEVICE_PRESETS` maps a name to a subclass that only overrides defaults and cites where
its numbers come from; :func:`device_preset` builds one with parameter overrides and
:func:`device_from_record` rebuilds one from its record (``{"preset": name, **parameters}``,
what :func:`dataclasses.asdict` gives, what ``[device]`` in the chip TOML holds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from ..checks import check_int, check_real

__all__ = ["Device", "ProgrammedCells", "IdealDevice", "RramDevice", "PcmDevice", "Dw3Device",
           "Dw5Device", "DEVICE_PRESETS", "device_preset", "device_from_record", "SET", "RESET"]

SET = +1     # pulse polarity towards G_on
RESET = -1   # pulse polarity towards G_off

# Stuck-map codes (ProgrammedCells.stuck, and the explicit map Device.program takes)
STUCK_ON, HEALTHY, STUCK_OFF = 1, 0, -1


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def _positive(name: str, v) -> float:
    return check_real(name, v, 0.0, True, "positive")


def _non_negative(name: str, v) -> float:
    return check_real(name, v, 0.0, False, "non-negative")


def _rate(name: str, v) -> float:
    if not _is_number(v) or not math.isfinite(v) or not 0 <= v <= 1:
        raise ValueError(f"{name} must be in [0, 1], not {v!r}")
    return float(v)


@dataclass(frozen=True)
class ProgrammedCells:
    """The state of programmed cells (arrays of the targets' shape).

    Attributes
    ----------
    g_s : float64 array
        Conductance of every cell at ``drift_t0_sec`` after programming, in siemens.
    stuck : int8 array
        ``+1`` stuck at G_on, ``-1`` stuck at G_off, ``0`` healthy.
    nu : float64 array
        Drift exponent of every cell (0 for stuck cells and non-drifting devices).
    """

    g_s: np.ndarray
    stuck: np.ndarray
    nu: np.ndarray


@dataclass(frozen=True)
class Device:
    """A memristive cell: physical parameters and the vectorised operations on arrays of cells.

    The defaults are the ideal device (:class:`IdealDevice`); presets are subclasses that only
    override defaults. All parameters are validated; errors name the parameter and the value.

    Parameters
    ----------
    g_on_s, g_off_s : float
        On (LRS, SET) and off (HRS, RESET) conductances in siemens, ``g_on_s > g_off_s > 0``
        (a finite on/off ratio). Stuck cells sit exactly here.
    v_read_v : float
        Read voltage in volts (> 0).
    levels : int or None
        Number of reachable conductance states, equally spaced from ``g_off_s`` to ``g_on_s``
        (2 = binary). None: continuous (every target in range is reachable).
    g_dtod_sigma_ln : float
        Device-to-device programming error, multiplicative: the programmed conductance is
        ``G_T * exp(sigma * z)``, lognormal with median ``G_T`` (``sigma`` = std of ln G).
    g_dtod_poly_s : tuple of float
        Device-to-device programming error, additive Gaussian with a conductance-dependent
        standard deviation ``sigma(G_T) = max(0, sum_k c_k * (G_T / g_on_s) ** k)`` siemens
        (``c_k`` in siemens, ascending powers). Empty: none.
    read_noise_std : float
        Cycle-to-cycle read noise, **relative**: a read returns ``G * (1 + read_noise_std * z)``
        with a fresh ``z`` on every read. In [0, 1).
    drift_nu, drift_nu_dtod : float
        Drift exponent (mean) and its device-to-device standard deviation (per-cell exponents
        are drawn at programming and clipped at 0).
    drift_t0_sec : float
        Reference time of the drift law in seconds: programmed conductances are the values at
        ``t0`` after programming.
    stuck_on_rate, stuck_off_rate : float
        Probabilities that a cell is stuck at G_on / G_off (drawn at programming), in [0, 1]
        with sum at most 1.
    iv_v0_v : float or None
        Non-linear I-V: ``I = g * iv_v0_v * sinh(V / iv_v0_v)``; None or 0: linear ``I = g V``
        (0 is stored as None).
        The same law and name as the Verilog-A cell and the parasitic solver. ``g`` is the
        small-signal conductance at 0 V, the quantity every other method talks about.
    switch_v_th_v : float
        Switching threshold (volts): pulses of smaller magnitude never switch a cell. Must
        exceed ``v_read_v`` (a read must not disturb).
    switch_tau_sec : float
        Mean waiting time for a switching event at amplitude ``switch_v_ref_v`` (seconds);
        0 means switching is certain for any pulse above threshold.
    switch_v_ref_v, switch_v0_v : float
        Voltage dependence of the waiting time, ``tau(V) = switch_tau_sec *
        exp(-(|V| - switch_v_ref_v) / switch_v0_v)``.
    switch_level_steps : int
        Levels a level device moves on one successful pulse (binary devices switch fully).
    switch_step_s, switch_step_std_s : float or None, float
        Continuous devices: mean and cycle-to-cycle std of the conductance change of one
        successful pulse. ``switch_step_s`` None or 0 (stored as None): a pulse switches fully
        (to G_on / G_off). Level devices step by whole levels and take neither.

    Notes
    -----
    The switching model treats switching as thermally activated: events form a Poisson
    process of rate ``1 / tau(V)`` while the pulse lasts, so a pulse of width ``w`` switches
    with probability ``1 - exp(-w / tau(V))`` (the form measured on filamentary devices by
    Gaba, Sheridan, Zhou, Choi and Lu, "Stochastic memristive devices for computing and
    neuromorphic applications", Nanoscale 5, 5872 (2013)). A successful pulse moves a binary
    device fully, a level device by ``switch_level_steps`` levels, a continuous one by a
    Gaussian increment; results stay within ``[g_off_s, g_on_s]``. A cell's programming
    deviation is kept across level steps (a step adds the level spacing).
    """

    g_on_s: float = 100e-6
    g_off_s: float = 10e-6
    v_read_v: float = 0.2
    preset: str = field(default="custom", init=False)
    levels: int | None = None
    g_dtod_sigma_ln: float = 0.0
    g_dtod_poly_s: tuple = ()
    read_noise_std: float = 0.0
    drift_nu: float = 0.0
    drift_nu_dtod: float = 0.0
    drift_t0_sec: float = 20.0
    stuck_on_rate: float = 0.0
    stuck_off_rate: float = 0.0
    iv_v0_v: float | None = None
    switch_v_th_v: float = 0.5
    switch_tau_sec: float = 0.0
    switch_v_ref_v: float = 1.0
    switch_v0_v: float = 0.1
    switch_level_steps: int = 1
    switch_step_s: float | None = None
    switch_step_std_s: float = 0.0

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)   # noqa: E731 (frozen)
        for name in ("g_on_s", "g_off_s", "v_read_v", "drift_t0_sec", "switch_v_th_v",
                     "switch_v_ref_v", "switch_v0_v"):
            put(name, _positive(name, getattr(self, name)))
        if self.g_on_s <= self.g_off_s:
            raise ValueError(f"g_on_s ({self.g_on_s}) must exceed g_off_s ({self.g_off_s})")
        for name in ("g_dtod_sigma_ln", "drift_nu", "drift_nu_dtod", "switch_tau_sec",
                     "switch_step_std_s"):
            put(name, _non_negative(name, getattr(self, name)))
        for name in ("stuck_on_rate", "stuck_off_rate"):
            put(name, _rate(name, getattr(self, name)))
        if self.stuck_on_rate + self.stuck_off_rate > 1:
            raise ValueError(f"stuck_on_rate + stuck_off_rate must be at most 1, not "
                             f"{self.stuck_on_rate + self.stuck_off_rate!r}")
        if not _is_number(self.read_noise_std) or not 0 <= self.read_noise_std < 1:
            raise ValueError(f"read_noise_std must be in [0, 1), not {self.read_noise_std!r}")
        put("read_noise_std", float(self.read_noise_std))
        if self.levels is not None:
            check_int("levels", self.levels, 2, 65536)
            put("levels", int(self.levels))
        poly = self.g_dtod_poly_s
        if isinstance(poly, (str, bytes)) or not isinstance(poly, (tuple, list)) \
                or not all(_is_number(c) and math.isfinite(c) for c in poly):
            raise ValueError(f"g_dtod_poly_s must be a sequence of finite numbers (siemens), "
                             f"not {poly!r}")
        put("g_dtod_poly_s", tuple(float(c) for c in poly))
        if self.iv_v0_v is not None:
            # 0 and None both mean linear; stored as None, which the parasitic solver takes
            put("iv_v0_v", _non_negative("iv_v0_v", self.iv_v0_v) or None)
        if self.switch_v_th_v <= self.v_read_v:
            raise ValueError(f"switch_v_th_v ({self.switch_v_th_v}) must exceed v_read_v "
                             f"({self.v_read_v}): a read would switch cells")
        check_int("switch_level_steps", self.switch_level_steps, 1, 65535)
        if self.switch_step_s is not None:
            # 0 and None both mean "switch fully" (TOML has no None)
            put("switch_step_s", _non_negative("switch_step_s", self.switch_step_s) or None)
        if self.switch_step_s is not None and self.levels is not None:
            raise ValueError(f"switch_step_s is for continuous devices (levels None); a device "
                             f"with {self.levels} levels steps by whole levels: set "
                             f"switch_step_s = 0, not {self.switch_step_s!r}")

    # --- derived ------------------------------------------------------------------------

    @property
    def on_off_ratio(self) -> float:
        """``g_on_s / g_off_s``."""
        return self.g_on_s / self.g_off_s

    @property
    def iv_linear(self) -> bool:
        return self.iv_v0_v is None

    def non_ideal_parameters(self) -> dict:
        """Parameters (name: value) that make this device differ from an ideal one in what
        a read of programmed cells returns. Switching parameters are not among them: they
        shape programming, not the programmed state. Empty for an ideal device."""
        ideal = Device()
        names = ("levels", "g_dtod_sigma_ln", "g_dtod_poly_s", "read_noise_std", "drift_nu",
                 "drift_nu_dtod", "stuck_on_rate", "stuck_off_rate")
        out = {n: getattr(self, n) for n in names if getattr(self, n) != getattr(ideal, n)
               and not (n == "g_dtod_poly_s" and not any(self.g_dtod_poly_s))}
        if not self.iv_linear:
            out["iv_v0_v"] = self.iv_v0_v
        return out

    @property
    def is_ideal(self) -> bool:
        """True when programming returns the targets exactly, reads are exact and linear and
        nothing drifts."""
        return not self.non_ideal_parameters()

    def record(self) -> dict:
        """Preset name and every parameter, JSON-ready (tuples as lists):
        ``device_from_record(d.record()) == d``."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}

    def level_conductances(self) -> np.ndarray | None:
        """The reachable conductances (siemens, ascending; ``levels`` values from G_off to
        G_on), or None for a continuous device."""
        if self.levels is None:
            return None
        return np.linspace(self.g_off_s, self.g_on_s, self.levels)

    def program_std_s(self, target_s) -> np.ndarray:
        """Standard deviation (siemens) of the additive programming error at targets
        ``target_s``: ``max(0, sum_k c_k (G_T / g_on_s)**k)``."""
        g = np.asarray(target_s, np.float64) / self.g_on_s
        sigma = np.zeros_like(g)
        for k, c in enumerate(self.g_dtod_poly_s):
            sigma = sigma + c * g ** k
        return np.maximum(sigma, 0.0)

    # --- operations ---------------------------------------------------------------------

    def snap(self, target_s) -> np.ndarray:
        """Targets snapped to the nearest reachable level (ties to the higher level), clipped
        to ``[g_off_s, g_on_s]``; continuous devices return the targets unchanged."""
        t = np.asarray(target_s, np.float64)
        if self.levels is None:
            return t
        return self.level_conductances()[self._level_index(t)]

    def _level_index(self, g_s: np.ndarray) -> np.ndarray:
        spacing = (self.g_on_s - self.g_off_s) / (self.levels - 1)
        idx = np.floor((g_s - self.g_off_s) / spacing + 0.5)
        return np.clip(idx, 0, self.levels - 1).astype(np.int64)

    def _need_rng(self, rng, what: str):
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"device preset {self.preset!r} draws {what}: pass a seeded "
                             f"numpy.random.Generator as rng, not {rng!r}")
        return rng

    def program(self, target_s, rng: np.random.Generator | None = None,
                stuck_map=None) -> ProgrammedCells:
        """Program cells to ``target_s`` (siemens, any shape): one programmed array.

        Steps, and the draws they make from ``rng`` in this order (each only when its
        parameter is non-zero, so an ideal device draws nothing and returns the targets bit
        for bit):

        1. snap the targets to the reachable levels (:meth:`snap`);
        2. stuck cells: ``stuck_map`` if given (int array of the targets' shape, +1 stuck at
           G_on, -1 stuck at G_off, 0 healthy; the rates are then not used), else one
           ``rng.random`` per cell: ``u < stuck_on_rate`` stuck on, else ``u <
           stuck_on_rate + stuck_off_rate`` stuck off;
        3. multiplicative error: ``G = G_T * exp(g_dtod_sigma_ln * z)``, one normal per cell;
        4. additive error: ``G = G + program_std_s(G_T) * z``, one normal per cell;
           conductances are clipped at 0 (a conductance cannot be negative);
        5. stuck cells set to exactly G_on / G_off;
        6. drift exponents: ``nu = max(0, drift_nu + drift_nu_dtod * z)``, one normal per cell
           when ``drift_nu_dtod > 0``; 0 on stuck cells.

        Raises
        ------
        ValueError
            Negative or non-finite targets, a malformed stuck map, or a missing ``rng`` when
            the device has something to draw.
        """
        t = np.asarray(target_s, np.float64)
        bad = ~np.isfinite(t) | (t < 0)
        if bad.any():
            raise ValueError(f"target_s must be finite and non-negative (siemens), not "
                             f"{t[bad].flat[0].item()!r}")
        g_t = self.snap(t)
        g = g_t
        if stuck_map is not None:
            stuck = np.asarray(stuck_map)
            if stuck.shape != t.shape:
                raise ValueError(f"stuck_map shape {stuck.shape} does not match the targets "
                                 f"{t.shape}")
            if not np.all(np.isin(stuck, (STUCK_OFF, HEALTHY, STUCK_ON))):
                raise ValueError("stuck_map entries must be +1 (stuck on), -1 (stuck off) or "
                                 "0 (healthy)")
            stuck = stuck.astype(np.int8)
        elif self.stuck_on_rate or self.stuck_off_rate:
            u = self._need_rng(rng, "stuck cells").random(t.shape)
            stuck = np.where(u < self.stuck_on_rate, STUCK_ON,
                             np.where(u < self.stuck_on_rate + self.stuck_off_rate,
                                      STUCK_OFF, HEALTHY)).astype(np.int8)
        else:
            stuck = np.zeros(t.shape, np.int8)
        if self.g_dtod_sigma_ln:
            z = self._need_rng(rng, "programming errors").standard_normal(t.shape)
            g = g * np.exp(self.g_dtod_sigma_ln * z)
        if any(self.g_dtod_poly_s):
            z = self._need_rng(rng, "programming errors").standard_normal(t.shape)
            g = np.maximum(g + self.program_std_s(g_t) * z, 0.0)
        if stuck.any():
            g = np.where(stuck == STUCK_ON, self.g_on_s,
                         np.where(stuck == STUCK_OFF, self.g_off_s, g))
        if self.drift_nu_dtod:
            z = self._need_rng(rng, "drift exponents").standard_normal(t.shape)
            nu = np.maximum(self.drift_nu + self.drift_nu_dtod * z, 0.0)
        else:
            nu = np.full(t.shape, self.drift_nu)
        nu = np.where(stuck != HEALTHY, 0.0, nu)
        # a copy even for the ideal device: callers may modify the programmed state in place
        return ProgrammedCells(np.array(g, np.float64), stuck, nu)

    def drift(self, g_s, t_sec: float, nu=None) -> np.ndarray:
        """Conductance ``t_sec`` seconds after programming: ``G0 * (t / t0) ** -nu``.

        ``g_s`` are the conductances at ``t0 = drift_t0_sec`` (what :meth:`program` returns),
        ``nu`` the per-cell exponents (:attr:`ProgrammedCells.nu`; default ``drift_nu``).
        The law is stated for ``t >= t0``; earlier times are an error."""
        if not _is_number(t_sec) or not math.isfinite(t_sec) or t_sec < self.drift_t0_sec:
            raise ValueError(f"t_sec must be a finite time >= drift_t0_sec "
                             f"({self.drift_t0_sec}), not {t_sec!r}")
        nu = self.drift_nu if nu is None else np.asarray(nu, np.float64)
        return np.asarray(g_s, np.float64) * (t_sec / self.drift_t0_sec) ** -nu

    def read(self, g_s, rng: np.random.Generator | None = None) -> np.ndarray:
        """Conductances as one read sees them: ``G * (1 + read_noise_std * z)``, a fresh
        normal per cell per call (none for a noise-free device, which returns ``g_s``)."""
        g = np.asarray(g_s, np.float64)
        if not self.read_noise_std:
            return g.copy()
        z = self._need_rng(rng, "read noise").standard_normal(g.shape)
        return g * (1.0 + self.read_noise_std * z)

    def cell_current(self, g_s, v_v) -> np.ndarray:
        """Cell current in amperes at voltage ``v_v``: ``g V`` (linear) or
        ``g * iv_v0_v * sinh(V / iv_v0_v)``."""
        g = np.asarray(g_s, np.float64)
        v = np.asarray(v_v, np.float64)
        if self.iv_linear:
            return g * v
        return g * self.iv_v0_v * np.sinh(v / self.iv_v0_v)

    def switching_probability(self, amplitude_v, width_sec, polarity=SET) -> np.ndarray:
        """Probability that one pulse switches a cell: 0 below ``switch_v_th_v``, else
        ``1 - exp(-width / tau(|V|))`` (see the class notes). ``polarity`` (+1 SET, -1 RESET)
        does not change the law in this model (symmetric switching); it is validated and
        kept for devices that will differ."""
        a = np.asarray(amplitude_v, np.float64)
        w = np.asarray(width_sec, np.float64)
        pol = np.asarray(polarity)
        if not np.all(np.isfinite(a)):
            bad = a[~np.isfinite(a)].flat[0].item()
            raise ValueError(f"amplitude_v must be finite, not {bad!r}")
        if not np.all(np.isfinite(w) & (w > 0)):
            raise ValueError(f"width_sec must be positive and finite, not "
                             f"{w[~(np.isfinite(w) & (w > 0))].flat[0].item()!r}")
        if not np.all(np.isin(pol, (SET, RESET))):
            raise ValueError(f"polarity must be +1 (SET) or -1 (RESET), not "
                             f"{pol[~np.isin(pol, (SET, RESET))].flat[0].item()!r}")
        above = np.abs(a) >= self.switch_v_th_v
        if self.switch_tau_sec == 0:
            p = np.where(above, 1.0, 0.0)
        else:
            tau = self.switch_tau_sec * np.exp(-(np.abs(a) - self.switch_v_ref_v)
                                               / self.switch_v0_v)
            p = np.where(above, -np.expm1(-w / tau), 0.0)
        return np.broadcast_to(p, np.broadcast_shapes(a.shape, w.shape, pol.shape)).copy()

    def pulse(self, g_s, polarity, amplitude_v, width_sec, rng: np.random.Generator | None = None,
              stuck=None) -> np.ndarray:
        """Conductances after one pulse on every cell of ``g_s`` (vectorised).

        ``polarity`` is +1 (SET, towards G_on), -1 (RESET, towards G_off) or 0 (no pulse on
        that cell), broadcast against ``g_s`` like ``amplitude_v`` and ``width_sec``; cells
        where ``stuck`` (a :attr:`ProgrammedCells.stuck` map) is non-zero do not change.
        Draws, in order: one ``rng.random`` per cell (did it switch: ``u < p``), unless every
        probability is 0 or 1; then, for continuous devices with ``switch_step_std_s > 0``,
        one normal per cell for the size of the step. :meth:`pulse_outcome` is the response
        to given draws.
        """
        g = np.asarray(g_s, np.float64)
        p = self._pulse_probability(g, polarity, amplitude_v, width_sec, stuck)
        if np.all((p == 0) | (p == 1)):
            u = np.zeros(g.shape)          # u < p is then p == 1: nothing to draw
        else:
            u = self._need_rng(rng, "switching outcomes").random(g.shape)
        z = np.zeros(g.shape)
        if self.levels is None and self.switch_step_s is not None and self.switch_step_std_s \
                and (u < p).any():
            z = self._need_rng(rng, "switching steps").standard_normal(g.shape)
        return self.pulse_outcome(g, polarity, amplitude_v, width_sec, u, z, stuck)

    def _pulse_probability(self, g, polarity, amplitude_v, width_sec, stuck) -> np.ndarray:
        pol = np.broadcast_to(np.asarray(polarity), g.shape)
        if not np.all(np.isin(pol, (SET, 0, RESET))):
            raise ValueError(f"polarity must be +1 (SET), -1 (RESET) or 0 (no pulse), not "
                             f"{pol[~np.isin(pol, (SET, 0, RESET))].flat[0].item()!r}")
        p = np.broadcast_to(self.switching_probability(amplitude_v, width_sec,
                                                       np.where(pol == 0, SET, pol)), g.shape)
        p = np.where(pol == 0, 0.0, p)
        if stuck is not None:
            p = np.where(np.asarray(stuck) != HEALTHY, 0.0, p)
        return p

    def pulse_outcome(self, g_s, polarity, amplitude_v, width_sec, u, z, stuck=None
                      ) -> np.ndarray:
        """Conductances after one pulse, given its draws: the cell switches when ``u < p``
        (``u`` uniform in [0, 1), one per cell), and a continuous device's step is
        ``switch_step_s + switch_step_std_s * z`` (``z`` standard normal, one per cell). The
        law of :meth:`pulse`, for callers that draw per cell themselves
        (:mod:`golden.programming` draws each cell's pulses from a counter-based stream, so
        that the order cells are programmed in does not change their outcome)."""
        g = np.asarray(g_s, np.float64)
        pol = np.broadcast_to(np.asarray(polarity), g.shape)
        p = self._pulse_probability(g, polarity, amplitude_v, width_sec, stuck)
        fired = np.asarray(u) < p
        direction = np.where(fired, pol, 0).astype(np.float64)
        if self.levels is not None:
            spacing = (self.g_on_s - self.g_off_s) / (self.levels - 1)
            idx = self._level_index(g)
            new = np.clip(idx + direction.astype(np.int64) * self.switch_level_steps,
                          0, self.levels - 1)
            return g + (new - idx) * spacing
        if self.switch_step_s is None:
            return np.where(direction > 0, self.g_on_s, np.where(direction < 0, self.g_off_s, g))
        step = self.switch_step_s + self.switch_step_std_s * np.asarray(z, np.float64)
        moved = np.clip(g + direction * np.maximum(step, 0.0), self.g_off_s, self.g_on_s)
        return np.where(fired, moved, g)


# --- presets: subclasses that only override defaults -------------------------------------


@dataclass(frozen=True)
class IdealDevice(Device):
    """Ideal two-terminal cell: every cell exactly at its target, exact linear reads, no
    drift, no faults, deterministic switching above threshold.

    The conductances (100 uS / 10 uS, on/off 10) and the 0.2 V read are illustrative of
    filamentary RRAM, not a fitted device (they sit in the peer ranges of DESIGN.md §2:
    on/off 10-100, read 0.1-0.5 V)."""

    preset: str = field(default="ideal", init=False)


@dataclass(frozen=True)
class RramDevice(Device):
    """Binary filamentary RRAM: two states, lognormal device-to-device spread, read noise.

    * 100 uS / 10 uS (on/off 10), 0.2 V read: the lower end of the peer ranges in DESIGN.md
      §2 (on/off 10-100, R_on 1-100 kOhm, read 0.1-0.5 V); illustrative, not fitted.
    * ``g_dtod_sigma_ln = 0.1``: resistance distributions of filamentary oxide RRAM are
      lognormal (Wong et al., "Metal-oxide RRAM", Proc. IEEE 100, 1951 (2012)); the width is
      an illustrative LRS-like value, not fitted (HRS spreads are typically wider).
    * ``read_noise_std = 0.01`` (1 % relative): illustrative of RTN/1-f read fluctuations.
    * Switching: Poisson switching with ``tau(V) = tau0 exp(-V/V0)``, the form of Gaba et al.,
      Nanoscale 5, 5872 (2013); threshold 0.8 V, ``tau`` = 100 ns at 1.2 V, ``V0`` = 0.1 V
      are illustrative numbers.
    * Stuck cells off by default; MNSIM's defaults (DESIGN.md §2) are about 1 % stuck on
      (LRS) and 9 % stuck off (HRS): set ``stuck_on_rate``/``stuck_off_rate`` to study them.
    """

    preset: str = field(default="rram", init=False)
    levels: int | None = 2
    g_dtod_sigma_ln: float = 0.1
    read_noise_std: float = 0.01
    switch_v_th_v: float = 0.8
    switch_tau_sec: float = 100e-9
    switch_v_ref_v: float = 1.2
    switch_v0_v: float = 0.1


@dataclass(frozen=True)
class PcmDevice(Device):
    """Phase-change memory after Nandakumar et al., "Mixed-precision deep learning based on
    computational memory", Front. Neurosci. 14:406 (2020), IBM's doped-GST PCM.

    * ``g_on_s = 25 uS`` = Gmax of the programming-noise fit; ``g_off_s = 1 uS`` is an
      illustrative RESET state (on/off 25), not from the paper.
    * Programming noise ``sigma = 0.26348 + 1.9650 g - 1.1731 g**2`` uS with ``g = G/Gmax``
      (Nandakumar et al. 2020; the same fit is aihwkit's ``PCMLikeNoiseModel``, which clips
      it at 0 as :meth:`program_std_s` does): ``g_dtod_poly_s``.
    * Drift ``G(t) = G0 (t/t0)**-nu``, ``t0 = 20 s``, ``nu`` about 0.05-0.1 (Nandakumar et al.
      2020). ``drift_nu = 0.05`` and ``drift_nu_dtod = 0.008`` are the mean and spread of the
      exponent at high conductance in the fit of Joshi et al., Nat. Commun. 11, 2473 (2020),
      as documented by aihwkit (0.049 and 0.008 at ``g = 1``; lower states drift faster, up
      to 0.1 -- a single exponent is this preset's simplification).
    * ``read_noise_std = 0.037``: the 1/f read noise of that same fit, ``Q_s
      sqrt(ln((t + t_read) / (2 t_read)))`` with ``Q_s = 0.0088`` (``g = 1``), ``t = t0 =
      20 s`` and ``t_read = 250 ns``, frozen as a relative std (it grows for low
      conductances and with time in the fit).
    * SET pulses: a noisy increment of 0.75 uS mean and 0.5 uS std per pulse above a 0.8 V
      threshold, certain to fire -- illustrative of the small, noisy, cumulative SET
      increments the mixed-precision scheme relies on, not fitted. (In real PCM a RESET is
      abrupt; the mixed-precision scheme uses SET pulses only.)
    """

    preset: str = field(default="pcm", init=False)
    g_on_s: float = 25e-6
    g_off_s: float = 1e-6
    g_dtod_poly_s: tuple = (0.26348e-6, 1.9650e-6, -1.1731e-6)
    read_noise_std: float = 0.037
    drift_nu: float = 0.05
    drift_nu_dtod: float = 0.008
    drift_t0_sec: float = 20.0
    switch_v_th_v: float = 0.8
    switch_step_s: float | None = 0.75e-6
    switch_step_std_s: float = 0.5e-6


@dataclass(frozen=True)
class Dw3Device(Device):
    """Quantized domain-wall (DW-MTJ) synapse with 3 states and stochastic writes, after
    Dhull et al., IEEE TNNLS (2025) (3-5 stable quantized states, stochastic writes,
    process variation; VGG8/CIFAR-10 90.4 % inference) and the group's related work with 2-,
    3- and 5-state stochastic DW synapses (Al Misba, Lozano, Querlioz, Atulasimha, IEEE
    Access 10, 84946 (2022)).

    From the papers: the number of states and that writes are stochastic. Illustrative, not
    fitted: 50 uS / 20 uS (a magnetic tunnel junction's on/off is 1 + TMR, here TMR 150 %),
    a 1 uS device-to-device spread around each state (DW pinning position), 0.5 % read
    noise, and switching that succeeds with probability ``1 - exp(-1)`` = 63 % for a 1.0 V,
    10 ns pulse (threshold 0.6 V, ``V0`` 0.1 V). One successful pulse moves one state.
    """

    preset: str = field(default="dw3", init=False)
    g_on_s: float = 50e-6
    g_off_s: float = 20e-6
    levels: int | None = 3
    g_dtod_poly_s: tuple = (1e-6,)
    read_noise_std: float = 0.005
    switch_v_th_v: float = 0.6
    switch_tau_sec: float = 10e-9
    switch_v_ref_v: float = 1.0
    switch_v0_v: float = 0.1


@dataclass(frozen=True)
class Dw5Device(Dw3Device):
    """The 5-state variant of :class:`Dw3Device` (same sources; the 5-state synapse is the
    nominal device of Al Misba et al. 2022). Only the number of states differs."""

    preset: str = field(default="dw5", init=False)
    levels: int | None = 5


DEVICE_PRESETS: dict[str, type[Device]] = {
    "ideal": IdealDevice, "rram": RramDevice, "pcm": PcmDevice, "dw3": Dw3Device,
    "dw5": Dw5Device,
}

_PARAMETERS = tuple(f.name for f in fields(Device) if f.init)


def device_preset(name: str = "ideal", **overrides) -> Device:
    """The preset ``name`` of :data:`DEVICE_PRESETS` with parameters overridden.

    Raises
    ------
    ValueError
        An unknown preset (the message lists the valid ones), an unknown parameter or a
        value out of range (the message names the parameter and the value).
    """
    if not isinstance(name, str) or name not in DEVICE_PRESETS:
        raise ValueError(f"unknown device preset {name!r}; expected one of "
                         f"{', '.join(DEVICE_PRESETS)}")
    for key, value in overrides.items():
        if key not in _PARAMETERS:
            raise ValueError(f"unknown device parameter {key!r} (= {value!r}); expected one "
                             f"of {', '.join(_PARAMETERS)}")
    return DEVICE_PRESETS[name](**overrides)


def device_from_record(record) -> Device:
    """A device from a preset name (``"rram"``), a record ``{"preset": name, **parameters}``
    (a ``[device]`` TOML table, :meth:`Device.record`, :func:`dataclasses.asdict`; a missing
    preset means ``"ideal"``; ``"custom"`` is the bare :class:`Device`), or a Device (returned
    as is)."""
    if isinstance(record, Device):
        return record
    if isinstance(record, str):
        return device_preset(record)
    if not isinstance(record, Mapping):
        raise ValueError(f"device must be a preset name, a table of parameters or a Device, "
                         f"not {record!r}")
    params = dict(record)
    name = params.pop("preset", "ideal")
    if name == "custom":
        for key, value in params.items():
            if key not in _PARAMETERS:
                raise ValueError(f"unknown device parameter {key!r} (= {value!r}); expected "
                                 f"one of {', '.join(_PARAMETERS)}")
        return Device(**params)
    return device_preset(name, **params)
