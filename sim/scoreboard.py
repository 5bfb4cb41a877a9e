"""In-order scoreboard: compares what the design produced with what the golden model expects."""

from __future__ import annotations

from collections import deque

__all__ = ["InOrderScoreboard"]


class InOrderScoreboard:
    """Expected items are queued as stimulus is accepted; observed items must match in order.

    Parameters
    ----------
    name : str
        Used in messages.
    log : logging.Logger
    max_reported : int
        Mismatches logged individually before the rest are only counted.
    """

    def __init__(self, name: str, log, max_reported: int = 10):
        self.name, self.log, self.max_reported = name, log, max_reported
        self.expected: deque = deque()
        self.matched = 0
        self.mismatches: list[str] = []

    def expect(self, item) -> None:
        self.expected.append(item)

    def observe(self, item) -> None:
        if not self.expected:
            self._mismatch(f"unexpected output {item} (nothing outstanding)")
            return
        want = self.expected.popleft()
        if item == want:
            self.matched += 1
        else:
            self._mismatch(f"output #{self.matched + len(self.mismatches)}: got {item}, "
                           f"golden model expects {want}")

    def _mismatch(self, message: str) -> None:
        self.mismatches.append(message)
        if len(self.mismatches) <= self.max_reported:
            self.log.error("%s: %s", self.name, message)

    def check(self) -> None:
        """Raise ``AssertionError`` on any mismatch or outstanding expected item."""
        problems = []
        if self.mismatches:
            problems.append(f"{len(self.mismatches)} mismatches, first: {self.mismatches[0]}")
        if self.expected:
            problems.append(f"{len(self.expected)} expected outputs never arrived, first: "
                            f"{self.expected[0]}")
        assert not problems, f"{self.name}: " + "; ".join(problems)
        self.log.info("%s: %d outputs matched the golden model", self.name, self.matched)
