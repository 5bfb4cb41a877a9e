"""Hardware-aware training against a chip model: fault-aware fine-tuning on one programmed chip
(chip in the loop) and noise-injection training for chips not yet seen.

What a weight reads as
----------------------
A weight of a ``differential`` array is a pair of cells, ``+1`` programmed as (G+, G-) =
(G_on, G_off) and ``-1`` as (G_off, G_on); the column current is proportional to G+ - G-, one
weight unit being ``G_on - G_off``. A stuck cell does not force the weight, it forbids one
sign, which then reads 0: with G+ stuck at G_on a ``+1`` is unaffected and a ``-1`` reads
``G_on - G_on = 0``; with G+ stuck at G_off a ``+1`` reads ``G_off - G_off = 0``; G- likewise
with the signs exchanged. Both cells stuck read a fixed value whatever the target. G_off does
not need to be 0 for this: it cancels exactly in the difference. (The ``reference_column``
mapping has one cell per weight against a shared reference cell per row: there a stuck weight
cell *does* force the weight, and a stuck reference cell shifts the whole row.)

The array holds the model's weights unchanged -- the sign-constant mapping
(:mod:`golden.mapping`) changes the *inputs* to ``x' = (x + 1) / 2`` and corrects in the
accumulator with the sum of the programmed weights -- in the crossbar row order of
:func:`golden.mapping.compile_model`, which :func:`model_weights` inverts. So a weight's two
reads, ``if_pos`` (programmed +1) and ``if_neg`` (programmed -1), are a property of the chip
and of the weight's position only. :func:`chip_fault_maps` derives them from a programmed
chip's stuck cells with the device's nominal conductances (exact -1 / 0 / +1 for the
differential pair); :func:`chip_weight_reads` also scales every cell by its measured
attenuation -- effective over programmed conductance, which is what the parasitic network
(and a non-linear I-V at the read voltage) leaves of it -- and every column by its ADC gain.
Both exclude the programming error the chip happened to draw, since reprogramming draws it
afresh; the fine-tuning sees it as multiplicative weight noise of the same spread
(:func:`programming_spread`). Not modelled: ADC offsets, ADC rounding per row tile, drift.

The training side is :class:`golden.train.Trainer`'s ``reads`` hook: the forward pass uses
the reads of each weight's sign (and the correction mismatch they cause in hidden layers),
the backward pass and the updates stay digital.

Chip in the loop: :func:`fine_tune_on_chip` programs a model on one chip, reads the chip's
reads, fine-tunes against them, and programs the result onto *the same chip* -- the same stuck
cells and ADCs, programming error redrawn (:func:`reprogram_chip`) -- measuring accuracy with
the golden non-ideal read (:func:`golden.analog.evaluate.fast_analog_infer`, with the device's
read noise) before and after. On a real chip the stuck map would come from a verify pass
after programming, the attenuations from reading the programmed conductances back.

Noise injection: :class:`RandomStuckCells` draws stuck cells at a device's rates afresh for
every training batch, and :func:`programming_spread` gives the matching weight noise, for a
model meant for any chip of that device (fault-tolerant training without a specific chip).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..chip import ChipConfig
from ..conductance import program, program_tiles
from ..mapping import MappedLayer, MappedModel, compile_model
from ..model import BnnModel
from ..train import TrainConfig, Trainer
from .calibration import calibrate
from .chip_state import ProgrammedChip, check_adc_range, program_arrays, program_chip
from .devices import STUCK_OFF, STUCK_ON, Device
from .evaluate import fast_analog_infer
from .parasitics import physical_conductances, weight_currents

__all__ = ["WeightReads", "model_weights", "layer_matrix", "chip_fault_maps",
           "chip_weight_reads", "fixed_reads", "reprogram_chip", "programming_spread",
           "RandomStuckCells", "StuckCounts", "stuck_counts", "chip_accuracy",
           "ChipFineTune", "fine_tune_on_chip"]


@dataclass(frozen=True)
class WeightReads:
    """What every weight of one layer reads as on the arrays, in weight units.

    Attributes
    ----------
    if_pos, if_neg : float64 arrays, the layer's weight shape
        The read of each weight when programmed to +1 and to -1 (healthy: +1 and -1).
    """

    if_pos: np.ndarray
    if_neg: np.ndarray

    def read(self, weight: np.ndarray) -> np.ndarray:
        """The reads of ``weight`` (-1/+1 array of the layer's shape) as programmed."""
        return np.where(np.asarray(weight) > 0, self.if_pos, self.if_neg)

    @property
    def faulty(self) -> np.ndarray:
        """Weights that do not read as their sign for at least one sign (bool)."""
        return ~(np.isclose(self.if_pos, 1.0) & np.isclose(self.if_neg, -1.0))


def model_weights(layer: MappedLayer, matrix: np.ndarray) -> np.ndarray:
    """A (crossbar rows, out) matrix of ``layer`` (the layout of ``layer.weights``, see
    :mod:`golden.mapping`) in the model's weight shape: (out, in, k, k) for a conv layer,
    (fan-in, out) for a dense one. Rows of padded input channels are dropped. The inverse of
    :func:`golden.mapping.compile_model`'s layout (tested against it)."""
    fmap = layer.input_map
    m = np.asarray(matrix)
    out = m.shape[1]
    if layer.kind == "conv":
        k = layer.kernel
        # row (ky * K + kx) * stride + c  ->  weight[o, c, ky, kx]
        return m.reshape(k, k, fmap.stride, out)[:, :, :fmap.channels, :].transpose(3, 2, 0, 1)
    # row q * stride + c  ->  channel-major flatten index c * positions + q
    m = m.reshape(fmap.positions, fmap.stride, out)[:, :fmap.channels, :]
    return m.transpose(1, 0, 2).reshape(fmap.channels * fmap.positions, out)


def layer_matrix(layer: MappedLayer, chip: ChipConfig, per_tile: np.ndarray) -> np.ndarray:
    """A per-array quantity (tiles, rows, weight columns) -- e.g. ``state.g_diff_s`` -- as the
    layer's (crossbar rows, out) matrix, tile ``(rt, ct)`` being array ``tile_base + ct *
    row_tiles + rt`` as :func:`golden.conductance.program` places it."""
    rows, out = layer.weights.shape
    m = np.empty((rows, out), per_tile.dtype)
    for ct in range(layer.column_tiles):
        for rt in range(layer.row_tiles):
            r0, r1 = rt * chip.rows, min((rt + 1) * chip.rows, rows)
            c0, c1 = ct * chip.columns, min((ct + 1) * chip.columns, out)
            m[r0:r1, c0:c1] = per_tile[layer.tile_base + ct * layer.row_tiles + rt,
                                       :r1 - r0, :c1 - c0]
    return m


def _sign_reads_per_tile(state: ProgrammedChip, attenuated: bool) -> tuple[np.ndarray, np.ndarray]:
    """(if_pos, if_neg), each (tiles, rows, columns): every array position read as if it held
    +1 / -1, given the chip's stuck cells (module docstring)."""
    chip, device = state.chip, state.chip.device
    if attenuated and state.g_phys_s is None:
        raise ValueError("this chip state has no programmed cells (g_phys_s; it was read back "
                         "from generated files): measured attenuations need them")
    shape = state.g_pos_s.shape
    used = np.ones(shape, bool)
    reads = []
    for sign in (1, -1):
        target = program_tiles(np.full(shape, sign, np.int8), used, chip.mapping, device)
        v = np.empty(shape)
        for t in range(state.tiles):
            g = physical_conductances(target.g_pos_s[t], target.g_neg_s[t], chip.mapping)
            stuck = state.stuck[t]
            g = np.where(stuck == STUCK_ON, device.g_on_s,
                         np.where(stuck == STUCK_OFF, device.g_off_s, g))
            if attenuated:
                effective = physical_conductances(state.g_pos_s[t], state.g_neg_s[t],
                                                  chip.mapping)
                g = g * (effective / state.g_phys_s[t])
            v[t] = weight_currents(g, chip.mapping) / target.g_unit_s
            if attenuated:
                v[t] *= state.adc_gain[t][None, :]
        reads.append(v)
    return reads[0], reads[1]


def _per_layer(mapped: MappedModel, state: ProgrammedChip, attenuated: bool) -> dict:
    if state.chip != mapped.chip:
        raise ValueError("the programmed chip was programmed for another chip configuration")
    if state.tiles != mapped.tiles:
        raise ValueError(f"the programmed chip has {state.tiles} arrays, the mapped model "
                         f"{mapped.tiles}")
    pos, neg = _sign_reads_per_tile(state, attenuated)
    out = {}
    for layer in mapped.layers:
        out[layer.index] = WeightReads(
            model_weights(layer, layer_matrix(layer, mapped.chip, pos)),
            model_weights(layer, layer_matrix(layer, mapped.chip, neg)))
    return out


def chip_fault_maps(mapped: MappedModel, state: ProgrammedChip) -> dict[int, WeightReads]:
    """Per model layer, the effect of the programmed chip's stuck cells on every weight: its
    reads for either sign with the device's nominal G_on / G_off (for the differential pair
    exactly -1, 0 or +1; see the module docstring), in the model's weight shape."""
    return _per_layer(mapped, state, attenuated=False)


def chip_weight_reads(mapped: MappedModel, state: ProgrammedChip) -> dict[int, WeightReads]:
    """:func:`chip_fault_maps` with every cell scaled by its measured attenuation (effective
    over programmed conductance: parasitics, non-linear I-V) and every column by its ADC gain
    -- the chip's persistent non-idealities, without the programming error it drew."""
    return _per_layer(mapped, state, attenuated=True)


def fixed_reads(reads: dict[int, WeightReads]):
    """The :class:`golden.train.Trainer` ``reads`` hook for one chip: the same reads in
    training and evaluation (so batch-norm recalibration sets thresholds for that chip)."""
    tables = {i: (r.if_pos.astype(np.float32), r.if_neg.astype(np.float32))
              for i, r in reads.items()}

    def hook(layer, rng, train):
        return tables.get(layer)
    return hook


def reprogram_chip(mapped: MappedModel, state: ProgrammedChip, seed: int,
                   read_time_sec: float | None = None, workers: int | None = None
                   ) -> ProgrammedChip:
    """Program ``mapped`` onto the chip ``state`` describes: its stuck cells stay stuck, its
    ADC errors stay, programming error is drawn afresh from ``seed``
    (:func:`golden.analog.chip_state.program_arrays` with ``same_chip``; drift to
    ``read_time_sec``, default the state's), then the ADC range check of
    :func:`golden.analog.chip_state.program_chip`. On a chip without stuck cells or ADC
    errors this equals ``program_chip(mapped, seed)`` (tested)."""
    read_time_sec = state.read_time_sec if read_time_sec is None else read_time_sec
    again = program_arrays(program(mapped, mapped.chip.device), mapped.chip, seed,
                           read_time_sec, workers, same_chip=state)
    check_adc_range(mapped, again)
    return again


def programming_spread(device: Device) -> float:
    """Relative standard deviation of one differential weight's read from programming error
    and read noise: ``sqrt(var(G_on) + var(G_off)) / (G_on - G_off)`` with each cell's
    variance from the device's lognormal and additive programming error
    (``G^2 (e^{s^2} - 1) e^{s^2}``, ``program_std_s(G)^2``) plus its read noise
    (``(read_noise_std G)^2``) -- the ``weight_noise_std`` that matches the device."""
    var = 0.0
    for g in (device.g_on_s, device.g_off_s):
        s2 = device.g_dtod_sigma_ln ** 2
        var += g * g * math.expm1(s2) * math.exp(s2)
        if any(device.g_dtod_poly_s):
            var += float(device.program_std_s(np.array(g))) ** 2
        var += (device.read_noise_std * g) ** 2
    return math.sqrt(var) / (device.g_on_s - device.g_off_s)


def _pair_reads(pos_on, pos_off, neg_on, neg_off):
    """Reads ``(if_pos, if_neg)`` of differential pairs, in weight units, from the stuck
    states of their G+ and G- cells (bool arrays): G_on = 1 and G_off = 0 suffice, since G_off
    cancels in the difference (module docstring)."""
    one = np.float32(1)
    # programmed +1: G+ at G_on unless stuck off, G- at G_off unless stuck on
    if_pos = one - pos_off - neg_on.astype(np.float32)
    # programmed -1: G+ at G_off unless stuck on, G- at G_on unless stuck off
    if_neg = pos_on - (one - neg_off.astype(np.float32))
    return if_pos, if_neg


class RandomStuckCells:
    """A :class:`golden.train.Trainer` ``reads`` hook drawing stuck cells afresh for every
    training batch: each cell of each differential pair stuck at G_on with probability
    ``stuck_on_rate``, at G_off with ``stuck_off_rate`` (one float32 uniform per cell from the
    trainer's generator, G+ cells first). In evaluation and batch-norm recalibration it
    returns the *expected* reads, ``+-(1 - stuck_on_rate - stuck_off_rate)``, so the thresholds
    anticipate the mean correction mismatch of a chip with those rates; with
    ``expected_in_eval=False``, the nominal weights.

    Only the ``differential`` mapping is modelled (a reference column's stuck cell would
    affect a whole row)."""

    def __init__(self, arch, stuck_on_rate: float, stuck_off_rate: float,
                 expected_in_eval: bool = True):
        for name, v in (("stuck_on_rate", stuck_on_rate), ("stuck_off_rate", stuck_off_rate)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], not {v!r}")
        if stuck_on_rate + stuck_off_rate > 1:
            raise ValueError(f"stuck_on_rate + stuck_off_rate must be <= 1, not "
                             f"{stuck_on_rate + stuck_off_rate!r}")
        self.arch = arch
        self.p_on, self.p_off = float(stuck_on_rate), float(stuck_off_rate)
        self.expected_in_eval = expected_in_eval

    def __call__(self, layer: int, rng: np.random.Generator, train: bool):
        shape = self.arch.weight_shape(layer)
        if not train:
            if not self.expected_in_eval:
                return None
            mean = np.float32(1 - self.p_on - self.p_off)
            return np.full(shape, mean), np.full(shape, -mean)
        u = rng.random((2,) + shape, dtype=np.float32)
        on = u < self.p_on
        off = (u >= self.p_on) & (u < self.p_on + self.p_off)
        return _pair_reads(on[0], off[0], on[1], off[1])


@dataclass(frozen=True)
class StuckCounts:
    """Stuck cells of a chip as they affect one model.

    Attributes
    ----------
    cells : int
        Stuck cells among the model's weights (both cells of a differential pair; with a
        reference column the weight cells, not the shared reference cells).
    weights : int
        Weights with a read other than +-1 for at least one sign.
    misread : int
        Weights whose *programmed* sign does not read as itself (e.g. +1 with G+ stuck off).
    total_weights : int
    """

    cells: int
    weights: int
    misread: int
    total_weights: int

    def as_dict(self) -> dict:
        return {"stuck_cells": self.cells, "faulty_weights": self.weights,
                "misread_weights": self.misread, "weights": self.total_weights}


def stuck_counts(model: BnnModel, mapped: MappedModel, state: ProgrammedChip,
                 faults: dict[int, WeightReads] | None = None) -> StuckCounts:
    """:class:`StuckCounts` of ``model`` (compiled as ``mapped``) on ``state``; ``faults``
    may pass :func:`chip_fault_maps` already computed."""
    faults = chip_fault_maps(mapped, state) if faults is None else faults
    chip = mapped.chip
    if chip.mapping == "differential":
        sides = (state.stuck[:, :, 0::2], state.stuck[:, :, 1::2])
    else:
        sides = (state.stuck[:, :, :chip.columns],)
    cells = weights = misread = total = 0
    for layer, original in zip(mapped.layers, model.layers):
        for side in sides:
            cells += int(np.count_nonzero(model_weights(layer, layer_matrix(layer, chip, side))))
        f, w = faults[layer.index], original.weight
        weights += int(np.count_nonzero(f.faulty))
        misread += int(np.count_nonzero(~np.isclose(f.read(w), w)))
        total += w.size
    return StuckCounts(cells, weights, misread, total)


def chip_accuracy(mapped: MappedModel, state: ProgrammedChip, pixels: np.ndarray,
                  labels: np.ndarray, read_seed) -> float:
    """Accuracy of ``mapped`` on ``state`` through the golden evaluation read with the
    device's read noise drawn from ``numpy.random.default_rng(read_seed)`` (the convention of
    :func:`golden.analog.evaluate.evaluate_chips` is ``[chip seed, 1]``)."""
    noise = mapped.chip.device.read_noise_std
    got = fast_analog_infer(mapped, state, pixels, noise, np.random.default_rng(read_seed))
    return float(np.mean(got.predictions == labels))


@dataclass
class ChipFineTune:
    """Result of :func:`fine_tune_on_chip` (accuracies are fractions of the test images).

    Attributes
    ----------
    before : float
        The given model on the chip as first programmed (seed ``chip_seed``).
    control : float or None
        The given model reprogrammed onto the same chip with ``program_seed``: the same
        programming draw as ``after``, so ``after - control`` is the fine-tuning's effect.
    recalibrated : float or None
        The given weights with batch-norm recalibrated against the chip's reads (no weight
        update), reprogrammed with ``program_seed``: what thresholds alone recover.
    calibrated : float or None
        The given model reprogrammed with ``program_seed``, its thresholds calibrated on the
        chip from reference reads of training images
        (:func:`golden.analog.calibration.calibrate`): the chip's own calibration, no model
        of the chip needed.
    after : float
        The fine-tuned model reprogrammed onto the same chip with ``program_seed``.
    twin_before, twin_after : float
        The training code's own estimate (its float forward with the chip's reads, no read
        noise or ADC rounding) for the given and the fine-tuned model.
    counts : StuckCounts
        Of the given model on the chip.
    model : BnnModel
        The fine-tuned model (its thresholds are for this chip).
    epochs : int
    reads : str
        ``"measured"`` or ``"stuck"`` (see :func:`fine_tune_on_chip`).
    seconds : dict
        Wall times, seconds: ``program`` (the first programming), ``fine_tune``,
        ``calibrate``, and the totals of ``reprogram`` and ``evaluate`` over every
        programming and evaluation.
    """

    before: float
    control: float | None
    recalibrated: float | None
    calibrated: float | None
    after: float
    twin_before: float
    twin_after: float
    counts: StuckCounts
    model: BnnModel
    epochs: int
    reads: str
    seconds: dict = field(default_factory=dict)


def fine_tune_on_chip(model: BnnModel, chip: ChipConfig, train_pixels: np.ndarray,
                      train_labels: np.ndarray, test_pixels: np.ndarray,
                      test_labels: np.ndarray, chip_seed: int, program_seed: int,
                      cfg: TrainConfig, reads: str = "measured", weight_noise: bool = True,
                      baselines: bool = True, calibration_images: int = 2000,
                      workers: int | None = 1, log=None) -> ChipFineTune:
    """Fault-aware, chip-in-the-loop fine-tuning of ``model`` on the chip ``(chip,
    chip_seed)``.

    1. Program ``model`` on the chip (:func:`program_chip`, seed ``chip_seed``) and measure
       its accuracy (read noise seeded ``[chip_seed, 1]``, as :func:`evaluate_chips`).
    2. The chip's reads (``reads="measured"``: :func:`chip_weight_reads`; ``"stuck"``: only
       the stuck cells, :func:`chip_fault_maps`) become the fine-tuning's forward pass; with
       ``weight_noise`` the weights also carry :func:`programming_spread` as multiplicative
       noise (the redrawn programming error). ``cfg`` (its ``weight_noise_std`` is replaced)
       sets epochs, learning rates and seed; batch-norm is recalibrated on the chip's reads.
    3. Program the result onto the same chip (:func:`reprogram_chip`, seed ``program_seed``)
       and measure (read noise ``[program_seed, 1]``). With ``baselines``, also the given
       model, the recalibrated-only model, and the given model calibrated on the chip from
       the first ``calibration_images`` training images (calibration read noise seeded
       ``[program_seed, 2]``), each reprogrammed with the same seed.

    ``workers`` processes solve the parasitic networks (1: this process only).
    """
    if reads not in ("measured", "stuck"):
        raise ValueError(f"reads must be 'measured' or 'stuck', not {reads!r}")
    log = log or (lambda *a, **k: None)
    seconds = {}

    def timed(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - t0, 2)
        return out

    mapped = compile_model(model, chip)
    state = timed("program", program_chip, mapped, chip_seed, workers=workers)
    before = timed("evaluate", chip_accuracy, mapped, state, test_pixels, test_labels,
                   [chip_seed, 1])
    faults = chip_fault_maps(mapped, state)
    table = faults if reads == "stuck" else chip_weight_reads(mapped, state)
    hook = fixed_reads(table)
    counts = stuck_counts(model, mapped, state, faults)
    log(f"before: {100 * before:.2f} % ({counts.misread} of {counts.total_weights} weights "
        f"misread)")
    noise = programming_spread(chip.device) if weight_noise else 0.0
    cfg = replace(cfg, weight_noise_std=noise)

    twin = Trainer(cfg, init=model, reads=hook)
    twin_before = twin.evaluate(test_pixels, test_labels)
    trainer = Trainer(cfg, init=model, reads=hook)
    timed("fine_tune", trainer.fit, train_pixels, train_labels, log=log)
    twin_after = trainer.evaluate(test_pixels, test_labels)
    meta = {"fine_tuned_on_chip": {"chip_seed": chip_seed, "reads": reads,
                                   "device": chip.device.record(), "mapping": chip.mapping,
                                   "rows": chip.rows, "columns": chip.columns}}
    tuned = trainer.export(metadata=meta)

    def reprogrammed(m: BnnModel):
        mm = compile_model(m, chip)
        return mm, timed("reprogram", reprogram_chip, mm, state, program_seed, workers=workers)

    def score(mm: MappedModel, st: ProgrammedChip) -> float:
        return timed("evaluate", chip_accuracy, mm, st, test_pixels, test_labels,
                     [program_seed, 1])

    after = score(*reprogrammed(tuned))
    control = recalibrated = calibrated = None
    if baselines:
        mm, st = reprogrammed(model)
        control = score(mm, st)
        cal, _ = timed("calibrate", calibrate, mm, st, train_pixels[:calibration_images],
                       chip.device.read_noise_std, np.random.default_rng([program_seed, 2]))
        calibrated = score(cal, st)
        recal = Trainer(cfg, init=model, reads=hook)
        recal.recalibrate(train_pixels)
        recalibrated = score(*reprogrammed(recal.export()))
    log(f"after: {100 * after:.2f} %")
    return ChipFineTune(before, control, recalibrated, calibrated, after, twin_before,
                        twin_after, counts, tuned, cfg.epochs, reads, seconds)
