"""cocotb testbench of the behavioural crossbar (rtl/analog/mbnn_crossbar.v) alone: random
tiles (with weightless cells), random word lines, every tile, codes checked exactly.

Ideal target conductances are checked against :func:`golden.mapping.crossbar_read`, the
integer column sums (the ADC's round-to-nearest absorbs the floating-point error of summing
conductances, below 1e-9 of a weight unit here). Programmed non-ideal states, and states whose
ADC offsets put every read within rounding of a decision boundary, are checked against
:func:`golden.analog.chip_state.analog_read`, bit for bit."""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from golden.analog.chip_state import ProgrammedChip, analog_read
from golden.chip import ChipConfig
from golden.mapping import crossbar_read
from sim.coverage import Coverage
from sim.tb_base import start_clock

CONFIG = json.loads(os.environ["MBNN_PARAMS"])

# Functional coverage (sim.coverage): the last test fails if any bin was never hit.
COVERAGE = Coverage("crossbar")
COVERAGE.declare("no word line driven", "a read with every input 0")
COVERAGE.declare("every word line driven", "a read with every input 1")
if CONFIG.get("expect_saturation"):
    COVERAGE.declare("saturated high", "a column sum above the ADC's largest code")
    COVERAGE.declare("saturated low", "a column sum below the ADC's smallest code")
if CONFIG["kind"] == "boundary":
    COVERAGE.declare("within rounding of a decision boundary",
                     "an ADC input within 1e-9 LSB of a rounding boundary")


@cocotb.test()
async def codes_match_golden(dut):
    chip = ChipConfig(**CONFIG["chip"])
    saved = np.load(CONFIG["state"])
    weights = saved["weights"]                    # (tiles, rows, columns), -1/0/+1
    tiles = weights.shape[0]
    kind = CONFIG["kind"]
    state = ProgrammedChip(chip, None, None, saved["g_pos_s"], saved["g_neg_s"],
                           CONFIG["g_unit_s"], CONFIG["v_read_v"], saved["adc_gain"],
                           saved["adc_offset_lsb"], np.zeros((tiles, 1, 1), np.int8))
    g_diff = state.g_diff_s
    lsb_a = state.v_read_v * state.g_unit_s
    near_boundary = 0
    rng = np.random.default_rng(cocotb.RANDOM_SEED % (1 << 63))
    dut._log.info("seed %d, %d tiles of %dx%d, %d-bit ADC (%s)", cocotb.RANDOM_SEED, tiles,
                  chip.rows, chip.columns, chip.adc_bits, chip.mapping)
    start_clock(dut.clk)
    dut.read.value = 0
    expected, checked, saturated = [], 0, 0
    reads = CONFIG["reads"]
    for n in range(reads + 1):
        await FallingEdge(dut.clk)
        if n < reads:
            tile = int(rng.integers(tiles))
            density = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
            wl = (rng.random(chip.rows) < density).astype(np.uint8)
            dut.read.value = 1
            dut.tile.value = tile
            dut.wl.value = int("".join(map(str, wl[::-1])), 2)
            raw = wl.astype(np.int64) @ weights[tile].astype(np.int64)
            if not wl.any():
                COVERAGE.hit("no word line driven")
            if wl.all():
                COVERAGE.hit("every word line driven")
            top = (1 << (chip.adc_bits - 1)) - 1
            COVERAGE.hit("saturated high", int(np.sum(raw > top)))
            COVERAGE.hit("saturated low", int(np.sum(raw < -top - 1)))
            if kind == "targets":
                want = crossbar_read(wl[None, :], weights[tile], chip)[0]
                saturated += int(np.sum(raw != want))
            else:
                want = analog_read(wl[None, :], state, tile, g_diff_s=g_diff)[0]
                z = (state.v_read_v * (wl @ g_diff[tile])) / lsb_a * state.adc_gain[tile] \
                    + state.adc_offset_lsb[tile] + 0.5
                near = int(np.sum(np.abs(z - np.round(z)) < 1e-9))
                near_boundary += near
                COVERAGE.hit("within rounding of a decision boundary", near)
        else:
            dut.read.value = 0
        await ReadOnly()
        if expected:
            assert int(dut.valid.value) == 1, "codes not valid one cycle after the read"
            word = dut.codes.value.to_unsigned()
            mask = (1 << chip.adc_bits) - 1
            got = []
            for c in range(chip.columns):
                v = (word >> (c * chip.adc_bits)) & mask
                got.append(v - (1 << chip.adc_bits) if v >> (chip.adc_bits - 1) else v)
            want_prev = expected.pop()
            assert got == [int(x) for x in want_prev], f"read {checked}: {got} != {list(want_prev)}"
            checked += 1
        if n < reads:
            expected.append(want)
    assert checked == reads
    dut._log.info("%d reads checked, %d saturated column codes, %d column codes within 1e-9 "
                  "LSB of a rounding boundary", checked, saturated, near_boundary)
    if CONFIG.get("expect_saturation"):
        assert saturated > 0, "no read exercised ADC saturation"
    if kind == "boundary":
        assert near_boundary > reads, "the boundary set put too few reads on a boundary"


@cocotb.test()
async def coverage_closure(dut):
    """Every declared coverage bin was hit by the test above (sim.coverage)."""
    COVERAGE.closure()
