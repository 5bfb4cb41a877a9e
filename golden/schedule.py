"""Read schedule of the inference core: the golden twin of ``periphery.sequencer``.

One command per cycle of array reads, in the order the hardware issues them::

    for layer:                       in model order
      for pixel (oy, ox):            output pixels in raster order (one for dense layers)
        for column tile ct:
          for row tiles rt .. rt+P-1:  read together (P = ``chip.parallel_reads``, fewer in
                                     the last group); the accumulator sums the groups'
                                     adder-tree sums; ``last`` closes the pixel

A command says which arrays to read (one :class:`Read` per array, lane ``p`` reading row tile
``rt + p``), where each read's word-line bits come from, and -- on the group holding the last
row tile -- where the binarized output goes. Buffers (see :mod:`golden.mapping` for the bit layout):

* the input buffer of a **conv** layer holds one position per word (``stride`` bits); a row
  tile is the concatenation of up to ``slots`` window positions (``-1`` = padding or unused:
  reads as 0), shifted right by ``shift`` bits, cut to ``rows`` bits;
* the input buffer of a **dense** layer holds ``rows`` bits per word, word ``rt`` being row
  tile ``rt`` (one slot, no shift).

A producer writes chunk ``write_chunk`` (``chunk_bits`` wide, see
:meth:`golden.mapping.MappedLayer.chunk_bits`) of word ``write_addr`` in its output
buffer; ``write_mode`` is ``OVERWRITE`` for the pixel that opens a pooling window, ``OR`` for
the others (max-pool on bits), ``NONE`` for pixels cropped by pooling and for the output layer.

:func:`execute` runs a schedule on numpy buffers exactly as the core does; it is tested equal
to :func:`golden.model.infer`, which knows nothing of tiles, buffers or schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bn_fold import FoldedThreshold
from .bnn import argmax_class
from .chip import ChipConfig
from .mapping import MappedLayer, MappedModel, crossbar_read, output_positions
from .widths import index_bits

__all__ = ["WriteMode", "BufferShape", "LayerSchedule", "Read", "Command", "CommandShape", "buffer_shapes",
           "entry_base", "command_shape", "image_words", "input_beats", "layer_words", "pack_words",
           "layer_schedule", "commands", "execute", "check_hardware_mappable"]


class WriteMode:
    NONE = 0
    OVERWRITE = 1
    OR = 2


@dataclass(frozen=True)
class BufferShape:
    """An activation buffer as memory: ``depth`` words of ``word_bits``."""

    word_bits: int
    depth: int


def check_hardware_mappable(mapped: MappedModel) -> None:
    """Raise ``ValueError`` for the configurations the core does not implement (the golden
    mapping handles them all): a dense layer's input words are whole row tiles, so a
    producer's ``columns``-bit chunks must tile a ``rows``-bit word."""
    chip = mapped.chip
    for producer, layer in zip(mapped.layers, mapped.layers[1:]):
        chunk = producer.chunk_bits(chip)
        if layer.kind == "dense" and chip.rows % chunk:
            raise ValueError(
                f"layer {layer.index} is dense after a hidden layer: the core needs array rows "
                f"({chip.rows}) to be a multiple of the {chunk}-bit chunks layer "
                f"{producer.index} writes")


def buffer_shapes(mapped: MappedModel) -> list[BufferShape]:
    """The input buffer of every layer (index = layer)."""
    out = []
    for layer in mapped.layers:
        fmap = layer.input_map
        if layer.kind == "conv":
            out.append(BufferShape(fmap.stride, fmap.positions))
        else:
            out.append(BufferShape(mapped.chip.rows, -(-fmap.bits // mapped.chip.rows)))
    return out


@dataclass(frozen=True)
class LayerSchedule:
    """Static per-layer tables the sequencer is built from.

    ``slot_window[rt][j]`` is the window index (``ky * K + kx``) read by slot ``j`` of row
    tile ``rt``, or -1 if unused; ``shift[rt]`` the bit offset of the row tile in the
    concatenated slots.
    """

    slots: int
    slot_window: tuple
    shift: tuple


def layer_schedule(layer: MappedLayer, chip: ChipConfig) -> LayerSchedule:
    if layer.kind == "dense":
        return LayerSchedule(1, tuple((0,) for _ in range(layer.row_tiles)),
                             (0,) * layer.row_tiles)
    stride, rows = layer.input_map.stride, layer.weights.shape[0]
    spans = []
    for rt in range(layer.row_tiles):
        lo, hi = rt * chip.rows, min((rt + 1) * chip.rows, rows) - 1
        spans.append((lo // stride, hi // stride, lo - (lo // stride) * stride))
    slots = max(q_hi - q_lo + 1 for q_lo, q_hi, _ in spans)
    table = tuple(tuple(q_lo + j if q_lo + j <= q_hi else -1 for j in range(slots))
                  for q_lo, q_hi, _ in spans)
    return LayerSchedule(slots, table, tuple(s for _, _, s in spans))


@dataclass(frozen=True)
class Read:
    """One array read of a command: array ``tile`` (row tile ``rt``), its word lines gathered
    from the words at ``slot_addr`` (one per slot, -1 = reads as zero) shifted right by
    ``shift`` bits."""

    tile: int
    rt: int
    slot_addr: tuple
    shift: int


@dataclass(frozen=True)
class Command:
    """One cycle of reads: ``reads[p]`` is read by lane ``p`` (row tile ``rt + p``); their
    codes are summed and accumulated, ``first`` starting the pixel's sum and ``last`` closing
    it (and carrying the write-back)."""

    layer: int
    pixel: int
    ct: int
    rt: int
    reads: tuple
    first: bool
    last: bool
    write_mode: int
    write_addr: int
    write_chunk: int

    @property
    def tile(self) -> int:
        """The array lane 0 reads (lane ``p`` reads ``tile + p``)."""
        return self.reads[0].tile


def _write_target(layer: MappedLayer, next_layer: MappedLayer | None, chip: ChipConfig,
                  pos: int, ct: int) -> tuple[int, int]:
    chunk = layer.chunk_bits(chip)
    if next_layer.kind == "conv":
        return pos, ct
    flat = pos * layer.output_map(chip).stride + ct * chunk
    return flat // chip.rows, (flat % chip.rows) // chunk


def _read(layer: MappedLayer, sched: LayerSchedule, chip: ChipConfig, oy: int, ox: int,
          ct: int, rt: int) -> Read:
    if layer.kind == "dense":
        addrs = (rt,)
    else:
        fmap = layer.input_map
        addrs = []
        for q in sched.slot_window[rt]:
            if q < 0:
                addrs.append(-1)
                continue
            ky, kx = divmod(q, layer.kernel)
            y, x = oy + ky - layer.padding, ox + kx - layer.padding
            inside = 0 <= y < fmap.height and 0 <= x < fmap.width
            addrs.append(y * fmap.width + x if inside else -1)
        addrs = tuple(addrs)
    return Read(tile=layer.tile_base + ct * layer.row_tiles + rt, rt=rt, slot_addr=addrs,
                shift=sched.shift[rt])


def commands(mapped: MappedModel) -> list[Command]:
    """Every cycle of reads of one image, in issue order (``chip.parallel_reads`` row tiles
    per command at most)."""
    chip = mapped.chip
    group = chip.parallel_reads
    out = []
    for li, layer in enumerate(mapped.layers):
        sched = layer_schedule(layer, chip)
        nxt = mapped.layers[li + 1] if li + 1 < len(mapped.layers) else None
        pos, opens = output_positions(layer)
        for pixel in range(layer.pixels):
            oy, ox = divmod(pixel, layer.out_width)
            for ct in range(layer.column_tiles):
                if nxt is None or pos[pixel] < 0:
                    mode, waddr, wchunk = WriteMode.NONE, 0, 0
                else:
                    mode = WriteMode.OVERWRITE if opens[pixel] else WriteMode.OR
                    waddr, wchunk = _write_target(layer, nxt, chip, int(pos[pixel]), ct)
                for rt in range(0, layer.row_tiles, group):
                    reads = tuple(_read(layer, sched, chip, oy, ox, ct, r)
                                  for r in range(rt, min(rt + group, layer.row_tiles)))
                    last = rt + group >= layer.row_tiles
                    out.append(Command(
                        layer=li, pixel=pixel, ct=ct, rt=rt, reads=reads, first=rt == 0,
                        last=last, write_mode=mode if last else WriteMode.NONE,
                        write_addr=waddr if last else 0, write_chunk=wchunk if last else 0))
    return out


def image_words(mapped: MappedModel, image_bits: np.ndarray) -> np.ndarray:
    """One image as the first buffer's words: a (depth, word_bits) bit array."""
    return _image_buffer(mapped, image_bits, buffer_shapes(mapped)[0])


def layer_words(mapped: MappedModel, index: int, bits: np.ndarray) -> np.ndarray:
    """Layer ``index``'s output bits for one image, in the model's shape ((C, H, W) or (C,)),
    as the words of the buffer it writes (layer ``index + 1``'s input): (depth, word_bits)."""
    chip = mapped.chip
    omap = mapped.layers[index].output_map(chip)
    shape = buffer_shapes(mapped)[index + 1]
    x = np.asarray(bits, np.uint8)
    x = x.transpose(1, 2, 0) if x.ndim == 3 else x.reshape(1, 1, -1)
    fmap = np.zeros((omap.height, omap.width, omap.stride), np.uint8)
    fmap[..., :omap.channels] = x
    flat = np.zeros(shape.depth * shape.word_bits, np.uint8)
    flat[:omap.bits] = fmap.reshape(-1)
    return flat.reshape(shape.depth, shape.word_bits)


def input_beats(mapped: MappedModel, image_bits: np.ndarray) -> list[int]:
    """One image as the core's input stream: ``chip.input_words`` words of the first buffer
    per beat, word ``k`` of a beat at bits ``k * word_bits`` (the first word lowest), in
    address order."""
    words = image_words(mapped, image_bits)
    per_beat = mapped.chip.input_words
    if len(words) % per_beat:
        raise ValueError(f"[chip] input_words = {per_beat} does not divide the image's "
                         f"{len(words)} words")
    return pack_words(words.reshape(len(words) // per_beat, -1))


def pack_words(word_bits: np.ndarray) -> list[int]:
    """(depth, width) bit rows -> integers, bit 0 = column 0."""
    packed = np.packbits(np.asarray(word_bits, np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _image_buffer(mapped: MappedModel, image_bits: np.ndarray, shape: BufferShape) -> np.ndarray:
    """The first buffer's words (as bit rows) for one image."""
    first = mapped.layers[0].input_map
    img = np.asarray(image_bits, np.uint8).reshape(tuple(mapped.input_shape))
    if img.ndim == 3:
        img = img.transpose(1, 2, 0)
    flat = np.zeros(shape.depth * shape.word_bits, np.uint8)
    flat[:first.bits] = img.reshape(-1)
    return flat.reshape(shape.depth, shape.word_bits)


def execute(mapped: MappedModel, image_bits: np.ndarray, cmds: list[Command] | None = None):
    """Run one image through ``cmds`` (default: :func:`commands`) the way the core does.

    Returns ``(scores, class, buffers)``; ``buffers[l]`` is layer ``l``'s input buffer as a
    (depth, word_bits) bit array when the image is done.
    """
    chip = mapped.chip
    shapes = buffer_shapes(mapped)
    buffers = [np.zeros((s.depth, s.word_bits), np.uint8) for s in shapes]
    buffers[0] = _image_buffer(mapped, image_bits, shapes[0])
    check_hardware_mappable(mapped)
    cmds = commands(mapped) if cmds is None else cmds
    acc = None
    scores = None
    for cmd in cmds:
        layer = mapped.layers[cmd.layer]
        buf = buffers[cmd.layer]
        rows = layer.weights.shape[0]
        c0, c1 = cmd.ct * chip.columns, min((cmd.ct + 1) * chip.columns, layer.out_channels)
        group = np.zeros(c1 - c0, np.int64)       # the adder tree: the lanes' codes summed
        for read in cmd.reads:
            words = [buf[a] if a >= 0 else np.zeros(buf.shape[1], np.uint8)
                     for a in read.slot_addr]
            wl = np.concatenate(words)[read.shift:read.shift + chip.rows]
            wl = np.pad(wl, (0, chip.rows - len(wl)))
            r0, r1 = read.rt * chip.rows, min((read.rt + 1) * chip.rows, rows)
            group += crossbar_read(wl[None, :r1 - r0], layer.weights[r0:r1, c0:c1], chip)[0]
        acc = group if cmd.first else acc + group
        if not cmd.last:
            continue
        a = layer.correction_scale * acc - layer.correction_bias[c0:c1]
        if layer.is_output:
            scores = a if scores is None or cmd.ct == 0 else np.concatenate([scores, a])
            continue
        th = layer.threshold
        bits = FoldedThreshold(th.threshold[c0:c1], th.invert[c0:c1]).bits(a)
        width = layer.chunk_bits(chip)
        chunk = np.zeros(width, np.uint8)
        chunk[:len(bits)] = bits
        if cmd.write_mode != WriteMode.NONE:
            target = buffers[cmd.layer + 1]
            lanes = slice(cmd.write_chunk * width, (cmd.write_chunk + 1) * width)
            if cmd.write_mode == WriteMode.OVERWRITE:
                target[cmd.write_addr, lanes] = chunk
            else:
                target[cmd.write_addr, lanes] |= chunk
    return scores, int(argmax_class(scores[None, :])[0]), buffers


@dataclass(frozen=True)
class CommandShape:
    """Field widths of a command (shared by the RTL sequencer, the core and testbenches);
    ``ports`` is the number of read lanes (:attr:`golden.mapping.MappedModel.read_ports`)."""

    layers: int
    tiles: int
    entries: int
    ports: int
    slots: int
    max_depth: int
    max_shift: int
    max_chunks: int

    _bits = staticmethod(index_bits)

    @property
    def layer_bits(self) -> int:
        return self._bits(self.layers)

    @property
    def tile_bits(self) -> int:
        return self._bits(self.tiles)

    @property
    def entry_bits(self) -> int:
        return self._bits(self.entries)

    @property
    def addr_bits(self) -> int:
        return self._bits(self.max_depth)

    @property
    def shift_bits(self) -> int:
        return self._bits(self.max_shift + 1)

    @property
    def chunk_bits(self) -> int:
        return self._bits(self.max_chunks)


def entry_base(mapped: MappedModel) -> list[int]:
    """First correction/threshold table entry of every layer: one entry per column tile."""
    out, base = [], 0
    for layer in mapped.layers:
        out.append(base)
        base += layer.column_tiles
    return out


def command_shape(mapped: MappedModel) -> CommandShape:
    chip = mapped.chip
    shapes = buffer_shapes(mapped)
    scheds = [layer_schedule(layer, chip) for layer in mapped.layers]
    chunks = [max(1, s.word_bits // p.chunk_bits(chip))
              for s, p in zip(shapes[1:], mapped.layers[:-1])]
    return CommandShape(
        layers=len(mapped.layers), tiles=mapped.tiles,
        entries=sum(layer.column_tiles for layer in mapped.layers),
        ports=mapped.read_ports, slots=max(s.slots for s in scheds),
        max_depth=max(s.depth for s in shapes),
        max_shift=max(max(s.shift) for s in scheds), max_chunks=max(chunks, default=1))
