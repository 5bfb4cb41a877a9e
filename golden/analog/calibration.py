"""Threshold calibration of a programmed chip from reference reads.

A non-ideal chip's pre-activations are, per output neuron, close to a linear function of the
ideal ones: a column's wire attenuation, its ADC's gain and offset, the mean programming
error of its cells and drift all scale or shift the sum the accumulator sees. The threshold
``T`` that batch-norm folding placed for the ideal sums is then in the wrong place. This is
the BN-threshold form of the calibrations used for analog in-memory computing: per-column
gain/offset calibration from reference inputs and global drift compensation (Joshi et al.,
"Accurate deep neural network inference using computational phase-change memory",
Nat. Commun. 11, 2473 (2020): an affine correction per column fitted from calibration
reads), and batch-norm re-calibration on the hardware's own outputs. No multiplier is added
to the datapath: the correction lands in the tables the RTL already has.

:func:`calibrate` runs calibration images through the chip, layer by layer (layer ``l`` is
fitted on the bits the chip produces with layers ``< l`` already calibrated), and fits per
output channel ``a_chip ~ g a_ideal + o`` by least squares, where ``a_ideal`` is the exact
integer pre-activation of the same input bits. Then:

* hidden layers: the ideal decision ``a_ideal >= T`` has its boundary at ``T - 1/2`` between
  two integers; the new threshold is ``T' = ceil(g (T - 1/2) + o)`` (kept as ``T`` where the
  fit is degenerate, ``g <= 0``); the invert flags are unchanged;
* the output layer: argmax needs no threshold, and a per-class gain would need a
  multiplier, so only the offset is removed: ``round(mean(a_chip - a_ideal))`` is added to
  the class's correction bias (``a = scale s - bias``).

The calibrated model is the same mapping with new threshold and bias tables: what the chip's
threshold memories would be loaded with after a calibration run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from threadpoolctl import threadpool_limits

from ..bn_fold import FoldedThreshold
from ..mapping import (MappedLayer, MappedModel, accumulate, input_buffer, layer_output,
                       layer_rows, sign_constant_correction)
from .chip_state import ProgrammedChip
from .evaluate import layer_reader

__all__ = ["LayerFit", "calibrate"]

_FIT_READS = 1 << 16        # reads per layer the affine fit uses (all of them when fewer)


class LayerFit:
    """Per-channel affine fit ``a_chip ~ gain * a_ideal + offset`` of one layer.

    Attributes
    ----------
    gain, offset : float64 arrays (channels,)
    rms_before, rms_after : float
        RMS of ``a_chip - a_ideal`` and of ``a_chip - (gain a_ideal + offset)``, in
        pre-activation units (one weight).
    """

    def __init__(self, a_ideal: np.ndarray, a_chip: np.ndarray):
        x = a_ideal.astype(np.float64)
        y = a_chip.astype(np.float64)
        mx, my = x.mean(axis=0), y.mean(axis=0)
        vx = ((x - mx) ** 2).mean(axis=0)
        cxy = ((x - mx) * (y - my)).mean(axis=0)
        flat = vx == 0
        self.gain = np.where(flat, 1.0, cxy / np.where(flat, 1.0, vx))
        self.offset = my - self.gain * mx
        self.rms_before = float(np.sqrt(np.mean((y - x) ** 2)))
        self.rms_after = float(np.sqrt(np.mean((y - self.gain * x - self.offset) ** 2)))
        self.mean_shift = (y - x).mean(axis=0)


def _calibrated_layer(layer: MappedLayer, fit: LayerFit) -> MappedLayer:
    if layer.is_output:
        shift = np.round(fit.mean_shift).astype(np.int64)
        return replace(layer, correction_bias=layer.correction_bias + shift)
    t = layer.threshold
    boundary = fit.gain * (t.threshold - 0.5) + fit.offset
    new = np.where(fit.gain > 0, np.ceil(boundary), t.threshold)
    # thresholds far outside the reachable range (constant neurons) stay far outside
    return replace(layer, threshold=FoldedThreshold(new.astype(np.int64), t.invert))


def calibrate(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray,
              read_noise_std: float = 0.0, rng: np.random.Generator | None = None
              ) -> tuple[MappedModel, list[LayerFit]]:
    """Fit every layer's thresholds (and the output layer's biases) to the chip ``state``
    from reference reads of the calibration images ``pixels`` (module docstring).

    Parameters
    ----------
    mapped : MappedModel
        The model as mapped on ``state.chip``.
    state : ProgrammedChip
    pixels : array (N, ...) of {0, 1}
        Calibration images: never the images the calibrated chip is then scored on.
    read_noise_std : float
        The device's read noise, drawn during the calibration reads (``rng`` needed).

    Returns
    -------
    (MappedModel, list of LayerFit)
        The calibrated model (same chip, same weights) and the fit of every layer.
    """
    if len(pixels) < 2:
        raise ValueError(f"calibration needs at least 2 images, not {len(pixels)}")
    if read_noise_std and rng is None:
        raise ValueError("read noise is random: pass a seeded numpy.random.Generator as rng")
    ideal_chip = mapped.chip.ideal()
    read = layer_reader(mapped, state, read_noise_std, rng)
    buf = input_buffer(mapped, pixels)
    layers, fits = [], []
    with threadpool_limits(1, user_api="blas"):    # small products (see fast_analog_infer)
        for layer in mapped.layers:
            rows = layer_rows(layer, buf)
            a_chip = np.concatenate([
                sign_constant_correction(layer, mapped.chip, read(chunk, layer))
                for chunk in _chunks(rows)])
            # the fit needs no more than _FIT_READS reads per channel (a convolution layer
            # has one per output pixel): evenly spaced ones, all images represented
            pick = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), _FIT_READS))
                             .astype(np.int64))
            fits.append(LayerFit(accumulate(rows[pick], layer, ideal_chip), a_chip[pick]))
            layers.append(_calibrated_layer(layer, fits[-1]))
            if not layer.is_output:     # the next layer is fitted on what the chip now writes
                buf = layer_output(layers[-1], mapped.chip, a_chip, len(pixels))
    return replace(mapped, layers=tuple(layers)), fits


def _chunks(rows: np.ndarray, size: int = 1 << 16):
    """Reads in chunks of ``size``: the products stay cache-sized (as in the evaluation)."""
    return (rows[k:k + size] for k in range(0, len(rows), size))
