"""Accuracy of a model on many non-ideal chips (Monte Carlo), with cycle-to-cycle read noise.

:func:`fast_analog_infer` is the evaluation read: the same programmed state and ADC as the
exact read (:func:`golden.analog.chip_state.analog_read`), at the speed of float32 matrix
products. Per layer and row tile, the arrays of all its column tiles form one matrix whose
entries are ``(G+ - G-) * V_read / lsb * gain`` -- the ADC's input in LSB per driven row --
under one row holding the ADC offset (``+ 0.5`` with noise), read by a constant 1 input. A
read is then one product ``[1, bits] @ D`` -- the offset included -- then rounding and
saturation. A block of reads (a row tile's values filling 4 MiB) goes through one row tile
after another, each tile's codes summed into the layer's; without noise, a tile's rounding,
flagging (below) and summing are one pass of a C kernel (:mod:`golden.native`, the same
float32 operations as the numpy steps it replaces, tested bit for bit against them).

**Exact without noise.** A float32 product differs from the exact read's double sum, but by
at most a bound known in advance: for a sum of ``k`` non-zero terms in any order,
``gamma_k * sum |terms|`` with ``gamma_k = k u / (1 - k u)``, ``u = 2**-24`` (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1; the bound holds for
every summation order, so for any BLAS, and a cell read with 0 adds an exact zero). A read
driving ``k`` rows sums ``k + 1`` non-zero terms (the offset is one), so it has the margin
``gamma_(k+8) * (k * max|D_j| + |offset_j| + 1)`` in column ``j``, the extra terms covering
the rounding of ``D``'s entries. A value farther than its margin from a rounding boundary
(``j + 0.5``) rounds to the exact read's code. One threshold per row tile and block (its
most driven read, the tile's largest cell and offset) flags candidates in one pass; each
candidate is then held to its own read's driven rows and column, and the values within
that margin (about 0.05 % on the shipped MLP, demo chip) get the exact read's code: a double
sum in any order decides it wherever the interval its error bound allows holds one code
(every ADC step is monotone in the sum), and the rest -- within about 1e-13 LSB of a
boundary -- are summed with the exact read's double operations, in its order. So the codes
equal :func:`analog_read`'s on every read (tested, also on arrays built to put most values
on a boundary), and the RTL's.

Read noise: each cell's conductance seen by a read is ``G (1 + read_noise_std z)``, a fresh
normal per cell per read. The column current is then Gaussian around its noise-free value
with variance ``(V_read read_noise_std)^2 * sum over driven rows of (G+^2 + G-^2)``; drawing
that one normal per column per read (float32) is the same distribution as a draw per cell,
at a cell-count less cost (the sum of independent normals is normal). With noise there is
no exact code to meet, and no recomputation.

Images go through in chunks of at most 2**22 read-input bits and 2**21 column sums per
layer, so convolution layers (a read per output pixel) do not need gigabytes for 10 000
images, and the chunks run on both cores. The noise is drawn per group of reads filling
2**18 values over all row tiles, whatever the block: the draws, and so the noisy results,
are those of the batched layout this module had before its blocks grew.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .. import native
from ..mapping import MappedLayer, MappedModel, compile_model, mapped_infer
from ..model import BnnModel, Inference, infer
from .adc import AdcErrors
from .chip_state import ProgrammedChip, check_programming_memory, program_chip

__all__ = ["fast_analog_infer", "layer_reader", "prepare_read", "PreparedRead", "ChipAccuracy",
           "evaluate_chips", "chip_stats"]

_U32 = 2.0 ** -24               # unit roundoff of float32
_CHUNK_ELEMENTS = 1 << 22       # read-input entries per layer and chunk (4 MiB of bits)
_CHUNK_VALUES = 1 << 21         # column sums per layer and chunk (8 MiB of float32)
_BLOCK_ELEMENTS = 1 << 18       # values per group of reads drawing its noise, all row tiles
_TILE_VALUES = 1 << 20          # values per block of reads, one row tile (4 MiB of float32)


@dataclass(frozen=True)
class _LayerTiles:
    """A layer's ``T`` row tiles, each with all its column tiles side by side, one matrix per
    row tile (module docstring). Tiles shorter than ``r`` rows (the layer's last) are padded
    with zero cells, read by zero inputs."""

    rows: int                   # the layer's crossbar rows (T * r after padding)
    d32: np.ndarray             # (T, 1 + r, out) float32: row 0 the ADC offset in LSB (+ 0.5
                                # with noise), read by a constant 1 input; rows 1..r the ADC
                                # input in LSB per driven row
    d64t: np.ndarray            # (T, out, r) float64: G+ - G-, the exact read's cells
    column_max: np.ndarray      # (T, out) float64: max |d32| per column
    offset_abs: np.ndarray      # (T, out) float64: |offset row of d32|
    tile_max: np.ndarray        # (T, 2) float64: largest column_max and offset_abs per tile
    abs_sum: np.ndarray         # (T, out) float64: sum over rows of |G+ - G-|
    saturates: bool             # some column can reach a code outside the ADC's range
    gain: np.ndarray            # (T, out) float64
    offset: np.ndarray          # (T, out) float64
    noise_sq: np.ndarray | None  # (T, r, out) float32: noise variance in LSB^2 per driven row


def _margin(driven, cell_max, offset_max):
    """A bound on |float32 value - exact value| (LSB) of reads driving ``driven`` rows whose
    terms are at most ``cell_max`` and whose offset is at most ``offset_max`` (LSB): ``k + 1``
    non-zero terms (cells read with 0 add exact zeros; the offset is one term of the product,
    read by a constant 1, or one addition after it); the +8 covers the rounding of the
    float32 entries, 1e-9 the exact read's own double roundings."""
    k = np.asarray(driven, np.float64)
    size = k * cell_max + offset_max + 1.0
    gamma = (k + 8) * _U32 / (1 - (k + 8) * _U32)
    return gamma * size + 1e-9 * size


def _layer_tiles(layer: MappedLayer, state: ProgrammedChip,
                 read_noise_std: float) -> _LayerTiles:
    chip = state.chip
    adc = chip.adc
    lsb_a = (state.v_read_v * state.g_unit_s) * (adc.full_scale / (1 << (adc.bits - 1)))
    rows, out = layer.weights.shape
    t_count, r = layer.row_tiles, min(chip.rows, rows)
    d64 = np.zeros((t_count, r, out))
    gain, offset = np.empty((t_count, out)), np.empty((t_count, out))
    g_sq = np.zeros((t_count, r, out)) if read_noise_std else None
    for t in range(t_count):
        n = min(r, rows - t * r)
        for c in range(layer.column_tiles):
            tile = layer.tile_base + c * layer.row_tiles + t
            cols = slice(c * chip.columns, min((c + 1) * chip.columns, out))
            k = cols.stop - cols.start
            # this array's own subtraction: the property subtracts the whole chip (25 MB on
            # the MLP's 192 arrays), which, once per array, took a second per call
            d64[t, :n, cols] = state.g_pos_s[tile, :n, :k] - state.g_neg_s[tile, :n, :k]
            gain[t, cols] = state.adc_gain[tile, :k]
            offset[t, cols] = state.adc_offset_lsb[tile, :k]
            if read_noise_std:
                g_sq[t, :n, cols] = (state.g_pos_s[tile, :n, :k] ** 2
                                     + state.g_neg_s[tile, :n, :k] ** 2)
    scale = (state.v_read_v / lsb_a) * gain[:, None, :]
    d32 = np.empty((t_count, 1 + r, out), np.float32)
    np.multiply(d64, scale, out=d32[:, 1:])     # the double product, rounded once to float32
    # without noise the rounding is rint (ties, the only place it differs from floor(x + 0.5),
    # are within the margin and recomputed); with noise floor(x + 0.5)
    d32[:, 0] = offset + 0.5 if read_noise_std else offset
    column_max = np.maximum(d32[:, 1:].max(axis=1), -d32[:, 1:].min(axis=1)).astype(np.float64)
    offset_abs = np.abs(d32[:, 0]).astype(np.float64)
    abs_sum = np.abs(d64).sum(axis=1)
    # the largest |value| a read can reach, in LSB (the float32 entries' rounding, 1e-7 of
    # it, is far inside the + 2 of the test)
    size = abs_sum * np.abs(scale[:, 0]) + offset_abs + 1.0
    saturates = bool(np.max(size) + 2.0 >= min(-adc.code_min, adc.code_max))
    noise_sq = None
    if read_noise_std:
        noise_sq = (g_sq * (read_noise_std * scale) ** 2).astype(np.float32)
    return _LayerTiles(rows, d32, np.ascontiguousarray(d64.transpose(0, 2, 1)), column_max,
                       offset_abs, np.stack([column_max.max(axis=1), offset_abs.max(axis=1)], 1),
                       abs_sum, saturates, gain, offset, noise_sq)


def _read_limits(driven: np.ndarray, tiles: _LayerTiles) -> np.ndarray:
    """Per row tile (T, 1, 1) float32: a residual ``|x - rint(x)|`` above it is farther than
    the margin from a rounding boundary, for every read of a block that drives at most
    ``driven`` (T,) rows, with the tile's largest cell and offset. Rounded down to float32,
    so no value within the margin escapes."""
    bound = 0.5 - _margin(driven, tiles.tile_max[:, 0], tiles.tile_max[:, 1])
    limit = bound.astype(np.float32)
    limit = np.where(limit > bound, np.nextafter(limit, np.float32(0)), limit)
    return limit[:, None, None]


# flagged values recomputed per group: bounds the (values, rows) float64 temporaries to 4 MiB
_EXACT_GROUP = 4096
_U64 = 2.0 ** -53               # unit roundoff of float64


def _exact_codes(bit_rows: np.ndarray, tiles: _LayerTiles, t: np.ndarray, j: np.ndarray,
                 state: ProgrammedChip) -> np.ndarray:
    """The exact read's codes (:func:`golden.analog.chip_state.analog_read`) of reads with
    row-tile inputs ``bit_rows`` (k, r) of 0 and 1, row tiles ``t``, columns ``j``.

    First each value's double sum in any order (einsum), within ``2 gamma_r sum |terms|``
    (float64 ``gamma``) of the read's sequential sum, as both are of the exact one; the
    read's ADC steps (scale, gain, offset, floor, clip) are each monotone in the sum, so
    where both ends of that interval (widened to 4 gamma_r, which also covers the
    subtraction's own rounding) give one code, it is the read's code. The rest -- values
    within about 1e-13 LSB of a boundary -- are summed with the read's double operations in
    its order (a padded row adds 0 * 0 = +0.0 at the end, which leaves a sum that started
    from +0.0 unchanged)."""
    adc = state.chip.adc

    def codes(sums, sel):
        return adc.convert(state.v_read_v * sums, state.v_read_v, state.g_unit_s,
                           AdcErrors(tiles.gain[t[sel], j[sel]], tiles.offset[t[sel], j[sel]]))

    k = tiles.d64t.shape[2]
    s = np.empty(len(j))
    for g in range(0, len(j), _EXACT_GROUP):
        sl = slice(g, g + _EXACT_GROUP)
        s[sl] = np.einsum("kr,kr->k", bit_rows[sl], tiles.d64t[t[sl], j[sl]])
    width = 4 * (k * _U64 / (1 - k * _U64)) * tiles.abs_sum[t, j]
    everything = slice(None)
    code = codes(s + width, everything)
    unsure = np.flatnonzero(codes(s - width, everything) != code)
    if len(unsure):
        terms = bit_rows[unsure] * tiles.d64t[t[unsure], j[unsure]]       # b * (G+ - G-)
        terms[:, 0] += 0.0  # the read's sum starts from +0.0: 0.0 + (-0.0) is +0.0
        code[unsure] = codes(np.cumsum(terms, axis=1)[:, -1], unsure)  # sequential, row order
    return code


class _LayerReader:
    """``read_layer`` of :func:`golden.mapping.accumulate` for the evaluation read: every row
    tile's codes of a block of reads from one float32 product per tile, the ones within the
    margin of a rounding boundary recomputed exactly (module docstring); returns their sums
    per column, int32 (int64 when the sums could pass 2**24).

    Every element-wise step writes into buffers kept across blocks, layers and chunks
    (:meth:`_scratch`): fresh arrays per block measured 6x the time of the steps themselves
    (8.5 against 1.3 ns per value)."""

    def __init__(self, state: ProgrammedChip, prepared: dict, read_noise_std: float,
                 rng: np.random.Generator | None, kernel: bool = True):
        self.state, self.prepared = state, prepared
        self.read_noise_std, self.rng = read_noise_std, rng
        self._buffers: dict[str, np.ndarray] = {}
        adc = state.chip.adc
        # codes are summed in float32 while every partial sum is an exact integer
        tiles = max(t.d32.shape[0] for t in prepared.values())
        self.acc_dtype = (np.float32 if tiles * max(-adc.code_min, adc.code_max) < 1 << 24
                          else np.float64)
        # the noise-free rounding, flagging and summing of a tile in one pass (C, the same
        # float32 operations; numpy's passes cost as much as the tile's product)
        self.kernel = (native.tile_codes() if kernel and self.acc_dtype == np.float32
                       and not read_noise_std else None)

    def _scratch(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A buffer of ``shape`` kept across layers and chunks: on this project's machines a
        fresh array faults its pages in again, at up to 15 ms per MiB (measured), which took
        more time than the reads themselves with 4096-image chunks."""
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        buf = self._buffers.get(name)
        if buf is None or buf.size < size:
            buf = self._buffers[name] = np.empty(size, np.uint8)
        return buf[:size].view(dtype).reshape(shape)

    def __call__(self, bits: np.ndarray, layer: MappedLayer) -> np.ndarray:
        adc = self.state.chip.adc
        tiles = self.prepared[layer.index]
        (t_count, r1, out), p = tiles.d32.shape, bits.shape[0]
        r = r1 - 1
        full, last = divmod(tiles.rows, r)      # row tiles with r rows; the last one's rows
        acc = self._scratch("acc", (p, out), self.acc_dtype)
        # the noise is drawn per group of `sub` reads, all row tiles, (T, sub, out) in C
        # order: the layout the noisy results were first recorded with (see _noise_views)
        sub = max(1, _BLOCK_ELEMENTS // (t_count * out))
        # a block: as many reads as make one row tile's values _TILE_VALUES, so each product
        # has hundreds of rows (BLAS packs the tile's matrix on every call: blocks of 32 reads
        # took 26 us per image and MLP layer in products, of 256 17 us; the whole MLP read
        # on one thread took 0.44 s for 4096 images in blocks of 256 reads, 0.40 s in blocks
        # of 1024), a whole number of noise groups
        step = min(p, max(sub, _TILE_VALUES // out // sub * sub))
        # the reads' inputs per row tile, (T, step, 1 + r) float32: column 0 reads the offset
        # row of d32; a short last tile's missing rows stay 0
        b = self._scratch("b", (t_count, step, r1), np.float32)
        b[:, :, 0] = 1.0
        if last:
            b[full, :, 1 + last:] = 0.0
        value = self._scratch("value", (step, out), np.float32)   # ADC input, then residual
        if self.kernel is None:             # numpy's passes: the codes and the boundary test
            code = self._scratch("code", (step, out), np.float32)
            near_boundary = self._scratch("near", (step, out), np.bool_)
        else:
            flag_index = self._scratch("flag_index", (step * out,), np.int64)
            flag_code = self._scratch("flag_code", (step * out,), np.float32)
            flag_residual = self._scratch("flag_residual", (step * out,), np.float32)
        noisy = bool(self.read_noise_std)
        if noisy:
            sigma = self._scratch("sigma", (step, out), np.float32)
            z = self._scratch("z", (t_count * step * out,), np.float32)
        # codes summed straight into acc (tile 0) when no clipping or float64 sum intervenes
        direct = not tiles.saturates and self.acc_dtype == np.float32
        # the product's depth per tile: a short last tile reads only its own rows
        depth = [r1] * full + ([1 + last] if last else [])
        flagged = []
        for start in range(0, p, step):
            m = min(step, p - start)
            f, a = value[:m], acc[start:start + m]
            block = bits[start:start + m]
            b[:full, :m, 1:] = block[:, :full * r].reshape(m, full, r).transpose(1, 0, 2)
            if last:
                b[full, :m, 1:1 + last] = block[:, full * r:]
            if noisy:
                self.rng.standard_normal(out=z[:t_count * m * out], dtype=np.float32)
                z_views = _noise_views(z, t_count, m, out, sub)
            else:
                # non-zero terms of each read (driven rows + the offset), per row tile
                terms = np.matmul(b[:, :m], np.ones(r1, np.float32))
                limits = _read_limits(terms.max(axis=1) - 1.0, tiles)
            for t in range(t_count):
                bt, dt = b[t, :m, :depth[t]], tiles.d32[t, :depth[t]]
                if self.kernel is not None:
                    np.matmul(bt, dt, out=f)                    # offset included
                    n = self.kernel(f, a, t == 0, tiles.saturates, limits[t].item(),
                                    adc.code_min, adc.code_max, flag_index, flag_code,
                                    flag_residual)
                    if n:
                        i, j = np.divmod(flag_index[:n], out)
                        flagged.append((np.full(n, t), i + start, j, flag_code[:n].copy(),
                                        flag_residual[:n].copy(), terms[t, i] - 1.0))
                    continue
                c = a if direct and t == 0 else code[:m]
                if noisy:
                    s = sigma[:m]
                    np.matmul(bt[:, 1:], dt[1:], out=f)
                    f += dt[0]
                    np.matmul(bt[:, 1:], tiles.noise_sq[t, :depth[t] - 1], out=s)
                    np.sqrt(s, out=s)
                    for part, normals in z_views(t, s):
                        part *= normals
                    f += s
                    np.floor(f, out=c)
                else:
                    np.matmul(bt, dt, out=f)                    # offset included
                    np.rint(f, out=c)
                    f -= c                                      # exact in float32
                    np.abs(f, out=f)
                    nb = near_boundary[:m]
                    np.greater(f, limits[t], out=nb)
                    near = np.flatnonzero(nb)                   # 1-D: 8x faster than nonzero
                    if len(near):
                        i, j = np.divmod(near, out)
                        flagged.append((np.full(len(i), t), i + start, j, c.ravel()[near],
                                        f.ravel()[near], terms[t, i] - 1.0))
                if tiles.saturates:
                    np.clip(c, adc.code_min, adc.code_max, out=c)
                if t == 0 and c is not a:
                    a[...] = c
                elif t:
                    a += c
        if flagged:
            t, i, j, approx, residual, k = (np.concatenate(v) for v in zip(*flagged))
            # the threshold holds a block's reads to their tile's most driven rows, largest
            # cell and offset; keep the values within the margin of their own
            near = residual > 0.5 - _margin(k, tiles.column_max[t, j], tiles.offset_abs[t, j])
            t, i, j, approx = t[near], i[near], j[near], approx[near]
            exact = _exact_codes(_tile_inputs(bits, r, t, i), tiles, t, j, self.state)
            if tiles.saturates:
                approx = np.clip(approx, adc.code_min, adc.code_max)
            np.add.at(acc, (i, j), exact - approx)      # several tiles may hit one value
        # int32 (exact: the float32 sums are below 2**24) halves the write and the
        # correction's integer passes after it
        return acc.astype(np.int32 if self.acc_dtype == np.float32 else np.int64)


def _tile_inputs(bits: np.ndarray, r: int, t: np.ndarray, i: np.ndarray) -> np.ndarray:
    """(n, r) uint8 (einsum's fast type): the inputs of row tile ``t[k]`` of read ``i[k]``
    of the layer inputs ``bits`` (reads, rows), 0 past the layer's last row. Gathered for
    the few values to recompute only, one row tile at a time (a row slice each)."""
    rows = np.zeros((len(i), r), np.uint8)
    for tile in np.unique(t):
        sel = np.flatnonzero(t == tile)
        part = bits[i[sel], tile * r:(tile + 1) * r]
        rows[sel, :part.shape[1]] = part
    return rows


def _noise_views(z: np.ndarray, t_count: int, m: int, out: int, sub: int):
    """The normals of a block of ``m`` reads, drawn into ``z`` as consecutive groups of
    ``sub`` reads, each (T, sub, out) in C order (the last group possibly shorter). Returns a
    function of the row tile ``t`` and that tile's (m, out) values, giving ``(part,
    normals)`` pairs of matching views: (groups, sub, out) and (rest, out). Drawing one block
    at once takes the same numbers from the stream as one draw per group did."""
    full, rest = divmod(m, sub)
    whole = z[:full * t_count * sub * out].reshape(full, t_count, sub, out)
    tail = z[full * t_count * sub * out:t_count * m * out].reshape(t_count, rest, out)

    def views(t, values):
        pairs = []
        if full:
            pairs.append((values[:full * sub].reshape(full, sub, out), whole[:, t]))
        if rest:
            pairs.append((values[full * sub:m], tail[t]))
        return pairs
    return views


@dataclass(frozen=True, eq=False)
class PreparedRead:
    """The evaluation read's matrices of one programmed chip (:func:`prepare_read`), made once
    and passed to :func:`fast_analog_infer` for every batch of images read from that chip."""

    mapped: MappedModel
    state: ProgrammedChip
    read_noise_std: float
    tiles: dict


def prepare_read(mapped: MappedModel, state: ProgrammedChip,
                 read_noise_std: float = 0.0) -> PreparedRead:
    """Every layer's matrices for the evaluation read of ``state`` (module docstring): the
    precomputation a chip needs once, however many images are then read (about 0.15 s for
    the shipped MLP, 0.2 s for the CNN on this machine)."""
    if state.chip != mapped.chip:
        raise ValueError("the programmed chip was programmed for another chip configuration")
    return PreparedRead(mapped, state, float(read_noise_std),
                        {layer.index: _layer_tiles(layer, state, read_noise_std)
                         for layer in mapped.layers})


def layer_reader(mapped: MappedModel, state: ProgrammedChip, read_noise_std: float = 0.0,
                 rng: np.random.Generator | None = None, kernel: bool = True):
    """The evaluation read of ``state`` as a ``read_layer(bits, layer)`` hook of
    :func:`golden.mapping.accumulate` / :func:`golden.mapping.mapped_infer`: every row
    tile's codes of a layer, summed per column (exact without noise; module docstring).
    ``kernel``: as in :func:`fast_analog_infer`."""
    if read_noise_std and rng is None:
        raise ValueError("read noise is random: pass a seeded numpy.random.Generator as rng")
    prepared = {layer.index: _layer_tiles(layer, state, read_noise_std)
                for layer in mapped.layers}
    return _LayerReader(state, prepared, read_noise_std, rng, kernel)


def fast_analog_infer(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray,
                      read_noise_std: float = 0.0, rng: np.random.Generator | None = None,
                      workers: int | None = None, prepared: PreparedRead | None = None,
                      kernel: bool = True) -> Inference:
    """Inference on a programmed chip with matrix-product reads and optional read noise
    (module docstring). Without noise it equals :func:`golden.analog.chip_state.analog_infer`
    exactly. ``rng`` is needed when ``read_noise_std > 0``; chunk ``k`` of the images draws
    its noise from ``rng.spawn``'s ``k``-th child, so the result depends on the seed only.
    ``prepared``: the chip's matrices from :func:`prepare_read` (of this model, chip and
    noise), made once for many calls; by default they are made for this call. ``kernel``:
    round, flag and sum each row tile's noise-free values in one pass of the C kernel
    (:func:`golden.native.tile_codes`, the same float32 operations) where it is available;
    False takes numpy's separate passes (the same codes, measured 1.4x slower on the MLP).

    Chunks of images run on ``workers`` threads (default: every core), each with a
    single-threaded BLAS: the products are small (a row tile of 64-1024 reads), and a
    multi-threaded BLAS pays a thread hand-off per product that, on a loaded machine, costs
    more than the product itself.

    Returns
    -------
    Inference
        Scores and predictions (no layer bits).
    """
    if read_noise_std and rng is None:
        raise ValueError("read noise is random: pass a seeded numpy.random.Generator as rng")
    if state.chip != mapped.chip:
        raise ValueError("the programmed chip was programmed for another chip configuration")

    pixels = np.asarray(pixels)
    inputs = max(layer.pixels * layer.weights.shape[0] for layer in mapped.layers)
    values = max(layer.pixels * layer.out_channels for layer in mapped.layers)
    chunk = max(1, min(_CHUNK_ELEMENTS // inputs, _CHUNK_VALUES // values))
    # a multiple of 4 equal chunks (1, 2 or 4 workers each get as many; 10 000 MLP images in
    # 5 chunks of 2048 kept one of two workers idle a sixth of the time). The layout depends
    # on the images and the model only, never on the workers: it decides the noise streams.
    count = -(-len(pixels) // chunk)
    if count > 1:
        count = -(-count // 4) * 4
    chunk = max(1, -(-len(pixels) // count))
    starts = list(range(0, len(pixels), chunk))
    workers = min(len(starts), os.cpu_count() or 1) if workers is None else workers
    rngs = rng.spawn(len(starts)) if read_noise_std else [None] * len(starts)

    if prepared is not None and (prepared.state is not state or prepared.mapped is not mapped
                                 or prepared.read_noise_std != float(read_noise_std)):
        raise ValueError("prepared: matrices of another chip, model or read noise "
                         "(prepare_read of these)")
    given = prepared is not None
    prepared = dict(prepared.tiles) if given else {}
    readers = threading.local()     # one reader, and so one set of buffers, per thread

    def prepare(layer):
        return layer.index, _layer_tiles(layer, state, read_noise_std)

    def run(start, chunk_rng):
        if not hasattr(readers, "reader"):
            readers.reader = _LayerReader(state, prepared, read_noise_std, None, kernel)
        readers.reader.rng = chunk_rng
        return mapped_infer(mapped, pixels[start:start + chunk], False,
                            read_layer=readers.reader)

    with threadpool_limits(1, user_api="blas"):
        if workers <= 1:
            if not given:
                prepared.update(map(prepare, mapped.layers))
            parts = [run(k, r) for k, r in zip(starts, rngs)]
        else:
            with ThreadPoolExecutor(workers) as pool:
                # the layers' matrices on every worker too (mostly fresh memory: 40 ms for
                # the MLP's, a twentieth of its 10 000 images' reads on one thread)
                if not given:
                    prepared.update(pool.map(prepare, mapped.layers))
                parts = list(pool.map(run, starts, rngs))
    if len(parts) == 1:
        return parts[0]
    return Inference(scores=np.concatenate([p.scores for p in parts]),
                     predictions=np.concatenate([p.predictions for p in parts]),
                     layer_bits=[])


@dataclass(frozen=True)
class ChipAccuracy:
    """Accuracies (fractions) of one model over ``chips`` programmed chips.

    ``calibrated`` holds, when calibration was asked for, the accuracy of the same chips
    after :func:`golden.analog.calibration.calibrate` (paired: entry ``k`` is chip ``k``)."""

    accuracies: np.ndarray
    ideal_accuracy: float
    calibrated: np.ndarray | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    def as_dict(self) -> dict:
        out = chip_stats(self.accuracies)
        out["ideal_accuracy"] = self.ideal_accuracy
        if self.calibrated is not None:
            out["calibrated"] = chip_stats(self.calibrated)
        return out


def chip_stats(acc) -> dict:
    """Statistics of per-chip accuracies (fractions), as ``evaluate`` reports them."""
    acc = np.asarray(acc, np.float64)
    return {"chips": len(acc), "mean": float(np.mean(acc)),
            "std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
            "min": float(np.min(acc)), "max": float(np.max(acc)),
            "accuracies": [float(a) for a in acc]}


def _one_chip(args) -> tuple[float, float | None]:
    mapped, pixels, labels, seed, read_time_sec, read_noise, calibration = args
    state = program_chip(mapped, seed, read_time_sec, workers=1)   # the chips are the parallel axis
    rng = np.random.default_rng([seed, 1])      # read noise: its own stream of the chip's seed
    got = fast_analog_infer(mapped, state, pixels, read_noise, rng, workers=1)
    accuracy = float(np.mean(got.predictions == labels))
    if calibration is None:
        return accuracy, None
    from .calibration import calibrate
    fitted, _ = calibrate(mapped, state, calibration, read_noise, np.random.default_rng([seed, 2]))
    got = fast_analog_infer(fitted, state, pixels, read_noise, np.random.default_rng([seed, 1]),
                            workers=1)
    return accuracy, float(np.mean(got.predictions == labels))


def evaluate_chips(model: BnnModel, chip, pixels: np.ndarray, labels: np.ndarray, chips: int,
                   seed: int, read_time_sec: float | None = None, workers: int | None = None,
                   progress=None, calibration_pixels: np.ndarray | None = None,
                   indices=None) -> ChipAccuracy:
    """Accuracy of ``model`` on ``chips`` chips of configuration ``chip``, programmed with
    seeds ``seed, seed + 1, ...`` (chip ``k`` is the chip ``generate --seed seed+k`` builds),
    read with the device's read noise. Chips run on ``workers`` processes (default: every
    core); ``progress(done, total)`` is called as chips finish. With ``calibration_pixels``
    (images not among ``pixels``), every chip is also calibrated on them
    (:func:`golden.analog.calibration.calibrate`) and scored again with the same noise
    stream. ``indices`` (a subset of ``range(chips)``, for sharding a sweep over machines):
    only those chips, each exactly as in the whole run."""
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise ValueError(f"chips must be a positive integer, not {chips!r}")
    mapped = compile_model(model, chip)
    ideal_chip = chip.ideal()
    # with exact ADCs the tiled ideal chip is the plain golden model (tested), and faster
    ideal = (infer(model, pixels) if ideal_chip.adc_exact
             else mapped_infer(compile_model(model, ideal_chip), pixels))
    indices = list(range(chips)) if indices is None else [int(k) for k in indices]
    if not indices or sorted(set(indices)) != indices or not 0 <= indices[0] <= indices[-1] < chips:
        raise ValueError(f"chip indices must be distinct, ascending and in 0..{chips - 1}")
    jobs = [(mapped, pixels, labels, seed + k, read_time_sec, chip.device.read_noise_std,
             calibration_pixels) for k in indices]
    workers = min(len(jobs), os.cpu_count() or 1) if workers is None else workers
    check_programming_memory(mapped, chips_at_once=max(1, min(workers, len(jobs))))
    out = []
    if workers <= 1:
        for job in jobs:
            out.append(_one_chip(job))
            if progress:
                progress(len(out), len(jobs))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as p:
            for acc in p.map(_one_chip, jobs):
                out.append(acc)
                if progress:
                    progress(len(out), len(jobs))
    calibrated = None if calibration_pixels is None else np.array([c for _, c in out])
    return ChipAccuracy(np.array([a for a, _ in out]),
                        float(np.mean(ideal.predictions == labels)), calibrated)
