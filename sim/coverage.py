"""Functional coverage of the cocotb testbenches: declared bins and their hit counts.

A testbench module declares, for the parameter set it runs, the bins its stimulus must reach
(a threshold compare at a − T = 0 in each direction, an output stall of 4–15 cycles, a layer
gap, an argmax tie ...). Its tests hit them while they check; its last test,
:func:`closure`, fails when a declared bin was never hit -- a stimulus that stopped reaching a
case is a failure, not a silent gap. Hits go to the JSON file ``MBNN_COVERAGE`` names (set by
:func:`sim.runner.run_cocotb`), from which ``mbnn regress`` and the pytest runners report them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

__all__ = ["Coverage", "stall_class", "STALL_CLASSES", "read_coverage"]

# Length classes of a stall (cycles a valid beat waits for ready, or an input gap)
STALL_CLASSES = ("1", "2-3", "4-15", "16+")


def stall_class(cycles: int) -> str:
    """The class of a stall of ``cycles`` >= 1 cycles."""
    if cycles <= 1:
        return "1"
    if cycles <= 3:
        return "2-3"
    return "4-15" if cycles <= 15 else "16+"


class Coverage:
    """Declared bins of one testbench and how often each was hit.

    Parameters
    ----------
    block : str
        Name of the block (the report's heading).
    """

    def __init__(self, block: str):
        self.block = block
        self.bins: dict[str, str] = {}
        self.hits: Counter = Counter()

    def declare(self, name: str, description: str) -> None:
        self.bins[name] = description

    def hit(self, name: str, count: int = 1) -> None:
        """Count ``name``; sampling a bin that was not declared is ignored (the bin does not
        apply to this parameter set)."""
        if name in self.bins:
            self.hits[name] += count

    def missed(self) -> list[str]:
        return [b for b in self.bins if not self.hits[b]]

    def save(self) -> None:
        """Write the bins and hits to ``MBNN_COVERAGE`` (if set)."""
        path = os.environ.get("MBNN_COVERAGE")
        if not path:
            return
        Path(path).write_text(json.dumps(
            {"block": self.block,
             "bins": {b: {"description": d, "hits": self.hits[b]} for b, d in self.bins.items()}},
            indent=1) + "\n")

    def closure(self) -> None:
        """Save, then fail naming every declared bin that was never hit."""
        self.save()
        missed = self.missed()
        assert self.bins, f"{self.block}: no coverage bins declared"
        assert not missed, (f"{self.block}: {len(missed)} of {len(self.bins)} coverage bins never "
                            f"hit: " + "; ".join(f"{b} ({self.bins[b]})" for b in missed))


def read_coverage(path: Path) -> dict | None:
    """The saved coverage of a run: ``{"block", "bins": {name: {"description", "hits"}}}``."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text())
