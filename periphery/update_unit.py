"""UpdateUnit: the mixed-precision weight-update accumulator of in-situ training.

Arithmetic (one ``chi`` per weight, saturating; pulses when ``|chi|`` reaches the layer's
``epsilon``, at most ``max_pulses`` per update; ``chi`` keeps the remainder) is specified by
:func:`golden.update_unit.apply_updates`; this module implements it, one update per cycle.

Ports
-----
``i``        stream of updates ``{index, delta}`` (weight index, signed fixed-point update).
``o``        stream of pulse commands ``{index, n}`` (signed ``n``, never 0), in update order;
             an update that asks for no pulse produces none.
``dbg_addr`` -> ``dbg_chi``: asynchronous read of any ``chi`` (testbenches, bring-up).

Pipeline: the update is taken and its ``chi`` read (cycle t); at t+1 the sum is saturated,
the pulses counted by comparing ``|x|`` with the layer's multiples ``k * epsilon`` (``k = 1 ..
max_pulses``: no divider), the new ``chi`` written and the command registered. The read is
transparent for that write, so an update of the weight the previous update wrote, taken in
the cycle of that write, sees the new value: one update per cycle, any index order. A
command that waits for ``o.ready`` holds the update behind it (``i.ready`` low).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.update_unit import UpdateUnitParams

__all__ = ["UpdateUnit", "update_layout", "command_layout"]


def update_layout(params: UpdateUnitParams) -> data.StructLayout:
    return data.StructLayout({"index": unsigned(params.index_bits),
                              "delta": signed(params.update_bits)})


def command_layout(params: UpdateUnitParams) -> data.StructLayout:
    return data.StructLayout({"index": unsigned(params.index_bits),
                              "n": signed(params.pulse_bits)})


class UpdateUnit(wiring.Component):
    """Parameters
    ----------
    params : UpdateUnitParams
    init : sequence of int, optional
        Power-up ``chi`` of every weight (default 0), each in the ``chi_bits`` range.
    """

    def __init__(self, params: UpdateUnitParams, init=()):
        init = [int(v) for v in init]
        if len(init) > params.weights:
            raise ValueError(f"init has {len(init)} values; the unit has {params.weights} "
                             f"weights")
        for k, v in enumerate(init):
            if not params.chi_min <= v <= params.chi_max:
                raise ValueError(f"init[{k}] = {v} outside the {params.chi_bits}-bit chi range")
        self.params, self.init = params, init
        super().__init__({
            "i": In(stream.Signature(update_layout(params))),
            "o": Out(stream.Signature(command_layout(params))),
            "dbg_addr": In(params.index_bits),
            "dbg_chi": Out(signed(params.chi_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        width = p.chi_bits
        # (two entries at least: a one-entry memory would have a zero-width address)
        m.submodules.chi = mem = Memory(shape=signed(width), depth=max(2, p.weights),
                                        init=self.init)
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))
        self._debug_port(m, mem)

        # --- cycle t: take the update, read its chi, find its layer -----------------------
        s1_valid = Signal()
        s1 = Signal(update_layout(p))
        s1_layer = Signal(range(max(2, len(p.layer_sizes))))
        out_free = ~self.o.valid | self.o.ready
        advance = s1_valid & out_free
        take = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~s1_valid | advance),
                     rd.addr.eq(self.i.payload.index), rd.en.eq(take)]
        layer = sum((self.i.payload.index >= start for start in p.layer_starts[1:]),
                    Const(0, s1_layer.shape()))
        with m.If(take):
            m.d.sync += [s1_valid.eq(1), s1.eq(self.i.payload), s1_layer.eq(layer)]
        with m.Elif(advance):
            m.d.sync += s1_valid.eq(0)

        # --- cycle t+1: saturate, count pulses, write chi back, register the command ------
        # (expressions, not named signals: Yosys folds intermediate names into their readers,
        # which would leave them declared and unread in the Verilog)
        total = rd.data + s1.delta
        x = Mux(total > p.chi_max, p.chi_max, Mux(total < p.chi_min, p.chi_min, total))
        magnitude = Mux(x < 0, -x, x)

        def per_layer(values):
            """The constant of ``s1``'s layer."""
            out = Const(values[-1])
            for li in reversed(range(len(values) - 1)):
                out = Mux(s1_layer == li, values[li], out)
            return out

        # the layer's multiples k * epsilon, k = 1 .. max_pulses: |x| reaches k = 1 .. pulses
        multiples = [per_layer([k * eps for eps in p.epsilon])
                     for k in range(1, p.max_pulses + 1)]
        pulses = sum(magnitude >= mk for mk in multiples)
        step = Const(0)                                           # pulses * epsilon
        for k, mk in enumerate(multiples, 1):
            step = Mux(pulses == k, mk, step)
        m.d.comb += [wr.addr.eq(s1.index), wr.data.eq(Mux(x < 0, x + step, x - step)),
                     wr.en.eq(advance)]
        with m.If(out_free):
            m.d.sync += [self.o.valid.eq(s1_valid & (pulses != 0)),
                         self.o.payload.index.eq(s1.index),
                         self.o.payload.n.eq(Mux(x < 0, -pulses, pulses))]
        return m

    def _debug_port(self, m, mem):
        """``dbg_addr`` -> ``dbg_chi``, asynchronous (the port's wires carry the memory-port
        names the lint waivers expect)."""
        rd = mem.read_port(domain="comb")
        m.d.comb += [rd.addr.eq(self.dbg_addr), self.dbg_chi.eq(rd.data)]
