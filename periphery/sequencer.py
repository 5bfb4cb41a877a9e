"""Sequencer: issues the core's array reads, one command per cycle.

The command stream is specified by :func:`golden.schedule.commands` (same order, same fields);
this module generates it from counters and per-layer constants:

* counters ``layer``, ``oy``, ``ox`` (output pixel), ``ct`` (column tile), ``rt`` (first row
  tile of the command's group: it steps by the number of read lanes, ``chip.parallel_reads``
  at most), innermost last, each wrapping at its layer's bound; lane ``p`` reads row tile
  ``rt + p`` when the layer has it;
* conv word lines come from up to ``slots`` window positions per row tile: a small constant
  table per layer gives each slot's kernel offset ``(ky, kx)``; the position is
  ``(oy + ky - pad, ox + kx - pad)``, out of the map meaning an undriven (zero) slot;
* the write target of a pixel's last row tile is its pooled position (``oy // pool``,
  ``ox // pool``), overwriting for the pixel that opens the pooling window and OR-ing for the
  others; a dense consumer's buffer packs ``rows / chunk`` chunks per word.

Ports
-----
``start``  level: begin an image when idle (sampled while ``idle``).
``cmd``    stream of commands (layout :func:`command_layout`).
``idle``   no image in progress and no command waiting in the output register.
``layer0_done``  one-cycle pulse when the last command of layer 0 is taken (the input buffer
           is free from then on).

The command output is registered (one cycle from counters to ``cmd``). Between layers the
sequencer waits ``layer_gap`` cycles, so the previous layer's last results
are written back before the first read of the next layer (the core's write-back latency).

A **stage** sequencer (``layer`` given) issues one layer's commands only, for a stage of the
pipelined core (:mod:`golden.pipeline`): ``start`` is sampled in every cycle in which no
command is left to load -- including the cycle the previous image's last command is issued --
and the image's first command follows in the next cycle, so images follow each other without
a gap; ``began`` pulses in the cycle a start is taken; ``layer0_done`` marks the image's last
command; ``entry`` counts from the layer's first table entry.
"""

from __future__ import annotations

from amaranth import Const, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.mapping import MappedModel
from golden.schedule import WriteMode, command_shape, entry_base, layer_schedule
from golden.widths import index_bits

__all__ = ["Sequencer", "command_layout", "read_layout"]


def read_layout(mapped: MappedModel) -> data.StructLayout:
    """One read lane of a command: whether it reads (``read``), and where its word lines come
    from (the slots' word addresses, whether each slot is driven, the shift)."""
    s = command_shape(mapped)
    return data.StructLayout({
        "read": unsigned(1),
        "slot_addr": data.ArrayLayout(unsigned(s.addr_bits), s.slots),
        "slot_valid": data.ArrayLayout(unsigned(1), s.slots),
        "shift": unsigned(s.shift_bits),
    })


def command_layout(mapped: MappedModel) -> data.StructLayout:
    """A command: lane ``p`` of ``lanes`` reads array ``tile + p``
    (:class:`golden.schedule.Command`)."""
    s = command_shape(mapped)
    return data.StructLayout({
        "layer": unsigned(s.layer_bits),
        "tile": unsigned(s.tile_bits),
        "entry": unsigned(s.entry_bits),
        "first": unsigned(1),
        "last": unsigned(1),
        "final": unsigned(1),
        "lanes": data.ArrayLayout(read_layout(mapped), s.ports),
        "write_mode": unsigned(2),
        "write_addr": unsigned(s.addr_bits),
        "write_chunk": unsigned(s.chunk_bits),
    })


class Sequencer(wiring.Component):
    """Parameters
    ----------
    mapped : MappedModel
        The compiled model (golden); every bound and table is derived from it.
    layer_gap : int
        Idle cycles between the last command of a layer and the first of the next.
    layer : int, optional
        Build the stage sequencer of this layer (see the module's docstring).
    """

    def __init__(self, mapped: MappedModel, layer_gap: int = 0, layer: int | None = None):
        if isinstance(layer_gap, bool) or not isinstance(layer_gap, int) or layer_gap < 0:
            raise ValueError(f"layer_gap must be a non-negative integer, not {layer_gap!r}")
        if layer is not None and not 0 <= layer < len(mapped.layers):
            raise ValueError(f"layer {layer!r}: the model has {len(mapped.layers)} layers")
        self.mapped, self.layer_gap, self.stage = mapped, layer_gap, layer
        self.shape = command_shape(mapped)
        members = {
            "start": In(1),
            "cmd": Out(stream.Signature(command_layout(mapped))),
            "idle": Out(1),
            "layer0_done": Out(1),
        }
        if layer is not None:
            members["began"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        mapped, shape = self.mapped, self.shape
        layers = mapped.layers
        entries = entry_base(mapped)
        stage = self.stage
        # the layers this sequencer issues (all, or a stage's one) and its first table entry
        ours = range(len(layers)) if stage is None else range(stage, stage + 1)
        entry0 = 0 if stage is None else entries[stage]
        dim = max(max(l.out_height, l.out_width) for l in layers)

        layer = Signal(shape.layer_bits)
        oy = Signal(index_bits(dim))
        ox = Signal(index_bits(dim))
        ct = Signal(index_bits(max(l.column_tiles for l in layers)))
        rt = Signal(index_bits(max(l.row_tiles for l in layers)))
        running = Signal()
        # (no counter without a gap: a zero-width signal is an error for Verilator's lint)
        gap = Signal(range(self.layer_gap + 1), name="gap") if self.layer_gap else Const(0)

        # The command register is loaded straight from the counters and per-layer constants
        # (everything below assigns `cmd` in the sync domain under `load`). A combinational
        # payload would do too, but a bit no statement drives (e.g. `shift` when no row tile
        # needs one) is then emitted as an `always @*` with nothing to wake it -- X in Icarus,
        # an error (ALWNEVER) in Verilator; as a register input it is an ordinary constant.
        cmd = self.cmd.payload
        load = Signal()
        if stage is None:
            have = running & (gap == 0)
        else:
            # a stage takes a start whenever it has nothing left to load; its counters are
            # back at the layer's first command then (they wrap at the image's last)
            began = self.began
            m.d.comb += began.eq(~running & self.start & load)
            have = running | self.start
        take = Signal()        # the counters advance when a command enters the output register
        out_last_of_layer0 = Signal()
        first_layer_end = Signal()
        m.d.comb += [load.eq(~self.cmd.valid | self.cmd.ready), take.eq(have & load),
                     self.idle.eq(~running & ~self.cmd.valid),
                     self.layer0_done.eq(self.cmd.valid & self.cmd.ready & out_last_of_layer0)]
        with m.If(load):
            m.d.sync += [self.cmd.valid.eq(have), cmd.eq(0),
                         out_last_of_layer0.eq(have & first_layer_end)]
        if self.layer_gap:
            with m.If(gap != 0):
                m.d.sync += gap.eq(gap - 1)
        if stage is None:
            with m.If(~running & ~self.cmd.valid & self.start):
                m.d.sync += [running.eq(1), layer.eq(0), oy.eq(0), ox.eq(0), ct.eq(0),
                             rt.eq(0)]
        else:
            with m.If(began):
                m.d.sync += running.eq(1)     # (cleared below when that command is the last)

        # Wide enough signed intermediates for window coordinates (may go negative).
        coord = signed(index_bits(dim + max(l.kernel for l in layers)) + 2)

        group = shape.ports          # row tiles read per command (fewer in a last group)
        if stage is not None:
            m.d.comb += layer.eq(stage)       # a stage's layer is a constant
        with m.Switch(layer):
            for li, lay in enumerate(layers):
                if li not in ours:
                    continue
                with m.Case(li), m.If(load):
                    # the group holding the last row tile; rt only takes multiples of group
                    rt_last = (rt >= lay.row_tiles - group if lay.row_tiles > group
                               else Const(1))
                    ct_last = ct == lay.column_tiles - 1
                    ox_last = ox == lay.out_width - 1
                    oy_last = oy == lay.out_height - 1
                    final = li == len(layers) - 1
                    m.d.sync += [
                        cmd.layer.eq(li),
                        cmd.tile.eq(lay.tile_base + ct * lay.row_tiles + rt),
                        cmd.entry.eq(entries[li] - entry0 + ct),
                        cmd.first.eq(rt == 0),
                        cmd.last.eq(rt_last),
                        cmd.final.eq(final),
                    ]
                    for lane in range(min(group, lay.row_tiles)):
                        self._gather(m, cmd.lanes[lane], lay, lane, rt, oy, ox, coord)
                    if not final:
                        self._write_target(m, cmd, lay, layers[li + 1], oy, ox, ct,
                                           rt_last)
                    with m.If(take):
                        m.d.sync += rt.eq(rt + group)
                        with m.If(rt_last):
                            m.d.sync += [rt.eq(0), ct.eq(ct + 1)]
                            with m.If(ct_last):
                                m.d.sync += [ct.eq(0), ox.eq(ox + 1)]
                                with m.If(ox_last):
                                    m.d.sync += [ox.eq(0), oy.eq(oy + 1)]
                                    with m.If(oy_last):
                                        m.d.sync += oy.eq(0)
                                        if li == ours[0]:
                                            m.d.comb += first_layer_end.eq(1)
                                        if li == ours[-1]:
                                            m.d.sync += running.eq(0)
                                        else:
                                            m.d.sync += [layer.eq(li + 1)] + (
                                                [gap.eq(self.layer_gap)] if self.layer_gap
                                                else [])
        return m

    def _gather(self, m, out, lay, lane, rt, oy, ox, coord):
        """Lane ``lane``'s read (row tile ``rt + lane``) into ``out`` (:func:`read_layout`);
        ``rt`` steps by the group size, so only its multiples have cases."""
        chip = self.mapped.chip
        group = self.shape.ports
        starts = range(0, lay.row_tiles - lane, group)    # rt whose lane reads a row tile
        if lane == 0:
            m.d.sync += out.read.eq(1)
        else:
            m.d.sync += out.read.eq(rt < lay.row_tiles - lane)
        if lay.kind == "dense":
            m.d.sync += [out.slot_addr[0].eq(rt + lane), out.slot_valid[0].eq(1)]
            return
        sched = layer_schedule(lay, chip)
        fmap = lay.input_map
        tag = f"l{lay.index}" + (f"_lane{lane}" if lane else "")
        for j in range(sched.slots):
            if all(sched.slot_window[r + lane][j] < 0 for r in starts):
                continue            # a slot this lane never drives: it reads as zero
            ky = Signal(range(lay.kernel + 1), name=f"{tag}_ky{j}")
            kx = Signal(range(lay.kernel + 1), name=f"{tag}_kx{j}")
            used = Signal(name=f"{tag}_used{j}")
            with m.Switch(rt):
                for r in starts:
                    q = sched.slot_window[r + lane][j]
                    if q >= 0:
                        with m.Case(r):
                            m.d.comb += [ky.eq(q // lay.kernel), kx.eq(q % lay.kernel),
                                         used.eq(1)]
            # The unpadded coordinate goes through a signed signal first: Amaranth's unsigned
            # subtraction would wrap instead of going negative.
            y0 = Signal(coord, name=f"{tag}_y0_{j}")
            x0 = Signal(coord, name=f"{tag}_x0_{j}")
            y = Signal(coord, name=f"{tag}_y{j}")
            x = Signal(coord, name=f"{tag}_x{j}")
            m.d.comb += [y0.eq(oy + ky), x0.eq(ox + kx),
                         y.eq(y0 - lay.padding), x.eq(x0 - lay.padding)]
            inside = (y >= 0) & (y < fmap.height) & (x >= 0) & (x < fmap.width)
            with m.If(used & inside):
                m.d.sync += [out.slot_valid[j].eq(1),
                             out.slot_addr[j].eq((y * fmap.width + x).as_unsigned())]
        with m.Switch(rt):
            for r in starts:
                if sched.shift[r + lane]:
                    with m.Case(r):
                        m.d.sync += out.shift.eq(sched.shift[r + lane])

    def _write_target(self, m, cmd, lay, nxt, oy, ox, ct, rt_last):
        chip = self.mapped.chip
        p = lay.pool
        hp, wp = lay.out_height // p, lay.out_width // p
        kept = (oy < hp * p) & (ox < wp * p)
        opens = ((oy % p) == 0) & ((ox % p) == 0) if p > 1 else Const(1)
        pos = (oy // p) * wp + (ox // p) if p > 1 else oy * wp + ox
        with m.If(rt_last & kept):
            m.d.sync += cmd.write_mode.eq(WriteMode.OR)
            with m.If(opens):
                m.d.sync += cmd.write_mode.eq(WriteMode.OVERWRITE)
            if nxt.kind == "conv":
                m.d.sync += [cmd.write_addr.eq(pos), cmd.write_chunk.eq(ct)]
            else:
                chunk = lay.chunk_bits(chip)
                per_position = lay.output_map(chip).stride // chunk
                per_word = chip.rows // chunk
                units = pos * per_position + ct
                m.d.sync += [cmd.write_addr.eq(units // per_word),
                             cmd.write_chunk.eq(units % per_word)]
