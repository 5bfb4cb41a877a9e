"""Accuracy of a model on many non-ideal chips (Monte Carlo), with cycle-to-cycle read noise.

:func:`fast_analog_infer` is the evaluation read: the same programmed state and ADC as the
exact read (:func:`golden.analog.chip_state.analog_read`), at the speed of float32 matrix
products. Per layer and row tile, the arrays of all its column tiles form one matrix whose
entries are ``(G+ - G-) * V_read / lsb * gain`` -- the ADC's input in LSB per driven row --
so a read is one product ``bits @ D`` plus ``offset + 0.5``, then ``floor`` and saturation.

**Exact without noise.** A float32 product differs from the exact read's double sum, but by
at most a bound known in advance: for a sum of ``k`` non-zero terms in any order,
``gamma_k * sum |terms|`` with ``gamma_k = k u / (1 - k u)``, ``u = 2**-24`` (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1; the bound holds for
every summation order, so for any BLAS, and a cell read with 0 adds an exact zero). A read
driving ``k`` rows thus has the margin ``gamma_(k+8) * (k * max|D| + max|offset| + 1)``, the
extra terms covering the rounding of ``D``'s entries. A value farther than its margin from a
rounding boundary (``j + 0.5``) rounds to the exact read's code; a value within it (0.06 %
of the values on the shipped MLP, 0.03 % on the CNN, demo chip) is recomputed with the exact read's double operations,
in its order. So the codes equal :func:`analog_read`'s on every read (tested, also on arrays
built to put most values on a boundary), and the RTL's.

Read noise: each cell's conductance seen by a read is ``G (1 + read_noise_std z)``, a fresh
normal per cell per read. The column current is then Gaussian around its noise-free value
with variance ``(V_read read_noise_std)^2 * sum over driven rows of (G+^2 + G-^2)``; drawing
that one normal per column per read (float32) is the same distribution as a draw per cell,
at a cell-count less cost (the sum of independent normals is normal). With noise there is
no exact code to meet, and no recomputation.

Images go through in chunks of about 2**20 read-input bits per layer, so convolution
layers (a read per output pixel) do not need gigabytes for 10 000 images, and the chunks
run on both cores.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..mapping import MappedLayer, MappedModel, compile_model, mapped_infer
from ..model import BnnModel, Inference, infer
from .adc import AdcErrors
from .chip_state import ProgrammedChip, program_chip

__all__ = ["fast_analog_infer", "layer_reader", "ChipAccuracy", "evaluate_chips"]

_U32 = 2.0 ** -24               # unit roundoff of float32
_CHUNK_ELEMENTS = 1 << 22       # read-input entries per layer and chunk (4 MiB of bits)
_BLOCK_ELEMENTS = 1 << 19       # column values per block of reads (2 MiB of float32; measured
                                # faster than 1 MiB on the CNN, chunk and block sizes together
                                # took its evaluation read from 218 to ~480 images/s)


@dataclass(frozen=True)
class _RowTile:
    """One row tile of a layer, all its column tiles side by side (module docstring)."""

    rows: slice                 # the layer's crossbar rows this tile reads
    d32: np.ndarray             # (r + 1, out) float32: ADC input in LSB per driven row; the
                                # last row is the offset (+ 0.5 with noise), read by a 1 input
    d64t: np.ndarray            # (out, r) float64: G+ - G-, the exact read's cells
    cell_max: float             # max |d32| over the cells: the margin's term per driven row
    offset_max: float           # max |d32| of the offset row
    saturates: bool             # some column can reach a code outside the ADC's range
    gain: np.ndarray            # (out,) float64
    offset: np.ndarray          # (out,) float64
    noise_sq: np.ndarray | None  # (r + 1, out) float32: noise variance in LSB^2 per driven
                                 # row (last row 0)


def _row_tiles(layer: MappedLayer, state: ProgrammedChip, g_diff: np.ndarray,
               read_noise_std: float) -> list[_RowTile]:
    chip = state.chip
    adc = chip.adc
    lsb_a = (state.v_read_v * state.g_unit_s) * (adc.full_scale / (1 << (adc.bits - 1)))
    rows_total, out = layer.weights.shape
    tiles = []
    for r in range(layer.row_tiles):
        rsl = slice(r * chip.rows, min((r + 1) * chip.rows, rows_total))
        n = rsl.stop - rsl.start
        idx = [layer.tile_base + c * layer.row_tiles + r for c in range(layer.column_tiles)]
        cols = [min(chip.columns, out - c * chip.columns) for c in range(layer.column_tiles)]
        d64 = np.concatenate([g_diff[t, :n, :k] for t, k in zip(idx, cols)], axis=1)
        gain = np.concatenate([state.adc_gain[t, :k] for t, k in zip(idx, cols)])
        offset = np.concatenate([state.adc_offset_lsb[t, :k] for t, k in zip(idx, cols)])
        scale = (state.v_read_v / lsb_a) * gain
        # without noise the rounding is rint (ties, the only place it differs from
        # floor(x + 0.5), are within the margin and recomputed); with noise floor(x + 0.5)
        last = offset + 0.5 if read_noise_std else offset
        d32 = np.concatenate([d64 * scale, last[None, :]]).astype(np.float32)
        # bound of a read with k driven rows (module docstring): k + 1 non-zero terms (cells
        # read with 0 add exact zeros), each at most cell_max, the offset row at most
        # offset_max; the +8 covers the rounding of d32's entries and 1e-9 the exact read's
        # own double roundings
        cell_max = float(np.max(np.abs(d32[:n]))) if n else 0.0
        offset_max = float(np.max(np.abs(d32[n])))
        size = np.abs(d32).astype(np.float64).sum(axis=0) + 1.0
        saturates = bool(np.max(size) + 2.0 >= min(-adc.code_min, adc.code_max))
        noise_sq = None
        if read_noise_std:
            g_sq = np.concatenate([state.g_pos_s[t, :n, :k] ** 2 + state.g_neg_s[t, :n, :k] ** 2
                                   for t, k in zip(idx, cols)], axis=1)
            noise_sq = np.concatenate([g_sq * (read_noise_std * scale) ** 2,
                                       np.zeros((1, out))]).astype(np.float32)
        tiles.append(_RowTile(rsl, d32, np.ascontiguousarray(d64.T), cell_max, offset_max,
                              saturates, gain, offset, noise_sq))
    return tiles


def _margin(tile: _RowTile, driven: np.ndarray) -> np.ndarray:
    """Per read, a bound on |float32 value - exact value| given its driven-row count."""
    k = driven.astype(np.float64)
    size = k * tile.cell_max + tile.offset_max + 1.0
    gamma = (k + 8) * _U32 / (1 - (k + 8) * _U32)
    return gamma * size + 1e-9 * size


def _exact_codes(bits: np.ndarray, tile: _RowTile, i: np.ndarray, j: np.ndarray,
                 state: ProgrammedChip) -> np.ndarray:
    """The exact read's codes (:func:`golden.analog.chip_state.analog_read`) of reads ``i``,
    columns ``j`` of one row tile: the same double operations in the same order."""
    terms = bits[i, tile.rows] * tile.d64t[j]           # (k, r): b * (G+ - G-) per row
    terms[:, 0] += 0.0      # the read's sum starts from +0.0: 0.0 + (-0.0) is +0.0
    s = np.cumsum(terms, axis=1)[:, -1]                 # sequential, in row order
    adc = state.chip.adc
    return adc.convert(state.v_read_v * s, state.v_read_v, state.g_unit_s,
                       AdcErrors(tile.gain[j], tile.offset[j]))


class _LayerReader:
    """``read_layer`` of :func:`golden.mapping.accumulate` for the evaluation read: every
    row tile's codes from one float32 product per block of reads, the ones within the
    margin of a rounding boundary recomputed exactly (module docstring)."""

    def __init__(self, state: ProgrammedChip, prepared: dict, read_noise_std: float,
                 rng: np.random.Generator | None):
        self.state, self.prepared = state, prepared
        self.read_noise_std, self.rng = read_noise_std, rng
        adc = state.chip.adc
        # codes are summed in float32 while every partial sum is an exact integer
        tiles = max(len(t) for t in prepared.values())
        self.acc_dtype = (np.float32 if tiles * max(-adc.code_min, adc.code_max) < 1 << 24
                          else np.float64)

    def __call__(self, bits: np.ndarray, layer: MappedLayer) -> np.ndarray:
        adc = self.state.chip.adc
        p, out = bits.shape[0], layer.out_channels
        acc = np.zeros((p, out), self.acc_dtype)
        # blocks of reads small enough for the element-wise passes to stay in cache
        step = max(1, _BLOCK_ELEMENTS // out)
        for tile in self.prepared[layer.index]:
            n = tile.rows.stop - tile.rows.start
            b = np.ones((min(step, p), n + 1), np.float32)     # last input: the offset row
            # the margin of a read driving every row of the tile bounds every read's (it
            # grows with the driven-row count): one threshold for all values
            limit = np.float32(0.5 - _margin(tile, np.array([n]))[0])
            flagged = []
            for start in range(0, p, step):
                m = min(step, p - start)
                b[:m, :n] = bits[start:start + m, tile.rows]
                f = b[:m] @ tile.d32
                if self.read_noise_std:
                    z = self.rng.standard_normal(f.shape, dtype=np.float32)
                    z *= np.sqrt(b[:m] @ tile.noise_sq)
                    f += z
                    code = np.floor(f)
                else:
                    code = np.rint(f)
                    f -= code                           # exact in float32
                    np.abs(f, out=f)
                    near = np.flatnonzero(f > limit)
                    if len(near):
                        flagged.append((near + start * out, code.ravel()[near]))
                if tile.saturates:
                    np.clip(code, adc.code_min, adc.code_max, out=code)
                acc[start:start + m] += code
            if flagged:
                flat, approx = (np.concatenate(a) for a in zip(*flagged))
                i, j = np.divmod(flat, out)
                exact = _exact_codes(bits, tile, i, j, self.state)
                if tile.saturates:
                    approx = np.clip(approx, adc.code_min, adc.code_max)
                acc[i, j] += exact - approx
        return acc.astype(np.int64)


def layer_reader(mapped: MappedModel, state: ProgrammedChip, read_noise_std: float = 0.0,
                 rng: np.random.Generator | None = None):
    """The evaluation read of ``state`` as a ``read_layer(bits, layer)`` hook of
    :func:`golden.mapping.accumulate` / :func:`golden.mapping.mapped_infer`: every row
    tile's codes of a layer, summed per column (exact without noise; module docstring)."""
    if read_noise_std and rng is None:
        raise ValueError("read noise is random: pass a seeded numpy.random.Generator as rng")
    prepared = {layer.index: _row_tiles(layer, state, state.g_diff_s, read_noise_std)
                for layer in mapped.layers}
    return _LayerReader(state, prepared, read_noise_std, rng)


def fast_analog_infer(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray,
                      read_noise_std: float = 0.0, rng: np.random.Generator | None = None,
                      workers: int | None = None) -> Inference:
    """Inference on a programmed chip with matrix-product reads and optional read noise
    (module docstring). Without noise it equals :func:`golden.analog.chip_state.analog_infer`
    exactly. ``rng`` is needed when ``read_noise_std > 0``; chunk ``k`` of the images draws
    its noise from ``rng.spawn``'s ``k``-th child, so the result depends on the seed only.

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
    prepared = {layer.index: _row_tiles(layer, state, state.g_diff_s, read_noise_std)
                for layer in mapped.layers}

    pixels = np.asarray(pixels)
    per_image = max(layer.pixels * layer.weights.shape[0] for layer in mapped.layers)
    chunk = max(1, _CHUNK_ELEMENTS // per_image)
    starts = list(range(0, len(pixels), chunk))
    rngs = rng.spawn(len(starts)) if read_noise_std else [None] * len(starts)

    def run(start, chunk_rng):
        return mapped_infer(mapped, pixels[start:start + chunk], False,
                            read_layer=_LayerReader(state, prepared, read_noise_std, chunk_rng))

    workers = min(len(starts), os.cpu_count() or 1) if workers is None else workers
    with threadpool_limits(1, user_api="blas"):
        if workers <= 1:
            parts = [run(k, r) for k, r in zip(starts, rngs)]
        else:
            with ThreadPoolExecutor(workers) as pool:
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
        out = _stats(self.accuracies)
        out["ideal_accuracy"] = self.ideal_accuracy
        if self.calibrated is not None:
            out["calibrated"] = _stats(self.calibrated)
        return out


def _stats(acc: np.ndarray) -> dict:
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
                   progress=None, calibration_pixels: np.ndarray | None = None) -> ChipAccuracy:
    """Accuracy of ``model`` on ``chips`` chips of configuration ``chip``, programmed with
    seeds ``seed, seed + 1, ...`` (chip ``k`` is the chip ``generate --seed seed+k`` builds),
    read with the device's read noise. Chips run on ``workers`` processes (default: every
    core); ``progress(done, total)`` is called as chips finish. With ``calibration_pixels``
    (images not among ``pixels``), every chip is also calibrated on them
    (:func:`golden.analog.calibration.calibrate`) and scored again with the same noise
    stream."""
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise ValueError(f"chips must be a positive integer, not {chips!r}")
    mapped = compile_model(model, chip)
    ideal_chip = chip.ideal()
    # with exact ADCs the tiled ideal chip is the plain golden model (tested), and faster
    ideal = (infer(model, pixels) if ideal_chip.adc_exact
             else mapped_infer(compile_model(model, ideal_chip), pixels))
    jobs = [(mapped, pixels, labels, seed + k, read_time_sec, chip.device.read_noise_std,
             calibration_pixels) for k in range(chips)]
    workers = min(chips, os.cpu_count() or 1) if workers is None else workers
    out = []
    if workers <= 1:
        for job in jobs:
            out.append(_one_chip(job))
            if progress:
                progress(len(out), chips)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as p:
            for acc in p.map(_one_chip, jobs):
                out.append(acc)
                if progress:
                    progress(len(out), chips)
    calibrated = None if calibration_pixels is None else np.array([c for _, c in out])
    return ChipAccuracy(np.array([a for a, _ in out]),
                        float(np.mean(ideal.predictions == labels)), calibrated)
