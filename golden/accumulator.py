"""Accumulator: sums the ADC codes of a layer's row tiles per column, then applies the
sign-constant correction. Parameters shared with the RTL (``periphery.accumulator``) and the
golden twin.

Arithmetic of one output (lanes independent)::

    s = sum of the codes of beats first..last          (first resets the sum)
    a = (2 if double[entry] else 1) * s - bias[entry]

``entry`` selects a row of the correction table (one per layer and column tile in the core):
``double`` is set for layers with bipolar inputs, ``bias`` holds their weight column sums
(:mod:`golden.mapping`). The widths make overflow impossible for runs of up to ``max_terms``
beats; the twin rejects longer runs instead of wrapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import check_int
from .widths import index_bits, signed_bits

__all__ = ["AccumulatorParams", "AccumulatorModel", "signed_bits"]


@dataclass(frozen=True)
class AccumulatorParams:
    """Shape of one accumulator.

    Parameters
    ----------
    lanes : int
        Columns summed in parallel (array columns).
    code_bits : int
        Signed width of one ADC code.
    max_terms : int
        Longest run of beats (row tiles) summed into one output.
    bias_max : int
        Largest bias magnitude in the table.
    entries : int
        Rows of the correction table.
    """

    lanes: int
    code_bits: int
    max_terms: int
    bias_max: int
    entries: int

    def __post_init__(self):
        check_int("lanes", self.lanes, 1, 4096)
        check_int("code_bits", self.code_bits, 2, 24)
        check_int("max_terms", self.max_terms, 1, 1 << 20)
        check_int("bias_max", self.bias_max, 0, 1 << 40)
        check_int("entries", self.entries, 1, 1 << 16)

    @property
    def code_min(self) -> int:
        return -(1 << (self.code_bits - 1))

    @property
    def code_max(self) -> int:
        return (1 << (self.code_bits - 1)) - 1

    @property
    def sum_range(self) -> tuple[int, int]:
        return self.max_terms * self.code_min, self.max_terms * self.code_max

    @property
    def value_range(self) -> tuple[int, int]:
        """Every ``a`` the block can produce (scale 1 or 2, any table bias)."""
        lo, hi = self.sum_range
        return 2 * lo - self.bias_max, 2 * hi + self.bias_max

    @property
    def acc_bits(self) -> int:
        return signed_bits(*self.value_range)

    @property
    def bias_bits(self) -> int:
        return signed_bits(-self.bias_max, self.bias_max)

    @property
    def entry_bits(self) -> int:
        return index_bits(self.entries)

    @property
    def latency(self) -> int:
        """Cycles from the ``last`` beat's handshake to its output being valid."""
        return 1


class AccumulatorModel:
    """Golden twin: feed beats in handshake order, get outputs in order."""

    def __init__(self, params: AccumulatorParams, bias: np.ndarray, double: np.ndarray):
        bias = np.asarray(bias, np.int64)
        double = np.asarray(double, bool)
        if bias.shape != (params.entries, params.lanes) or double.shape != (params.entries,):
            raise ValueError(f"table must be bias {(params.entries, params.lanes)} and double "
                             f"({params.entries},), got {bias.shape} and {double.shape}")
        if np.abs(bias).max(initial=0) > params.bias_max:
            raise ValueError(f"bias magnitude {np.abs(bias).max()} exceeds bias_max "
                             f"{params.bias_max}")
        self.params, self.bias, self.double = params, bias, double
        self._sum = np.zeros(params.lanes, np.int64)
        self._terms = 0

    def reset(self) -> None:
        """The state after the block's reset: every running sum zero, no beats counted (a run
        that then starts without ``first`` sums from zero)."""
        self._sum[:], self._terms = 0, 0

    def step(self, codes, first: bool, last: bool, entry: int) -> np.ndarray | None:
        """One accepted beat; returns the output values when ``last``."""
        p = self.params
        codes = np.asarray(codes, np.int64)
        if codes.shape != (p.lanes,) or codes.min() < p.code_min or codes.max() > p.code_max:
            raise ValueError(f"codes must be {p.lanes} integers in [{p.code_min}, {p.code_max}]")
        if not 0 <= entry < p.entries:
            raise ValueError(f"entry must be in 0..{p.entries - 1}, not {entry}")
        if first:
            self._sum[:], self._terms = 0, 0
        self._sum += codes
        self._terms += 1
        if self._terms > p.max_terms:
            raise ValueError(f"run of {self._terms} beats exceeds max_terms {p.max_terms}")
        if not last:
            return None
        scale = 2 if self.double[entry] else 1
        return scale * self._sum - self.bias[entry]
