"""cocotb drivers and monitors for ``amaranth.lib.stream`` ports (valid/ready).

Timing convention used by every mbnn testbench: inputs change at the falling clock edge, and
after the design has settled (``ReadOnly``) the handshake that the next rising edge will perform
is read off. Reads therefore never race the rising edge, whichever simulator runs the design.
Ports are found by Amaranth's flattened names: ``<prefix>__valid``, ``__ready``, ``__payload``.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Callable

from cocotb.triggers import FallingEdge, ReadOnly

from .coverage import Coverage, stall_class
from .payload import PayloadCodec

__all__ = ["StreamSource", "StreamSink"]


class _StreamPort:
    """Handles of one flattened stream port and the shared driver state."""

    def __init__(self, dut, prefix: str, clk, codec: PayloadCodec, rng: random.Random):
        self.prefix = prefix
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk, self.codec, self.rng = clk, codec, rng


class StreamSource(_StreamPort):
    """Drives a stream input of the design from a queue of beats.

    Parameters
    ----------
    dut, prefix
        Design handle and port name prefix (``"i"`` for ``i__valid`` ...).
    clk
        Clock handle.
    codec : PayloadCodec
    rng : random.Random
        Seeded generator for idle-cycle insertion and junk payloads.
    idle_probability : float
        Chance of holding ``valid`` low for a cycle before presenting the next beat.
    on_accept : callable, optional
        Called with each beat (a dict) in the cycle it is accepted; must not write signals.
    """

    def __init__(self, dut, prefix: str, clk, codec: PayloadCodec, rng: random.Random,
                 idle_probability: float = 0.0, on_accept: Callable[[dict], None] | None = None,
                 coverage: Coverage | None = None):
        super().__init__(dut, prefix, clk, codec, rng)
        self.idle_probability = idle_probability
        self.on_accept = on_accept
        self.coverage = coverage
        self.queue: deque[dict] = deque()
        self._words: deque[int] = deque()       # each queued beat packed, sent every cycle
        self.accepted = 0
        self._current: dict | None = None
        self._current_word = 0
        self._since_accept: int | None = None   # cycles since the last accepted beat
        self.valid.value = 0

    def send(self, beats) -> None:
        """Queue beats (dicts of payload fields) for sending."""
        for beat in beats:
            # packed once, here: malformed beats are rejected now, not mid-simulation
            self._words.append(self.codec.pack(**beat))
            self.queue.append(dict(beat))

    @property
    def idle(self) -> bool:
        return self._current is None and not self.queue

    @property
    def offered(self) -> dict | None:
        """The beat on the bus, or else the next one queued (what the driver offers next)."""
        if self._current is not None:
            return self._current
        return self.queue[0] if self.queue else None

    async def run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            if self._current is None and self.queue and self.rng.random() >= self.idle_probability:
                self._current = self.queue.popleft()
                self._current_word = self._words.popleft()
            if self._current is None:
                # Junk while idle: the design must ignore the payload when valid is low.
                self.payload.value = self.rng.getrandbits(self.codec.width)
                self.valid.value = 0
            else:
                self.payload.value = self._current_word
                self.valid.value = 1
            await ReadOnly()
            if self._since_accept is not None:
                self._since_accept += 1
            if self._current is not None and int(self.ready.value) == 1:
                self.accepted += 1
                if self.coverage is not None and self._since_accept is not None:
                    # beats taken on consecutive cycles, or after a gap of idle or refused cycles
                    gap = self._since_accept - 1
                    self.coverage.hit(f"{self.prefix}: back-to-back beats" if gap == 0 else
                                      f"{self.prefix}: gap of {stall_class(gap)} cycles")
                self._since_accept = 0
                if self.on_accept is not None:
                    self.on_accept(self._current)
                self._current = None


class StreamSink(_StreamPort):
    """Receives a stream output of the design with random backpressure.

    Also checks the stream protocol: once ``valid`` is high it must stay high, with the same
    payload, until the beat is taken -- except across a reset (pass the ``reset`` handle), which
    may drop it. Nothing is taken while ``reset`` is high.
    """

    def __init__(self, dut, prefix: str, clk, codec: PayloadCodec, rng: random.Random,
                 backpressure_probability: float = 0.0,
                 on_beat: Callable[[dict], None] | None = None, reset=None,
                 coverage: Coverage | None = None):
        super().__init__(dut, prefix, clk, codec, rng)
        self.backpressure_probability = backpressure_probability
        self.on_beat = on_beat
        self.reset = reset
        self.coverage = coverage
        self._stalled = 0          # cycles the offered beat has waited
        self.received = 0
        self.protocol_errors: list[str] = []
        self._pending: int | None = None   # payload offered but not taken last cycle
        self.ready.value = 0

    async def run(self) -> None:
        cycle = 0
        while True:
            await FallingEdge(self.clk)
            cycle += 1
            take = self.rng.random() >= self.backpressure_probability
            self.ready.value = int(take)
            await ReadOnly()
            if self.reset is not None and int(self.reset.value) == 1:
                self._pending = None   # a reset may drop an offered beat
                self._stalled = 0
                continue
            valid = int(self.valid.value) == 1
            word = self.payload.value.to_unsigned() if valid else None
            if self._pending is not None and (not valid or word != self._pending):
                self.protocol_errors.append(
                    f"cycle {cycle}: beat {self.codec.unpack(self._pending)} withdrawn or changed "
                    f"before it was taken (valid={int(valid)}, payload={word})")
            if valid and not take:
                self._stalled += 1
            if valid and take:
                if self.coverage is not None and self._stalled:
                    self.coverage.hit(f"{self.prefix}: stall of {stall_class(self._stalled)} "
                                      f"cycles")
                self._stalled = 0
                self.received += 1
                self._pending = None
                if self.on_beat is not None:
                    self.on_beat(self.codec.unpack(word))
            else:
                self._pending = word if valid else None
