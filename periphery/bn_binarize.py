"""BN-binarize: per-channel threshold compare that turns a pre-activation into an output bit.

Arithmetic: ``bit = (value >= threshold[channel]) XOR invert[channel]`` -- specified by
:class:`golden.bn_binarize.BNBinarizeModel`; this module only implements it.

Ports
-----
``i``   stream of ``{value: signed(acc_width), channel}`` -- one channel per beat, in any order.
``o``   stream of ``{bit, channel}`` -- one beat per input beat, in input order.
``cfg`` table write port (``en``, ``addr``, ``threshold``, ``invert``); one entry per cycle.
``busy`` high while a beat is in flight. The table may be written at any time: a beat
        accepted in the cycle of a write to its channel sees the new entry (the table read is
        transparent), a beat already past the table read keeps the entry it read (tested:
        ``table_writes_while_streaming`` in ``sim/tb/tb_bn_binarize.py``).

Timing: a two-stage pipeline (synchronous table read, then compare into the output register).
Throughput is one beat per cycle under no backpressure; latency is ``params.latency`` cycles.
``o.ready`` reaches ``i.ready`` combinationally (no skid buffer), which is fine at this block's
size and keeps the pipeline to two registers. The table is a memory with no reset: it powers up
with ``init`` (default all zero: threshold 0, invert 0) and keeps its contents through ``rst``.

The inference core (:mod:`periphery.core`) binarizes an array's columns in parallel with one
block per lane, each powering up with its lane's column of the core's threshold table.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.bn_binarize import BNBinarizeParams

__all__ = ["BNBinarize", "input_layout", "output_layout", "entry_layout",
           "table_write_signature"]


def input_layout(params: BNBinarizeParams) -> data.StructLayout:
    """Payload of ``i``; fields are packed from bit 0 in the order listed."""
    return data.StructLayout({"value": signed(params.acc_width),
                              "channel": unsigned(params.channel_width)})


def output_layout(params: BNBinarizeParams) -> data.StructLayout:
    """Payload of ``o``; ``bit`` is 1 for an output of +1."""
    return data.StructLayout({"bit": unsigned(1), "channel": unsigned(params.channel_width)})


def entry_layout(params: BNBinarizeParams) -> data.StructLayout:
    """One threshold-table entry."""
    return data.StructLayout({"threshold": signed(params.acc_width), "invert": unsigned(1)})


def table_write_signature(params: BNBinarizeParams) -> wiring.Signature:
    """Write port of the threshold table, seen from the writer."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(params.channel_width),
        "threshold": Out(signed(params.acc_width)),
        "invert": Out(1),
    })


class BNBinarize(wiring.Component):
    """Batch-norm + binarize unit with a per-channel threshold table.

    Parameters
    ----------
    params : BNBinarizeParams
        Shared with the golden twin; all widths and the latency derive from it.
    init : sequence of (threshold, invert), optional
        Power-up contents of the table, one entry per channel from channel 0 (the rest zero);
        each threshold checked as a table write would be
        (:meth:`BNBinarizeParams.check_threshold`).
    """

    def __init__(self, params: BNBinarizeParams, init=()):
        init = [(int(t), int(bool(inv))) for t, inv in init]
        if len(init) > params.channels:
            raise ValueError(f"init has {len(init)} entries; the table has {params.channels}")
        for channel, (threshold, _) in enumerate(init):
            params.check_threshold(channel, threshold)
        self.params, self.init = params, init
        super().__init__({
            "cfg": In(table_write_signature(params)),
            "i": In(stream.Signature(input_layout(params))),
            "o": Out(stream.Signature(output_layout(params))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params

        # A one-entry memory would have a zero-width address, which Amaranth emits as an
        # ill-formed `[-1:0]` range; two entries cost one unused word and keep the HDL clean.
        depth = max(2, p.channels)
        m.submodules.table = table = Memory(
            shape=entry_layout(p), depth=depth,
            init=[{"threshold": t, "invert": inv} for t, inv in self.init])
        wr = table.write_port()
        rd = table.read_port(transparent_for=(wr,))
        m.d.comb += [
            wr.en.eq(self.cfg.en),
            wr.addr.eq(self.cfg.addr),
            wr.data.threshold.eq(self.cfg.threshold),
            wr.data.invert.eq(self.cfg.invert),
        ]

        # Stage 1 holds the beat whose table entry is being read; stage 2 is the output register.
        s1_valid = Signal()
        s1_value = Signal(signed(p.acc_width))
        s1_channel = Signal(p.channel_width)

        out_free = ~self.o.valid | self.o.ready
        s1_free = ~s1_valid | out_free
        m.d.comb += [
            self.i.ready.eq(s1_free),
            # Reading only when stage 1 advances keeps rd.data aligned with the held beat.
            rd.en.eq(s1_free),
            rd.addr.eq(self.i.payload.channel),
            self.busy.eq(s1_valid | self.o.valid),
        ]
        with m.If(s1_free):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_value.eq(self.i.payload.value),
                s1_channel.eq(self.i.payload.channel),
            ]
        with m.If(out_free):
            m.d.sync += [
                self.o.valid.eq(s1_valid),
                self.o.payload.channel.eq(s1_channel),
                self.o.payload.bit.eq((s1_value >= rd.data.threshold) ^ rd.data.invert),
            ]
        return m
