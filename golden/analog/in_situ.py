"""Mixed-precision in-situ training: the BNN trained with the chip in the loop.

After Nandakumar et al. (2020, Front. Neurosci. 14:406): the crossbar computes the forward
pass with the weights it holds, the backward pass and the optimiser run in digital logic, and
a high-precision accumulator ``chi`` per weight (the update unit, :mod:`golden.update_unit`,
RTL :mod:`periphery.update_unit`) collects the updates until one reaches the device's update
granularity ``epsilon``; only then is the device programmed.

For a binary network the chip holds the *signs*; a latent weight exists only as the pair
(programmed sign ``s``, ``chi``). One optimiser step of a weight (the step Adam subtracts,
:class:`golden.train.Trainer`'s ``latent_update`` hook) enters the update unit as
``delta = -step`` in fixed point (:func:`golden.update_unit.to_fixed`); a pulse command ``n``
towards the other sign flips the weight, i.e. reprograms its differential pair -- G+ and G-
exchange their targets -- through the golden write-verify controller
(:func:`golden.programming.program_cells`: its pulses, verify reads, failures and energy are
counted); a command towards the sign the weight already has needs no pulse. With the cap of
one pulse per update and updates smaller than ``epsilon`` (Adam's steps are at most
:data:`ADAM_STEP_BOUND` times the learning rate; in the runs measured, under 0.031 against
``epsilon`` 0.1 to 0.5), ``chi`` stays in ``(-epsilon, epsilon)`` and a weight flips once the
updates since its last flip push it ``epsilon`` to ``2 epsilon`` the other way: a hysteresis,
as in the Bop optimiser for binary networks (Helwegen et al., NeurIPS 2019), where the
software latent weight of :mod:`golden.train` (clipped to [-1, 1], sign at 0) has none.
Multi-level devices hold binary weights here too: a flip reprograms both cells through their
levels (the update unit's level-step commands are for multi-level weights, not trained here).

The **naive** scheme is the paper's comparison: every update programmed at once, no
accumulator -- a weight flips whenever its update points to the other sign.

What the forward pass sees
--------------------------
Per weight the read of its pair as programmed, in weight units: ``(G+ a+ - G- a-) / g_unit
* gain`` with the cells' conductances as write-verify left them (programming error, failed
cells, stuck cells), ``a`` each cell's attenuation (effective over physical conductance:
the I-V law at the read voltage and the parasitic network, measured on the first programming
and held -- a parasitic solve per changed array per step would cost seconds) and ``gain`` its
column's ADC gain. A weight's read for the other sign, which the straight-through gradient
needs (:mod:`golden.train`'s ``reads``), uses the nominal conductances of that sign with the
same stuck cells and attenuations. Read noise: one multiplicative draw per weight per training
batch (the trainer's ``weight_noise_std``) with the relative spread of a pair's read,
``read_noise_std sqrt(G_on^2 + G_off^2) / (G_on - G_off)`` -- per batch, not per image. Not in
the forward model: ADC offsets and rounding, drift (reads at the device's ``t0``).

The accuracy reported at the end is the golden non-ideal read
(:func:`golden.analog.evaluate.fast_analog_infer`, read noise per cell and read, ADC codes)
of the trained model on the chip as the training left it, with its parasitic network solved
afresh (:func:`golden.analog.chip_state.chip_from_cells`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..chip import ChipConfig
from ..checks import check_int, check_real
from ..mapping import MappedModel, compile_model
from ..model import BnnModel
from ..programming import WriteVerifyPolicy, chip_policy, program_cells, program_model
from ..train import TrainConfig, Trainer
from ..update_unit import UpdateUnitParams, apply_update_batch, to_fixed
from .aware_training import layer_matrix, model_weights
from .chip_state import ProgrammedChip, chip_from_cells
from .devices import STUCK_OFF, STUCK_ON, Device
from .evaluate import fast_analog_infer

__all__ = ["InSituConfig", "ADAM_STEP_BOUND", "in_situ_policy", "read_noise_spread",
           "ChipInTheLoop", "InSituResult", "train_in_situ", "SCHEMES"]

SCHEMES = ("chi", "naive")


def _adam_step_bound(b1: float = 0.9, b2: float = 0.999, steps: int = 100_000) -> float:
    """The largest step Adam can take per unit learning rate, over every gradient sequence:
    with ``m_t = (1 - b1) sum_j b1^j g_(t-j)`` and ``v_t = (1 - b2) sum_j b2^j g_(t-j)^2``,
    Cauchy-Schwarz gives ``|m_t| / sqrt(v_t) <= (1 - b1) sqrt(sum_(j<t) (b1^2 / b2)^j /
    (1 - b2))``, times the bias correction ``sqrt(1 - b2^t) / (1 - b1^t)``; the maximum over
    ``t`` (1 at ``t = 1``, about 7.3 for large ``t``)."""
    t = np.arange(1, steps + 1, dtype=np.float64)
    r = b1 * b1 / b2
    partial = (1 - r ** t) / (1 - r)
    bound = (1 - b1) * np.sqrt(partial / (1 - b2)) * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return float(bound.max())


# The bound for golden.train's Adam (b1 0.9, b2 0.999): the learning rate times it is the
# largest update the update unit can receive.
ADAM_STEP_BOUND = _adam_step_bound()


@dataclass(frozen=True)
class InSituConfig:
    """The update unit and scheme of in-situ training.

    Parameters
    ----------
    scheme : str
        ``"chi"`` (accumulate, program at ``epsilon``) or ``"naive"`` (program every update).
    epsilon : float
        Update granularity of a flip, in latent-weight units (the trainer's optimiser steps),
        the same for every layer.
    chi_bits, frac_bits, update_bits : int
        Widths of the update unit (:class:`golden.update_unit.UpdateUnitParams`): signed
        ``chi`` width, fraction bits of ``chi`` and of an update, signed update width.
    """

    scheme: str = "chi"
    epsilon: float = 0.25
    chi_bits: int = 24
    frac_bits: int = 16
    update_bits: int = 18

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        check_real("epsilon", self.epsilon, 0.0, True, "positive")
        check_int("chi_bits", self.chi_bits, 2, 32)
        check_int("frac_bits", self.frac_bits, 0, self.chi_bits - 1)
        check_int("update_bits", self.update_bits, 2, self.chi_bits)
        # in float, before any integer conversion (a huge epsilon would overflow one)
        lsb = 2.0 ** -self.frac_bits
        largest = ((1 << (self.chi_bits - 1)) - 1) * lsb
        widths = f"a {self.chi_bits}-bit chi with {self.frac_bits} fraction bits"
        if self.epsilon > largest:
            raise ValueError(f"epsilon {self.epsilon:g}: {widths} holds at most {largest:.8g}")
        nearest = self.epsilon_lsb * lsb        # to_fixed's rounding; in range: checked above
        if abs(nearest - self.epsilon) > 0.01 * self.epsilon:
            raise ValueError(f"epsilon {self.epsilon:g}: {widths} steps by {lsb:.6g}; the "
                             f"nearest epsilon it holds, {nearest:.6g}, is more than 1 % off")

    @property
    def epsilon_lsb(self) -> int:
        """``epsilon`` in ``chi`` LSBs (rounded half up; within 1 % of ``epsilon``, checked
        on construction)."""
        return int(to_fixed(self.epsilon, self.frac_bits))

    def unit(self, layer_sizes) -> UpdateUnitParams:
        """The update unit for layers of ``layer_sizes`` weights (one pulse per update)."""
        return UpdateUnitParams(self.chi_bits, self.frac_bits, self.update_bits,
                                (self.epsilon_lsb,) * len(layer_sizes), tuple(layer_sizes), 1)


def in_situ_policy(chip: ChipConfig) -> WriteVerifyPolicy:
    """Write-verify policy of the flips: the chip's default (:func:`golden.programming
    .chip_policy`) with enough pulses for a continuous device to cross its whole range (the
    ``pcm`` preset steps 0.75 uS per pulse over 24 uS: 32 mean steps, given 2x)."""
    policy = chip_policy(chip)
    device = chip.device
    if device.levels is None and device.switch_step_s:
        need = 2 * math.ceil((device.g_on_s - device.g_off_s) / device.switch_step_s)
        policy = replace(policy, max_pulses=max(policy.max_pulses, need))
    return policy


def read_noise_spread(device: Device) -> float:
    """Relative standard deviation of a programmed differential pair's read from read noise:
    ``read_noise_std sqrt(G_on^2 + G_off^2) / (G_on - G_off)``."""
    return device.read_noise_std * math.hypot(device.g_on_s, device.g_off_s) / (
        device.g_on_s - device.g_off_s)


def _session_seed(seed: int, round_: int) -> int:
    """Key of one programming round's switching draws (distinct rounds draw afresh)."""
    return int(np.random.SeedSequence([seed, 7, round_]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


@dataclass
class _Layer:
    """The chip side of one model layer, every array in the layer's weight shape."""

    pair: np.ndarray          # int64: flat index of the weight's G+ cell (G- is the next)
    gain: np.ndarray          # float64: its column's ADC gain
    atten_pos: np.ndarray     # float64: attenuation of the G+ / G- cell
    atten_neg: np.ndarray
    stuck_pos: np.ndarray     # int8: stuck state of the G+ / G- cell
    stuck_neg: np.ndarray
    sign: np.ndarray          # int8: the programmed sign
    if_pos: np.ndarray        # float32: the reads handed to the trainer
    if_neg: np.ndarray
    unit: UpdateUnitParams
    chi: np.ndarray           # flat; int32 for chi up to 30 bits, else int64


class ChipInTheLoop:
    """One chip under in-situ training: its cells, the update unit's ``chi`` and the counts.

    ``reads`` and ``latent_update`` are the :class:`golden.train.Trainer` hooks. The chip is
    programmed with ``initial``'s weights on construction (write-verify from a fresh chip of
    ``seed``: :func:`golden.programming.program_model`).

    Parameters
    ----------
    initial : BnnModel
        The weights the training starts from.
    chip : ChipConfig
        A ``differential`` chip.
    seed : int
        The chip (stuck cells, ADC errors, switching draws).
    config : InSituConfig
    learning_rate : float
        The largest learning rate of the schedule: the largest update is it times
        :data:`ADAM_STEP_BOUND`, refused when it does not fit an update.
    """

    def __init__(self, initial: BnnModel, chip: ChipConfig, seed: int, config: InSituConfig,
                 learning_rate: float):
        if chip.mapping != "differential":
            raise ValueError(f"[array] mapping = {chip.mapping!r}: in-situ training flips "
                             f"differential pairs; use mapping = \"differential\"")
        self.chip, self.seed, self.config = chip, seed, config
        self.device = chip.device
        self.policy = in_situ_policy(chip)
        self.policy.check_device(self.device)
        sizes = [layer.weight.size for layer in initial.layers]
        unit = config.unit(sizes)            # every check before the programming
        self.largest_update = unit.check_learning_rate(learning_rate, ADAM_STEP_BOUND)
        mapped = compile_model(initial, chip)
        self.shape = (mapped.tiles, chip.rows, 2 * chip.columns)
        t0 = time.perf_counter()
        result, state = program_model(mapped, self.policy, seed)
        self.initial_programming = {"pulses": result.pulses, "energy_j": result.energy_j,
                                    "failed_cells": int(result.failed.sum()),
                                    "time_sec": result.time_sec}
        self.program_seconds = time.perf_counter() - t0
        self.g_s = result.g_s.copy()
        self.stuck = state.stuck.reshape(-1).copy()
        self.g_unit_s = state.g_unit_s
        atten = np.empty(self.shape)
        atten[..., 0::2] = state.g_pos_s / state.g_phys_s[..., 0::2]
        atten[..., 1::2] = state.g_neg_s / state.g_phys_s[..., 1::2]
        atten = atten.reshape(-1)
        tiles, rows, cols = mapped.tiles, chip.rows, chip.columns
        column = np.arange(tiles * rows * cols).reshape(tiles, rows, cols)
        self.layers = []
        for ml, layer in zip(mapped.layers, initial.layers):
            w = model_weights(ml, layer_matrix(ml, chip, column))      # weight-column index
            pair = 2 * w
            gain = state.adc_gain.reshape(-1)[(w // (rows * cols)) * cols + w % cols]
            single = UpdateUnitParams(unit.chi_bits, unit.frac_bits, unit.update_bits,
                                      unit.epsilon[:1], (w.size,), 1)
            entry = _Layer(pair, gain, atten[pair], atten[pair + 1], self.stuck[pair],
                           self.stuck[pair + 1], np.sign(layer.weight).astype(np.int8),
                           np.empty(w.shape, np.float32), np.empty(w.shape, np.float32),
                           single, np.zeros(w.size, np.int32 if unit.chi_bits <= 30
                                                    else np.int64))
            self._refresh(entry, None)
            self.layers.append(entry)
        self.round = 0
        self.steps = []            # per training step: flips, pulses, energy, failed cells
        # wall time of the hooks, s: the update unit (with the reads' refresh) and the
        # write-verify programming of flips within it
        self.seconds = {"update_unit": 0.0, "programming": 0.0}
        self._step = np.zeros(4)
        self.noise_std = read_noise_spread(self.device)

    # --- reads ----------------------------------------------------------------------------

    def _nominal(self, sign, stuck):
        """Conductance of a cell programmed on (``sign`` > 0) or off, unless stuck."""
        d = self.device
        g = np.where(sign > 0, d.g_on_s, d.g_off_s)
        return np.where(stuck == STUCK_ON, d.g_on_s, np.where(stuck == STUCK_OFF, d.g_off_s, g))

    def _refresh(self, e: _Layer, where) -> None:
        """Recompute the trainer's reads of ``e`` (all weights, or the flat ``where``)."""
        sl = slice(None) if where is None else where
        pair = e.pair.reshape(-1)[sl]
        sign = e.sign.reshape(-1)[sl]
        ap, an = e.atten_pos.reshape(-1)[sl], e.atten_neg.reshape(-1)[sl]
        sp, sn = e.stuck_pos.reshape(-1)[sl], e.stuck_neg.reshape(-1)[sl]
        scale = e.gain.reshape(-1)[sl] / self.g_unit_s
        now = (self.g_s[pair] * ap - self.g_s[pair + 1] * an) * scale
        other = (self._nominal(-sign, sp) * ap - self._nominal(sign, sn) * an) * scale
        e.if_pos.reshape(-1)[sl] = np.where(sign > 0, now, other)
        e.if_neg.reshape(-1)[sl] = np.where(sign > 0, other, now)

    def reads(self, layer: int, rng, train: bool):
        """The trainer's ``reads`` hook: every weight's read for either sign (module
        docstring), the same in training and evaluation."""
        e = self.layers[layer]
        return e.if_pos, e.if_neg

    # --- updates --------------------------------------------------------------------------

    def latent_update(self, layer: int, latent: np.ndarray, step: np.ndarray) -> None:
        """The trainer's ``latent_update`` hook: ``-step`` into the update unit, flips
        programmed, and the flipped weights' ``latent`` set to their new sign (the trainer
        uses only the signs of ``latent``, which are the chip's)."""
        t0 = time.perf_counter()
        e = self.layers[layer]
        delta = to_fixed(-step.reshape(-1), e.unit.frac_bits, e.chi.dtype)  # Adam subtracts
        if self.config.scheme == "naive":
            n = delta
        else:
            n = apply_update_batch(e.unit, e.chi, delta)
        flat_sign = e.sign.reshape(-1)
        command = np.flatnonzero(n)         # few: most updates stay in chi
        flip = command[np.sign(n[command]) != flat_sign[command]]
        if len(flip):
            self._program(e, flip, -flat_sign[flip])
            latent.reshape(-1)[flip] = flat_sign[flip]   # only the sign of latent is used
        self.seconds["update_unit"] += time.perf_counter() - t0
        if layer == 0:        # the trainer updates the first layer last in a step
            self.steps.append(self._step.copy())
            self._step[:] = 0

    def _program(self, e: _Layer, flip: np.ndarray, new_sign: np.ndarray) -> None:
        t0 = time.perf_counter()
        pair = e.pair.reshape(-1)[flip]
        cells = np.concatenate([pair, pair + 1])
        targets = np.concatenate([new_sign > 0, new_sign < 0]).astype(np.int64)
        res = program_cells(self.device, self.policy, targets, self.g_s[cells],
                            self.stuck[cells], _session_seed(self.seed, self.round),
                            cell_ids=cells, keep_log=False)
        self.round += 1
        self.g_s[cells] = res.g_s
        self.seconds["programming"] += time.perf_counter() - t0
        e.sign.reshape(-1)[flip] = new_sign
        self._refresh(e, flip)
        self._step += (len(flip), res.pulses, res.energy_j, int(res.failed.sum()))

    # --- results --------------------------------------------------------------------------

    def totals(self, first: int = 0, last: int | None = None) -> dict:
        """Flips, pulses, energy (J) and failed cells of training steps ``first:last``."""
        s = np.array(self.steps[first:last]).reshape(-1, 4).sum(axis=0)
        return {"flips": int(s[0]), "pulses": int(s[1]), "energy_j": float(s[2]),
                "failed_cells": int(s[3])}

    def chip_state(self, mapped: MappedModel) -> ProgrammedChip:
        """The chip as the training left it, for ``mapped`` (the trained model compiled for
        this chip): parasitics solved afresh, the ADC errors of ``seed``."""
        return chip_from_cells(mapped, self.g_s.reshape(self.shape),
                               self.stuck.reshape(self.shape), self.seed)


@dataclass
class InSituResult:
    """What :func:`train_in_situ` measured (accuracies are fractions of the test images).

    Attributes
    ----------
    model : BnnModel
        The trained model: the signs the chip holds, thresholds for its reads.
    accuracy : float
        The golden non-ideal read of ``model`` on the trained chip, with read noise.
    twin_accuracy : float
        The training code's float forward with the chip's reads (no read noise, ADC rounding).
    history : list
        Per epoch ``[epoch, loss, test accuracy of the twin, flips, pulses, energy_j,
        failed_cells]``.
    initial_programming : dict
        Pulses, energy (J), failed cells and programming time (s, pulses and verify reads) of
        programming the starting weights.
    seconds : dict
        Wall times: ``program`` (the first programming), ``epochs`` (each epoch), ``train``
        (all of them), within it ``update_unit`` (chi, flips and the reads' refresh) and
        ``flip_programming`` (the write-verify of the flips, part of ``update_unit``), and
        ``evaluate`` (the final golden read).
    """

    model: BnnModel
    accuracy: float
    twin_accuracy: float
    history: list
    initial_programming: dict
    seconds: dict = field(default_factory=dict)

    def summary(self) -> dict:
        totals = np.array([h[3:7] for h in self.history], np.float64).sum(axis=0)
        return {"accuracy": self.accuracy, "twin_accuracy": self.twin_accuracy,
                "flips": int(totals[0]), "pulses": int(totals[1]),
                "energy_j": float(totals[2]), "failed_cells": int(totals[3]),
                "initial_programming": self.initial_programming,
                "history": self.history, "seconds": self.seconds}


def train_in_situ(cfg: TrainConfig, chip: ChipConfig, seed: int, train_pixels, train_labels,
                  test_pixels, test_labels, config: InSituConfig = InSituConfig(),
                  init: BnnModel | None = None, log=None) -> InSituResult:
    """Train ``cfg``'s network with the chip ``(chip, seed)`` in the loop (module docstring).

    Starts from ``init`` (fine-tuning a software model) or from ``cfg.seed``'s random
    weights; the trainer's weight noise is the device's read-noise spread. Returns the model
    and its accuracy on the trained chip (golden read, read noise seeded ``[seed, 1]``)."""
    if cfg.weight_noise_std:
        raise ValueError(f"weight_noise_std = {cfg.weight_noise_std}: in-situ training's "
                         f"noise is the device's read noise, not a training option")
    start = init if init is not None else Trainer(cfg).export()
    loop = ChipInTheLoop(start, chip, seed, config, cfg.lr_start)
    cfg = replace(cfg, weight_noise_std=loop.noise_std)
    trainer = Trainer(cfg, init=start, reads=loop.reads, latent_update=loop.latent_update)
    steps = -(-len(train_labels) // cfg.batch_size)
    kwargs = {} if log is None else {"log": log}
    trainer.fit(train_pixels, train_labels, test_pixels, test_labels, **kwargs)
    history = []
    for k, h in enumerate(trainer.history):
        t = loop.totals(k * steps, (k + 1) * steps)
        history.append([h.epoch, round(float(h.loss), 5), h.test_accuracy, t["flips"],
                        t["pulses"], t["energy_j"], t["failed_cells"]])
    twin = trainer.evaluate(test_pixels, test_labels)
    model = trainer.export({"in_situ": {"device": chip.device.preset, "seed": seed,
                                        **asdict(config)}})
    t0 = time.perf_counter()
    mapped = compile_model(model, chip)
    state = loop.chip_state(mapped)
    got = fast_analog_infer(mapped, state, test_pixels, chip.device.read_noise_std,
                            np.random.default_rng([seed, 1]))
    accuracy = float(np.mean(got.predictions == test_labels))
    return InSituResult(model, accuracy, twin, history, loop.initial_programming,
                        {"program": round(loop.program_seconds, 1),
                         "update_unit": round(loop.seconds["update_unit"], 1),
                         "flip_programming": round(loop.seconds["programming"], 1),
                         "epochs": [round(h.seconds, 1) for h in trainer.history],
                         "train": round(trainer.train_seconds, 1),
                         "evaluate": round(time.perf_counter() - t0, 1)})
