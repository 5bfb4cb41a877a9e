"""Whole-network cocotb testbench with the Verilog-A arrays in the loop (``sim.cosim_vacask``).

The DUT is the generated core alone (``bnn_core``); its crossbar port is answered here.
Before the clock starts, the test draws the run's images exactly as ``sim.tb.tb_core`` will
(same function, same test seed) and has :func:`sim.cosim_vacask.prepare_table` solve every
read of their golden schedule in one VACASK run. Then every ``xb.read`` is looked up by the
tile and the word-line bits the RTL actually drove, and the codes are driven back with the
behavioural crossbar's timing (codes and ``valid`` for the cycle after the one that
registered the read). A read missing from the table fails the test, naming the tile and the
pattern.

Stimulus, golden model and scoreboard are ``sim.tb.tb_core``'s whole-network test, run as it
is (classes, scores and every layer's bits against the golden read of the same programmed
chip), so the two testbenches cannot drift apart. ``MBNN_PARAMS`` carries tb_core's keys plus
``vacask`` (:func:`prepare_table`'s options), ``stats`` (where to write the table's figures
and the read counts) and ``timeout_ns`` (simulated-time limit).
"""

from __future__ import annotations

import json
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ValueChange

# The module, not its test: importing the decorated test by name would register it here too.
import sim.tb.tb_core as core_tb

CONFIG = core_tb.CONFIG


class MissingRead(AssertionError):
    """The RTL issued an array read the VACASK batch does not hold."""


class VacaskCrossbar:
    """Answers the core's crossbar port from a table of VACASK-solved reads.

    Parameters
    ----------
    dut
        The core (ports ``xb__read``, ``xb__tile``, ``xb__wl`` out; ``xb__valid``,
        ``xb__codes`` in).
    table : sim.cosim_vacask.LookupTable
    adc_bits : int
        Width of one column's code in ``xb__codes`` (column c at bits ``c*adc_bits``).
    ports : int
        Read ports of the core (``chip.parallel_reads``): port p's tile, word lines and codes
        are the p-th slices of ``xb__tile``, ``xb__wl`` and ``xb__codes``, and ``xb__read``
        has a bit per port; every port's read is looked up on its own.
    """

    def __init__(self, dut, table, adc_bits: int, ports: int = 1):
        self.dut = dut
        self.ports = ports
        self.tile_bits = len(dut.xb__tile) // ports
        self.code_bits = len(dut.xb__codes) // ports
        mask = (1 << adc_bits) - 1
        self.table: dict[tuple[int, int], int] = {}
        for tile, bits, codes in zip(table.tile, table.bits, table.codes):
            wl = int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")
            packed = 0
            for c, code in enumerate(codes.tolist()):
                packed |= (int(code) & mask) << (c * adc_bits)
            self.table[(int(tile), wl)] = packed
        self.rows = table.bits.shape[1]
        self.answered = 0
        self.distinct: set[tuple[int, int]] = set()
        self.missing: str | None = None

    def stats(self) -> dict:
        return {"reads_answered": self.answered, "reads_distinct_answered": len(self.distinct),
                "reads_in_table": len(self.table), "reads_missing": self.missing}

    async def run(self, on_missing) -> None:
        """Serve reads forever. The core registers a read at a rising edge; the read is
        sampled at the following falling edge and answered at the falling edge after that,
        so the codes are stable over the rising edge where the core accumulates them -- the
        one-cycle latency of ``rtl/analog/mbnn_crossbar.v``."""
        dut = self.dut
        dut.xb__valid.value = 0
        dut.xb__codes.value = 0
        answer = None           # codes for the read sampled at the previous falling edge
        while True:
            await FallingEdge(dut.clk)
            if answer is not None:
                dut.xb__codes.value = answer
                dut.xb__valid.value = 1
            else:
                dut.xb__valid.value = 0
            driving = answer is not None
            answer = None
            reading = int(dut.xb__read.value)
            if reading:
                tiles, wls = int(dut.xb__tile.value), int(dut.xb__wl.value)
                answer = 0
                for port in range(self.ports):
                    if not reading >> port & 1:
                        continue
                    key = (tiles >> (port * self.tile_bits) & ((1 << self.tile_bits) - 1),
                           wls >> (port * self.rows) & ((1 << self.rows) - 1))
                    codes = self.table.get(key)
                    if codes is None:
                        self.missing = (f"tile {key[0]}, word lines "
                                        f"{key[1]:#0{self.rows // 4 + 2}x} at "
                                        f"{cocotb.utils.get_sim_time('ns')} ns")
                        on_missing(self.stats())
                        raise MissingRead(f"the RTL read tile {key[0]} with word lines "
                                          f"{key[1]:#x}, a read the VACASK batch (built from "
                                          f"the golden schedule) does not hold; answered "
                                          f"{self.answered} reads before it")
                    answer |= codes << (port * self.code_bits)
                    self.answered += 1
                    self.distinct.add(key)
            elif not driving:
                # idle and nothing left to answer: sleep until the core reads again
                # (a change: with several ports xb__read is a vector; lane 0 reads in every
                # command, so a read always changes it from 0)
                await ValueChange(dut.xb__read)


def _write_stats(*parts: dict) -> None:
    merged = {}
    for part in parts:
        merged.update(part)
    Path(CONFIG["stats"]).write_text(json.dumps(merged, indent=2) + "\n")


@cocotb.test(timeout_time=CONFIG["timeout_ns"], timeout_unit="ns")
async def network_on_vacask_arrays(dut):
    from golden.chip import ChipConfig
    from golden.model import load_model
    from sim.cosim_vacask import prepare_table

    gen = Path(CONFIG["dir"])
    manifest = json.loads((gen / "manifest.json").read_text())
    chip = ChipConfig(**manifest["chip"])
    # the images tb_core's test will feed: its input function with this test's seed
    pixels, _ = core_tb.network_inputs(load_model(gen / "model.npz"), CONFIG["images"],
                                       CONFIG.get("offset", 0), CONFIG["dataset"],
                                       cocotb.RANDOM_SEED)
    options = CONFIG["vacask"]
    table, figures = prepare_table(gen, pixels, options["work_dir"],
                                   omit_reads=options["omit_reads"],
                                   boundary_margin_lsb=options["boundary_margin_lsb"],
                                   analyses=options["analyses"], timeout_s=options["timeout_s"])
    dut._log.info("VACASK batch: %s", {k: v for k, v in figures.items() if k != "disagreements"})
    if figures["code_disagreements"]:
        dut._log.error("VACASK and the golden read disagree on %d reads (ADC boundaries): %s",
                       figures["code_disagreements"], "; ".join(figures["disagreements"]))
    if figures["near_boundary_reads"]:
        dut._log.warning("%d reads have a golden ADC input within %g LSB of a rounding "
                         "boundary", figures["near_boundary_reads"],
                         figures["boundary_margin_lsb"])
    ports = len(dut.xb__read)
    xbar = VacaskCrossbar(dut, table, chip.adc_bits, ports)
    _write_stats(figures, xbar.stats())
    cocotb.start_soon(xbar.run(lambda stats: _write_stats(figures, stats)))
    try:
        # tb_core's whole-network test, unchanged: stimulus, golden model and scoreboard
        await core_tb.run_network(dut)
    finally:
        _write_stats(figures, xbar.stats())
        dut._log.info("VACASK crossbar: %s", xbar.stats())
