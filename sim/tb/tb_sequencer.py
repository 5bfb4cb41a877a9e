"""cocotb testbench of the generated Sequencer against the golden schedule
(:func:`golden.schedule.commands`).

``MBNN_PARAMS`` names the core set (model + chip) and the model seed; the testbench rebuilds
the same mapped model the RTL was generated from. With ``stage`` = L the DUT is the stage
sequencer of layer L (a pipelined core's): its golden schedule is layer L's commands, table
entries counted from the layer's first, and images follow each other without a gap while
``start`` is held.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from golden.mapping import compile_model
from golden.schedule import commands, entry_base
from periphery.sequencer import command_layout, read_layout
from sim.coverage import STALL_CLASSES, Coverage, stall_class
from sim.payload import PayloadCodec
from sim.regressions import CORE_SETS
from sim.scoreboard import InOrderScoreboard
from sim.tb_base import start_clock

_CONFIG = json.loads(os.environ["MBNN_PARAMS"])
CORE = CORE_SETS[_CONFIG["set"]]
MAPPED = compile_model(CORE.load(_CONFIG["model_seed"]), CORE.chip)
LAYER_GAP = _CONFIG["layer_gap"]
STAGE = _CONFIG.get("stage")
CODEC = PayloadCodec(command_layout(MAPPED))
LANE_CODEC = PayloadCodec(read_layout(MAPPED))
PORTS = CODEC.fields["lanes"][3]
SLOTS = LANE_CODEC.fields["slot_addr"][3]
ENTRY_BASE = entry_base(MAPPED)

# Functional coverage (sim.coverage): the last test fails if any bin was never hit.
COVERAGE = Coverage("sequencer")
for _l in range(len(MAPPED.layers) - 1 if STAGE is None else 0):
    COVERAGE.declare(f"layer gap {_l}->{_l + 1}", f"the gap between layers {_l} and {_l + 1}, "
                     f"exactly {LAYER_GAP} idle cycles")
COVERAGE.declare("image turnaround", "the next image's first command taken after an "
                 "image's last")
COVERAGE.declare("idle without start", "no command and idle high while start is low")
for _c in STALL_CLASSES[:3]:
    COVERAGE.declare(f"cmd: stall of {_c} cycles", f"a command held {_c} cycles by cmd.ready")


def _expected_lane(read) -> dict:
    """A golden read as the RTL's lane fields: unused/padding slots read as (addr 0, valid 0);
    a lane without a read is all zero."""
    if read is None:
        return {"read": 0, "slot_addr": [0] * SLOTS, "slot_valid": [0] * SLOTS, "shift": 0}
    addrs = list(read.slot_addr) + [-1] * (SLOTS - len(read.slot_addr))
    return {"read": 1, "slot_addr": [max(a, 0) for a in addrs],
            "slot_valid": [int(a >= 0) for a in addrs], "shift": read.shift}


def expected_payload(cmd) -> dict:
    """A golden command as the RTL payload (lanes decoded, :func:`decode_payload`)."""
    layer = MAPPED.layers[cmd.layer]
    reads = list(cmd.reads) + [None] * (PORTS - len(cmd.reads))
    return {"layer": cmd.layer, "tile": cmd.tile,
            "entry": (ENTRY_BASE[cmd.layer] if STAGE is None else 0) + cmd.ct,
            "first": int(cmd.first), "last": int(cmd.last), "final": int(layer.is_output),
            "lanes": [_expected_lane(r) for r in reads],
            "write_mode": cmd.write_mode, "write_addr": cmd.write_addr,
            "write_chunk": cmd.write_chunk}


def decode_payload(word: int) -> dict:
    """The RTL's command word as fields, each read lane as its own fields."""
    out = CODEC.unpack(word)
    out["lanes"] = [LANE_CODEC.unpack(lane) for lane in out["lanes"]]
    return out


class SequencerTB:
    def __init__(self, dut, backpressure: float):
        self.dut = dut
        self.seed = cocotb.RANDOM_SEED
        dut._log.info("test seed %d (global seed %s)", self.seed,
                      os.environ.get("COCOTB_RANDOM_SEED", "?"))
        self.rng = random.Random(self.seed)
        self.backpressure = backpressure
        self.scoreboard = InOrderScoreboard("sequencer", dut._log, max_reported=5)
        self.golden = [expected_payload(c) for c in commands(MAPPED)
                       if STAGE is None or c.layer == STAGE]
        self.taken: list[tuple[int, dict]] = []     # (cycle, payload)
        self.layer0_done_cycles: list[int] = []
        dut.rst.value = 1
        dut.start.value = 0
        dut.cmd__ready.value = 0

    async def start(self):
        start_clock(self.dut.clk)
        await ClockCycles(self.dut.clk, 2, rising=False)
        self.dut.rst.value = 0

    async def run_images(self, images: int, start_delay: int = 0) -> None:
        """Hold ``start`` for ``images`` images and take commands with random backpressure."""
        for _ in range(images):
            self.scoreboard.expected.extend(self.golden)
        cycle, started, budget = 0, 0, images * (len(self.golden) + 50) * (
            4 if self.backpressure else 1) + 1000
        stalled = 0
        while self.scoreboard.expected and cycle < budget:
            await FallingEdge(self.dut.clk)
            cycle += 1
            self.dut.start.value = int(cycle > start_delay and started < images)
            ready = self.rng.random() >= self.backpressure
            self.dut.cmd__ready.value = int(ready)
            await ReadOnly()
            if STAGE is None and int(self.dut.idle.value) == 1 and self.dut.start.value == 1:
                started += 1
            if STAGE is not None and int(self.dut.began.value):
                started += 1
            if int(self.dut.layer0_done.value):
                self.layer0_done_cycles.append(cycle)
            if int(self.dut.cmd__valid.value) and not ready:
                stalled += 1
            if ready and int(self.dut.cmd__valid.value):
                beat = decode_payload(self.dut.cmd__payload.value.to_unsigned())
                if stalled:
                    COVERAGE.hit(f"cmd: stall of {stall_class(stalled)} cycles")
                stalled = 0
                if self.taken and len(self.taken) % len(self.golden) == 0:
                    COVERAGE.hit("image turnaround")
                self.taken.append((cycle, beat))
                self.scoreboard.observe(beat)
        self.scoreboard.check()
        assert len(self.taken) == images * len(self.golden)
        if STAGE is not None:
            assert started == images, f"began pulsed {started} times for {images} images"


@cocotb.test()
@cocotb.parametrize(backpressure=[0.0, 0.4])
async def schedule_matches_golden(dut, backpressure):
    """Images back to back (two, or as many as give 400 commands: a short schedule -- 25
    commands for the MLP reading 8 arrays at a time -- would otherwise leave the longer stall
    classes to chance); every command equals the golden schedule's, in order."""
    tb = SequencerTB(dut, backpressure)
    await tb.start()
    images = max(2, -(-400 // len(tb.golden)))
    await tb.run_images(images, start_delay=3)
    # layer0_done marks the last layer-0 command of each image (a stage's: its last command)
    n0 = MAPPED.layers[STAGE or 0].read_cycles(MAPPED.chip.parallel_reads)
    want = [tb.taken[k * len(tb.golden) + n0 - 1][0] for k in range(images)]
    assert tb.layer0_done_cycles == want, (tb.layer0_done_cycles, want)


@cocotb.test()
async def layer_gap_and_throughput(dut):
    """Without backpressure commands come every cycle within a layer, and exactly
    ``layer_gap`` idle cycles separate layers; a stage sequencer's images, with ``start``
    held, follow each other without an idle cycle (each taking one ``began`` pulse)."""
    tb = SequencerTB(dut, 0.0)
    await tb.start()
    await tb.run_images(1 if STAGE is None else 3)
    cycles = [c for c, _ in tb.taken]
    layers = [b["layer"] for _, b in tb.taken]
    for k in range(1, len(cycles)):
        want = 1 + (LAYER_GAP if layers[k] != layers[k - 1] else 0)
        assert cycles[k] - cycles[k - 1] == want, \
            f"command {k}: {cycles[k] - cycles[k - 1]} cycles after the previous, expected {want}"
        if layers[k] != layers[k - 1]:
            COVERAGE.hit(f"layer gap {layers[k - 1]}->{layers[k]}")
    await FallingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.idle.value) == 1


@cocotb.test()
async def idle_without_start(dut):
    """With ``start`` low the sequencer stays idle and issues nothing, before its first image
    and after the last command of an image, however long ``cmd.ready`` is high."""
    tb = SequencerTB(dut, 0.0)
    await tb.start()

    async def quiet(cycles: int, when: str) -> None:
        for _ in range(cycles):
            await FallingEdge(dut.clk)
            dut.start.value = 0
            dut.cmd__ready.value = 1
            await ReadOnly()
            assert int(dut.cmd__valid.value) == 0, f"a command {when} without start"
            assert int(dut.idle.value) == 1, f"not idle {when} without start"
        COVERAGE.hit("idle without start")

    await quiet(50, "before the first image")
    await tb.run_images(1)
    await quiet(2 * LAYER_GAP + 50, "after the image's last command")


@cocotb.test()
async def coverage_closure(dut):
    """Every declared coverage bin was hit by the tests above (sim.coverage)."""
    COVERAGE.closure()
