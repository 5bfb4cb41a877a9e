"""PipelinedCore: the layers of a compiled BNN pipelined across images
(``[chip] pipeline = true``; the cycle rules are :mod:`golden.pipeline`'s).

Every layer is a stage with its own sequencer (:class:`~periphery.sequencer.Sequencer` of the
layer), read lanes on the crossbar port, accumulator and BN-binarize -- the output layer an
argmax into the result queue -- so while layer ``l`` computes image ``n + 1``, layer ``l + 1``
computes image ``n``. A stage's command goes through the stages of the single-datapath core
(:mod:`periphery.core`'s dataflow table: gather, crossbar port register, read, accumulate,
BN-binarize, write-back), built from the same pieces.

Activations: layer ``l``'s input buffer holds ``banks[l]`` images (:func:`golden.pipeline.plan`
chooses the count), bank ``b`` at words ``b * depth ..``; a bank is *full* from its producer's
last write until its consumer's last read. A stage starts an image when its input bank is full,
the bank it writes is free and -- the output layer -- a result-queue entry is unclaimed; the
bank numbers travel with each command to its write-back.

Ports
-----
As :class:`~periphery.core.BnnCore` (``i``, ``o``, ``xb``, ``dbg_*``, ``active``), with:

``i``       accepted while the first buffer's next bank is free: the stream loads the next
            images while earlier ones compute;
``o``       results in image order from a queue of ``result_depth`` entries;
``xb``      ``sum(min(parallel_reads, row tiles))`` ports, the layers' in model order;
``dbg_addr`` a word of all banks (bank ``b``'s word ``a`` at ``b * depth + a``);
``active``  an image is in flight (layer 0 has started it, its result is not taken);
``wb_trace`` per hidden layer ``l``, the write-back of the cycle (``wb_trace_layout``):
            ``valid`` a result left BN-binarize, ``write`` it was written, ``end`` it closes
            the image, ``addr`` the word in the bank, ``data`` the word as written -- the
            testbench rebuilds every image's activations from it (the banks are overwritten by
            later images before a result leaves).
"""

from __future__ import annotations

from dataclasses import replace

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.core import CoreParams
from golden.widths import index_bits

from .accumulator import Accumulator
from .core import (CrossbarPort, _external_members, argmax, binarizer, crossbar_codes,
                   debug_port, feed_accumulator, gather_lanes, read_sum, write_back)
from .sequencer import Sequencer

__all__ = ["PipelinedCore", "core_component", "wb_trace_layout"]


def core_component(params: CoreParams, hold: bool = False):
    """The core of ``params``: :class:`PipelinedCore` with ``[chip] pipeline = true``,
    :class:`~periphery.core.BnnCore` otherwise (``hold`` as they take it)."""
    from .core import BnnCore
    return PipelinedCore(params, hold) if params.pipelined else BnnCore(params, hold)


def wb_trace_layout(params: CoreParams) -> data.ArrayLayout:
    """The ``wb_trace`` port: one write-back record per hidden layer."""
    hidden = len(params.mapped.layers) - 1
    return data.ArrayLayout(data.StructLayout({
        "valid": unsigned(1), "write": unsigned(1), "end": unsigned(1),
        "addr": unsigned(params.command_shape.addr_bits),
        "data": unsigned(max(b.word_bits for b in params.buffers[1:]))}), hidden)


def _stage_meta(params: CoreParams, lanes: int, banks: int) -> data.StructLayout:
    s = params.command_shape
    return data.StructLayout({
        "valid": unsigned(1), "end": unsigned(1), "bank": unsigned(index_bits(banks)),
        "entry": unsigned(s.entry_bits), "reads": unsigned(lanes),
        "first": unsigned(1), "last": unsigned(1),
        "write_mode": unsigned(2), "write_addr": unsigned(s.addr_bits),
        "write_chunk": unsigned(s.chunk_bits)})


def _next(bank: Signal, banks: int):
    """The bank after ``bank`` (wrapping)."""
    return Mux(bank == banks - 1, 0, bank + 1)


class PipelinedCore(wiring.Component):
    """Parameters
    ----------
    params : CoreParams
        With ``params.pipelined``.
    hold : bool
        Add an input ``hold``: while it is high, layer 0 starts no image (the system holds
        images back while it programs the arrays).
    """

    def __init__(self, params: CoreParams, hold: bool = False):
        if not params.pipelined:
            raise ValueError("PipelinedCore needs [chip] pipeline = true")
        self.params = params
        members = {**_external_members(params), "xb": Out(CrossbarPort(params))}
        if len(params.mapped.layers) > 1:
            members["wb_trace"] = Out(wb_trace_layout(params))
        if hold:
            members["hold"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        plan = p.pipeline
        layers = p.mapped.layers
        self._mems = mems = []
        self._full = full = []
        for li, shape in enumerate(p.buffers):
            mem = Memory(shape=unsigned(shape.word_bits), depth=plan.banks[li] * shape.depth,
                         init=[])
            m.submodules[f"buffer{li}"] = mem
            mems.append(mem)
            full.append(Signal(plan.banks[li], name=f"buffer{li}_full"))
        # set/clear of every bank's full flag this cycle, merged into one update per buffer
        self._set = [Signal(len(f), name=f"buffer{li}_set") for li, f in enumerate(full)]
        self._clear = [Signal(len(f), name=f"buffer{li}_clear") for li, f in enumerate(full)]
        for f, s, c in zip(full, self._set, self._clear):
            m.d.sync += f.eq((f | s) & ~c)

        self._input(m)
        port = 0
        began = []
        for li in range(len(layers)):
            began.append(self._stage(m, li, port))
            port += p.stage_ports[li]
        # images in flight: from layer 0 starting one to its result taken (as the single-
        # datapath core's `active`: a loaded image that has not started does not count)
        inflight = Signal(range(sum(plan.banks) + plan.result_depth + 1),
                          name="images_in_flight")
        m.d.sync += inflight.eq(inflight + began[0] - (self.o.valid & self.o.ready))
        m.d.comb += self.active.eq(inflight != 0)
        debug_port(m, self, mems)
        return m

    def _input(self, m):
        """The input stream into the first buffer's next free bank (``input_words`` words per
        beat)."""
        p = self.params
        banks, depth = p.pipeline.banks[0], p.buffers[0].depth
        per_beat, width = p.chip.input_words, p.buffers[0].word_bits
        bank = Signal(range(banks), name="input_bank")
        addr = Signal(range(max(2, depth)), name="input_addr")
        free = ~self._full[0].bit_select(bank, 1)
        take = self.i.valid & free
        m.d.comb += self.i.ready.eq(free)
        base = bank * depth
        for k in range(per_beat):
            wr = self._mems[0].write_port()
            m.d.comb += [wr.addr.eq(base + addr + k), wr.en.eq(take),
                         wr.data.eq(self.i.payload[k * width:(k + 1) * width])]
        with m.If(take):
            m.d.sync += addr.eq(addr + per_beat)
            with m.If(addr == depth - per_beat):
                m.d.sync += [addr.eq(0), bank.eq(_next(bank, banks))]
                m.d.comb += self._set[0].eq(Const(1, banks) << bank)

    def _stage(self, m, li, port0):
        """Layer ``li``'s stage, reading through crossbar ports ``port0 ..``; returns the
        pulse of its sequencer taking an image."""
        p = self.params
        plan = p.pipeline
        layers = p.mapped.layers
        layer = layers[li]
        final = li == len(layers) - 1
        lanes = p.stage_ports[li]
        tag = f"s{li}_"

        seq = Sequencer(p.mapped, 0, layer=li)
        m.submodules[f"sequencer{li}"] = seq
        m.d.comb += seq.cmd.ready.eq(1)
        cmd = seq.cmd.payload

        # banks: of the next image to start, and of the image whose commands are issued
        in_banks, in_depth = plan.banks[li], p.buffers[li].depth
        start_in = Signal(range(in_banks), name=tag + "start_bank")
        cur_in = Signal(range(in_banks), name=tag + "bank")
        out_banks = 1 if final else plan.banks[li + 1]
        if final:       # results leave through the queue: no bank (nor a zero-width signal)
            cur_out = Const(0, 1)
        else:
            start_out = Signal(range(out_banks), name=tag + "start_out_bank")
            cur_out = Signal(range(out_banks), name=tag + "out_bank")
        with m.If(seq.began):
            m.d.sync += [start_in.eq(_next(start_in, in_banks)), cur_in.eq(start_in)]
            if not final:
                m.d.sync += [start_out.eq(_next(start_out, out_banks)), cur_out.eq(start_out)]
        # the input bank is free again once the image's last command has read it
        with m.If(seq.layer0_done):
            m.d.comb += self._clear[li].eq(Const(1, in_banks) << cur_in)

        ready = self._full[li].bit_select(start_in, 1)
        if li == 0 and "hold" in self.signature.members:
            ready &= ~self.hold
        if not final:
            ready &= ~self._full[li + 1].bit_select(start_out, 1)
        else:
            depth = plan.result_depth
            m.submodules.results = queue = SyncFIFO(width=len(self.o.payload.as_value()),
                                                    depth=depth)
            claimed = Signal(range(depth + 1), name="results_claimed")
            m.d.sync += claimed.eq(claimed + seq.began - (self.o.valid & self.o.ready))
            ready &= claimed < depth
        m.d.comb += seq.start.eq(ready)

        # t: gather; t+1: the crossbar port registers
        wls = gather_lanes(m, self._mems[li], p, li, cmd, lanes, base=cur_in * in_depth)
        meta_layout = _stage_meta(p, lanes, out_banks)
        meta1 = Signal(meta_layout, name=tag + "meta1")
        meta2 = Signal(meta_layout, name=tag + "meta2")
        reads = Cat(*(cmd.lanes[k].read for k in range(lanes)))
        m.d.sync += self.xb.read[port0:port0 + lanes].eq(reads & seq.cmd.valid.replicate(lanes))
        m.d.sync += [self.xb.tile[port0 + k].eq(cmd.tile + k) for k in range(lanes)]
        m.d.sync += [self.xb.wl[port0 + k].eq(wls[k]) for k in range(lanes)]
        m.d.sync += [meta1.valid.eq(seq.cmd.valid), meta1.end.eq(seq.layer0_done),
                     meta1.bank.eq(cur_out), meta1.entry.eq(cmd.entry), meta1.reads.eq(reads),
                     meta1.first.eq(cmd.first), meta1.last.eq(cmd.last),
                     meta1.write_mode.eq(cmd.write_mode), meta1.write_addr.eq(cmd.write_addr),
                     meta1.write_chunk.eq(cmd.write_chunk), meta2.eq(meta1)]

        # t+2: the codes summed over the stage's lanes into its accumulator
        e0 = p.entry_base[li]
        entries = slice(e0, e0 + layer.column_tiles)
        bias, double = p.bias_table
        acc = Accumulator(replace(p.accumulator, entries=layer.column_tiles),
                          bias[entries], double[entries])
        m.submodules[tag + "accumulator"] = acc
        # each lane's codes through a signal of its own: a slice of the whole port per column
        # would have Amaranth emit the port's every bit for each (11 s for the MLP's 31 ports)
        # (plain bits viewed as columns: a layout-shaped signal gets an alias wire per column,
        # see CrossbarPort)
        all_codes = crossbar_codes(p, self.xb.codes)
        lane_codes = []
        for k in range(lanes):
            port_codes = all_codes[port0 + k]
            c = Signal(port_codes.shape().size, name=f"{tag}codes{k}")
            m.d.comb += c.eq(port_codes.as_value())
            lane_codes.append(data.View(port_codes.shape(), c))
        codes = read_sum(m, p, lane_codes, [meta2.reads[k] for k in range(lanes)], prefix=tag)
        valid2 = meta2.valid & self.xb.valid
        feed_accumulator(m, acc, codes, meta2, valid2)
        meta3 = Signal(meta_layout, name=tag + "meta3")
        with m.If(valid2 & meta2.last):
            m.d.sync += meta3.eq(meta2)

        if final:
            # t+3: argmax into the result queue
            best_k, scores = argmax(m, p, acc)
            m.d.comb += [queue.w_en.eq(acc.o.valid),
                         queue.w_data.eq(Cat(best_k, *scores)),
                         self.o.valid.eq(queue.r_rdy),
                         self.o.payload.as_value().eq(queue.r_data),
                         queue.r_en.eq(self.o.ready)]
            return seq.began

        # t+3..t+5: BN-binarize, then the write-back into the image's bank of the next buffer
        bn = binarizer(m, p, acc, acc.o.valid, p.threshold_table[entries],
                       name=tag + "bn_binarize")
        meta4 = Signal(meta_layout, name=tag + "meta4")
        wb = Signal(meta_layout, name=tag + "wb")
        m.d.sync += [meta4.eq(meta3), wb.eq(meta4)]
        out_depth = p.buffers[li + 1].depth
        word = write_back(m, self._mems[li + 1], p, li, wb, bn.o.payload.bit, bn.o.valid,
                          base=wb.bank * out_depth)
        with m.If(bn.o.valid & wb.end):
            m.d.comb += self._set[li + 1].eq(Const(1, out_banks) << wb.bank)
        trace = self.wb_trace[li]
        m.d.comb += [trace.valid.eq(bn.o.valid), trace.end.eq(bn.o.valid & wb.end),
                     trace.write.eq(bn.o.valid & (wb.write_mode != 0)),
                     trace.addr.eq(wb.write_addr), trace.data.eq(word)]
        return seq.began

