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

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.bn_binarize import BNBinarizeParams

from .views import elements

__all__ = ["BNBinarize", "input_layout", "output_layout", "entry_layout",
           "table_write_signature"]


def _per_lane(params: BNBinarizeParams):
    """A signed pre-activation or threshold: one value, or an array of one per lane."""
    value = signed(params.acc_width)
    return value if params.lanes == 1 else data.ArrayLayout(value, params.lanes)


def input_layout(params: BNBinarizeParams) -> data.StructLayout:
    """Payload of ``i``; fields are packed from bit 0 in the order listed (``value`` lane 0
    first)."""
    return data.StructLayout({"value": _per_lane(params),
                              "channel": unsigned(params.channel_width)})


def output_layout(params: BNBinarizeParams) -> data.StructLayout:
    """Payload of ``o``; bit ``k`` of ``bit`` is lane ``k``'s output, 1 for +1."""
    return data.StructLayout({"bit": unsigned(params.lanes),
                              "channel": unsigned(params.channel_width)})


def entry_layout(params: BNBinarizeParams) -> data.StructLayout:
    """One threshold-table entry (bit ``k`` of ``invert`` is lane ``k``'s direction)."""
    return data.StructLayout({"threshold": _per_lane(params),
                              "invert": unsigned(params.lanes)})


def table_write_signature(params: BNBinarizeParams) -> wiring.Signature:
    """Write port of the threshold table, seen from the writer (a whole entry at once)."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(params.channel_width),
        "threshold": Out(_per_lane(params)),
        "invert": Out(params.lanes),
    })


class BNBinarize(wiring.Component):
    """Batch-norm + binarize unit with a per-channel threshold table.

    Parameters
    ----------
    params : BNBinarizeParams
        Shared with the golden twin; all widths and the latency derive from it.
    init : sequence of (threshold, invert), optional
        Power-up contents of the table, one entry per channel from channel 0 (the rest zero):
        a threshold and a direction per lane (sequences of ``lanes`` values, or scalars with
        one lane); each threshold checked as a table write would be
        (:meth:`BNBinarizeParams.check_threshold`).
    """

    def __init__(self, params: BNBinarizeParams, init=()):
        init = list(init)
        if len(init) > params.channels:
            raise ValueError(f"init has {len(init)} entries; the table has {params.channels}")
        entries = []
        for channel, (threshold, invert) in enumerate(init):
            t = [int(v) for v in (threshold if params.lanes > 1 else [threshold])]
            inv = [int(bool(v)) for v in (invert if params.lanes > 1 else [invert])]
            if len(t) != params.lanes or len(inv) != params.lanes:
                raise ValueError(f"init entry {channel} has {len(t)} thresholds and "
                                 f"{len(inv)} directions; the block has {params.lanes} lanes")
            for value in t:
                params.check_threshold(channel, value)
            entries.append((t, inv))
        self.params = params
        self.init = [(t[0], inv[0]) if params.lanes == 1 else (t, inv) for t, inv in entries]
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
        def entry(threshold, invert):
            if p.lanes == 1:
                return {"threshold": threshold, "invert": invert}
            return {"threshold": threshold, "invert": sum(b << k for k, b in enumerate(invert))}
        m.submodules.table = table = Memory(shape=entry_layout(p), depth=depth,
                                            init=[entry(t, inv) for t, inv in self.init])
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
        s1_value = Signal(_per_lane(p))
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
                self.o.payload.bit.eq(self._compare(s1_value, rd.data.threshold)
                                      ^ rd.data.invert),
            ]
        return m

    def _compare(self, values, thresholds):
        """``values >= thresholds`` lane by lane, lane 0 in bit 0."""
        if self.params.lanes == 1:
            return values >= thresholds
        values, thresholds = elements(values), elements(thresholds)
        return Cat(*(values[k] >= thresholds[k] for k in range(self.params.lanes)))
