"""Bit widths of hardware fields, derived in one place for the golden model, the generated
periphery and the testbenches."""

from __future__ import annotations

__all__ = ["index_bits", "signed_bits"]


def index_bits(count: int) -> int:
    """Width of an unsigned field that numbers ``count`` things (0 .. count-1): at least one
    bit, so that a field of one thing still exists as a port."""
    return max(1, (int(count) - 1).bit_length())


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits
