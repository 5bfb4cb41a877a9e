"""The column ADC: resolution, full-scale range, per-column gain and offset errors.

The ADC turns a column's differential current into a signed code. Its ideal case -- an LSB of
exactly one weight, no gain or offset error -- is the exact ADC the chip has had so far:
``code = clip(round(column sum), code range)``.

:meth:`Adc.convert` is the specification the behavioural Verilog crossbar
(``rtl/analog/mbnn_crossbar.v``) implements; its docstring lists the IEEE-754 double
operations in order so the two agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import check_int

__all__ = ["Adc", "AdcErrors"]


@dataclass(frozen=True)
class AdcErrors:
    """Per-column errors of one chip's ADCs, drawn once (:meth:`Adc.draw_errors`).

    Attributes
    ----------
    gain : float64 array (columns,)
        Multiplicative gain of each column's ADC (1 = ideal).
    offset_lsb : float64 array (columns,)
        Additive offset of each column's ADC, in LSB (0 = ideal).
    """

    gain: np.ndarray
    offset_lsb: np.ndarray


@dataclass(frozen=True)
class Adc:
    """A signed column ADC.

    Parameters
    ----------
    bits : int
        Resolution; codes are in ``[-2**(bits-1), 2**(bits-1) - 1]``.
    full_scale : float, optional
        Column-sum magnitude, in weight units (one weight = ``V_read * G_unit`` of current),
        that maps to the code ``2**(bits-1)``, where the ADC saturates. One LSB is
        ``full_scale / 2**(bits-1)`` weights. Default ``2**(bits-1)``: an LSB of exactly one
        weight, so codes are column sums.
    gain_dtod : float
        Standard deviation of the per-column gain error (relative; gain = ``1 + gain_dtod z``).
    offset_dtod_lsb : float
        Standard deviation of the per-column offset error, in LSB.
    """

    bits: int
    full_scale: float | None = None
    gain_dtod: float = 0.0
    offset_dtod_lsb: float = 0.0

    def __post_init__(self):
        check_int("bits", self.bits, 2, 24)
        if self.full_scale is None:
            object.__setattr__(self, "full_scale", float(1 << (self.bits - 1)))
        for name, lo_open in (("full_scale", True), ("gain_dtod", False),
                              ("offset_dtod_lsb", False)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(v) or (v <= 0 if lo_open else v < 0):
                raise ValueError(f"{name} must be a {'positive' if lo_open else 'non-negative'} "
                                 f"finite number, not {v!r}")
            object.__setattr__(self, name, float(v))

    @property
    def code_min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def lsb_weights(self) -> float:
        """Weights per LSB: ``full_scale / 2**(bits-1)`` (1.0 for the default full scale)."""
        return self.full_scale / (1 << (self.bits - 1))

    @property
    def unit_lsb(self) -> bool:
        """True when one LSB is exactly one weight (the default full scale)."""
        return self.lsb_weights == 1.0

    @property
    def is_ideal(self) -> bool:
        """LSB of exactly one weight and no gain or offset error: the exact ADC of today."""
        return self.unit_lsb and self.gain_dtod == 0 and self.offset_dtod_lsb == 0

    def draw_errors(self, columns: int, rng: np.random.Generator | None = None) -> AdcErrors:
        """Per-column gain and offset errors of one chip (drawn once per chip).

        Draws, in order: ``columns`` normals for the gains (only if ``gain_dtod > 0``), then
        ``columns`` normals for the offsets (only if ``offset_dtod_lsb > 0``); an ideal ADC
        draws nothing and ``rng`` may be None. Gains are ``1 + gain_dtod * z``; offsets
        ``offset_dtod_lsb * z`` LSB."""
        check_int("columns", columns, 1, 1 << 24)
        gain = np.ones(columns)
        offset = np.zeros(columns)
        if (self.gain_dtod or self.offset_dtod_lsb) and not isinstance(rng, np.random.Generator):
            raise ValueError(f"ADC errors are random: pass a seeded numpy.random.Generator as "
                             f"rng, not {rng!r}")
        if self.gain_dtod:
            gain = 1.0 + self.gain_dtod * rng.standard_normal(columns)
        if self.offset_dtod_lsb:
            offset = self.offset_dtod_lsb * rng.standard_normal(columns)
        return AdcErrors(gain, offset)

    def convert(self, current_a, v_read_v: float, g_unit_s: float,
                errors: AdcErrors | None = None) -> np.ndarray:
        """Codes of column currents ``current_a`` (amperes; columns on the last axis).

        The operations, in IEEE-754 double precision and in this order (the Verilog must
        perform the same ones to agree bit for bit):

        1. ``lsb_a = (v_read_v * g_unit_s) * (full_scale / 2**(bits-1))`` -- once; the second
           factor is exactly 1.0 for the default full scale, so ``lsb_a == v_read_v *
           g_unit_s`` then;
        2. ``x = current_a / lsb_a``;
        3. ``x = x * gain[c]``, then ``x = x + offset_lsb[c]`` (per column ``c``; ``errors``
           None means gain 1.0 and offset 0.0, which leave ``x`` unchanged bit for bit);
        4. rounding: ``code = floor(x + 0.5)`` -- round half up (towards +infinity), the
           rule of ``rtl/analog/mbnn_crossbar.v``: ``$rtoi($floor(V_READ * current[c] /
           lsb_a + 0.5))``. ``x + 0.5`` is itself a rounded double, so the largest double
           below 0.5 codes 1 (``x + 0.5`` rounds to 1.0); the Verilog has the same quirk;
        5. saturation: ``code`` clipped to ``[code_min, code_max]`` (the Verilog clips the
           integer after ``$rtoi``; the two agree wherever ``|x| < 2**31``).

        The current the RTL converts is ``V_READ * s`` with ``s`` the sum, over driven rows in
        ascending order, of ``G+ - G-`` of each cell (one double addition per row, starting
        from 0.0); the golden crossbar read must form it the same way.

        Returns
        -------
        int64 array of the shape of ``current_a``.

        Raises
        ------
        ValueError
            Non-finite currents, or errors for a different number of columns.
        """
        i = np.asarray(current_a, np.float64)
        if not np.all(np.isfinite(i)):
            raise ValueError(f"current_a must be finite, not {i[~np.isfinite(i)].flat[0].item()!r}")
        for name, v in (("v_read_v", v_read_v), ("g_unit_s", g_unit_s)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, not {v!r}")
        lsb_a = (float(v_read_v) * float(g_unit_s)) * (self.full_scale / (1 << (self.bits - 1)))
        x = i / lsb_a
        if errors is not None:
            columns = i.shape[-1] if i.ndim else 1
            if errors.gain.shape != (columns,) or errors.offset_lsb.shape != (columns,):
                raise ValueError(f"ADC errors are for {errors.gain.shape[0]} columns, the "
                                 f"currents have {columns}")
            x = x * errors.gain
            x = x + errors.offset_lsb
        code = np.floor(x + 0.5)
        return np.clip(code, self.code_min, self.code_max).astype(np.int64)
