"""cocotb testbench of the generated BN-binarize block, checked against its golden twin.

The block's parameters arrive as JSON in ``MBNN_PARAMS`` (set by :mod:`sim.runner`).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cocotb.utils import get_sim_time

from golden.bn_binarize import BNBinarizeModel, BNBinarizeParams
from golden.bn_fold import FOLD_LIMIT, FoldedThreshold, fold_batchnorm
from periphery.bn_binarize import input_layout, output_layout
from sim.coverage import STALL_CLASSES, Coverage
from sim.payload import PayloadCodec
from sim.scoreboard import InOrderScoreboard
from sim.stimulus import random_batchnorm
from sim.streams import StreamSink, StreamSource
from sim.tb_base import ClockedStreamTB

PARAMS = BNBinarizeParams(**json.loads(os.environ["MBNN_PARAMS"]))
LANES = PARAMS.lanes


def lane_values(beat: dict) -> list[int]:
    """A beat's pre-activations, one per lane."""
    return [beat["value"]] if LANES == 1 else list(beat["value"])


def make_beat(values, channel: int) -> dict:
    values = [int(v) for v in values]
    return {"value": values[0] if LANES == 1 else values, "channel": int(channel)}


def pack_lanes(values, width: int) -> int:
    """Lane values as one port word, lane 0 in the low bits (two's complement)."""
    mask = (1 << width) - 1
    return sum((int(v) & mask) << (k * width) for k, v in enumerate(values))

# Functional coverage (sim.coverage): the last test fails if any bin was never hit.
COVERAGE = Coverage("bn_binarize")
for _direction, _invert in (("ge", 0), ("le", 1)):
    for _d in (-1, 0, 1):
        COVERAGE.declare(f"{_direction}: a-T={_d:+d}", f"a beat at threshold {_d:+d} on a "
                         f"channel with invert={_invert}")
COVERAGE.declare("constant channel", "a beat on a channel whose threshold is the range "
                 "minimum (its output never changes)")
COVERAGE.declare("reset with beats in flight", "reset while the pipeline holds beats")
COVERAGE.declare("write to the channel of a beat accepted in the same cycle",
                 "a table write the accepted beat must see (the read-during-write bypass)")
COVERAGE.declare("write while a beat waits in the pipeline",
                 "a table write to the channel of a beat already past the table read")
COVERAGE.declare("i: back-to-back beats", "input beats accepted on consecutive cycles")
COVERAGE.declare("o: back-to-back beats", "output beats taken on consecutive cycles")
for _c in STALL_CLASSES[:3]:
    COVERAGE.declare(f"i: gap of {_c} cycles", f"{_c} idle or refused cycles between beats")
for _c in STALL_CLASSES:
    COVERAGE.declare(f"o: stall of {_c} cycles", f"an output beat held {_c} cycles by o.ready")


class BNBinarizeTB(ClockedStreamTB):
    """Clock, reset, table loader, stream driver and monitor, golden model and scoreboard."""

    def __init__(self, dut, idle_probability: float = 0.0, backpressure_probability: float = 0.0):
        super().__init__(dut)
        self.params = PARAMS
        self.seed = cocotb.RANDOM_SEED
        global_seed = os.environ.get("COCOTB_RANDOM_SEED", "?")
        dut._log.info("test seed %d, derived from global seed %s and the test name; replay "
                      "with: mbnn regress --seed %s", self.seed, global_seed, global_seed)
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.model = BNBinarizeModel(self.params)
        self.scoreboard = InOrderScoreboard("bn_binarize", dut._log)
        self.accept_cycles: list[int] = []
        self.output_cycles: list[int] = []
        self.source = StreamSource(dut, "i", dut.clk, PayloadCodec(input_layout(self.params)),
                                   self.rng, idle_probability, on_accept=self._on_accept,
                                   coverage=COVERAGE)
        self.sink = StreamSink(dut, "o", dut.clk, PayloadCodec(output_layout(self.params)),
                               self.rng, backpressure_probability, on_beat=self._on_output,
                               reset=dut.rst, coverage=COVERAGE)
        dut.cfg__en.value = 0
        self.last_write: tuple[float, int] | None = None   # (sim time, channel)
        self.in_flight: list[int] = []     # channels of accepted beats not yet output

    def _on_accept(self, beat: dict) -> None:
        self.accept_cycles.append(self.cycle)
        c = beat["channel"]
        if self.last_write == (get_sim_time("ns"), c):
            COVERAGE.hit("write to the channel of a beat accepted in the same cycle")
        self.in_flight.append(c)
        values = lane_values(beat)
        for k, v in enumerate(values):
            d = v - int(self.model.threshold[c, k])
            if abs(d) <= 1:
                COVERAGE.hit(f"{'le' if self.model.invert[c, k] else 'ge'}: a-T={d:+d}")
            if self.model.threshold[c, k] == self.params.preact_min:
                COVERAGE.hit("constant channel")
        bits = self.model.output_bits(c, values)
        self.scoreboard.expect({"bit": bits, "channel": c})

    def _on_output(self, beat: dict) -> None:
        if self.in_flight:
            self.in_flight.pop(0)
        if self.output_cycles and self.output_cycles[-1] == self.cycle - 1:
            COVERAGE.hit("o: back-to-back beats")
        self.output_cycles.append(self.cycle)
        self.scoreboard.observe(beat)

    def write_entry(self, c: int, thresholds, inverts) -> None:
        """Drive one table write (in the current cycle) and record it in the model."""
        thresholds = [int(t) for t in thresholds]
        inverts = [bool(i) for i in inverts]
        self.model.write(c, thresholds, inverts)
        self.dut.cfg__en.value = 1
        self.dut.cfg__addr.value = c
        self.dut.cfg__threshold.value = pack_lanes(thresholds, self.params.acc_width)
        self.dut.cfg__invert.value = sum(int(b) << k for k, b in enumerate(inverts))

    async def load(self, folded: FoldedThreshold) -> None:
        """Write the whole table, one entry per cycle, while the block is idle (entry ``c``
        lane ``k`` is the folded layer's channel ``c * lanes + k``)."""
        await self.wait_idle()
        for c in range(self.params.channels):
            await FallingEdge(self.dut.clk)
            lanes = slice(c * LANES, (c + 1) * LANES)
            self.write_entry(c, folded.threshold[lanes], folded.invert[lanes])
        await FallingEdge(self.dut.clk)
        self.dut.cfg__en.value = 0

    async def wait_idle(self, timeout_cycles: int | None = None) -> None:
        """Wait until every queued beat has been sent and every expected output has arrived,
        then check the block reports itself idle."""
        if timeout_cycles is None:
            timeout_cycles = 100 + 50 * len(self.source.queue)
        for _ in range(timeout_cycles):
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if self.source.idle and not self.scoreboard.expected:
                assert int(self.dut.busy.value) == 0, "busy is high with nothing in flight"
                return
        raise AssertionError(f"not drained after {timeout_cycles} cycles: "
                             f"{len(self.source.queue)} beats unsent, "
                             f"{len(self.scoreboard.expected)} outputs outstanding")

    def random_folded(self) -> FoldedThreshold:
        p = self.params
        # Folding is exact in float64 only within +-2**52 (fold_batchnorm enforces it); wider
        # blocks get thresholds from that span, and their full-width corners are covered by the
        # constant tables of threshold_boundaries.
        lo, hi = max(p.preact_min, -FOLD_LIMIT), min(p.preact_max, FOLD_LIMIT)
        bn = random_batchnorm(self.np_rng, p.channels * LANES, lo, hi)
        return fold_batchnorm(bn, lo, hi)

    def random_beats(self, count: int) -> list[dict]:
        p = self.params
        channels = self.np_rng.integers(0, p.channels, size=count)
        # Per lane, half uniform over the configured range, half within +-2 of its threshold.
        uniform = self.np_rng.integers(p.preact_min, p.preact_max, size=(count, LANES),
                                       endpoint=True)
        offsets = self.np_rng.integers(-2, 2, size=(count, LANES), endpoint=True)
        near = self.np_rng.random((count, LANES)) < 0.5
        beats = []
        for c, u, d, n in zip(channels.tolist(), uniform.tolist(), offsets.tolist(), near.tolist()):
            # Python ints: no wrap at 64 bits
            values = [int(self.model.threshold[c, k]) + d[k] if n[k] else u[k]
                      for k in range(LANES)]
            beats.append(make_beat([min(max(v, p.width_min), p.width_max) for v in values], c))
        return beats

    def check(self) -> None:
        assert not self.sink.protocol_errors, self.sink.protocol_errors[:3]
        self.scoreboard.check()


def boundary_beats(params: BNBinarizeParams, model: BNBinarizeModel) -> list[dict]:
    """Every channel and lane at ``tau - 1, tau, tau + 1`` and at the ends of the range and
    width (lanes with fewer such values repeat theirs)."""
    full_lo, full_hi = params.width_min, params.width_max
    beats = []
    for c in range(params.channels):
        per_lane = []
        for k in range(LANES):
            t = int(model.threshold[c, k])
            values = {t - 1, t, t + 1, params.preact_min, params.preact_max, full_lo, full_hi, 0}
            per_lane.append(sorted(v for v in values if full_lo <= v <= full_hi))
        for j in range(max(len(v) for v in per_lane)):
            beats.append(make_beat([v[j % len(v)] for v in per_lane], c))
    return beats


def _beats_for(params: BNBinarizeParams) -> int:
    return min(3000, max(600, 8 * params.channels))


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0), (0.3, 0.3), (0.0, 0.8), (0.8, 0.0)])
async def random_stream(dut, traffic):
    """Constrained-random thresholds and values under idle cycles and backpressure."""
    idle, backpressure = traffic
    tb = BNBinarizeTB(dut, idle, backpressure)
    await tb.start()
    await tb.load(tb.random_folded())
    tb.source.send(tb.random_beats(_beats_for(tb.params)))
    await tb.wait_idle()
    tb.check()


@cocotb.test()
async def threshold_boundaries(dut):
    """tau-1, tau, tau+1 on every channel for both directions, constant channels and extremes."""
    tb = BNBinarizeTB(dut, 0.2, 0.2)
    p = tb.params
    await tb.start()
    lo, hi = p.preact_min, p.preact_max
    # Four tables: random BN folds (all cases mixed), then every channel one fixed kind, so a
    # one-channel block also sees both directions and both constants.
    tables = [tb.random_folded()]
    # thresholds strictly inside the range, so tau - 1 and tau + 1 are both reachable values
    inner = (lo + 1, hi - 1) if hi - lo >= 2 else (lo, hi)
    n = p.channels * LANES
    for t, inv in [(tb.np_rng.integers(*inner, size=n, endpoint=True), False),
                   (tb.np_rng.integers(*inner, size=n, endpoint=True), True),
                   (np.full(n, lo), tb.np_rng.random(n) < 0.5),
                   (np.full(n, hi), tb.np_rng.random(n) < 0.5)]:
        tables.append(FoldedThreshold(threshold=t, invert=np.broadcast_to(inv, (n,))))
    kinds = set()
    for folded in tables:
        await tb.load(folded)
        kinds |= {("le" if i else "ge") for i in folded.invert}
        tb.source.send(boundary_beats(p, tb.model))
        await tb.wait_idle()
    assert kinds == {"ge", "le"}
    tb.check()


@cocotb.test()
async def latency_and_throughput(dut):
    """Without stalls the block takes a beat every cycle and answers after params.latency."""
    tb = BNBinarizeTB(dut)
    await tb.start()
    await tb.load(tb.random_folded())
    beats = tb.random_beats(64)
    tb.source.send(beats)
    await tb.wait_idle()
    tb.check()
    acc, out = tb.accept_cycles, tb.output_cycles
    assert acc == list(range(acc[0], acc[0] + len(beats))), "input stalled without backpressure"
    latencies = {o - a for a, o in zip(acc, out)}
    assert latencies == {tb.params.latency}, f"latency {latencies}, params say {tb.params.latency}"


@cocotb.test()
async def reload_and_reset(dut):
    """Reloading the table changes the outputs; reset drops beats in flight but keeps the table."""
    tb = BNBinarizeTB(dut, 0.3, 0.3)
    await tb.start()
    for _ in range(2):
        await tb.load(tb.random_folded())
        tb.source.send(tb.random_beats(200))
        await tb.wait_idle()

    # Fill the pipeline with the output stalled, then reset with the input idle.
    tb.sink.backpressure_probability = 1.0
    tb.source.idle_probability = 0.0
    tb.source.send(tb.random_beats(2))
    await ClockCycles(dut.clk, 6, rising=False)
    await ReadOnly()
    assert tb.source.idle and int(dut.busy.value) == 1 and int(dut.o__valid.value) == 1
    assert len(tb.scoreboard.expected) == 2
    COVERAGE.hit("reset with beats in flight")
    await tb.reset()
    await ReadOnly()
    assert int(dut.busy.value) == 0 and int(dut.o__valid.value) == 0, "reset left a beat in flight"
    tb.scoreboard.expected.clear()   # the two beats were dropped by design
    tb.sink.backpressure_probability = 0.3
    tb.source.send(tb.random_beats(200))   # still the pre-reset table
    await tb.wait_idle()
    tb.check()


@cocotb.test()
async def table_writes_while_streaming(dut):
    """Table writes while beats stream, often to the channel of the beat being offered: a beat
    sees a write made in the cycle it is accepted (the table read is transparent) and keeps
    the entry it read if a write comes after (the golden model is written at the write's
    cycle, before that cycle's accepted beat is evaluated)."""
    tb = BNBinarizeTB(dut, 0.3, 0.3)
    p = tb.params
    await tb.start()
    await tb.load(tb.random_folded())
    tb.source.send(tb.random_beats(_beats_for(p)))
    writes = 0
    while not tb.source.idle:
        await FallingEdge(dut.clk)
        if tb.rng.random() < 0.5:
            dut.cfg__en.value = 0
            continue
        offered = tb.source.offered
        if offered is not None and tb.rng.random() < 0.7:
            # thresholds within one of the offered values, so the write decides their bits
            c = offered["channel"]
            ts = [v + tb.rng.choice((-1, 0, 1)) for v in lane_values(offered)]
        else:
            c = tb.rng.randrange(p.channels)
            ts = [tb.rng.randint(p.preact_min, p.preact_max) for _ in range(LANES)]
        ts = [min(max(t, p.preact_min, -FOLD_LIMIT), p.preact_max, FOLD_LIMIT) for t in ts]
        inverts = [tb.rng.random() < 0.5 for _ in range(LANES)]
        tb.last_write = (get_sim_time("ns"), c)
        if c in tb.in_flight:
            COVERAGE.hit("write while a beat waits in the pipeline")
        tb.write_entry(c, ts, inverts)
        writes += 1
    await FallingEdge(dut.clk)
    dut.cfg__en.value = 0
    await tb.wait_idle()
    tb.check()
    assert writes > 0


@cocotb.test()
async def coverage_closure(dut):
    """Every declared coverage bin was hit by the tests above (sim.coverage)."""
    COVERAGE.closure()
