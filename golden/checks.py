"""Validation shared by the parameter dataclasses: errors name the value and what was expected."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_int", "check_real"]


def check_int(name: str, value, lo: int, hi: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


def check_real(name: str, value, lo: float, lo_open: bool, what: str) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` and the value: a finite number
    (not a bool) above ``lo`` (``lo_open``) or at least ``lo``; ``what`` says which
    ("positive", "non-negative") in the message."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (value <= lo if lo_open else value < lo):
        raise ValueError(f"{name} must be a {what} finite number, not {value!r}")
    return float(value)
