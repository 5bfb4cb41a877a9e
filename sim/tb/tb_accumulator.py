"""cocotb testbench of the generated Accumulator, checked against its golden twin.

``MBNN_PARAMS`` carries the block parameters and the path of the correction table the RTL was
generated with (a JSON file written by :func:`sim.regressions.run_accumulator`).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from golden.accumulator import AccumulatorModel, AccumulatorParams
from periphery.accumulator import input_layout, output_layout
from sim.coverage import STALL_CLASSES, Coverage
from sim.payload import PayloadCodec
from sim.scoreboard import InOrderScoreboard
from sim.streams import StreamSink, StreamSource
from sim.tb_base import ClockedStreamTB

_CONFIG = json.loads(os.environ["MBNN_PARAMS"])
PARAMS = AccumulatorParams(**_CONFIG["params"])
with open(_CONFIG["table"]) as _f:
    TABLE = json.load(_f)

# Functional coverage (sim.coverage): the last test fails if any bin was never hit.
COVERAGE = Coverage("accumulator")
if PARAMS.entries >= 2:     # the seeded table makes both ends reachable (regressions)
    COVERAGE.declare("value = range maximum", "an output at the top of the derived range")
    COVERAGE.declare("value = range minimum", "an output at the bottom of the derived range")
COVERAGE.declare("run of 1 beat", "a run that is first and last at once")
if PARAMS.max_terms > 1:
    COVERAGE.declare("run of max_terms beats", "a run of the longest length")
# The regression tables hold both values of the double flag from three entries on
# (sim.regressions.accumulator_table); a one-entry table has one of them.
for _kind, _flag in (("doubled", True), ("plain", False)):
    if PARAMS.entries >= 3 or _flag in TABLE["double"]:
        COVERAGE.declare(f"{_kind} entry", f"a run on an entry with double={_flag}")
if PARAMS.max_terms >= 2:
    COVERAGE.declare("reset mid-run", "a reset after some beats of a run, before its last")
    COVERAGE.declare("run continuing the previous sums",
                     "a run whose first beat has first=0, after a completed run")
COVERAGE.declare("run without first after reset", "a run after reset whose first beat has "
                 "first=0 (it sums from zero)")
COVERAGE.declare("i: back-to-back beats", "input beats accepted on consecutive cycles")
for _c in STALL_CLASSES[:3]:
    COVERAGE.declare(f"i: gap of {_c} cycles", f"{_c} idle or refused cycles between beats")
    COVERAGE.declare(f"o: stall of {_c} cycles", f"a result held {_c} cycles by o.ready")


class AccumulatorTB(ClockedStreamTB):
    """Clock, reset, stream driver and monitor, golden twin and scoreboard."""

    def __init__(self, dut, idle_probability: float = 0.0, backpressure_probability: float = 0.0):
        super().__init__(dut)
        self.params = PARAMS
        self.seed = cocotb.RANDOM_SEED
        dut._log.info("test seed %d (global seed %s)", self.seed,
                      os.environ.get("COCOTB_RANDOM_SEED", "?"))
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.model = AccumulatorModel(PARAMS, np.array(TABLE["bias"]), np.array(TABLE["double"]))
        self.scoreboard = InOrderScoreboard("accumulator", dut._log)
        self.accept_cycles: list[int] = []
        self.output_cycles: list[int] = []
        self.observed_values: set[int] = set()
        self.source = StreamSource(dut, "i", dut.clk, PayloadCodec(input_layout(PARAMS)),
                                   self.rng, idle_probability, on_accept=self._on_accept,
                                   coverage=COVERAGE)
        self.sink = StreamSink(dut, "o", dut.clk, PayloadCodec(output_layout(PARAMS)),
                               self.rng, backpressure_probability, on_beat=self._on_output,
                               reset=dut.rst, coverage=COVERAGE)
        self.run_length = 0

    def _on_accept(self, beat: dict) -> None:
        self.accept_cycles.append(self.cycle)
        self.run_length = 1 if beat["first"] else self.run_length + 1
        if beat["last"]:
            if self.run_length == 1:
                COVERAGE.hit("run of 1 beat")
            if self.run_length == self.params.max_terms:
                COVERAGE.hit("run of max_terms beats")
            COVERAGE.hit("doubled entry" if TABLE["double"][beat["entry"]] else "plain entry")
        out = self.model.step(beat["codes"], beat["first"], beat["last"], beat["entry"])
        if out is not None:
            self.scoreboard.expect({"values": [int(v) for v in out], "entry": beat["entry"]})

    def _on_output(self, beat: dict) -> None:
        self.output_cycles.append(self.cycle)
        self.observed_values.update(beat["values"])
        lo, hi = self.params.value_range
        if hi in beat["values"]:
            COVERAGE.hit("value = range maximum")
        if lo in beat["values"]:
            COVERAGE.hit("value = range minimum")
        self.scoreboard.observe(beat)

    def runs(self, count: int, extremes: float = 0.1) -> list[dict]:
        """``count`` runs of 1..max_terms beats with random entries; a fraction of runs are
        all-maximum or all-minimum codes, which reach the ends of the value range."""
        p = self.params
        beats = []
        for _ in range(count):
            length = int(self.np_rng.integers(1, p.max_terms, endpoint=True))
            entry = int(self.np_rng.integers(0, p.entries))
            pick = self.np_rng.random()
            for t in range(length):
                if pick < extremes / 2:
                    codes = [p.code_max] * p.lanes
                elif pick < extremes:
                    codes = [p.code_min] * p.lanes
                else:
                    codes = self.np_rng.integers(p.code_min, p.code_max, size=p.lanes,
                                                 endpoint=True).tolist()
                beats.append({"codes": codes, "first": int(t == 0),
                              "last": int(t == length - 1), "entry": entry})
        return beats

    async def wait_idle(self, timeout_cycles: int) -> None:
        for _ in range(timeout_cycles):
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if self.source.idle and not self.scoreboard.expected:
                return
        raise AssertionError(f"not drained after {timeout_cycles} cycles: "
                             f"{len(self.source.queue)} beats unsent, "
                             f"{len(self.scoreboard.expected)} outputs outstanding")

    def check(self) -> None:
        assert not self.sink.protocol_errors, self.sink.protocol_errors[:3]
        self.scoreboard.check()
        assert self.scoreboard.matched > 0, "no output was compared"


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0), (0.3, 0.3), (0.0, 0.8), (0.8, 0.0)])
async def random_runs(dut, traffic):
    """Random run lengths, entries and codes under idle cycles and backpressure."""
    tb = AccumulatorTB(dut, *traffic)
    await tb.start()
    # 150 runs, or as many as make about 1500 beats when runs are long (up to 49 row tiles on
    # 128 lanes: ~10 ms per beat on Icarus, which evaluates every lane's adder per cycle)
    beats = tb.runs(min(150, max(40, 3000 // (tb.params.max_terms + 1))))
    tb.source.send(beats)
    await tb.wait_idle(200 + 20 * len(beats))
    tb.check()


@cocotb.test()
async def range_extremes(dut):
    """Every entry with runs of max_terms all-max and all-min codes: the ends of the value
    range the widths were derived for, for both scales."""
    tb = AccumulatorTB(dut, 0.2, 0.2)
    p = tb.params
    await tb.start()
    beats = []
    for entry in range(p.entries):
        for code in (p.code_max, p.code_min, 0):
            for t in range(p.max_terms):
                beats.append({"codes": [code] * p.lanes, "first": int(t == 0),
                              "last": int(t == p.max_terms - 1), "entry": entry})
    tb.source.send(beats)
    await tb.wait_idle(200 + 20 * len(beats))
    tb.check()
    if p.entries >= 2:
        # the table puts -bias_max (entry 0) and +bias_max (entry 1) on doubled entries
        lo, hi = p.value_range
        assert {lo, hi} <= tb.observed_values, f"range ends {lo}, {hi} not reached"


@cocotb.test()
async def throughput_and_latency(dut):
    """Without stalls a beat is taken every cycle and a result follows its last beat after
    params.latency cycles."""
    tb = AccumulatorTB(dut)
    await tb.start()
    beats = tb.runs(40)
    tb.source.send(beats)
    await tb.wait_idle(200 + 4 * len(beats))
    tb.check()
    acc = tb.accept_cycles
    assert acc == list(range(acc[0], acc[0] + len(beats))), "input stalled without backpressure"
    lasts = [c for c, b in zip(acc, beats) if b["last"]]
    delays = {o - a for a, o in zip(lasts, tb.output_cycles)}
    assert delays == {tb.params.latency}, f"latencies {sorted(delays)}"


@cocotb.test()
async def reset_mid_run_and_runs_without_first(dut):
    """A reset in the middle of a run drops it; a run that then starts without ``first`` sums
    from zero, and one that follows a completed run without ``first`` continues its sums (the
    golden model's rules, AccumulatorModel.step and .reset)."""
    tb = AccumulatorTB(dut, 0.2, 0.2)
    p = tb.params
    await tb.start()

    def run(length: int, first: bool) -> list[dict]:
        entry = int(tb.np_rng.integers(0, p.entries))
        return [{"codes": tb.np_rng.integers(p.code_min, p.code_max, size=p.lanes,
                                             endpoint=True).tolist(),
                 "first": int(first and t == 0), "last": int(t == length - 1), "entry": entry}
                for t in range(length)]

    for _ in range(3):
        beats = tb.runs(4)
        if p.max_terms >= 2:
            # the start of a run (1 .. max_terms - 1 beats), cut by the reset below
            beats += run(int(tb.np_rng.integers(2, p.max_terms, endpoint=True)), True)[:-1]
        tb.source.send(beats)
        await tb.wait_idle(200 + 20 * len(beats))
        await tb.reset()
        tb.model.reset()
        if p.max_terms >= 2:
            COVERAGE.hit("reset mid-run")
        after = run(int(tb.np_rng.integers(1, p.max_terms, endpoint=True)), False)
        tb.source.send(after)
        await tb.wait_idle(200 + 20 * len(after))
        COVERAGE.hit("run without first after reset")
    if p.max_terms >= 2:
        a = int(tb.np_rng.integers(1, p.max_terms))
        b = int(tb.np_rng.integers(1, p.max_terms - a, endpoint=True))
        beats = run(a, True) + run(b, False)
        tb.source.send(beats)
        await tb.wait_idle(200 + 20 * len(beats))
        COVERAGE.hit("run continuing the previous sums")
    tb.check()


@cocotb.test()
async def coverage_closure(dut):
    """Every declared coverage bin was hit by the tests above (sim.coverage)."""
    COVERAGE.closure()
