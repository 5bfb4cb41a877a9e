"""Accumulator: per-column sum of ADC codes over a layer's row tiles, then ``scale*s - bias``.

Arithmetic is specified by :class:`golden.accumulator.AccumulatorModel`; this module only
implements it.

Ports
-----
``i``  stream of ``{codes[lanes], first, last, entry}``: one array read's ADC codes. ``first``
       restarts the sums, ``last`` closes them and emits an output.
``o``  stream of ``{values[lanes], entry}``: one beat per ``last`` input beat.

The correction table (``double`` and per-lane ``bias`` per entry) is a read-only memory whose
contents are given at construction (generated from the model). Timing: one beat per cycle;
the output register holds a result until taken, and ``i.ready`` is low while it is full and not
being taken (so in the core, where ``o.ready`` is tied high, the block never stalls).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.accumulator import AccumulatorParams

from .views import elements

__all__ = ["Accumulator", "input_layout", "output_layout"]


def input_layout(p: AccumulatorParams) -> data.StructLayout:
    return data.StructLayout({
        "codes": data.ArrayLayout(signed(p.code_bits), p.lanes),
        "first": unsigned(1),
        "last": unsigned(1),
        "entry": unsigned(p.entry_bits),
    })


def output_layout(p: AccumulatorParams) -> data.StructLayout:
    return data.StructLayout({
        "values": data.ArrayLayout(signed(p.acc_bits), p.lanes),
        "entry": unsigned(p.entry_bits),
    })


def _table_layout(p: AccumulatorParams) -> data.StructLayout:
    return data.StructLayout({"bias": data.ArrayLayout(signed(p.bias_bits), p.lanes),
                              "double": unsigned(1)})


class Accumulator(wiring.Component):
    """Parameters
    ----------
    params : AccumulatorParams
    bias : sequence of sequences of int
        ``bias[entry][lane]``.
    double : sequence of bool
        ``double[entry]``: scale the sum by 2 (bipolar-input layers).
    """

    def __init__(self, params: AccumulatorParams, bias, double):
        self.params = params
        if len(bias) != params.entries or len(double) != params.entries:
            raise ValueError(f"correction table needs {params.entries} entries, got "
                             f"{len(bias)} bias rows and {len(double)} double flags")
        self._table = [{"bias": [int(b) for b in row], "double": int(bool(d))}
                       for row, d in zip(bias, double)]
        super().__init__({
            "i": In(stream.Signature(input_layout(params))),
            "o": Out(stream.Signature(output_layout(params))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        # Two entries minimum: a one-entry memory has a zero-width address (see BNBinarize).
        rows = self._table + [{"bias": [0] * p.lanes, "double": 0}] * (2 - len(self._table))
        m.submodules.table = table = Memory(shape=_table_layout(p), depth=len(rows), init=rows)
        rd = table.read_port(domain="comb")
        m.d.comb += rd.addr.eq(self.i.payload.entry)

        sums = [Signal(signed(p.acc_bits), name=f"sum{k}") for k in range(p.lanes)]
        take = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        # Each lane's arithmetic is an unconditional expression (Mux, not m.If): the emitted
        # Verilog is continuous assignments, which an event-driven simulator evaluates when an
        # operand changes, instead of one process per signal that wakes on any change of the
        # 1000-bit input payload (the MLP core simulates 1.5x faster on Icarus so). Only the
        # registers are written under the handshake.
        def fit(value):
            """``value`` wrapped to the accumulator width, as a named signal would hold it."""
            return value[:p.acc_bits].as_signed()

        totals, results = [], []
        codes, biases = elements(self.i.payload.codes), elements(rd.data.bias)
        for k in range(p.lanes):
            # The running total is a named signal: as an expression the Verilog repeats it in
            # each of its three readers (the sum register and both arms of the result), three
            # adders per lane where one will do (Icarus ran the 128-lane regression 1.6x
            # faster with one). `first` selects the addend, 0 or the sum, rather than the
            # sign-extended code, which would take a 7-bit replication per lane.
            code, bias = codes[k], biases[k]
            total = Signal(signed(p.acc_bits), name=f"total{k}")
            m.d.comb += total.eq(code + Mux(self.i.payload.first, 0, sums[k]))
            totals.append(total)
            results.append(fit(Mux(rd.data.double, (total << 1) - bias, total - bias)))
        with m.If(take):
            m.d.sync += [s.eq(t) for s, t in zip(sums, totals)]
            # The output changes only with a result, not with every partial sum: in the
            # core, downstream logic (128 threshold compares) then settles once per pixel.
            with m.If(self.i.payload.last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.entry.eq(self.i.payload.entry),
                             self.o.payload.values.as_value().eq(Cat(*results))]
        return m
