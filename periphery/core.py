"""BnnCore: a compiled BNN as hardware -- sequencer, activation buffers, crossbar port,
accumulator, BN-binarize, pooled write-back and argmax. ``BnnSystem`` adds the behavioural
crossbar.

Dataflow of one command (cycle t = the sequencer's command is taken):

====  ==============================================================================
t     gather: per read lane, the command's slot words are read from the layer's input
      buffer (asynchronous read ports), concatenated, shifted, cut to ``rows`` word-line bits
t+1   crossbar port registers drive ``xb.read``/``xb.tile``/``xb.wl`` (one element per lane)
t+2   the crossbar's ADC codes arrive (``xb.valid``; fixed latency 1), are summed over the
      lanes that read (an adder tree, with ``chip.parallel_reads`` > 1) and accumulated
t+3   accumulator result (on ``last``): into the BN-binarize block
      (:class:`~periphery.bn_binarize.BNBinarize` with a lane per column, the block the block
      regression verifies), or -- for the output layer -- argmax into the result register
t+4   BN-binarize stage 1: the lane's threshold-table entry is read
t+5   BN-binarize output register: write-back, a read-modify-write of the chunk in the next
      layer's buffer (overwrite for the pixel opening a pooling window, OR for the others)
====  ==============================================================================

A command taken at t+6 sees that write, hence the sequencer's layer gap of
``WRITEBACK_LATENCY - 1`` idle cycles (see :mod:`golden.core`).

Ports
-----
``i``    stream of input-buffer words (``buffers[0].word_bits`` wide, ``depth`` per image);
         accepted whenever the input buffer is free, i.e. while the previous image runs
         layers >= 1.
``o``    stream of results ``{cls, scores[classes]}``, one per image. The next image starts
         only after the result is taken, so every layer's buffer holds the image's bits
         until then (``dbg_*`` reads them).
``xb``   crossbar port bundle (:class:`CrossbarPort`).
``dbg_buffer``, ``dbg_addr`` -> ``dbg_data``: asynchronous read of any activation buffer,
         for testbenches and bring-up.
``active``  an image is in flight (started, result not yet taken).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.core import CoreParams
from golden.schedule import WriteMode, layer_schedule
from golden.widths import index_bits

from golden.programming import WriteVerifyPolicy

from .accumulator import Accumulator
from .bn_binarize import BNBinarize
from .programming import ProgrammingController
from .sequencer import Sequencer
from .views import elements

__all__ = ["BnnCore", "BnnSystem", "CrossbarPort", "CrossbarProgramming", "codes_layout",
           "crossbar_codes", "result_layout"]


class CrossbarPort(wiring.Signature):
    """The core's side of the crossbar: ``read_ports`` array reads per cycle at most, their
    codes one cycle later.

    Members (``P = params.crossbar_ports``: ``read_ports``, or every stage's ports in a
    pipelined core; with P = 1 each array has one element)

    ``read``  ``Out(P)``: bit ``p`` -- port ``p`` reads this cycle;
    ``tile``  ``Out(ArrayLayout(tile_bits, P))``: the array port ``p`` reads;
    ``wl``    ``Out(ArrayLayout(rows, P))``: its word lines (1 = driven at V_read);
    ``valid`` ``In(1)``: the codes of the reads issued in the previous cycle are on ``codes``;
    ``codes`` ``In(P * columns * adc_bits)``: port ``p``'s ADC code of column ``c``, signed, at
              bit ``(p * columns + c) * adc_bits`` (:func:`crossbar_codes` views them); a port
              that did not read holds no meaning (the core ignores it).

    ``codes`` is plain bits, not an ``ArrayLayout``: for a layout Amaranth writes an alias wire
    per port and per column for waveform viewers, and Icarus updates every alias from the whole
    bus on every read. The 8-port pipelined MLP has 3 999 of them on a 35 712-bit bus: its
    30-image Icarus regression took 11.4 s in the simulator with them, 5.7 s without.
    """

    def __init__(self, params: CoreParams):
        chip = params.chip
        ports = params.crossbar_ports
        super().__init__({
            "read": Out(ports),
            "tile": Out(data.ArrayLayout(unsigned(params.command_shape.tile_bits), ports)),
            "wl": Out(data.ArrayLayout(unsigned(chip.rows), ports)),
            "valid": In(1),
            "codes": In(codes_layout(params).size),
        })


def codes_layout(params: CoreParams) -> data.ArrayLayout:
    """The crossbar codes' layout: ``[port][column]``, signed ADC codes."""
    return data.ArrayLayout(data.ArrayLayout(signed(params.chip.adc_bits), params.chip.columns),
                            params.crossbar_ports)


def crossbar_codes(params: CoreParams, codes) -> data.View:
    """The crossbar port's ``codes`` bits viewed as ``[port][column]`` (:func:`codes_layout`)."""
    return data.View(codes_layout(params), codes)


def result_layout(params: CoreParams) -> data.StructLayout:
    return data.StructLayout({
        "cls": unsigned(index_bits(params.classes)),
        "scores": data.ArrayLayout(signed(params.accumulator.acc_bits), params.classes),
    })


def _external_members(params: CoreParams) -> dict:
    """Ports of the core that ``BnnSystem`` also has (everything but the crossbar port)."""
    s = params.command_shape
    # a pipelined core's buffers hold several banks
    words = max(n * b.depth for n, b in zip(params.pipeline.banks, params.buffers)) \
        if params.pipelined else s.max_depth
    return {
        "i": In(stream.Signature(unsigned(params.input_beat_bits))),
        "o": Out(stream.Signature(result_layout(params))),
        "dbg_buffer": In(s.layer_bits),
        "dbg_addr": In(index_bits(words)),
        "dbg_data": Out(max(b.word_bits for b in params.buffers)),
        "active": Out(1),
    }


def _meta_layout(params: CoreParams) -> data.StructLayout:
    s = params.command_shape
    return data.StructLayout({
        "layer": unsigned(s.layer_bits), "entry": unsigned(s.entry_bits),
        "reads": unsigned(s.ports),
        "first": unsigned(1), "last": unsigned(1), "final": unsigned(1),
        "write_mode": unsigned(2), "write_addr": unsigned(s.addr_bits),
        "write_chunk": unsigned(s.chunk_bits)})


class BnnCore(wiring.Component):
    """Parameters
    ----------
    params : CoreParams
    hold : bool
        Add an input ``hold``: while it is high, a loaded image does not start (the system
        holds images back while it programs the arrays).
    """

    def __init__(self, params: CoreParams, hold: bool = False):
        if params.pipelined:
            raise ValueError("BnnCore runs the layers one after another; with [chip] pipeline "
                             "= true the core is periphery.pipeline.PipelinedCore")
        self.params = params
        members = {**_external_members(params), "xb": Out(CrossbarPort(params))}
        if hold:
            members["hold"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        """The stages below, in the order of the dataflow table of this module."""
        m = Module()
        p = self.params
        mapped = p.mapped

        m.submodules.sequencer = seq = Sequencer(mapped, p.layer_gap)
        bias, double = p.bias_table
        m.submodules.accumulator = acc = Accumulator(p.accumulator, bias, double)

        # --- activation buffers: buffer l is layer l's input -------------------------------
        mems = []
        for li, shape in enumerate(p.buffers):
            mem = Memory(shape=unsigned(shape.word_bits), depth=max(2, shape.depth), init=[])
            m.submodules[f"buffer{li}"] = mem
            mems.append(mem)

        cmd = seq.cmd.payload
        m.d.comb += seq.cmd.ready.eq(1)

        self._input(m, mems[0], seq)
        wls = self._gather(m, mems, cmd)
        meta2 = self._crossbar_port(m, seq, wls)
        meta3 = self._accumulate(m, acc, meta2)
        wb, wb_bits, wb_valid = self._binarize(m, acc, meta3)
        self._argmax(m, acc, meta3)
        self._write_back(m, mems, wb, wb_bits, wb_valid)
        self._debug_port(m, mems)
        return m

    def _input(self, m, mem, seq):
        """The image input stream into the first buffer (``input_words`` words per beat, a
        write port each), and the start of an image."""
        p = self.params
        depth0, per_beat = p.buffers[0].depth, p.chip.input_words
        width = p.buffers[0].word_bits
        in_addr = Signal(range(max(2, depth0)))
        buf0_full = Signal()
        m.d.comb += self.i.ready.eq(~buf0_full)
        for k in range(per_beat):
            in_wr = mem.write_port()
            m.d.comb += [in_wr.addr.eq(in_addr + k if k else in_addr),
                         in_wr.data.eq(self.i.payload[k * width:(k + 1) * width]
                                       if per_beat > 1 else self.i.payload),
                         in_wr.en.eq(self.i.valid & ~buf0_full)]
        with m.If(self.i.valid & ~buf0_full):
            m.d.sync += in_addr.eq(in_addr + per_beat)
            with m.If(in_addr == depth0 - per_beat):
                m.d.sync += [in_addr.eq(0), buf0_full.eq(1)]
        with m.If(seq.layer0_done):
            m.d.sync += buf0_full.eq(0)

        active = Signal()
        held = self.hold if "hold" in self.signature.members else Const(0)
        m.d.comb += [seq.start.eq(buf0_full & ~active & ~held), self.active.eq(active)]
        with m.If(seq.start & seq.idle):
            m.d.sync += active.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [active.eq(0), self.o.valid.eq(0)]

    def _gather(self, m, mems, cmd):
        """Cycle t: each read lane's word lines from the layer's input buffer."""
        p = self.params
        chip, layers = p.chip, p.mapped.layers
        ports = p.read_ports
        wls = [Signal(chip.rows, name="wl" if ports == 1 else f"wl{lane}")
               for lane in range(ports)]
        with m.Switch(cmd.layer):
            for li, layer in enumerate(layers):
                gathered = gather_lanes(m, mems[li], p, li, cmd, min(ports, layer.row_tiles))
                with m.Case(li):
                    m.d.comb += [wl.eq(g) for wl, g in zip(wls, gathered)]
        return wls

    def _crossbar_port(self, m, seq, wls):
        """Cycle t+1: the crossbar port registers, and the command's metadata for later
        stages."""
        p = self.params
        cmd = seq.cmd.payload
        ports = p.read_ports
        meta1 = Signal(_meta_layout(p))
        meta2 = Signal(_meta_layout(p))
        reads = Cat(*(cmd.lanes[lane].read for lane in range(ports)))
        m.d.sync += [self.xb.read.eq(reads & seq.cmd.valid.replicate(ports)),
                     meta2.eq(meta1)]
        m.d.sync += [self.xb.tile[lane].eq(cmd.tile + lane) for lane in range(ports)]
        m.d.sync += [self.xb.wl[lane].eq(wls[lane]) for lane in range(ports)]
        m.d.sync += [meta1.layer.eq(cmd.layer), meta1.entry.eq(cmd.entry), meta1.reads.eq(reads),
                     meta1.first.eq(cmd.first), meta1.last.eq(cmd.last),
                     meta1.final.eq(cmd.final), meta1.write_mode.eq(cmd.write_mode),
                     meta1.write_addr.eq(cmd.write_addr), meta1.write_chunk.eq(cmd.write_chunk)]
        return meta2

    def _accumulate(self, m, acc, meta2):
        """Cycle t+2: the ports' codes summed (adder tree) into the accumulator."""
        p = self.params
        codes = read_sum(m, p, crossbar_codes(p, self.xb.codes),
                         [meta2.reads[lane] for lane in range(p.read_ports)])
        feed_accumulator(m, acc, codes, meta2, self.xb.valid)
        meta3 = Signal(_meta_layout(p))
        with m.If(self.xb.valid & meta2.last):
            m.d.sync += meta3.eq(meta2)
        return meta3

    def _binarize(self, m, acc, meta3):
        """Cycles t+3..t+5: BN-binarize of a hidden layer's values."""
        p = self.params
        bn = binarizer(m, p, acc, acc.o.valid & ~meta3.final, p.threshold_table)
        # the command's metadata follows the block's two stages through two plain registers
        meta4 = Signal(_meta_layout(p))
        wb = Signal(_meta_layout(p))
        m.d.sync += [meta4.eq(meta3), wb.eq(meta4)]
        return wb, bn.o.payload.bit, bn.o.valid

    def _argmax(self, m, acc, meta3):
        """Cycle t+3 of the output layer: argmax of the class scores into the result
        register."""
        p = self.params
        best_k, scores = argmax(m, p, acc)
        with m.If(acc.o.valid & meta3.final):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.cls.eq(best_k)]
            m.d.sync += [self.o.payload.scores[k].eq(scores[k]) for k in range(p.classes)]

    def _write_back(self, m, mems, wb, wb_bits, wb_valid):
        """Cycle t+5: a layer's output chunk into the next layer's buffer."""
        p = self.params
        for li in range(len(p.mapped.layers) - 1):
            write_back(m, mems[li + 1], p, li, wb, wb_bits, wb_valid & (wb.layer == li))

    def _debug_port(self, m, mems):
        debug_port(m, self, mems)


# --- datapath pieces shared with the pipelined core (periphery.pipeline) ---------------------

def gather_lanes(m, mem, p: CoreParams, li: int, cmd, lanes: int, base=None) -> list:
    """Word lines of layer ``li``'s ``lanes`` read lanes of command ``cmd``: per slot a word of
    ``mem`` (an asynchronous read port at the slot's address, plus ``base`` -- the bank's first
    word -- when given; 0 when the slot is not driven), concatenated, shifted."""
    layer = p.mapped.layers[li]
    sched = layer_schedule(layer, p.chip)
    width = p.buffers[li].word_bits
    gathered = []
    for lane in range(lanes):
        src = cmd.lanes[lane]
        words = []
        for j in range(sched.slots):
            port = mem.read_port(domain="comb")
            addr = src.slot_addr[j]
            m.d.comb += port.addr.eq(addr if base is None else addr + base)
            tag = f"l{li}_slot{j}" if lane == 0 else f"l{li}_lane{lane}_slot{j}"
            word = Signal(width, name=tag)
            m.d.comb += word.eq(port.data & src.slot_valid[j].replicate(width))
            words.append(word)
        joined = Cat(*words)
        gathered.append(joined >> src.shift if any(sched.shift) else joined)
    return gathered


def read_sum(m, p: CoreParams, codes, reads: list, prefix: str = "") -> Value:
    """The codes of one cycle's reads summed per column (the adder tree; a port that did not
    read contributes 0): ``codes[lane][column]`` (the crossbar port's codes, or a list of some
    of its lanes) of the lanes whose ``reads`` bit is set.
    Combinational, so the latency does not depend on the ports; one port is passed through
    (sign-extended to ``read_sum_bits``, for a pipelined stage of one lane among wider ones)."""
    chip = p.chip
    if len(reads) == 1 and p.read_sum_bits == chip.adc_bits:
        return Value.cast(codes[0] if isinstance(codes, list) else codes)
    sums = []
    columns = [elements(codes[lane]) for lane in range(len(reads))]
    for c in range(chip.columns):
        total = Signal(signed(p.read_sum_bits), name=f"{prefix}read_sum{c}")
        terms = [Mux(read, columns[lane][c], 0) for lane, read in enumerate(reads)]
        m.d.comb += total.eq(sum(terms[1:], terms[0]))
        sums.append(total)
    return Cat(*sums)


def feed_accumulator(m, acc, codes: Value, meta, valid) -> None:
    """The accumulator's input beat: ``codes`` and the command's ``first``/``last``/``entry``.

    The payload is assigned whole, from one concatenation in its layout's field order: field
    by field, Yosys emits partial assignments of one net, which Icarus resolves through a
    strength-aware concatenation whose every reader converts all 1000+ bits one by one (the
    MLP core simulated 2.3x slower so). Amaranth then connects the accumulator instance
    through two ports named port$N$k (codes, and the rest)."""
    sources = {"codes": codes, "first": meta.first, "last": meta.last, "entry": meta.entry}
    parts = []
    for name, field in acc.i.payload.shape():
        part = Value.cast(sources[name])
        if name == "entry":     # a stage's accumulator holds its own layer's entries only
            part = part[:Shape.cast(field.shape).width]
        assert len(part) == Shape.cast(field.shape).width, f"accumulator input {name}"
        parts.append(part)
    m.d.comb += [acc.i.valid.eq(valid), acc.i.payload.eq(Cat(*parts)), acc.o.ready.eq(1)]


def binarizer(m, p: CoreParams, acc, valid, table: list, name: str = "bn_binarize"):
    """A BN-binarize block (:class:`~periphery.bn_binarize.BNBinarize`, a lane per column, the
    block the block regression verifies) fed by ``acc``'s output when ``valid``, with the
    threshold ``table`` rows (:attr:`golden.core.CoreParams.threshold_table`). Never stalled
    (``o.ready`` tied high), so a result leaves it exactly its latency (2) after it entered."""
    lanes = p.chip.columns
    bn_params = replace(p.bn_params, channels=len(table))
    assert bn_params.latency == 2, "the metadata delay of the core assumes a 2-stage block"
    bn = BNBinarize(bn_params, init=[(row["threshold"], row["invert"]) for row in table])
    m.submodules[name] = bn
    # the payload assigned whole (see feed_accumulator): every lane's value sign-extended to
    # the table's width, then the entry
    extend = bn_params.acc_width - p.accumulator.acc_bits
    assert extend >= 0, "a stored threshold is at least as wide as a value"
    parts = []
    values = elements(acc.o.payload.values)
    for k in range(lanes):
        v = values[k]
        parts.append(Cat(v, v[-1].replicate(extend)) if extend else v)
    parts.append(Value.cast(acc.o.payload.entry))
    m.d.comb += [bn.i.valid.eq(valid), bn.i.payload.eq(Cat(*parts)),
                 bn.o.ready.eq(1), bn.cfg.en.eq(0)]
    return bn


def argmax(m, p: CoreParams, acc) -> tuple:
    """``(class, scores)`` of the accumulator's output: the first class of the highest score
    (strict comparison: ties keep the lower class), combinational."""
    scores = elements(acc.o.payload.values)[:p.classes]
    best = scores[0]
    cls_w = index_bits(p.classes)
    best_k = Const(0, cls_w)
    for k in range(1, p.classes):
        better = scores[k] > best
        nb = Signal(signed(p.accumulator.acc_bits), name=f"argmax_best{k}")
        nk = Signal(cls_w, name=f"argmax_cls{k}")
        m.d.comb += [nb.eq(best), nk.eq(best_k)]
        with m.If(better):                      # strict: ties keep the lower class
            m.d.comb += [nb.eq(scores[k]), nk.eq(k)]
        best, best_k = nb, nk
    return best_k, scores


def debug_port(m, core, mems) -> None:
    """``core.dbg_buffer``, ``core.dbg_addr`` -> ``core.dbg_data``: an asynchronous read of
    any word of any activation buffer (``mems``)."""
    with m.Switch(core.dbg_buffer):
        for li, mem in enumerate(mems):
            port = mem.read_port(domain="comb")
            m.d.comb += port.addr.eq(core.dbg_addr)
            with m.Case(li):
                m.d.comb += core.dbg_data.eq(port.data)


def write_back(m, target, p: CoreParams, li: int, wb, bits, valid, base=None) -> Value:
    """Layer ``li``'s output chunk ``bits`` into ``target`` (layer ``li + 1``'s buffer) at
    ``wb.write_addr`` (plus ``base``, the bank's first word) and chunk ``wb.write_chunk``: a
    read-modify-write, overwriting the chunk for the pixel opening a pooling window and OR-ing
    it for the others; nothing for ``WriteMode.NONE`` or without ``valid``. Returns the word
    written."""
    chip = p.chip
    layer = p.mapped.layers[li]
    width = p.buffers[li + 1].word_bits
    chunk = layer.chunk_bits(chip)
    wr = target.write_port()
    old = target.read_port(domain="comb")
    addr = wb.write_addr if base is None else wb.write_addr + base
    m.d.comb += [old.addr.eq(addr), wr.addr.eq(addr)]
    mine = valid & (wb.write_mode != WriteMode.NONE)
    keep = Signal(width, name=f"wb{li}_keep")
    m.d.comb += keep.eq(old.data)
    with m.If(wb.write_mode == WriteMode.OVERWRITE):
        m.d.comb += keep.eq(0)
    with m.Switch(wb.write_chunk):
        for k in range(width // chunk):
            with m.Case(k):
                lo, hi = k * chunk, (k + 1) * chunk
                new = Cat(old.data[:lo], keep[lo:hi] | bits[:chunk], old.data[hi:])
                m.d.comb += wr.data.eq(new)
    m.d.comb += wr.en.eq(mine)
    return wr.data


@dataclass(frozen=True)
class CrossbarProgramming:
    """The programming phase of a :class:`BnnSystem`: the write-verify controller and what the
    behavioural crossbar needs to replay the device (``mbnn_crossbar.v``, ``PROGRAM = 1``).

    Attributes
    ----------
    policy : WriteVerifyPolicy
    cells : int
        Physical cells of all arrays; their target levels
        (:func:`golden.programming.model_targets`) are in ``targets_file``, which the system's
        weight memory (``mbnn_target_memory``, beside the crossbar) loads.
    pulses : int
        Pulses of the golden log the crossbar replays.
    physical_columns : int
        Physical columns per array (``2 * columns`` for differential pairs, ``columns + 1``
        with a reference column).
    reference : bool
        Reference-column mapping.
    g_off_s, g_on_s : float
        The device's conductance range, siemens (the verify read's scale).
    cells_file, pulse_g_file, pulse_cmd_file, targets_file : str
        The crossbar's and the weight memory's files as the simulator will find them.
    """

    policy: WriteVerifyPolicy
    cells: int
    pulses: int
    physical_columns: int
    reference: bool
    g_off_s: float
    g_on_s: float
    cells_file: str = "prog_cells.hex"
    pulse_g_file: str = "prog_pulse_g.hex"
    pulse_cmd_file: str = "prog_pulse_cmd.hex"
    targets_file: str = "prog_targets.hex"


class _SystemProgramming(wiring.Component):
    """The controller as ``BnnSystem`` carries it: its status and report ports under the
    system's own names (``prog_*``), its array-side ports (``cmd``, ``res``, ``target_*``) as
    they are. A separate module so that the top's aliases of these ports take the system's port
    names and are renamed apart, as the core's are, rather than left as unread wires of the top
    module (which Verilator's -Wall checks in full)."""

    def __init__(self, policy: WriteVerifyPolicy, cells: int):
        self.controller = ProgrammingController(policy, cells)
        ctrl = self.controller.signature.members
        super().__init__({
            "prog_start": In(1), "prog_busy": Out(1), "prog_done": Out(1),
            "prog_pulses": Out(ctrl["pulses"].shape),
            "prog_failures": Out(ctrl["failures"].shape),
            "prog_report": Out(ctrl["report"].signature),
            # (an In member's .signature is the flipped one: flip it back)
            "cmd": Out(ctrl["cmd"].signature), "res": In(ctrl["res"].signature.flip()),
            "target_addr": Out(ctrl["target_addr"].shape),
            "target_level": In(ctrl["target_level"].shape)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = ctrl = self.controller
        m.d.comb += [ctrl.start.eq(self.prog_start), self.prog_busy.eq(ctrl.busy),
                     self.prog_done.eq(ctrl.done), self.prog_pulses.eq(ctrl.pulses),
                     self.prog_failures.eq(ctrl.failures),
                     self.target_addr.eq(ctrl.target_addr),
                     ctrl.target_level.eq(self.target_level)]
        wiring.connect(m, ctrl.report, wiring.flipped(self.prog_report))
        wiring.connect(m, ctrl.cmd, wiring.flipped(self.cmd))
        wiring.connect(m, wiring.flipped(self.res), ctrl.res)
        return m


class BnnSystem(wiring.Component):
    """``BnnCore`` wired to the behavioural crossbar (``rtl/analog/mbnn_crossbar.v``, an
    ``Instance``): the unit the whole-network testbenches simulate.

    With ``programming``, the system also holds a :class:`~periphery.programming.
    ProgrammingController` wired to the crossbar's pulse port and to a weight memory of target
    levels (``mbnn_target_memory``, loaded from a file like the crossbar: a whole model's
    cells are too many for a generated memory initialiser): the arrays start as a fresh chip
    and hold what the controller programs; ``prog_start`` runs it (ignored while an image is in
    flight). While it runs no input word is taken and no loaded image starts. One programming
    run per simulation: the crossbar replays the golden log of the fresh chip.

    Parameters
    ----------
    params : CoreParams
    g_unit_s, v_read_v : float
        The crossbar's weight unit and read voltage (:class:`golden.conductance.ArrayConductances`).
    gpos_file, gneg_file : str
        Conductance files as the simulator will find them (relative to its working directory).
    adc_errors : bool
        The crossbar loads per-column ADC gain and offset files (``adc_gain.hex``,
        ``adc_offset.hex``); without them the ADCs are ideal and the instance keeps the
        defaults (the generated Verilog of an ideal chip does not change).
    programming : CrossbarProgramming, optional
        Add the programming phase. Ports then also: ``prog_start`` (in), ``prog_busy``,
        ``prog_done``, ``prog_pulses``, ``prog_failures`` and the ``prog_report`` stream of the
        controller; ``replay_errors`` and ``pulses_replayed`` of the crossbar.
    """

    def __init__(self, params: CoreParams, g_unit_s: float, v_read_v: float,
                 gpos_file: str = "gpos.hex", gneg_file: str = "gneg.hex",
                 adc_errors: bool = False, programming: CrossbarProgramming | None = None):
        self.params = params
        self.g_unit_s, self.v_read_v = float(g_unit_s), float(v_read_v)
        self.gpos_file, self.gneg_file = gpos_file, gneg_file
        self.adc_errors = bool(adc_errors)
        self.programming = programming
        members = _external_members(params)
        if programming is not None:
            self._programming = _SystemProgramming(programming.policy, programming.cells)
            self.controller = self._programming.controller
            ours = self._programming.signature.members
            members.update({name: ours[name] for name in (
                "prog_start", "prog_busy", "prog_done", "prog_pulses", "prog_failures",
                "prog_report")})
            members.update({"replay_errors": Out(32), "pulses_replayed": Out(32)})
        if params.pipelined and len(params.mapped.layers) > 1:
            from .pipeline import wb_trace_layout
            members["wb_trace"] = Out(wb_trace_layout(params))
        super().__init__(members)

    def elaborate(self, platform):
        from amaranth.hdl import ClockSignal, Instance
        m = Module()
        p = self.params
        from .pipeline import core_component
        m.submodules.core = core = core_component(p, hold=self.programming is not None)
        if "wb_trace" in self.signature.members:
            m.d.comb += self.wb_trace.eq(core.wb_trace)
        wiring.connect(m, core.o, wiring.flipped(self.o))
        m.d.comb += [core.dbg_buffer.eq(self.dbg_buffer), core.dbg_addr.eq(self.dbg_addr),
                     self.dbg_data.eq(core.dbg_data), self.active.eq(core.active)]
        adc = {"p_ADC_ERRORS": 1} if self.adc_errors else {}
        prog = self.programming
        if prog is None:
            wiring.connect(m, wiring.flipped(self.i), core.i)
            # the pulse port idle; its outputs connected (Verilator's -Wall wants every pin) and
            # unread: Yosys names them as temporaries, which rtl/lint/amaranth.vlt waives
            port = dict(i_pcmd_valid=0, i_pcmd_op=0, i_pcmd_cell=0, i_pcmd_set=0, i_pcmd_step=0,
                        i_pres_ready=0)
            for name, width in (("pcmd_ready", 1), ("pres_valid", 1), ("pres_code", 8),
                                ("replay_errors", 32), ("pulses_replayed", 32)):
                port[f"o_{name}"] = Signal(width)
        else:
            m.submodules.programming = ctrl = self._programming
            # no image while the controller runs (nor in the cycle it is started)
            running = ctrl.prog_busy | ctrl.prog_start
            m.d.comb += [
                # an image loaded before (or while) the controller starts waits for it: the
                # start is refused while an image computes, and no image starts meanwhile
                core.hold.eq(running),
                core.i.payload.eq(self.i.payload),
                core.i.valid.eq(self.i.valid & ~running),
                self.i.ready.eq(core.i.ready & ~running),
                ctrl.prog_start.eq(self.prog_start & ~core.active),
                self.prog_busy.eq(ctrl.prog_busy), self.prog_done.eq(ctrl.prog_done),
                self.prog_pulses.eq(ctrl.prog_pulses),
                self.prog_failures.eq(ctrl.prog_failures)]
            wiring.connect(m, ctrl.prog_report, wiring.flipped(self.prog_report))
            m.submodules.targets = Instance(
                "mbnn_target_memory", p_CELLS=prog.cells, p_ADDR_BITS=len(ctrl.target_addr),
                p_LEVEL_BITS=len(ctrl.target_level), p_FILE=prog.targets_file,
                i_addr=ctrl.target_addr, o_level=ctrl.target_level)
            cmd, res = ctrl.cmd, ctrl.res
            port = dict(
                p_PROGRAM=1, p_PCOLS=prog.physical_columns, p_REFERENCE=int(prog.reference),
                p_PULSES=prog.pulses, p_CELL_BITS=len(cmd.payload.cell),
                p_STEP_BITS=len(cmd.payload.step), p_VERIFY_BITS=prog.policy.verify_bits,
                p_G_OFF=float(prog.g_off_s), p_G_ON=float(prog.g_on_s),
                p_CELLS_FILE=prog.cells_file, p_PULSE_G_FILE=prog.pulse_g_file,
                p_PULSE_CMD_FILE=prog.pulse_cmd_file,
                i_pcmd_valid=cmd.valid, o_pcmd_ready=cmd.ready, i_pcmd_op=cmd.payload.op,
                i_pcmd_cell=cmd.payload.cell, i_pcmd_set=cmd.payload.set,
                i_pcmd_step=cmd.payload.step, o_pres_valid=res.valid, i_pres_ready=res.ready,
                o_pres_code=res.payload.code, o_replay_errors=self.replay_errors,
                o_pulses_replayed=self.pulses_replayed)
        m.submodules.crossbar = Instance(
            "mbnn_crossbar",
            p_ROWS=p.chip.rows, p_COLS=p.chip.columns, p_TILES=p.mapped.tiles,
            **({"p_PORTS": p.crossbar_ports} if p.crossbar_ports > 1 else {}),
            p_TILE_BITS=p.command_shape.tile_bits, p_ADC_BITS=p.chip.adc_bits,
            p_V_READ=self.v_read_v, p_G_UNIT=self.g_unit_s,
            p_GPOS_FILE=self.gpos_file, p_GNEG_FILE=self.gneg_file, **adc, **port,
            i_clk=ClockSignal(), i_read=core.xb.read, i_tile=core.xb.tile.as_value(),
            i_wl=core.xb.wl.as_value(), o_valid=core.xb.valid, o_codes=core.xb.codes)
        return m
