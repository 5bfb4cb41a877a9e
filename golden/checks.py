"""Validation shared by the parameter dataclasses: errors name the value and what was expected."""

from __future__ import annotations

import numpy as np

__all__ = ["check_int"]


def check_int(name: str, value, lo: int, hi: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
