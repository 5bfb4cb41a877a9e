"""A trained model compiled onto crossbar arrays, and its tiled, ADC-quantised inference.

Mapping ("highly parallelised"): each layer is a weight matrix with one row per input of the
unrolled kernel (conv) or per input feature (dense) -- in ``im2col`` order -- and one column
per output channel, so one read of the arrays holding a layer yields all output channels of one
output pixel. Matrices larger than an array are cut into row tiles x column tiles; tiles that
do not fill an array leave its remaining rows undriven and its remaining columns unused.

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

from .bnn import Domain, argmax_class, im2col, maxpool2d
from .bn_fold import FoldedThreshold
from .chip import ChipConfig
from .model import BnnModel, Inference

__all__ = ["MappedLayer", "MappedModel", "compile_model", "crossbar_read", "accumulate",
           "mapped_infer"]


@dataclass(frozen=True)
class MappedLayer:
    """One layer on the arrays.

    ``weights`` is the (fan_in, out) matrix in crossbar row order; ``correction_scale`` and
    ``correction_bias`` give ``a = scale * s - bias`` per column.
    """

    index: int
    kind: str
    weights: np.ndarray
    row_tiles: int
    column_tiles: int
    correction_scale: int
    correction_bias: np.ndarray
    threshold: FoldedThreshold | None
    kernel: int = 0
    padding: int = 0
    pool: int = 1

    @property
    def tiles(self) -> int:
        return self.row_tiles * self.column_tiles


@dataclass(frozen=True)
class MappedModel:
    chip: ChipConfig
    input_shape: tuple
    layers: tuple

    @property
    def tiles(self) -> int:
        return sum(layer.tiles for layer in self.layers)


def compile_model(model: BnnModel, chip: ChipConfig) -> MappedModel:
    """Cut every layer of ``model`` into array tiles of ``chip``."""
    layers = []
    for i, (spec, layer) in enumerate(zip(model.arch.layers, model.layers)):
        w = layer.weight
        matrix = w.reshape(w.shape[0], -1).T if spec.kind == "conv" else w
        matrix = np.ascontiguousarray(matrix, dtype=np.int8)
        fan_in, out = matrix.shape
        rt, ct = chip.tiles(fan_in, out)
        if i == 0:
            scale, bias = 1, np.zeros(out, np.int64)
        else:
            scale, bias = 2, matrix.sum(axis=0, dtype=np.int64)
        layers.append(MappedLayer(index=i, kind=spec.kind, weights=matrix, row_tiles=rt,
                                  column_tiles=ct, correction_scale=scale,
                                  correction_bias=bias, threshold=layer.threshold,
                                  kernel=spec.kernel, padding=spec.padding, pool=spec.pool))
    return MappedModel(chip=chip, input_shape=model.arch.input_shape, layers=tuple(layers))


def crossbar_read(bits: np.ndarray, weights: np.ndarray, chip: ChipConfig) -> np.ndarray:
    """ADC codes of one ideal array read: ``clip(bits @ weights)`` to the ADC range.

    Parameters
    ----------
    bits : array (P, r) of {0, 1}
        Word-line inputs of ``P`` reads (r <= chip.rows).
    weights : array (r, c) of +-1
        The tile (c <= chip.columns).
    """
    if weights.shape[0] > chip.rows or weights.shape[1] > chip.columns:
        raise ValueError(f"tile {weights.shape} does not fit a {chip.rows}x{chip.columns} array")
    s = np.matmul(bits.astype(np.float32), weights.astype(np.float32)).astype(np.int64)
    return np.clip(s, chip.adc_min, chip.adc_max)


def accumulate(bits: np.ndarray, layer: MappedLayer, chip: ChipConfig) -> np.ndarray:
    """Pre-activations ``a`` (P, out) of a mapped layer: ADC codes of every row tile summed per
    column, then the sign-constant correction."""
    fan_in, out = layer.weights.shape
    s = np.zeros((bits.shape[0], out), np.int64)
    for r in range(layer.row_tiles):
        rows = slice(r * chip.rows, min((r + 1) * chip.rows, fan_in))
        for c in range(layer.column_tiles):
            cols = slice(c * chip.columns, min((c + 1) * chip.columns, out))
            s[:, cols] += crossbar_read(bits[:, rows], layer.weights[rows, cols], chip)
    return layer.correction_scale * s - layer.correction_bias


def mapped_infer(mapped: MappedModel, pixels: np.ndarray, keep_layers: bool = False) -> Inference:
    """Inference through the tiled arrays; equals :func:`golden.model.infer` whenever the ADCs
    are exact (tested), and models their saturation exactly when they are not."""
    chip = mapped.chip
    bits = np.asarray(pixels).reshape((len(pixels),) + mapped.input_shape).astype(np.uint8)
    kept = []
    for layer in mapped.layers:
        if layer.kind == "conv":
            # Input bits pad with x' = 0 in every layer: an undriven word line.
            cols = im2col(bits, (layer.kernel, layer.kernel), layer.padding, Domain.UNIPOLAR)
            n, ho, wo, k = cols.shape
            a = accumulate(cols.reshape(-1, k), layer, chip)
            out = layer.threshold.bits(a).reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)
            if layer.pool > 1:
                out = maxpool2d(out, layer.pool)
        else:
            x = bits.reshape(len(bits), -1)
            a = accumulate(x, layer, chip)
            if layer.threshold is None:
                return Inference(scores=a.astype(np.int32), predictions=argmax_class(a),
                                 layer_bits=kept)
            out = layer.threshold.bits(a)
        if keep_layers:
            kept.append(out)
        bits = out
    raise AssertionError("unreachable: the last layer is dense")
