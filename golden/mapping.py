"""A trained model compiled onto crossbar arrays, and its tiled, ADC-quantised inference.

Mapping ("highly parallelised"): each layer is a weight matrix with one row per word line and
one column per output channel, so one read of the arrays holding a layer yields all output
channels of one output pixel. Matrices larger than an array are cut into row tiles x column
tiles; tiles that do not fill an array leave its remaining rows undriven and its remaining
columns unused.

Activation layout (what the hardware stores, and hence the crossbar row order)
-------------------------------------------------------------------------------
Every layer's input lives in an activation buffer as a feature map of ``positions`` spatial
positions (``height x width``; one position for a vector) with ``stride`` bits per position:
the producer's channels, padded up to whole column tiles (``column_tiles * columns``) when it
needs more than one; the pad bits are always 0. The flat bit index of channel ``c`` at position ``q`` is ``q * stride + c``.

* A **conv** layer's crossbar rows are its window in ``(ky, kx, c)`` order, ``c`` running over
  the padded stride: row ``(ky * K + kx) * stride + c``. A row tile is thus a few whole
  positions of the window -- what a buffer of one position per word can deliver in one read.
* A **dense** layer's crossbar rows are the flat bits of its input buffer, in order; the model's
  channel-major flatten index ``c * positions + q`` is permuted to ``q * stride + c``.

Rows of padded channels carry weight 0 (both cells of the pair at the off conductance); they
are never driven anyway. This layout is a permutation of the model's rows plus zero rows, so the
sums are unchanged (tested: mapped inference equals unmapped inference, bit for bit).

Each read drives the word lines with the sign-constant input bits ``x'`` (0 or V_read) of a row
tile; every column's ADC returns its signed partial sum ``s_r = sum w x'`` in weight units,
saturated to the ADC range (exact when ``chip.adc_exact``). The accumulator adds the codes of
all row tiles and applies the sign-constant correction in this one place:

    a = s                  first layer (unipolar pixels: no correction)
    a = 2 s - sum(w)       hidden and output layers (bipolar activations)

so the thresholds of the model file (on ``a``) apply unchanged, and the output layer yields
the same integer scores as the unmapped model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bnn import argmax_class
from .bn_fold import FoldedThreshold
from .chip import ChipConfig
from .model import BnnModel, Inference

__all__ = ["FeatureMap", "MappedLayer", "MappedModel", "compile_model", "crossbar_read",
           "accumulate", "sign_constant_correction", "mapped_infer", "gather_rows",
           "output_positions"]


@dataclass(frozen=True)
class FeatureMap:
    """Layout of one activation buffer: ``height x width`` positions of ``stride`` bits, of
    which the first ``channels`` are real."""

    channels: int
    height: int
    width: int
    stride: int

    @property
    def positions(self) -> int:
        return self.height * self.width

    @property
    def bits(self) -> int:
        return self.positions * self.stride


@dataclass(frozen=True)
class MappedLayer:
    """One layer on the arrays.

    ``weights`` is the (rows, out) matrix in crossbar row order (entries -1, 0, +1; 0 only in
    rows of padded input channels); ``correction_scale`` and ``correction_bias`` give
    ``a = scale * s - bias`` per output channel. ``tile_base`` is the index of the layer's first
    array; tile ``(rt, ct)`` is array ``tile_base + ct * row_tiles + rt``.
    """

    index: int
    kind: str
    weights: np.ndarray
    row_tiles: int
    column_tiles: int
    correction_scale: int
    correction_bias: np.ndarray
    threshold: FoldedThreshold | None
    input_map: FeatureMap
    out_height: int = 1
    out_width: int = 1
    kernel: int = 1
    padding: int = 0
    pool: int = 1
    tile_base: int = 0

    @property
    def tiles(self) -> int:
        return self.row_tiles * self.column_tiles

    @property
    def out_channels(self) -> int:
        return self.weights.shape[1]

    @property
    def pixels(self) -> int:
        """Output pixels before pooling (1 for dense): reads = pixels * tiles."""
        return self.out_height * self.out_width

    @property
    def reads(self) -> int:
        return self.pixels * self.tiles

    def read_cycles(self, parallel_reads: int) -> int:
        """Cycles of this layer's reads when up to ``parallel_reads`` row tiles of one pixel
        and column tile are read together: ``pixels * column_tiles * ceil(row_tiles / P)``."""
        return self.pixels * self.column_tiles * -(-self.row_tiles // parallel_reads)

    @property
    def is_output(self) -> bool:
        return self.threshold is None

    def chunk_bits(self, chip: ChipConfig) -> int:
        """Bits written per (pixel, column tile): a whole array's columns, or just the
        channels when one column tile holds them all."""
        return self.out_channels if self.column_tiles == 1 else chip.columns

    def output_map(self, chip: ChipConfig) -> FeatureMap:
        """Layout of the buffer this layer writes (after pooling)."""
        return FeatureMap(self.out_channels, self.out_height // self.pool,
                          self.out_width // self.pool, self.column_tiles * self.chunk_bits(chip))


@dataclass(frozen=True)
class MappedModel:
    chip: ChipConfig
    input_shape: tuple
    layers: tuple

    @property
    def tiles(self) -> int:
        return sum(layer.tiles for layer in self.layers)

    @property
    def reads_per_image(self) -> int:
        """Array reads per image: the analytical floor of cycles per image on one read port."""
        return sum(layer.reads for layer in self.layers)

    @property
    def read_cycles_per_image(self) -> int:
        """Cycles in which the core reads arrays for one image, ``chip.parallel_reads`` row
        tiles at a time (:meth:`MappedLayer.read_cycles`): the analytical floor of cycles per
        image; ``reads_per_image`` when one array is read per cycle."""
        return sum(layer.read_cycles(self.chip.parallel_reads) for layer in self.layers)

    @property
    def read_ports(self) -> int:
        """Arrays the core reads at most in one cycle: ``parallel_reads``, or fewer when no
        layer has that many row tiles (more ports would never be used)."""
        return min(self.chip.parallel_reads, max(layer.row_tiles for layer in self.layers))


def _input_map(shape: tuple) -> FeatureMap:
    if len(shape) == 3:
        c, h, w = shape
        return FeatureMap(c, h, w, c)
    return FeatureMap(int(shape[0]), 1, 1, int(shape[0]))


def _layer_matrix(spec, weight: np.ndarray, fmap: FeatureMap) -> np.ndarray:
    """The model's weights in crossbar row order (see the module docstring)."""
    if spec.kind == "conv":
        out, c, k, _ = weight.shape
        m = np.zeros((k, k, fmap.stride, out), np.int8)
        m[:, :, :c, :] = weight.transpose(2, 3, 1, 0)
        return m.reshape(k * k * fmap.stride, out)
    out = weight.shape[1]
    m = np.zeros((fmap.positions, fmap.stride, out), np.int8)
    # model row index c * positions + q (channel-major flatten) -> crossbar row q * stride + c
    m[:, :fmap.channels, :] = weight.reshape(fmap.channels, fmap.positions, out).transpose(1, 0, 2)
    return m.reshape(fmap.bits, out)


def compile_model(model: BnnModel, chip: ChipConfig) -> MappedModel:
    """Cut every layer of ``model`` into array tiles of ``chip`` in the hardware row layout."""
    layers = []
    fmap = _input_map(model.arch.input_shape)
    tile_base = 0
    for i, (spec, layer) in enumerate(zip(model.arch.layers, model.layers)):
        matrix = _layer_matrix(spec, layer.weight, fmap)
        rows, out = matrix.shape
        rt, ct = chip.tiles(rows, out)
        if i == 0:
            scale, bias = 1, np.zeros(out, np.int64)
        else:
            scale, bias = 2, matrix.sum(axis=0, dtype=np.int64)
        if spec.kind == "conv":
            ho = fmap.height + 2 * spec.padding - spec.kernel + 1
            wo = fmap.width + 2 * spec.padding - spec.kernel + 1
            geometry = dict(out_height=ho, out_width=wo, kernel=spec.kernel,
                            padding=spec.padding, pool=spec.pool)
        else:
            geometry = {}
        mapped = MappedLayer(index=i, kind=spec.kind, weights=matrix, row_tiles=rt,
                             column_tiles=ct, correction_scale=scale, correction_bias=bias,
                             threshold=layer.threshold, input_map=fmap, tile_base=tile_base,
                             **geometry)
        layers.append(mapped)
        tile_base += mapped.tiles
        fmap = mapped.output_map(chip)
    return MappedModel(chip=chip, input_shape=model.arch.input_shape, layers=tuple(layers))


def gather_rows(layer: MappedLayer) -> np.ndarray:
    """Flat input-buffer bit index of every crossbar row at every output pixel.

    Returns an int64 array (pixels, rows); -1 marks a row that is not driven (conv padding).
    """
    fmap = layer.input_map
    rows = layer.weights.shape[0]
    if layer.kind == "dense":
        return np.arange(rows, dtype=np.int64)[None, :]
    k, p = layer.kernel, layer.padding
    oy, ox = np.divmod(np.arange(layer.pixels), layer.out_width)
    slot, c = np.divmod(np.arange(rows), fmap.stride)
    ky, kx = np.divmod(slot, k)
    y = oy[:, None] + ky[None, :] - p
    x = ox[:, None] + kx[None, :] - p
    inside = (y >= 0) & (y < fmap.height) & (x >= 0) & (x < fmap.width)
    return np.where(inside, (y * fmap.width + x) * fmap.stride + c[None, :], -1)


def output_positions(layer: MappedLayer) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel's bits go after pooling: (position or -1 if cropped, first),
    ``first`` being true for the pixel that opens its pooling window (it overwrites; the
    others OR into it, as max-pool on bits is OR)."""
    if layer.kind == "dense":
        return np.zeros(1, np.int64), np.ones(1, bool)
    oy, ox = np.divmod(np.arange(layer.pixels), layer.out_width)
    p = layer.pool
    hp, wp = layer.out_height // p, layer.out_width // p
    kept = (oy < hp * p) & (ox < wp * p)
    pos = np.where(kept, (oy // p) * wp + ox // p, -1)
    return pos, (oy % p == 0) & (ox % p == 0)


def crossbar_read(bits: np.ndarray, weights: np.ndarray, chip: ChipConfig) -> np.ndarray:
    """ADC codes of one ideal array read: ``clip(bits @ weights)`` to the ADC range.

    Parameters
    ----------
    bits : array (P, r) of {0, 1}
        Word-line inputs of ``P`` reads (r <= chip.rows).
    weights : array (r, c) of -1, 0, +1
        The tile (c <= chip.columns).
    """
    if weights.shape[0] > chip.rows or weights.shape[1] > chip.columns:
        raise ValueError(f"tile {weights.shape} does not fit a {chip.rows}x{chip.columns} array")
    unsupported = chip.non_ideal_settings()
    if unsupported:     # a non-ideal chip is read through its programmed state
        raise ValueError(f"{unsupported[0]}: the ideal read cannot model it; program the chip "
                         f"and read it with golden.analog.chip_state.analog_infer")
    s = np.matmul(bits.astype(np.float32), weights.astype(np.float32)).astype(np.int64)
    return np.clip(s, chip.adc_min, chip.adc_max)


def accumulate(bits: np.ndarray, layer: MappedLayer, chip: ChipConfig, read=None,
               read_layer=None) -> np.ndarray:
    """Pre-activations ``a`` (P, out) of a mapped layer from its crossbar-row inputs ``bits``
    (P, rows): ADC codes of every row tile summed per column, then the sign-constant
    correction. ``read(bits, layer, row_tile, column_tile)`` returns one tile's codes
    (default: the ideal read, :func:`crossbar_read`); ``read_layer(bits, layer)``, when
    given, returns the codes of all the layer's tiles already summed per column (P, out) --
    for readers that batch a whole layer's arrays into one matrix product."""
    if read_layer is not None:
        return sign_constant_correction(layer, chip, read_layer(bits, layer))
    rows, out = layer.weights.shape
    s = np.zeros((bits.shape[0], out), np.int64)
    for r in range(layer.row_tiles):
        rsl = slice(r * chip.rows, min((r + 1) * chip.rows, rows))
        for c in range(layer.column_tiles):
            csl = slice(c * chip.columns, min((c + 1) * chip.columns, out))
            if read is None:
                s[:, csl] += crossbar_read(bits[:, rsl], layer.weights[rsl, csl], chip)
            else:
                s[:, csl] += read(bits[:, rsl], layer, r, c)
    return sign_constant_correction(layer, chip, s)


def sign_constant_correction(layer: MappedLayer, chip: ChipConfig,
                             sums: np.ndarray) -> np.ndarray:
    """The pre-activations ``correction_scale * sums - correction_bias`` of a layer from its
    ADC codes summed per column, ``sums`` (P, out) of integers (see :class:`MappedLayer`).

    Computed in place in ``sums`` -- the caller hands over an array it no longer needs --
    when its integer type holds every value: the codes of ``row_tiles`` arrays sum to at
    most ``row_tiles * max(|code_min|, |code_max|)`` in magnitude. Fresh arrays here, two per
    layer, cost a quarter of the evaluation read's time on two threads (page faults)."""
    bound = layer.row_tiles * max(-chip.adc_min, chip.adc_max)
    bias = layer.correction_bias
    info = np.iinfo(sums.dtype)
    if layer.correction_scale * bound + int(np.abs(bias).max(initial=0)) > info.max:
        return layer.correction_scale * sums.astype(np.int64) - bias
    if layer.correction_scale != 1:
        np.multiply(sums, layer.correction_scale, out=sums)
    if bias.any():
        np.subtract(sums, bias, out=sums, casting="unsafe")     # within range: checked above
    return sums


def _store(layer: MappedLayer, chip: ChipConfig, out_bits: np.ndarray) -> np.ndarray:
    """Output bits (N, pixels, out) -> the next layer's flat buffer (N, positions*stride):
    max-pooled (the OR of a window's bits) to the positions :func:`output_positions` gives,
    rows and columns past the last whole window cropped."""
    omap = layer.output_map(chip)
    n = out_bits.shape[0]
    p = layer.pool
    if p == 1 and omap.stride == layer.out_channels:   # the bits are the buffer already
        return np.ascontiguousarray(out_bits, np.uint8).reshape(n, -1)
    buf = np.zeros((n, omap.positions, omap.stride), np.uint8)
    hp, wp = layer.out_height // p, layer.out_width // p
    x = out_bits.reshape(n, layer.out_height, layer.out_width, -1)[:, :hp * p, :wp * p]
    pooled = x.reshape(n, hp, p, wp, p, -1).max(axis=(2, 4))     # OR of 0/1 bits
    buf[:, :, :layer.out_channels] = pooled.reshape(n, hp * wp, -1)
    return buf.reshape(n, -1)


def _model_order(layer: MappedLayer, chip: ChipConfig, flat: np.ndarray) -> np.ndarray:
    """A written buffer in the model's own shape: (N, C, H, W) or (N, C)."""
    omap = layer.output_map(chip)
    x = flat.reshape(len(flat), omap.height, omap.width, omap.stride)[..., :omap.channels]
    if layer.kind == "conv":
        return x.transpose(0, 3, 1, 2)
    return x.reshape(len(flat), omap.channels)


def input_buffer(mapped: MappedModel, pixels: np.ndarray) -> np.ndarray:
    """Images (N, *input_shape) as the first layer's flat input buffer (N, bits)."""
    n = len(pixels)
    img = np.asarray(pixels).reshape((n,) + tuple(mapped.input_shape)).astype(np.uint8)
    if img.ndim == 4:                                   # (N, C, H, W) -> positions x channels
        img = img.transpose(0, 2, 3, 1)
    return img.reshape(n, mapped.layers[0].input_map.bits)


def layer_rows(layer: MappedLayer, buf: np.ndarray) -> np.ndarray:
    """Crossbar-row inputs (N * pixels, rows) of ``layer`` from its input buffer (N, bits)."""
    if layer.kind == "dense":                           # the rows are the buffer's bits
        return buf[:, :layer.weights.shape[0]]
    index = gather_rows(layer)                          # (pixels, rows), -1 = undriven
    padded = np.concatenate([buf, np.zeros((len(buf), 1), np.uint8)], axis=1)
    # np.take with a flat index writes (N, pixels * rows) in order; `padded[:, index]` made a
    # non-contiguous result whose reshape copied it again
    return np.take(padded, index.ravel(), axis=1).reshape(-1, index.shape[1])


def layer_output(layer: MappedLayer, chip: ChipConfig, a: np.ndarray, n: int) -> np.ndarray:
    """The buffer (N, bits) a hidden layer writes from its pre-activations ``a``."""
    return _store(layer, chip, layer.threshold.bits(a).reshape(n, layer.pixels, -1))


def mapped_infer(mapped: MappedModel, pixels: np.ndarray, keep_layers: bool = False,
                 read=None, read_layer=None) -> Inference:
    """Inference through the tiled arrays in the hardware layout; equals
    :func:`golden.model.infer` whenever the ADCs are exact (tested), and models their
    saturation exactly when they are not. ``layer_bits`` are returned in the model's shapes.
    ``read`` replaces the ideal array read (see :func:`accumulate`; the programmed, non-ideal
    chip's read is :func:`golden.analog.chip_state.analog_infer`); ``read_layer`` replaces
    it a whole layer at a time (:func:`accumulate`)."""
    chip = mapped.chip
    n = len(pixels)
    buf = input_buffer(mapped, pixels)
    kept = []
    for layer in mapped.layers:
        a = accumulate(layer_rows(layer, buf), layer, chip, read, read_layer)
        if layer.is_output:
            return Inference(scores=a.astype(np.int32), predictions=argmax_class(a),
                             layer_bits=kept)
        buf = layer_output(layer, chip, a, n)
        if keep_layers:
            kept.append(_model_order(layer, chip, buf))
    raise AssertionError("unreachable: the last layer is dense")
