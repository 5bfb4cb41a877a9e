"""cocotb testbench of the generated ProgrammingController, in lock-step with the golden
write-verify model (:func:`golden.programming.program_cells`).

The testbench plays the array: it answers every verify read with the code of the cell's
conductance (:func:`golden.programming.verify_code`) and applies every pulse through the golden
device (:func:`golden.programming.apply_pulse`, the cell's own counter-based draws, so the
cell's ``k``-th pulse has the outcome it has in the golden run). The controller's whole command
stream (reads and pulses, in order), its failure reports and its counters must equal the golden
run's. ``MBNN_PARAMS`` names the parameter set (``sim.regressions.PROGRAMMING_SETS``) and the
seed the targets were drawn with.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from golden.programming import (PULSE, READ, RESET, SET, apply_pulse, initial_cells,
                                program_cells, verify_code)
from periphery.programming import command_layout, report_layout, result_layout
from sim.coverage import STALL_CLASSES, Coverage
from sim.payload import PayloadCodec
from sim.regressions import PROGRAMMING_SETS
from sim.scoreboard import InOrderScoreboard
from sim.streams import StreamSink, StreamSource
from sim.tb_base import ClockedStreamTB

_CONFIG = json.loads(os.environ["MBNN_PARAMS"])
SET_ = PROGRAMMING_SETS[_CONFIG["set"]]
TARGETS = SET_.targets(_CONFIG["gen_seed"])
DEVICE = SET_.device_model()
POLICY = SET_.policy
CELLS = SET_.cells

COVERAGE = Coverage("programming")
COVERAGE.declare("cell skipped (read before write)", "a cell inside its window at its first read")
COVERAGE.declare("cell passed after retries", "a cell inside its window after 2 or more pulses")
COVERAGE.declare("failed cell reported", "a cell out of pulses, reported")
COVERAGE.declare("stuck cell reported", "a stuck cell, reported as failed")
if POLICY.max_step > 0:
    COVERAGE.declare("amplitude at its maximum step", "a pulse at v_max_v")
if DEVICE.levels is None and DEVICE.switch_step_s is not None:
    COVERAGE.declare("polarity change", "a RESET after a SET on one cell (an overshoot)")
for _c in STALL_CLASSES[:3]:
    COVERAGE.declare(f"cmd: stall of {_c} cycles", f"a command held {_c} cycles by cmd.ready")
# cycles from a read command taken to its result taken (the array's read latency as seen)
RESULT_DELAYS = {"res: result 1 cycle after its read": range(1, 2),
                 "res: result 2-3 cycles after its read": range(2, 4),
                 "res: result 4+ cycles after its read": range(4, 1 << 30)}
for _bin in RESULT_DELAYS:
    COVERAGE.declare(_bin, "a verify result delayed so by the array")


class ProgrammingTB(ClockedStreamTB):
    """The controller, the array it programs (golden device per cell), the golden run and the
    scoreboards."""

    def __init__(self, dut, g_s, stuck, seed: int, cmd_backpressure: float = 0.0,
                 res_idle: float = 0.0, report_backpressure: float = 0.0):
        super().__init__(dut)
        self.seed = cocotb.RANDOM_SEED
        dut._log.info("test seed %d (global %s); device draws keyed by %d; replay with: mbnn "
                      "regress --seed %s", self.seed, os.environ.get("COCOTB_RANDOM_SEED", "?"),
                      seed, os.environ.get("COCOTB_RANDOM_SEED", "?"))
        self.rng = random.Random(self.seed)
        self.arm(g_s, stuck, seed)
        self.source = StreamSource(dut, "res", dut.clk, PayloadCodec(result_layout(POLICY)),
                                   self.rng, res_idle, on_accept=self._on_result)
        self.read_cycles: list[int] = []
        self.sink = StreamSink(dut, "cmd", dut.clk, PayloadCodec(command_layout(POLICY, CELLS)),
                               self.rng, cmd_backpressure, on_beat=self._on_command,
                               reset=dut.rst, coverage=COVERAGE)
        self.report_sink = StreamSink(dut, "report", dut.clk,
                                      PayloadCodec(report_layout(POLICY, CELLS)), self.rng,
                                      report_backpressure, on_beat=self._on_report,
                                      reset=dut.rst)
        dut.start.value = 0

    def arm(self, g_s, stuck, seed: int) -> None:
        """The array's cells before the next run, the seed keying its device draws, and the
        golden run they give: what the scoreboards then expect."""
        self.device_seed = seed
        self.g = np.array(g_s, np.float64)
        self.stuck = np.asarray(stuck)
        self.pulses_on = np.zeros(CELLS, np.int64)
        self.last_set: dict[int, int] = {}
        self.golden = program_cells(DEVICE, POLICY, TARGETS, self.g, self.stuck, seed)
        self.commands = InOrderScoreboard("programming commands", self.dut._log)
        self.reports = InOrderScoreboard("programming reports", self.dut._log)
        for command in self.golden.commands():
            self.commands.expect(command)
        for c in np.flatnonzero(self.golden.failed):
            self.reports.expect({"cell": int(c), "code": int(self.golden.final_code[c])})

    async def start(self) -> None:
        await super().start()
        cocotb.start_soon(self.report_sink.run())

    def _on_command(self, beat: dict) -> None:
        cell = beat["cell"]
        if beat["op"] == READ:
            self.commands.observe((READ, cell))
            if 0 <= cell < CELLS:
                code = int(verify_code(DEVICE, self.g[cell], POLICY.verify_bits))
                self.source.send([{"code": code}])
                self.read_cycles.append(self.cycle)
            return
        polarity = SET if beat["set"] else RESET
        self.commands.observe((PULSE, cell, polarity, beat["step"]))
        if not 0 <= cell < CELLS:
            return
        if beat["step"] == POLICY.max_step and POLICY.max_step > 0:
            COVERAGE.hit("amplitude at its maximum step")
        if self.last_set.get(cell, polarity) != polarity:
            COVERAGE.hit("polarity change")
        self.last_set[cell] = polarity
        k = int(self.pulses_on[cell])
        self.g[cell] = float(apply_pulse(DEVICE, POLICY, self.g[cell], cell, k, polarity,
                                         beat["step"], self.stuck[cell], self.device_seed))
        self.pulses_on[cell] += 1

    def _on_result(self, beat: dict) -> None:
        delay = self.cycle - self.read_cycles.pop(0)
        for name, delays in RESULT_DELAYS.items():
            if delay in delays:
                COVERAGE.hit(name)

    def _on_report(self, beat: dict) -> None:
        self.reports.observe(beat)
        COVERAGE.hit("failed cell reported")
        if 0 <= beat["cell"] < CELLS and self.stuck[beat["cell"]] != 0:
            COVERAGE.hit("stuck cell reported")

    async def run(self, budget_cycles: int | None = None) -> None:
        """Start the controller and wait for ``done``; fail after a cycle budget (every
        command may wait on backpressure) instead of hanging."""
        await FallingEdge(self.dut.clk)
        self.dut.start.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.start.value = 0
        if budget_cycles is None:
            budget_cycles = 200 + 40 * (CELLS + 2 * CELLS * POLICY.max_pulses)
        for _ in range(budget_cycles):
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if int(self.dut.done.value) == 1:
                break
        else:
            raise AssertionError(f"programming not done after {budget_cycles} cycles "
                                 f"({self.commands.matched} commands matched)")
        for _ in range(4):          # a report taken in the last cycles
            await FallingEdge(self.dut.clk)

    def check(self) -> None:
        assert not self.sink.protocol_errors, self.sink.protocol_errors[:3]
        assert not self.report_sink.protocol_errors, self.report_sink.protocol_errors[:3]
        self.commands.check()
        self.reports.check()
        assert self.commands.matched == len(self.golden.commands()) > 0
        assert int(self.dut.pulses.value) == self.golden.pulses
        assert int(self.dut.failures.value) == int(self.golden.failed.sum())
        # the array the controller left is the golden run's, cell for cell
        assert np.array_equal(self.g, self.golden.g_s)
        skipped = self.golden.skipped
        passed = ~self.golden.failed
        if skipped.any():
            COVERAGE.hit("cell skipped (read before write)")
        counts = np.bincount(self.golden.pulse_cell, minlength=CELLS)
        if np.any(passed & (counts >= 2)):
            COVERAGE.hit("cell passed after retries")
        self.dut._log.info("%d cells: %d pulses, %d skipped, %d failed (%d stuck); commands and "
                           "reports equal the golden run", CELLS, self.golden.pulses,
                           int(skipped.sum()), int(self.golden.failed.sum()),
                           int((self.stuck != 0).sum()))


def fresh_chip(seed: int):
    """A fresh chip for ``seed``: the first seed from ``seed`` upwards whose chip has a stuck
    cell the golden run reports (a stuck cell that happens to sit in its window passes), so
    that every run checks a failure report. Deterministic for a seed."""
    for s in range(seed, seed + 1000):
        g, stuck = initial_cells(DEVICE, CELLS, s)
        if (program_cells(DEVICE, POLICY, TARGETS, g, stuck, s).failed & (stuck != 0)).any():
            return s, g, stuck
    raise AssertionError(f"no chip with a reported stuck cell among seeds {seed}..{seed + 999}")


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.8, 0.6, 0.8)])
async def programs_a_fresh_chip(dut, traffic):
    """Every cell of a fresh chip (stuck cells included) from its first read to its window or
    its report, under backpressure on the commands and reports and delayed results."""
    device_seed, g, stuck = fresh_chip(cocotb.RANDOM_SEED % (1 << 31))
    tb = ProgrammingTB(dut, g, stuck, device_seed, *traffic)
    await tb.start()
    await tb.run()
    tb.check()


@cocotb.test()
async def reprograms_over_an_earlier_model(dut):
    """Cells programmed to an earlier model that differs in about a third of the cells: read
    before write skips the cells already right; the rest are pulsed (new draws: a second
    programming session has its own seed)."""
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    first_seed, g, stuck = fresh_chip(int(rng.integers(1 << 30)))
    earlier = TARGETS.copy()
    change = rng.random(CELLS) < 0.35
    earlier[change] = rng.integers(0, POLICY.levels, int(change.sum()))
    before = program_cells(DEVICE, POLICY, earlier, g, stuck, first_seed)
    tb = ProgrammingTB(dut, before.g_s, stuck, first_seed + 1, 0.3, 0.3, 0.3)
    await tb.start()
    await tb.run()
    tb.check()
    # a cell whose target did not change and that the earlier run left in its window is
    # read once and skipped
    unchanged = (earlier == TARGETS) & ~before.failed
    assert unchanged.sum() > CELLS // 3
    assert np.all(tb.golden.skipped[unchanged])


@cocotb.test()
async def a_second_start_retries_only_what_failed(dut):
    """Run twice on the same cells: the second run reads every cell once and pulses only the
    cells the first left outside their window (stuck ones fail again, by report)."""
    device_seed, g, stuck = fresh_chip((cocotb.RANDOM_SEED % (1 << 31)) + 7)
    tb = ProgrammingTB(dut, g, stuck, device_seed, 0.2, 0.2, 0.2)
    await tb.start()
    await tb.run()
    tb.check()
    failed_first = set(np.flatnonzero(tb.golden.failed).tolist())
    tb.arm(tb.g, stuck, device_seed + 1)
    await tb.run()
    tb.check()
    assert tb.golden.skipped.sum() >= CELLS - len(failed_first)
    assert set(tb.golden.pulse_cell.tolist()) <= failed_first


@cocotb.test()
async def coverage_closure(dut):
    """Every declared coverage bin was hit by the tests above (sim.coverage)."""
    COVERAGE.closure()
