"""Whole-network cocotb testbench: MNIST images through the generated core and behavioural
crossbar, checked image by image against the plain golden model (:func:`golden.model.infer`).

Per image: the class, all class scores, and -- unless ``check_layers`` is off -- every hidden
layer's output bits, read back from the activation buffers through the core's debug port
while the result waits (the core starts the next image only once the result is taken). A
pipelined core (``[chip] pipeline``) overwrites a bank before the image's result leaves: there
every hidden layer's bits are rebuilt, image by image, from the write-backs on its
``wb_trace`` port, and back to back the cycle of every result must be the one
:func:`golden.pipeline.timing` gives.

The testbench is event-driven (no Python per clock cycle): it waits for ``i.ready`` and
``o.valid`` edges, so the simulator runs free in between. ``MBNN_PARAMS`` carries the generated
directory, the image range, the dataset, the handshake and where to write the summary JSON.

Handshakes (``handshake``): ``back_to_back`` sends every word of an image on consecutive cycles
and takes each result one cycle after ``o.valid`` (cycle counts are then exact and checked);
``random`` (seeded by the run's seed) drops ``i.valid`` for random stretches with a random
payload on the bus, holds ``o.ready`` low for random stretches -- the result must stay valid
and unchanged meanwhile -- and resets the core once in the middle of an image, then sends
that image again. A core that ignores ``o.ready`` or writes words without ``i.valid`` fails.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import (ClockCycles, FallingEdge, First, ReadOnly, RisingEdge,
                             SimTimeoutError, Timer, with_timeout)

from golden.analog.chip_state import analog_infer
from golden.chip import ChipConfig
from golden.mapping import compile_model, mapped_infer
from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model
from golden.core import CoreParams
from golden.pipeline import timing as pipeline_timing
from golden.schedule import input_beats, layer_words, pack_words
from periphery.core import result_layout
from periphery.pipeline import wb_trace_layout
from periphery.generate_model import load_programmed_chip
from sim.coverage import STALL_CLASSES, Coverage, stall_class
from sim.payload import PayloadCodec
from sim.tb_base import start_clock

CONFIG = json.loads(os.environ["MBNN_PARAMS"])
CLOCK_NS = 10


def network_inputs(model, count: int, offset: int, dataset: str, seed: int):
    """(pixel bits (N, ...), labels or None)."""
    if dataset == "mnist":
        test = load_mnist("test")
        sl = slice(offset, offset + count)
        if sl.stop > len(test.labels):
            raise ValueError(f"images {sl.start}..{sl.stop - 1} exceed the {len(test.labels)} "
                             f"MNIST test images")
        return binarize_pixels(test.images[sl]), test.labels[sl]
    rng = np.random.default_rng(seed)
    return (rng.random((count,) + tuple(model.arch.input_shape)) < 0.5).astype(np.uint8), None


async def program_phase(dut, mapped, manifest, handshake, coverage, rng,
                        preload: list[int]) -> dict:
    """The system's programming phase: start its write-verify controller on the fresh chip and
    check it against golden write-verify programming (:func:`golden.programming.program_model`
    of the manifest's seed and policy) -- the number of pulses and failures, every failed
    cell reported (cell and last verify code, in order), no pulse off the golden log (the
    crossbar's ``replay_errors``), every pulse of the log applied, and, with back-to-back
    handshakes, the cycles the controller's timing gives. Random handshakes hold the report
    stream's ready low at random. ``preload``: the first image's input words, sent just
    before the start."""
    from golden.programming import WriteVerifyPolicy, program_model
    from periphery.programming import report_layout

    policy = WriteVerifyPolicy(**manifest["programming"]["write_verify"]["policy"])
    result, _ = program_model(mapped, policy, manifest["programming"]["seed"])
    cells = len(result.g_s)
    want = [(int(c), int(result.final_code[c])) for c in np.flatnonzero(result.failed)]
    codec = PayloadCodec(report_layout(policy, cells))
    reports: list[tuple[int, int]] = []
    if handshake == "random":
        coverage.declare("report held by ready", "a failed-cell report waits for prog_report.ready")

    async def take_reports():
        """Event-driven: the simulator runs free between reports. Back to back, ready stays
        high; random, it is drawn each cycle while a report waits and dropped after."""
        if handshake == "back_to_back":
            dut.prog_report__ready.value = 1
        while True:
            if not int(dut.prog_report__valid.value):
                await RisingEdge(dut.prog_report__valid)
                await FallingEdge(dut.clk)
            while True:
                ready = handshake == "back_to_back" or rng.random() < 0.5
                dut.prog_report__ready.value = int(ready)
                await ReadOnly()          # what the next rising edge sees
                if not int(dut.prog_report__valid.value):
                    raise AssertionError("prog_report.valid withdrawn before it was taken")
                if ready:
                    beat = codec.unpack(dut.prog_report__payload.value.to_unsigned())
                    reports.append((beat["cell"], beat["code"]))
                    break
                coverage.hit("report held by ready")
                await FallingEdge(dut.clk)
            await RisingEdge(dut.clk)     # taken here
            await FallingEdge(dut.clk)    # valid settled: a new report, or none
            if handshake == "random":
                dut.prog_report__ready.value = 0

    taker = cocotb.start_soon(take_reports())
    # The first image is loaded in full just before the start, so that the start meets a
    # loaded image that has not started: the image must wait for the programming (on the fresh
    # chip its scores would differ from golden's).
    for w in preload:
        await FallingEdge(dut.clk)
        assert int(dut.i__ready.value), "input not ready before programming"
        dut.i__payload.value = w
        dut.i__valid.value = 1
    await FallingEdge(dut.clk)
    dut.i__valid.value = 0
    dut.prog_start.value = 1
    await FallingEdge(dut.clk)
    dut.prog_start.value = 0
    # the rising edge that took the start, half a cycle ago
    t0 = cocotb.utils.get_sim_time("ns") - CLOCK_NS / 2
    wall0 = time.perf_counter()
    # every cell: 2 cycles, 3 per pulse, and its report; twice that with random ready
    budget = 2 * (2 * cells + 3 * result.pulses + len(want)) + 100
    try:
        await with_timeout(RisingEdge(dut.prog_done), budget * CLOCK_NS, "ns")
    except SimTimeoutError:
        raise AssertionError(f"programming: not done within {budget} cycles") from None
    cycles = round((cocotb.utils.get_sim_time("ns") - t0) / CLOCK_NS)
    wall = time.perf_counter() - wall0
    await FallingEdge(dut.clk)
    taker.cancel()
    dut.prog_report__ready.value = 0
    got = {"pulses": int(dut.prog_pulses.value), "failures": int(dut.prog_failures.value),
           "pulses_replayed": int(dut.pulses_replayed.value),
           "replay_errors": int(dut.replay_errors.value)}
    # pulses, failures and cycles are the RTL's; cells and skips golden's (the RTL's skips are
    # implied: a pulse on a cell golden skipped is off the log, and the cycles count them)
    summary = {"pulses": got["pulses"], "failed_cells": got["failures"],
               "golden_cells": cells, "golden_pulses": result.pulses,
               "golden_failed_cells": len(want),
               "golden_skipped_cells": int(result.skipped.sum()), "cycles": cycles,
               "sim_wall_s": wall, "cycles_per_s": cycles / wall if wall > 0 else None}
    dut._log.info("programming: %s", summary)
    assert got["replay_errors"] == 0, \
        f"programming: {got['replay_errors']} pulses differ from the golden log"
    assert got["pulses_replayed"] == result.pulses == got["pulses"], \
        f"programming: {got['pulses']} pulses issued, {got['pulses_replayed']} replayed, " \
        f"golden {result.pulses}"
    assert got["failures"] == len(want), \
        f"programming: {got['failures']} failed cells, golden {len(want)}"
    assert reports == want, f"programming: reports {reports[:5]}... != golden {want[:5]}..."
    if handshake == "back_to_back":
        expected = 2 * cells + 3 * result.pulses + len(want)
        assert cycles == expected, f"programming took {cycles} cycles, expected {expected}"
    return summary


@cocotb.test()
async def network_matches_golden(dut):
    """The generated system (core + behavioural crossbar) against the golden model."""
    await run_network(dut)


async def run_network(dut):
    """Stimulus, golden model and scoreboard of a whole-network run on ``dut`` (any top that
    has the core's ports and answers its crossbar reads: the behavioural crossbar inside, or a
    testbench-side crossbar such as the VACASK one of ``sim.tb.tb_core_vacask``)."""
    gen = Path(CONFIG["dir"])
    manifest = json.loads((gen / "manifest.json").read_text())
    model = load_model(gen / "model.npz")
    chip = ChipConfig(**manifest["chip"])
    mapped = compile_model(model, chip)
    params = CoreParams(mapped)
    count, offset = CONFIG["images"], CONFIG.get("offset", 0)
    check_layers = CONFIG.get("check_layers", True)
    seed = cocotb.RANDOM_SEED
    dut._log.info("%d %s images from %d, layer checks %s, seed %d", count, CONFIG["dataset"],
                  offset, "on" if check_layers else "off", seed)
    pixels, labels = network_inputs(model, count, offset, CONFIG["dataset"], seed)
    # The plain model is the reference whenever the ADCs are exact; with saturating ADCs the
    # mapped golden model (which models saturation exactly and equals the plain model
    # otherwise) is; on a non-ideal chip, the golden read of the same programmed chip (the
    # state is the one the crossbar loads, read back from the generated files; that those
    # files are the golden programming of the manifest's seed is tested on its own).
    # the same model on the chip without its analog non-idealities (ADC saturation included)
    ideal = mapped_infer(compile_model(model, chip.ideal()), pixels)
    if chip.non_ideal_settings():
        state = load_programmed_chip(gen, chip, mapped.tiles)
        golden = analog_infer(mapped, state, pixels, keep_layers=check_layers)
    elif mapped.chip.adc_exact:
        golden = infer(model, pixels, keep_layers=check_layers)
    else:
        golden = mapped_infer(mapped, pixels, keep_layers=check_layers)
    codec = PayloadCodec(result_layout(params))

    handshake = CONFIG.get("handshake", "back_to_back")
    if handshake not in ("back_to_back", "random"):
        raise ValueError(f"handshake {handshake!r}: expected 'back_to_back' or 'random'")
    # Functional coverage (sim.coverage), checked at the end of the run
    coverage = Coverage("network")
    out_w = model.layers[-1].weight
    if not chip.non_ideal_settings() and any(
            np.array_equal(out_w[:, a], out_w[:, b]) for a in range(out_w.shape[1])
            for b in range(a)):
        # two classes with the same weights tie on every image of an ideal chip (device
        # errors may split them on a non-ideal one)
        coverage.declare("argmax tie", "an image whose top score is shared by two classes")
    if handshake == "random":
        coverage.declare("i: gap before a word", "i.valid low for 1-6 cycles inside an image")
        # result n is held by o.ready for a stall of class n % 5 (class 4: taken at once)
        for c in STALL_CLASSES[:count]:
            coverage.declare(f"o: stall of {c} cycles", f"a result held {c} cycles by o.ready")
        if count >= 3:
            coverage.declare("reset mid-image", "a reset while an image is loaded or computed")
    if count >= 2:
        coverage.declare("input loaded while an image computes",
                         "an input word accepted while the previous image runs (active high)")
    rng = np.random.default_rng([seed, 1])       # the handshake's own stream of the run seed
    payload_bits = params.input_beat_bits
    # the image whose processing a mid-image reset interrupts (random handshakes, 3+ images)
    reset_image = int(rng.integers(1, count - 1)) if handshake == "random" and count >= 3 \
        else None

    async def reset():
        dut.rst.value = 1
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        await ClockCycles(dut.clk, 2, rising=False)
        dut.rst.value = 0

    dut.dbg_buffer.value = 0
    dut.dbg_addr.value = 0
    write_verify = manifest["programming"].get("write_verify")
    if write_verify:
        dut.prog_start.value = 0
        dut.prog_report__ready.value = 0
    start_clock(dut.clk, CLOCK_NS)
    await reset()
    programming = None
    if write_verify:
        programming = await program_phase(dut, mapped, manifest, handshake, coverage,
                                          np.random.default_rng([seed, 2]),
                                          input_beats(mapped, pixels[0]))

    async def gap():
        """Random handshakes: i.valid low for 1-6 cycles, a random word on the bus."""
        dut.i__valid.value = 0
        coverage.hit("i: gap before a word")
        for _ in range(int(rng.integers(1, 7))):
            dut.i__payload.value = int(rng.integers(0, 1 << min(payload_bits, 62)))
            await FallingEdge(dut.clk)

    first_beat_ns = []

    async def feed(first):
        # a pipelined core may take the next image's first beat in the cycle after the
        # previous image's last: the stream then keeps i.valid high across images
        continuous = params.pipelined
        for n in range(first, count):
            words = input_beats(mapped, pixels[n])
            if not continuous or not int(dut.i__valid.value):
                await FallingEdge(dut.clk)
            if not int(dut.i__ready.value):
                dut.i__valid.value = 0
                await RisingEdge(dut.i__ready)
                await FallingEdge(dut.clk)
            # i.ready stays high until the image's last word
            for k, w in enumerate(words):
                if handshake == "random" and rng.random() < 0.2:
                    await gap()
                dut.i__payload.value = w
                dut.i__valid.value = 1
                if int(dut.active.value):
                    coverage.hit("input loaded while an image computes")
                await FallingEdge(dut.clk)
                if n == 0 and k == 0:       # the rising edge that took it: half a cycle ago
                    first_beat_ns.append(cocotb.utils.get_sim_time("ns") - CLOCK_NS / 2)
            if not continuous:
                dut.i__valid.value = 0
        dut.i__valid.value = 0

    feeder = cocotb.start_soon(feed(1 if programming else 0))
    latencies = []

    async def watch_latency():
        """Cycles from ``active`` rising (the image starts) to its result: the same for every
        image whatever the handshakes; an image cut short by the reset is not counted."""
        while True:
            await RisingEdge(dut.active)
            start = cocotb.utils.get_sim_time("ns")
            await First(RisingEdge(dut.o__valid), FallingEdge(dut.active))
            if int(dut.o__valid.value) and int(dut.active.value):
                latencies.append(round((cocotb.utils.get_sim_time("ns") - start) / CLOCK_NS))

    trace_checked = {}         # hidden layer -> images whose bits the trace rebuilt
    trace_problems: list[tuple[int, str]] = []
    trace_next = {}            # hidden layer -> the image its next write-back belongs to

    async def watch_trace():
        """A pipelined core's write-backs, cycle by cycle: every hidden layer's words of an
        image, rebuilt and compared with golden when the layer's write-back closes it."""
        layout = wb_trace_layout(params)
        elem = PayloadCodec(layout.elem_shape)
        size = layout.elem_shape.size
        hidden = layout.length
        words = {li: {} for li in range(hidden)}
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            raw = dut.wb_trace.value.to_unsigned()
            if not raw:
                continue
            for li in range(hidden):
                rec = elem.unpack((raw >> (li * size)) & ((1 << size) - 1))
                if not rec["valid"]:
                    continue
                width = params.buffers[li + 1].word_bits
                if rec["write"]:
                    words[li][rec["addr"]] = rec["data"] & ((1 << width) - 1)
                if rec["end"]:
                    n = trace_next.get(li, 0)
                    want = pack_words(layer_words(mapped, li, golden.layer_bits[li][n]))
                    got = [words[li].get(a, 0) for a in range(len(want))]
                    bad = [a for a in range(len(want)) if got[a] != want[a]]
                    if bad or set(words[li]) - set(range(len(want))):
                        a = bad[0] if bad else max(words[li])
                        trace_problems.append((n, f"layer {li} word {a}: "
                                               f"{got[a] if bad else words[li][a]:#x} != golden "
                                               f"{want[a] if bad else 0:#x}"))
                    trace_checked.setdefault(li, []).append(n)
                    trace_next[li] = n + 1
                    words[li] = {}

    def restart_trace(n):
        """After a reset: every layer's next write-back is image ``n``'s again."""
        for li in range(len(mapped.layers) - 1):
            trace_next[li] = n

    cocotb.start_soon(watch_latency())
    if params.pipelined and check_layers and len(mapped.layers) > 1:
        trace_task = cocotb.start_soon(watch_trace())
    pipelined_b2b = params.pipelined and handshake == "back_to_back"
    if pipelined_b2b:
        dut.o__ready.value = 1      # results are taken in the cycle they appear
    mismatches, layer_mismatches, predictions, result_times = [], 0, [], []
    compared = 0
    # A result is due within this many cycles of the previous one being taken (of reset, for
    # the first): its input words, twice the steady-state cycles, and slack. A core that stalls
    # fails here instead of hanging the run.
    budget = params.buffers[0].depth + 2 * params.compute_cycles_per_image + 100
    if handshake == "random":       # gaps of up to 6 cycles before any input word
        budget += 6 * params.buffers[0].depth
    if params.pipelined:            # the first result: through every stage
        budget += params.latency_cycles
    wall0 = time.perf_counter()
    resets = 0
    for n in range(count):
        if n == reset_image:
            # reset while image n is being sent or computed, then send it again; the wait is
            # shorter than image n can take (a steady-state interval after n - 1's result)
            wait = int(rng.integers(1, max(2, params.compute_cycles_per_image // 2)))
            await ClockCycles(dut.clk, wait, rising=False)
            if not int(dut.o__valid.value):
                feeder.cancel()
                await reset()
                resets += 1
                restart_trace(n)
                feeder = cocotb.start_soon(feed(n))
        try:
            if pipelined_b2b:
                await ReadOnly()    # just after the edge that took the previous result
            if not int(dut.o__valid.value):
                await with_timeout(RisingEdge(dut.o__valid), budget * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"image {n + offset}: no result within {budget} cycles "
                                 f"(steady state {params.compute_cycles_per_image})") from None
        await ReadOnly()
        result_times.append(cocotb.utils.get_sim_time("ns"))
        beat = codec.unpack(dut.o__payload.value.to_unsigned())
        if not pipelined_b2b:
            await Timer(1, "ps")
        predictions.append(beat["cls"])
        want_scores = [int(v) for v in golden.scores[n]]
        problems = []
        if beat["scores"] != want_scores:
            problems.append(f"scores {beat['scores']} != golden {want_scores}")
        if beat["cls"] != int(golden.predictions[n]):
            problems.append(f"class {beat['cls']} != golden {int(golden.predictions[n])}")
        if check_layers and not params.pipelined:
            for li in range(len(mapped.layers) - 1):
                want = pack_words(layer_words(mapped, li, golden.layer_bits[li][n]))
                dut.dbg_buffer.value = li + 1
                for addr, w in enumerate(want):
                    dut.dbg_addr.value = addr
                    await Timer(1, "ps")
                    got = dut.dbg_data.value.to_unsigned() & ((1 << params.buffers[li + 1].word_bits) - 1)
                    if got != w:
                        layer_mismatches += 1
                        problems.append(f"layer {li} word {addr}: {got:#x} != golden {w:#x}")
                        break
        compared += 1
        if problems:
            mismatches.append(n + offset)
            if len(mismatches) <= 5:
                dut._log.error("image %d: %s", n + offset, "; ".join(problems[:3]))
        if pipelined_b2b:
            await RisingEdge(dut.clk)       # o.ready is high: taken at this edge
            continue
        await FallingEdge(dut.clk)
        if handshake == "random" and n % 5 < 4:
            # the result waits for o.ready: it must stay valid and unchanged. The stall
            # lengths cycle through the coverage classes (1, 2-3, 4-15, 16-39 cycles; every
            # fifth result is taken at once), random within a class.
            held = dut.o__payload.value.to_unsigned()
            lo, hi = ((1, 1), (2, 3), (4, 15), (16, 39))[n % 5]
            stall = int(rng.integers(lo, hi, endpoint=True))
            coverage.hit(f"o: stall of {stall_class(stall)} cycles")
            for _ in range(stall):
                await FallingEdge(dut.clk)
                assert int(dut.o__valid.value) and dut.o__payload.value.to_unsigned() == held, \
                    f"image {n + offset}: the result changed or was withdrawn while o.ready was low"
        dut.o__ready.value = 1
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.o__ready.value = 0
    wall = time.perf_counter() - wall0
    result_cycles = None
    if params.pipelined:
        if check_layers and len(mapped.layers) > 1:
            # the last write-backs of the last image precede its result: all are in
            trace_task.cancel()
            for n, problem in trace_problems:
                layer_mismatches += 1
                if n + offset not in mismatches:
                    mismatches.append(n + offset)
                if layer_mismatches <= 5:
                    dut._log.error("image %d: %s", n + offset, problem)
            for li in range(len(mapped.layers) - 1):
                seen = sorted(set(trace_checked.get(li, [])))
                assert seen == list(range(count)), \
                    f"layer {li}: the write-back trace closed images {seen[:10]}..., " \
                    f"expected all {count}"
        if pipelined_b2b and first_beat_ns:      # (not after a programming phase)
            t0 = first_beat_ns[0] - CLOCK_NS      # cycle 0: the first beat's
            result_cycles = [round((t - t0) / CLOCK_NS) for t in result_times]

    steady = np.diff(result_times) / CLOCK_NS if count > 1 else np.array([result_times[0] / CLOCK_NS])
    assert compared == count, f"{compared} results compared for {count} images sent"
    top = golden.scores.max(axis=1, keepdims=True)
    coverage.hit("argmax tie", int(np.sum((golden.scores == top).sum(axis=1) > 1)))
    coverage.hit("reset mid-image", resets)
    if handshake == "back_to_back":
        cycles_seen = sorted({int(c) for c in steady}) if count > 1 else []
    else:   # stalls and the reset make the intervals random: nothing to check
        cycles_seen = None
        assert reset_image is None or resets == 1, "the mid-image reset never happened"
    summary = {
        "images": count, "offset": offset, "dataset": CONFIG["dataset"],
        "mismatches": len(mismatches), "mismatched_images": mismatches[:20],
        "layer_checks": check_layers,
        "rtl_accuracy": float(np.mean(np.array(predictions) == labels)) if labels is not None else None,
        "golden_accuracy": float(np.mean(golden.predictions == labels)) if labels is not None else None,
        "ideal_golden_accuracy": float(np.mean(ideal.predictions == labels)) if labels is not None else None,
        "non_ideal_chip": bool(chip.non_ideal_settings()),
        "scores_off_ideal": int(np.sum(np.any(golden.scores != ideal.scores, axis=1))),
        "score_ties": int(np.sum((golden.scores == golden.scores.max(axis=1, keepdims=True))
                                 .sum(axis=1) > 1)),
        "handshake": handshake, "mid_image_resets": resets,
        "cycles_per_image": float(np.median(steady)) if handshake == "back_to_back" else None,
        # every image's cycles from the previous result to its own (all images but the first)
        "cycles_per_image_seen": cycles_seen,
        # every image's cycles from its start (core active) to its result, any handshake
        "latency_cycles_seen": sorted(set(latencies)), "latencies_measured": len(latencies),
        "min_cycles_per_image": params.analytical_cycles_per_image,
        "pipelined": params.pipelined,
        # pipelined, back to back: every result's cycle, cycle 0 taking the first input beat
        "result_cycles": result_cycles,
        "programming": programming,
        "sim_wall_s": wall, "images_per_s": count / wall if wall > 0 else None,
    }
    Path(CONFIG["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    dut._log.info("summary: %s", summary)
    assert not mismatches, f"{len(mismatches)} of {count} images differ from the golden model " \
                           f"(first: {mismatches[:5]})"
    if params.pipelined:
        # The pipelined core's timing is golden.pipeline's: back to back, every result in the
        # cycle its rules give (images then follow at the slowest stage's interval).
        if result_cycles is not None:
            want = list(pipeline_timing(params.pipeline, count).results)
            assert result_cycles == want, \
                f"result cycles {result_cycles[:8]}... differ from golden.pipeline's {want[:8]}..."
        coverage.closure()
        return
    # The timing is part of the contract (golden.core): every image computes in exactly the
    # same cycles whatever the handshakes, and back-to-back images follow each other at the
    # steady-state interval.
    assert summary["latency_cycles_seen"] == [params.latency_cycles], \
        f"start-to-result latencies {summary['latency_cycles_seen']} cycles, expected " \
        f"{params.latency_cycles} for every image"
    assert len(latencies) == count, f"latency measured on {len(latencies)} of {count} images"
    # (not when loading an image's input takes longer than its layers >= 1 run, as in the tiny
    # CNN: the input stream then sets the pace, CoreParams.input_hidden)
    if cycles_seen is not None and count > 1 and params.input_hidden:
        assert cycles_seen == [params.compute_cycles_per_image], \
            f"image intervals {cycles_seen} cycles, expected {params.compute_cycles_per_image}"
    coverage.closure()
