"""Accuracy of a model on many non-ideal chips (Monte Carlo), with cycle-to-cycle read noise.

:func:`fast_analog_infer` is the evaluation read: the same programmed state and ADC as the
exact read (:func:`golden.analog.chip_state.analog_read`), but each tile's column sums are one
float64 matrix product (BLAS sums in its own order) instead of the row-by-row sum the RTL
performs. The two differ only where a column's value lies within a few ulps of an ADC rounding
boundary (tested: equal codes on every read of the test sets); the exact read stays the
reference for the RTL, this one is for statistics over thousands of images and many chips.

Read noise: each cell's conductance seen by a read is ``G (1 + read_noise_std z)``, a fresh
normal per cell per read. The column current is then Gaussian around its noise-free value
with variance ``(V_read read_noise_std)^2 * sum over driven rows of (G+^2 + G-^2)``; drawing
that one normal per column per read is the same distribution as a draw per cell, at a
cell-count less cost (the sum of independent normals is normal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..mapping import MappedModel, compile_model, mapped_infer
from ..model import BnnModel, Inference
from .adc import AdcErrors
from .chip_state import ProgrammedChip, program_chip

__all__ = ["fast_analog_infer", "ChipAccuracy", "evaluate_chips"]


def fast_analog_infer(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray,
                      read_noise_std: float = 0.0,
                      rng: np.random.Generator | None = None) -> Inference:
    """Inference on a programmed chip with matrix-product reads and optional read noise
    (module docstring). ``rng`` is needed when ``read_noise_std > 0``."""
    if read_noise_std and rng is None:
        raise ValueError("read noise is random: pass a seeded numpy.random.Generator as rng")
    chip = mapped.chip
    g_diff = state.g_diff_s
    g_sq = state.g_pos_s ** 2 + state.g_neg_s ** 2 if read_noise_std else None
    adc = chip.adc

    def read(bits, layer, row_tile, column_tile):
        tile = layer.tile_base + column_tile * layer.row_tiles + row_tile
        cols = min(chip.columns, layer.out_channels - column_tile * chip.columns)
        b = bits.astype(np.float64)
        rows = b.shape[1]
        current = state.v_read_v * (b @ g_diff[tile, :rows, :cols])
        if read_noise_std:
            std = state.v_read_v * read_noise_std * np.sqrt(b @ g_sq[tile, :rows, :cols])
            current = current + std * rng.standard_normal(current.shape)
        return adc.convert(current, state.v_read_v, state.g_unit_s,
                           AdcErrors(state.adc_gain[tile, :cols],
                                     state.adc_offset_lsb[tile, :cols]))

    return mapped_infer(mapped, pixels, False, read)


@dataclass(frozen=True)
class ChipAccuracy:
    """Accuracies (fractions) of one model over ``chips`` programmed chips."""

    accuracies: np.ndarray
    ideal_accuracy: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    def as_dict(self) -> dict:
        return {"chips": len(self.accuracies), "mean": self.mean, "std": self.std,
                "min": float(np.min(self.accuracies)), "max": float(np.max(self.accuracies)),
                "ideal_accuracy": self.ideal_accuracy,
                "accuracies": [float(a) for a in self.accuracies]}


def _one_chip(args) -> float:
    mapped, pixels, labels, seed, read_time_sec, read_noise = args
    state = program_chip(mapped, seed, read_time_sec, workers=1)   # the chips are the parallel axis
    rng = np.random.default_rng([seed, 1])      # read noise: its own stream of the chip's seed
    got = fast_analog_infer(mapped, state, pixels, read_noise, rng)
    return float(np.mean(got.predictions == labels))


def evaluate_chips(model: BnnModel, chip, pixels: np.ndarray, labels: np.ndarray, chips: int,
                   seed: int, read_time_sec: float | None = None, workers: int | None = None,
                   progress=None) -> ChipAccuracy:
    """Accuracy of ``model`` on ``chips`` chips of configuration ``chip``, programmed with
    seeds ``seed, seed + 1, ...`` (chip ``k`` is the chip ``generate --seed seed+k`` builds),
    read with the device's read noise. Chips run on ``workers`` processes (default: every
    core); ``progress(done, total)`` is called as chips finish."""
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise ValueError(f"chips must be a positive integer, not {chips!r}")
    mapped = compile_model(model, chip)
    ideal = mapped_infer(compile_model(model, chip.ideal()), pixels)
    jobs = [(mapped, pixels, labels, seed + k, read_time_sec, chip.device.read_noise_std)
            for k in range(chips)]
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
    return ChipAccuracy(np.array(out), float(np.mean(ideal.predictions == labels)))
