"""cocotb testbench of the behavioural crossbar (rtl/analog/mbnn_crossbar.v) alone, against
:func:`golden.mapping.crossbar_read`: random tiles (with weightless cells), random word lines,
every tile, codes checked exactly (ideal devices; the round-to-nearest of the ADC absorbs the
floating-point error of summing conductances, which is below 1e-9 of a weight unit here)."""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from golden.chip import ChipConfig
from golden.mapping import crossbar_read

CONFIG = json.loads(os.environ["MBNN_PARAMS"])


@cocotb.test()
async def codes_match_golden(dut):
    chip = ChipConfig(**CONFIG["chip"])
    weights = np.load(CONFIG["weights"])          # (tiles, rows, columns), -1/0/+1
    tiles = weights.shape[0]
    rng = np.random.default_rng(cocotb.RANDOM_SEED % (1 << 63))
    dut._log.info("seed %d, %d tiles of %dx%d, %d-bit ADC (%s)", cocotb.RANDOM_SEED, tiles,
                  chip.rows, chip.columns, chip.adc_bits, chip.mapping)
    Clock(dut.clk, 10, unit="ns").start()
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
            want = crossbar_read(wl[None, :], weights[tile], chip)[0]
            raw = wl.astype(np.int64) @ weights[tile].astype(np.int64)
            saturated += int(np.sum(raw != want))
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
    dut._log.info("%d reads checked, %d saturated column codes", checked, saturated)
    if CONFIG.get("expect_saturation"):
        assert saturated > 0, "no read exercised ADC saturation"
