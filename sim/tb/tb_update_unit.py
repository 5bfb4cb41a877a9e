"""cocotb testbench of the generated UpdateUnit, checked against its golden twin
(:func:`golden.update_unit.apply_updates`): every pulse command, in order, and every ``chi``
read back at the end.

``MBNN_PARAMS`` carries the unit's parameters. Stimulus is drawn update by update from the
run's seed, looking at the ``chi`` the golden model holds at that point, so that sums land on,
just below and just above the multiples ``+-k * epsilon`` (the decision boundaries of the
pulse count), beyond the cap, and at both saturation ends; a few hot weights are updated back
to back (the read-after-write path).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from golden.update_unit import UpdateUnitParams, apply_updates
from periphery.update_unit import command_layout, update_layout
from sim.coverage import STALL_CLASSES, Coverage
from sim.payload import PayloadCodec
from sim.scoreboard import InOrderScoreboard
from sim.streams import StreamSink, StreamSource
from sim.tb_base import ClockedStreamTB

_CONFIG = json.loads(os.environ["MBNN_PARAMS"])
PARAMS = UpdateUnitParams(**_CONFIG["params"])
# The golden chi. The tests run one after another on one simulation, whose chi memory keeps
# its values (a reset clears the pipeline, not the memory): each test goes on from the chi the
# previous one left, which that test checked against this array at its end.
CHI = np.zeros(PARAMS.weights, np.int64)

COVERAGE = Coverage("update_unit")
for _side in ("+", "-"):
    for _where in ("below", "on", "above"):
        COVERAGE.declare(f"{_side}k*eps {_where}",
                         f"a sum {_where} a multiple {_side}k*epsilon (k = 1..max_pulses)"
                         .replace(" on ", " exactly on ").replace("below", "one LSB below")
                         .replace("above", "one LSB above"))
COVERAGE.declare("cap", "a sum beyond (max_pulses + 1) * epsilon: the pulses capped")
# A run of the largest updates of one weight grows its chi by what a run's pulses cannot take
# away (update_max - max_pulses * epsilon per update), up to saturation when that is positive
_GAIN = PARAMS.update_max - PARAMS.max_pulses * min(PARAMS.epsilon)
if _GAIN > 0:
    COVERAGE.declare("saturated high", "a sum above the chi range, saturated at its top")
    COVERAGE.declare("saturated low", "a sum below the chi range, saturated at its bottom")
COVERAGE.declare("same weight back to back", "two consecutive updates of one weight")
for _li in range(len(PARAMS.layer_sizes)):
    COVERAGE.declare(f"layer {_li}", f"an update of a weight of layer {_li}")
COVERAGE.declare("i: back-to-back beats", "updates accepted on consecutive cycles")
for _c in STALL_CLASSES[:3]:
    COVERAGE.declare(f"i: gap of {_c} cycles", f"{_c} idle or refused cycles between updates")
    COVERAGE.declare(f"o: stall of {_c} cycles", f"a command held {_c} cycles by o.ready")


def draw_updates(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """About ``count`` updates aimed at the unit's corner cases (module docstring); the golden
    ``chi`` they see is tracked as they are drawn."""
    p = PARAMS
    chi = CHI.copy()
    hot = rng.choice(p.weights, size=min(4, p.weights), replace=False)
    out = []
    while len(out) < count:
        if out and rng.random() < 0.25:
            index = out[-1][0]                          # the same weight again
        elif rng.random() < 0.4:
            index = int(rng.choice(hot))
        else:
            index = int(rng.integers(0, p.weights))
        eps = p.epsilon[p.layer_of(index)]
        pick = rng.random()
        if pick < 0.45:
            # aim at +-k*eps + {-1, 0, +1} (k = 1 .. max_pulses + 1)
            k = int(rng.integers(1, p.max_pulses + 2))
            target = int(rng.choice([-1, 1])) * k * eps + int(rng.integers(-1, 2))
            delta = target - int(chi[index])
        elif pick < 0.52 and _GAIN > 0:
            # a run of the largest updates of one weight of the smallest epsilon: to an end
            index = int(np.flatnonzero(
                [p.epsilon[p.layer_of(i)] == min(p.epsilon) for i in range(p.weights)])[0])
            delta = p.update_max if rng.random() < 0.5 else p.update_min
            for _ in range(-(-(p.chi_max + p.update_max) // _GAIN) + 1):
                out.append((index, delta))
                _cover(out, chi, index, delta)
                apply_updates(p, chi, [(index, delta)])
            continue
        else:
            delta = int(rng.integers(-eps, eps, endpoint=True))
        delta = int(np.clip(delta, p.update_min, p.update_max))
        out.append((index, delta))
        _cover(out, chi, index, delta)
        apply_updates(p, chi, [(index, delta)])
    return out


def _cover(updates, chi, index, delta) -> None:
    p = PARAMS
    eps = p.epsilon[p.layer_of(index)]
    COVERAGE.hit(f"layer {p.layer_of(index)}")
    if len(updates) >= 2 and updates[-2][0] == index:
        COVERAGE.hit("same weight back to back")
    total = int(chi[index]) + delta
    if total > p.chi_max:
        COVERAGE.hit("saturated high")
    if total < p.chi_min:
        COVERAGE.hit("saturated low")
    x = min(max(total, p.chi_min), p.chi_max)
    if abs(x) >= (p.max_pulses + 1) * eps:
        COVERAGE.hit("cap")
    for k in range(1, p.max_pulses + 1):
        for offset, where in ((-1, "below"), (0, "on"), (1, "above")):
            if abs(x) == k * eps + offset and x != 0:
                COVERAGE.hit(f"{'+' if x > 0 else '-'}k*eps {where}")


class UpdateUnitTB(ClockedStreamTB):
    def __init__(self, dut, idle: float = 0.0, backpressure: float = 0.0):
        super().__init__(dut)
        self.seed = cocotb.RANDOM_SEED
        dut._log.info("test seed %d (global seed %s)", self.seed,
                      os.environ.get("COCOTB_RANDOM_SEED", "?"))
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.chi = CHI                                  # the golden twin's state
        self.scoreboard = InOrderScoreboard("update_unit", dut._log)
        self.accept_cycles: list[int] = []
        self.source = StreamSource(dut, "i", dut.clk, PayloadCodec(update_layout(PARAMS)),
                                   self.rng, idle, on_accept=self._on_accept,
                                   coverage=COVERAGE)
        self.sink = StreamSink(dut, "o", dut.clk, PayloadCodec(command_layout(PARAMS)),
                               self.rng, backpressure, on_beat=self.scoreboard.observe,
                               reset=dut.rst, coverage=COVERAGE)
        dut.dbg_addr.value = 0

    def _on_accept(self, beat: dict) -> None:
        self.accept_cycles.append(self.cycle)
        for index, n in apply_updates(PARAMS, self.chi, [(beat["index"], beat["delta"])]):
            self.scoreboard.expect({"index": index, "n": n})

    async def wait_idle(self, timeout_cycles: int) -> None:
        for _ in range(timeout_cycles):
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if self.source.idle and not self.scoreboard.expected:
                # one more cycle: the last update's chi is written as its command leaves
                await FallingEdge(self.dut.clk)
                return
        raise AssertionError(f"not drained after {timeout_cycles} cycles: "
                             f"{len(self.source.queue)} updates unsent, "
                             f"{len(self.scoreboard.expected)} commands outstanding")

    async def check_chi(self) -> None:
        """Every chi of the RTL equals the golden twin's."""
        wrong = []
        for index in range(PARAMS.weights):
            self.dut.dbg_addr.value = index
            await Timer(1, "ps")
            got = self.dut.dbg_chi.value.to_signed()
            if got != int(self.chi[index]):
                wrong.append((index, got, int(self.chi[index])))
        assert not wrong, f"{len(wrong)} chi differ (index, rtl, golden): {wrong[:5]}"

    def check(self) -> None:
        assert not self.sink.protocol_errors, self.sink.protocol_errors[:3]
        self.scoreboard.check()
        assert self.scoreboard.matched > 0, "no command was compared"

    async def run(self, count: int, cycles_per_update: int) -> list:
        """Start, send about ``count`` drawn updates, drain, check every command and every
        chi; returns the updates."""
        await self.start()
        updates = draw_updates(self.np_rng, count)
        self.source.send([{"index": i, "delta": d} for i, d in updates])
        await self.wait_idle(200 + cycles_per_update * len(updates))
        self.check()
        await self.check_chi()
        return updates


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0), (0.3, 0.3), (0.0, 0.7)])
async def random_updates(dut, traffic):
    """Updates aimed at the boundaries, the cap and both saturation ends, under idle cycles
    and backpressure: every command and every final chi equal golden's."""
    await UpdateUnitTB(dut, *traffic).run(800, 20)


@cocotb.test()
async def one_update_per_cycle(dut):
    """Without stalls an update is taken every cycle, the same weight back to back included
    (the read sees the write of the cycle)."""
    tb = UpdateUnitTB(dut)
    updates = await tb.run(400, 4)
    acc = tb.accept_cycles
    assert acc == list(range(acc[0], acc[0] + len(updates))), "input stalled without backpressure"


@cocotb.test()
async def coverage_closure(dut):
    """Every declared coverage bin was hit by the tests above (sim.coverage)."""
    COVERAGE.closure()
