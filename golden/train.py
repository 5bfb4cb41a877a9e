"""Numpy BNN training on CPU (straight-through estimator, batch-norm, Adam).

Forward passes use the binary weights ``sign(W)`` of real-valued latent weights ``W`` (kept in
[-1, 1]) and binary activations ``sign(y)``; gradients pass straight through the sign functions
(the activation gradient is cancelled where ``|y| > 1``). The first layer takes the chip's
unipolar pixels {0, 1}. Max-pooling is applied to batch-norm outputs before the sign, which is
the same as pooling the bits because sign is monotone. The last layer's integer scores are
scaled by one learned positive temperature for the softmax loss; the temperature does not change
the argmax, so the exported model needs no floating point.

Evaluation (:meth:`Trainer.evaluate`) runs the float network in inference mode, with batch-norm
in float64 exactly as :func:`golden.bn_fold.bn_sign_reference` specifies; :meth:`Trainer.export`
folds it into integer thresholds, and the golden integer inference of the export must predict
identically on every image (tested).

Hardware-aware hooks: ``weight_noise_std`` multiplies each binary weight by ``1 + std * N(0,1)``
(fresh per batch: conductance variation as seen during training), and ``fault_maps`` force
cells to +1, -1 or off (0) and freeze their latent weights (stuck-at-fault fine-tuning).
``reads`` (see :class:`Trainer`) goes further: per layer, what every weight *reads as* on the
arrays when programmed to +1 and when programmed to -1 (a stuck cell of a differential pair
forbids one sign rather than forcing a weight; parasitics attenuate). Those values replace the
binary weights in the forward pass, and since the chip's sign-constant correction of a hidden
layer subtracts the sum of the *programmed* signs, a weight programmed to ``s`` that reads
``v`` adds ``v - s`` to every pre-activation of its channel (``a = 2 sum(v x') - sum(s) =
sum(v x) + sum(v - s)`` with ``x = 2 x' - 1``); the first layer, on unipolar pixels, has no
correction. The gradient reaching a latent weight is the straight-through estimate of that
forward: the usual weight gradient times ``dv/ds = (v(+1) - v(-1)) / 2``, plus ``dv/ds - 1``
times the channel's summed output gradient (the correction term). A healthy weight has slope 1
and gets the plain estimator; one that reads the same either way gets only the correction
term, which batch-norm in training mode cancels.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import native
from .augment import distort, shift
from .bn_fold import BatchNorm, fold_batchnorm
from .model import ARCHITECTURES, Architecture, BnnModel, Layer, preactivation_range

__all__ = ["TrainConfig", "Trainer", "FAULT_OFF", "RECIPES"]

FAULT_OFF = 2   # fault map code of a cell stuck in the off state (weight 0)
# Images per inference pass (prediction, batch-norm recalibration), by network kind. A
# convolution's unfolded input must stay in cache: the shipped CNN's 2000-image prediction
# took 3.75 s in passes of 500, 2.0 s in passes of 50 and 2.15 s in passes of 20 (one run);
# dense layers prefer larger products (the MLP: 0.87x the rate in passes of 50;
# bench/bench_training.py prints both). The recalibration's sums do not depend on the
# passes on an ideal read (integer pre-activations summed in float64 are exact); with a
# chip's reads only their rounding order does.
INFERENCE_BATCH = {"conv": 50, "dense": 500}


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; defaults are the ones the shipped models were trained with."""

    arch: str = "mlp"
    epochs: int = 30
    batch_size: int = 100
    lr_start: float = 3e-3
    lr_end: float = 3e-5
    seed: int = 1
    # random augmentation of the training images (golden.augment): translation (pixels),
    # rotation (degrees), change of size (fraction), elastic deformation (amplitude and
    # correlation length, pixels); all 0: none, and translations alone move whole pixels
    shift_augment: int = 0
    rotate_augment: float = 0.0
    scale_augment: float = 0.0
    elastic_augment: float = 0.0
    elastic_sigma: float = 4.0
    weight_noise_std: float = 0.0
    dropout: float = 0.0            # on hidden activations (inputs of layers 1..), training only
    recalibrate_bn: bool = True     # after training, see Trainer.fit
    # 0: recalibrate on the un-augmented images; n: on n epochs of augmented training passes
    recalibrate_epochs: int = 0
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, not {self.arch!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if not (0 < self.lr_end <= self.lr_start):
            raise ValueError(f"need 0 < lr_end <= lr_start, got {self.lr_end} and {self.lr_start}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.shift_augment < 0 or self.weight_noise_std < 0:
            raise ValueError("shift_augment and weight_noise_std must be >= 0")
        for name in ("rotate_augment", "elastic_augment"):
            v = getattr(self, name)
            if not 0 <= v < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, not {v!r}")
        if not 0 <= self.scale_augment < 1:
            raise ValueError(f"scale_augment must be in [0, 1), not {self.scale_augment!r}")
        if not 0 < self.elastic_sigma < math.inf:
            raise ValueError(f"elastic_sigma must be a finite number > 0, not "
                             f"{self.elastic_sigma!r}")
        if not isinstance(self.recalibrate_epochs, int) or self.recalibrate_epochs < 0:
            raise ValueError(f"recalibrate_epochs must be an integer >= 0, not "
                             f"{self.recalibrate_epochs!r}")

    @classmethod
    def recipe(cls, arch: str, **overrides) -> "TrainConfig":
        """The shipped model's recipe for ``arch``, with ``overrides`` applied."""
        if arch not in RECIPES:
            raise ValueError(f"arch must be one of {sorted(RECIPES)}, not {arch!r}")
        return cls(**{"arch": arch, **RECIPES[arch], **overrides})

    def learning_rate(self, epoch: int) -> float:
        """Exponential decay from ``lr_start`` (first epoch) to ``lr_end`` (last)."""
        if self.epochs == 1:
            return self.lr_start
        return self.lr_start * (self.lr_end / self.lr_start) ** (epoch / (self.epochs - 1))


# Recipes of the shipped models. Latent weights live in [-1, 1], so a learning rate of 0.03
# lets a weight cross zero within tens of steps early on; the exponential decay then freezes the
# signs. Random shifts and dropout keep the MLP from over-fitting (without them it reaches 99.7 %
# training and only ~97.7 % test accuracy).
RECIPES = {
    # 60 epochs, random rotations and scalings besides the shifts, the running statistics:
    # 98.97 % where shifts alone, dropout 0.2 and statistics of augmented passes gave 98.88 %,
    # and 30 epochs with un-augmented statistics 98.46 % (issue 14; README lists the rest)
    "mlp": dict(epochs=60, lr_start=0.03, lr_end=3e-4, shift_augment=2, rotate_augment=10.0,
                scale_augment=0.1, dropout=0.1, recalibrate_bn=False),
    # 40 epochs (99.32 %) where 30 gave 99.25 % and 12 gave 99.14 %: the same schedule,
    # stretched (issue 14)
    "cnn": dict(epochs=40, lr_start=0.03, lr_end=3e-4, shift_augment=2, dropout=0.0),
    # the in-situ comparison network (golden.model.ARCHITECTURES): 10 epochs, shifts only
    "mlp250": dict(epochs=10, lr_start=0.03, lr_end=3e-4, shift_augment=2, dropout=0.1),
}


class _Adam:
    """Adam, updating ``param`` in place without temporaries (the step is memory-bound)."""

    def __init__(self, shape, b1=0.9, b2=0.999, eps=1e-8, dtype=np.float32):
        self.m = np.zeros(shape, dtype)
        self.v = np.zeros(shape, dtype)
        self.tmp = np.zeros(shape, dtype)
        self.b1, self.b2, self.eps, self.t = b1, b2, eps, 0

    def step(self, param, grad, lr):
        param -= self.delta(grad, lr)

    def delta(self, grad, lr):
        """Advance the moments by ``grad`` and return the step Adam subtracts from the
        parameter (a buffer of this optimiser, overwritten by the next call)."""
        self.t += 1
        m, v, tmp = self.m, self.v, self.tmp
        m *= self.b1
        np.multiply(grad, 1 - self.b1, out=tmp)
        m += tmp
        v *= self.b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1 - self.b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr * self._correction()      # a float64 scalar: numpy multiplies in double
        return tmp

    def _correction(self):
        """Adam's bias correction of step ``t``, float64."""
        return np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)

    def fused_step(self, kernel, latent, grad, lr, sign=None):
        """:meth:`delta` with the latent weights' update of :class:`_BinaryWeights` in one
        pass of the C kernel (:func:`golden.native.adam_latent`; the same float32 operations,
        so the same moments, weights and signs bit for bit): with ``sign``, ``latent`` moves
        by the step, clipped to [-1, 1], and ``sign`` receives its signs; without, the step is
        returned (this optimiser's buffer) and ``latent`` is left alone."""
        self.t += 1
        scale = lr * self._correction()
        kernel(latent, self.m, self.v, grad, sign, None if sign is not None else self.tmp,
               self.b1, self.b2, self.eps, scale)
        return self.tmp


def _sign(x):
    """+1 where ``x >= 0`` (so at -0.0 too), else -1, float32: ``2 * (x >= 0) - 1``, exact,
    and 13x faster than a select (measured on a 100 x 1024 batch)."""
    out = np.greater_equal(x, 0).astype(np.float32)
    out *= 2
    out -= 1
    return out


class _BinaryWeights:
    """Latent weights, their binary forward value, faults and noise."""

    def __init__(self, rng, shape, fault_map=None, layer=0, latent_update=None):
        self.latent = rng.uniform(-1, 1, size=shape).astype(np.float32)
        self.opt = _Adam(shape)
        # the signs the fused update wrote with the latent weights it wrote (None: stale)
        self._kernel = native.adam_latent()
        self._sign = np.empty(shape, np.float32) if self._kernel is not None else None
        self._sign_fresh = False
        self.layer, self.latent_update = layer, latent_update
        self.fault = None
        if fault_map is not None:
            fault_map = np.asarray(fault_map)
            if fault_map.shape != shape:
                raise ValueError(f"fault map shape {fault_map.shape} does not match weights {shape}")
            if not np.all(np.isin(fault_map, (0, 1, -1, FAULT_OFF))):
                raise ValueError(f"fault map codes must be 0 (healthy), 1, -1 or {FAULT_OFF} (off)")
            self.fault = fault_map.astype(np.int8)

    def binary(self) -> np.ndarray:
        # copysign is several times faster than a compare-and-select; latent weights are never
        # exactly zero in practice, and export uses this same function, so whatever it does
        # at +-0 is what the exported model holds. After a fused update the signs it wrote
        # (the same copysign) are returned, read-only: a buffer the next update overwrites.
        if self._sign_fresh:
            view = self._sign.view()
            view.flags.writeable = False
            return view
        return np.copysign(np.float32(1), self.latent)

    def effective(self, rng, noise_std: float, reads=None) -> np.ndarray:
        """Forward-pass weights: the binary weights, or with ``reads = (if_pos, if_neg)`` what
        each one reads as for its sign; then forced faults, then multiplicative noise."""
        w = self.binary()
        if reads is not None:
            w = np.where(w > 0, reads[0], reads[1]).astype(np.float32)
        if self.fault is not None:
            forced = np.where(self.fault == FAULT_OFF, 0, self.fault).astype(np.float32)
            w = np.where(self.fault != 0, forced, w)
        if noise_std > 0:
            w = w * (1 + noise_std * rng.standard_normal(w.shape).astype(np.float32))
        return w

    def update(self, grad, lr):
        if self.fault is not None:
            grad = np.where(self.fault != 0, 0, grad)
        self._sign_fresh = False
        if self._kernel is not None and grad.dtype == np.float32:
            grad = np.ascontiguousarray(grad)
            if self.latent_update is None:
                self.opt.fused_step(self._kernel, self.latent, grad, lr, self._sign)
                self._sign_fresh = True
                return
            step = self.opt.fused_step(self._kernel, self.latent, grad, lr)
            self.latent_update(self.layer, self.latent, step)
            return
        step = self.opt.delta(grad, lr)
        if self.latent_update is not None:
            self.latent_update(self.layer, self.latent, step)
            return
        self.latent -= step
        np.clip(self.latent, -1, 1, out=self.latent)


class _BatchNorm:
    def __init__(self, channels, eps, momentum, steps=None):
        self.steps = steps          # native.TrainSteps, or None: numpy
        self.gamma = np.ones(channels, np.float64)
        self.beta = np.zeros(channels, np.float64)
        self.mean = np.zeros(channels, np.float64)
        self.var = np.ones(channels, np.float64)
        self.eps, self.momentum = eps, momentum
        self.opt_g, self.opt_b = _Adam(channels, dtype=np.float64), _Adam(channels, dtype=np.float64)

    def forward_train(self, a, sign: bool = False):
        """The training-mode output ``y`` of pre-activations ``a``; with ``sign``, ``(y,
        _sign(y))``, the next layer's input."""
        axes = tuple(range(a.ndim - 1))
        # numpy sums a single channel pairwise (one contiguous axis), several row by row as
        # the kernel does; the count's float32 division is exact below 2**24 rows
        fused = self.steps is not None and a.dtype == np.float32 and a.shape[-1] > 1 \
            and a.size // a.shape[-1] < 1 << 24
        if fused:
            mu, xhat, var = self.steps.bn_statistics(a)
        else:
            mu = a.mean(axis=axes)
            # a.var's own steps (sum of squared deviations from the same mean, divided by
            # the count), with the deviations kept: they are xhat's numerator
            xhat = a - mu
            var = np.square(xhat).sum(axis=axes)
            var /= a.size // a.shape[-1]
        self.mean += self.momentum * (mu - self.mean)
        self.var += self.momentum * (var - self.var)
        inv = (1.0 / np.sqrt(var + self.eps)).astype(np.float32)
        self.cache = (xhat, inv)
        if fused:
            return self.steps.bn_normalize(xhat, inv, self.gamma.astype(np.float32),
                                           self.beta.astype(np.float32), sign)
        xhat *= inv
        y = xhat * self.gamma.astype(np.float32)
        y += self.beta.astype(np.float32)
        return (y, _sign(y)) if sign else y

    def sign_eval(self, a, integral: bool = False):
        """The inference activation: the sign (0 counts as +1, float32 +-1) of the float64
        batch-norm expression that :func:`golden.bn_fold.bn_sign_reference` specifies.

        ``integral``: ``a`` holds integers (a binary layer's pre-activation on an ideal read).
        The expression is then evaluated once per channel and distinct value, with the same
        operations in the same order, and its signs looked up: the same bits, several times
        faster on a convolution's activations."""
        if integral and a.size:
            lo, hi = int(a.min()), int(a.max())
            channels = a.shape[-1]
            if (hi - lo + 1) * channels * 8 <= a.size:
                table = _sign(self._expression(np.arange(lo, hi + 1, dtype=np.float64)[:, None]))
                index = a.astype(np.intp)
                index -= lo
                index *= channels
                index += np.arange(channels)
                return np.take(table.ravel(), index)
        return _sign(self._expression(a.astype(np.float64)))

    def _expression(self, a):
        return self.gamma * (a - self.mean) / np.sqrt(self.var + self.eps) + self.beta

    def backward(self, g, lr, ste=None):
        """The input gradient of output gradient ``g``; with ``ste`` (the output ``y``), of
        ``g * (|y| <= 1)``, the straight-through sign's gradient, first. Updates gamma and
        beta."""
        xhat, inv = self.cache
        axes = tuple(range(g.ndim - 1))
        n = np.float32(g.size // g.shape[-1])
        fused = self.steps is not None and g.dtype == np.float32 and g.shape[-1] > 1 \
            and g.size // g.shape[-1] < 1 << 24
        if fused:
            dbeta, dgamma = self.steps.bn_backward_sums(g, xhat, ste)
            gx = self.steps.bn_backward_apply(g, xhat, (dgamma / n).astype(np.float32),
                                              (dbeta / n).astype(np.float32),
                                              (self.gamma * inv).astype(np.float32), ste)
        else:
            if ste is not None:
                g = g * (np.abs(ste) <= 1)
            dbeta = g.sum(axis=axes)
            gx = g * xhat
            dgamma = gx.sum(axis=axes)
            # dx = gamma * inv * (g - mean(g) - xhat * mean(g * xhat)), in place in gx
            np.multiply(xhat, (dgamma / n).astype(np.float32), out=gx)
            np.subtract(g, gx, out=gx)
            gx -= (dbeta / n).astype(np.float32)
            gx *= (self.gamma * inv).astype(np.float32)
        self.opt_g.step(self.gamma, dgamma.astype(np.float64), lr)
        self.opt_b.step(self.beta, dbeta.astype(np.float64), lr)
        return gx

    def as_batchnorm(self) -> BatchNorm:
        return BatchNorm(gamma=self.gamma, beta=self.beta, mean=self.mean, var=self.var,
                         eps=self.eps)


def _im2col_nhwc(x, k, pad, pad_value):
    """The k x k windows of NHWC ``x`` as rows, columns in (ky, kx, channel) order: built from
    k*k shifted copies of the whole input, each row of channels one contiguous copy. (The
    (channel, ky, kx) order of a sliding-window view copies element by element, with a stride
    between neighbours: 1.15 s of a 6.8 s CNN epoch on 1 000 images.)"""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    n, h, w, c = x.shape
    ho, wo = h - k + 1, w - k + 1
    cols = np.empty((n, ho, wo, k, k, c), x.dtype)
    for ky in range(k):
        for kx in range(k):
            cols[:, :, :, ky, kx, :] = x[:, ky:ky + ho, kx:kx + wo, :]
    return cols.reshape(n * ho * wo, k * k * c), (n, ho, wo)


def _conv_matrix(w):
    """Conv weights (out, in, k, k) as the (out, k*k*in) matrix of :func:`_im2col_nhwc`'s
    column order."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _conv_weights(matrix, shape):
    """The inverse of :func:`_conv_matrix`: an (out, k*k*in) matrix as weights of ``shape``
    (out, in, k, k)."""
    out, c_in, k, _ = shape
    return matrix.reshape(out, k, k, c_in).transpose(0, 3, 1, 2)


def _col2im_nhwc(gcols, x_shape, k, pad):
    n, h, w, c = x_shape
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    g = gcols.reshape(n, ho, wo, k, k, c)
    gx = np.zeros((n, h + 2 * pad, w + 2 * pad, c), np.float32)
    for ky in range(k):
        for kx in range(k):
            gx[:, ky:ky + ho, kx:kx + wo, :] += g[:, :, :, ky, kx, :]
    return gx[:, pad:pad + h, pad:pad + w, :]


class _Net:
    """The trainable network for one :class:`Architecture` (activations kept NHWC)."""

    def __init__(self, arch: Architecture, cfg: TrainConfig, rng, fault_maps=None, reads=None,
                 latent_update=None):
        self.arch, self.cfg, self.rng = arch, cfg, rng
        self.reads = reads
        # the fused steps of golden/native/train_steps.c (bit-identical; None: numpy's)
        self.steps = native.train_steps()
        fault_maps = fault_maps or {}
        self.weights, self.bns = [], []
        for i, spec in enumerate(arch.layers):
            self.weights.append(_BinaryWeights(rng, arch.weight_shape(i), fault_maps.get(i), i,
                                               latent_update))
            last = i == len(arch.layers) - 1
            self.bns.append(None if last else _BatchNorm(spec.out, cfg.bn_eps, cfg.bn_momentum,
                                                         self.steps))
        # 0-d array so the optimiser can update it in place
        self.log_scale = np.array(-0.5 * np.log(arch.shapes()[-1][2]))
        self.opt_scale = _Adam((), dtype=np.float64)

    def _layer_input(self, x, i):
        """Input of layer i in the right layout: pixels for layer 0, +-1 otherwise."""
        spec = self.arch.layers[i]
        if spec.kind == "dense" and x.ndim == 4:
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)  # C-major
        return x

    def forward(self, pixels, train: bool, stop: int | None = None, binary=None):
        """Integer-valued scores (float32) of the last layer, or with ``stop`` the
        pre-activation of that layer. ``binary``: the layers' binary weights for inference, to
        reuse over batches (:meth:`binary_weights`)."""
        arch = self.arch
        x = pixels.astype(np.float32)
        if arch.layers[0].kind == "conv":
            x = x.reshape((-1,) + arch.input_shape).transpose(0, 2, 3, 1)   # NHWC
        else:
            x = x.reshape(x.shape[0], -1)
        self.cache = []
        noise = self.cfg.weight_noise_std if train else 0.0
        for i, spec in enumerate(arch.layers):
            x = self._layer_input(x, i)
            drop = None
            if train and i > 0 and self.cfg.dropout > 0:
                keep = 1 - self.cfg.dropout
                # 0 or float32(1) / float32(keep), the values of (r < keep) / keep
                drop = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(np.float32)
                drop *= np.float32(1) / np.float32(keep)
                x = x * drop
            reads = None if self.reads is None else self.reads(i, self.rng, train)
            if train or reads is not None:
                w = self.weights[i].effective(self.rng, noise, reads)
            else:
                w = self.weights[i].binary() if binary is None else binary[i]
            pad_value = 0.0 if i == 0 else -1.0
            if spec.kind == "conv":
                cols, (n, ho, wo) = (_im2col_nhwc if self.steps is None else self.steps.im2col)(
                    x, spec.kernel, spec.padding, pad_value)
                wmat = _conv_matrix(w)
                a = (cols @ wmat.T).reshape(n, ho, wo, spec.out)
                entry = {"cols": cols, "w": wmat, "x_shape": x.shape, "drop": drop}
            else:
                a = x @ w
                entry = {"x": x, "w": w, "drop": drop}
            if reads is not None:
                entry["slope"] = ((reads[0] - reads[1]) / 2).astype(np.float32)
                if i > 0:       # the sign-constant correction's mismatch (module docstring)
                    mismatch = w - self.weights[i].binary()
                    a = a + (mismatch.reshape(spec.out, -1).sum(axis=1) if spec.kind == "conv"
                             else mismatch.sum(axis=0))
            self.cache.append(entry)
            if self.bns[i] is None or i == stop:
                return a
            if not train:
                # inference needs only the signs; sign is monotone, so max-pooling the signs
                # gives the sign of the max-pooled outputs
                x = self.bns[i].sign_eval(a, integral=reads is None)
                if spec.pool > 1:
                    n, h, wd, c = x.shape
                    p = spec.pool
                    x = x[:, :h // p * p, :wd // p * p, :].reshape(
                        n, h // p, p, wd // p, p, c).max(axis=(2, 4))
                continue
            if spec.pool > 1 and self.steps is not None:
                # the shares are recomputed from y in the backward pass (no share array)
                entry["pre_pool"] = self.bns[i].forward_train(a)
                entry["y"], x = self.steps.maxpool(entry["pre_pool"], spec.pool, sign=True)
                continue
            if spec.pool == 1:
                entry["y"], x = self.bns[i].forward_train(a, sign=True)
                continue
            y = self.bns[i].forward_train(a)
            if spec.pool > 1:
                n, h, wd, c = y.shape
                p = spec.pool
                blocks = y[:, :h // p * p, :wd // p * p, :].reshape(n, h // p, p, wd // p, p, c)
                pooled = blocks.max(axis=(2, 4))
                if train:
                    # gradient share of each window element: split evenly between tied maxima
                    # (ties are common: BN outputs of integer pre-activations repeat)
                    mask = (blocks == pooled[:, :, None, :, None, :]).astype(np.float32)
                    mask /= mask.sum(axis=(2, 4), keepdims=True)
                    entry["pool_share"] = mask
                    entry["pre_pool_shape"] = y.shape
                y = pooled
            entry["y"] = y
            x = _sign(y)
        raise AssertionError("unreachable")

    def binary_weights(self) -> list[np.ndarray]:
        return [w.binary() for w in self.weights]

    def inference_batch(self) -> int:
        """Images per inference pass for this network (:data:`INFERENCE_BATCH`)."""
        conv = any(spec.kind == "conv" for spec in self.arch.layers)
        return INFERENCE_BATCH["conv" if conv else "dense"]

    def recalibrate(self, pixels, batch_size: int | None = None) -> None:
        """Replace each batch-norm's running statistics by the exact population mean and
        variance of its pre-activation over ``pixels`` in inference mode, layer by layer (so
        later layers see the recalibrated earlier ones)."""
        batch_size = batch_size or self.inference_batch()
        binary = self.binary_weights()
        for i, bn in enumerate(self.bns):
            if bn is None:
                continue
            total = np.zeros_like(bn.mean)
            total_sq = np.zeros_like(bn.mean)
            count = 0
            for start in range(0, len(pixels), batch_size):
                a = self.forward(pixels[start:start + batch_size], False, stop=i,
                                 binary=binary)
                a = a.reshape(-1, a.shape[-1]).astype(np.float64)
                total += a.sum(axis=0)
                total_sq += (a * a).sum(axis=0)
                count += len(a)
            bn.mean = total / count
            bn.var = np.maximum(total_sq / count - bn.mean ** 2, 0.0)

    def backward(self, g, lr):
        arch = self.arch
        for i in range(len(arch.layers) - 1, -1, -1):
            spec, entry = arch.layers[i], self.cache[i]
            ste = None      # the straight-through sign's input, if batch-norm's backward applies it
            if self.bns[i] is not None and "pre_pool" in entry:
                # the straight-through sign and the pooling's backward in one pass
                g = self.steps.maxpool_backward(entry["pre_pool"], entry["y"], g, spec.pool)
            elif self.bns[i] is not None and spec.pool == 1:
                ste = entry["y"]
            elif self.bns[i] is not None:
                g = g * (np.abs(entry["y"]) <= 1)          # straight-through sign
                if spec.pool > 1:
                    gb = entry["pool_share"] * g[:, :, None, :, None, :]
                    n, h, wd, c = entry["pre_pool_shape"]
                    p = spec.pool
                    if h % p == 0 and wd % p == 0:
                        g = gb.reshape(n, h, wd, c)
                    else:   # rows/columns dropped by the pool get no gradient
                        g = np.zeros((n, h, wd, c), np.float32)
                        g[:, :h // p * p, :wd // p * p, :] = gb.reshape(n, h // p * p, wd // p * p, c)
            if self.bns[i] is not None:
                g = self.bns[i].backward(g.astype(np.float32, copy=False), lr, ste)
            if spec.kind == "conv":
                g2 = g.reshape(-1, spec.out)
                gw = _conv_weights(g2.T @ entry["cols"], self.weights[i].latent.shape)
                gx = None if i == 0 else (
                    _col2im_nhwc if self.steps is None else self.steps.col2im)(
                        g2 @ entry["w"], entry["x_shape"], spec.kernel, spec.padding)
            else:
                g2 = g
                gw = entry["x"].T @ g
                gx = None if i == 0 else g @ entry["w"].T
            slope = entry.get("slope")
            if slope is not None:
                gw = gw * slope
                if i > 0:       # d(correction mismatch)/d(sign) = slope - 1, per channel
                    per_channel = g2.sum(axis=0)
                    gw += (slope - 1) * (per_channel[:, None, None, None] if spec.kind == "conv"
                                         else per_channel[None, :])
            self.weights[i].update(gw, lr)
            if gx is not None and entry["drop"] is not None:
                gx = gx * entry["drop"]       # same layout as the layer's input
            if gx is not None and arch.layers[i - 1].kind == "conv" and spec.kind == "dense":
                shp = self.cache[i - 1]["y"].shape          # N, H, W, C (after pooling)
                gx = gx.reshape(shp[0], shp[3], shp[1], shp[2]).transpose(0, 2, 3, 1)
            g = gx

    def train_step(self, pixels, labels, lr):
        scores = self.forward(pixels, train=True)
        scale = np.exp(self.log_scale)
        logits = scores.astype(np.float64) * scale
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        n = len(labels)
        loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
        dlogits = p
        dlogits[np.arange(n), labels] -= 1
        dlogits /= n
        dscale = (dlogits * scores).sum() * scale
        self.opt_scale.step(self.log_scale, dscale, lr)
        self.backward((dlogits * scale).astype(np.float32), lr)
        return loss, (scores.argmax(axis=1) == labels).mean()


def _augment(images, rng, cfg: TrainConfig):
    """The training images of one batch, as ``cfg`` augments them (:mod:`golden.augment`)."""
    if cfg.rotate_augment or cfg.scale_augment or cfg.elastic_augment:
        return distort(images, rng, cfg.shift_augment, cfg.rotate_augment, cfg.scale_augment,
                       cfg.elastic_augment, cfg.elastic_sigma)
    return shift(images, rng, cfg.shift_augment)


def _progress(text: str, final: bool = False) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + text + ("\n" if final else ""))
        sys.stderr.flush()
    elif final:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


@dataclass
class EpochStats:
    epoch: int
    lr: float
    loss: float
    train_accuracy: float
    test_accuracy: float | None
    seconds: float


class Trainer:
    """Train one architecture on binarized MNIST.

    Parameters
    ----------
    cfg : TrainConfig
    fault_maps : dict[int, array], optional
        Per layer index, an int array shaped like the layer's weights: 0 healthy, +1 / -1
        stuck at that weight, ``FAULT_OFF`` stuck off (contributes 0).
    init : BnnModel, optional
        Start from an exported model: latent weights ``0.5 * w`` and, where the file keeps
        them, its batch-norm parameters. With ``epochs`` still to run this is fine-tuning; with
        none, :meth:`predict` is the training code's evaluation of that model.
    reads : callable, optional
        ``reads(layer, rng, train)`` returns ``(if_pos, if_neg)``, two float arrays shaped
        like that layer's weights: what each weight reads as, in weight units, when
        programmed to +1 and to -1; or None for the binary weights. Called once per layer
        and forward pass (``train`` False in evaluation and batch-norm recalibration, so a
        model of one chip can apply there too, and random faults only in training); draws
        come from ``rng``, the trainer's generator. See the module docstring for the
        forward pass and gradient it implies; :mod:`golden.analog.aware_training` builds
        them from a programmed chip or a device's fault rates.
    latent_update : callable, optional
        ``latent_update(layer, latent, step)`` applies one optimiser step to a layer's latent
        weights in place: ``step`` (float32, the weights' shape; a buffer reused by the next
        step) is what Adam subtracts. Default ``latent -= step`` clipped to [-1, 1]. The
        forward pass uses the signs of ``latent``: chip-in-the-loop training
        (:mod:`golden.analog.in_situ`) accumulates the steps in the update unit's ``chi``
        and sets ``latent`` to the signs the chip holds.
    """

    def __init__(self, cfg: TrainConfig, fault_maps=None, init: BnnModel | None = None,
                 reads=None, latent_update=None):
        self.cfg = cfg
        self.arch = ARCHITECTURES[cfg.arch]
        self.rng = np.random.default_rng(cfg.seed)
        self.net = _Net(self.arch, cfg, self.rng, fault_maps, reads, latent_update)
        if init is not None:
            if init.arch != self.arch:
                raise ValueError(f"initial model is a {init.arch.name}, config asks for {self.arch.name}")
            for wts, bn, layer in zip(self.net.weights, self.net.bns, init.layers):
                wts.latent[...] = 0.5 * layer.weight.astype(np.float32)
                if bn is not None and layer.batchnorm is not None:
                    src = layer.batchnorm
                    bn.gamma, bn.beta = src.gamma.copy(), src.beta.copy()
                    bn.mean, bn.var, bn.eps = src.mean.copy(), src.var.copy(), src.eps
        self.history: list[EpochStats] = []
        self.train_seconds = 0.0

    def fit(self, train_pixels, train_labels, test_pixels=None, test_labels=None,
            log=_progress) -> list[EpochStats]:
        """Train for ``cfg.epochs``; per-epoch test accuracy uses the running batch-norm
        statistics. With ``cfg.recalibrate_bn`` the statistics are then replaced: with
        ``cfg.recalibrate_epochs`` by :meth:`recalibrate_augmented`, otherwise by the exact
        population statistics of the *un-augmented* training images (:meth:`recalibrate`; it
        gained 0.13 % on the 12-epoch CNN and 0.01 % on the 30-epoch MLP, but cost the MLP
        0.1-0.3 % with dropout 0.2 over 60 epochs: README)."""
        cfg = self.cfg
        n = len(train_labels)
        steps = (n + cfg.batch_size - 1) // cfg.batch_size
        native.keep_freed_memory()      # each step frees and reallocates the same arrays
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            lr = cfg.learning_rate(epoch)
            order = self.rng.permutation(n)
            loss_sum = acc_sum = 0.0
            for step in range(steps):
                idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                batch = _augment(train_pixels[idx].reshape(-1, 28, 28), self.rng, cfg)
                loss, acc = self.net.train_step(batch, train_labels[idx], lr)
                loss_sum += loss * len(idx)
                acc_sum += acc * len(idx)
                if step % 20 == 0:
                    done = int(30 * (step + 1) / steps)
                    seen = min(n, (step + 1) * cfg.batch_size)
                    left = (time.perf_counter() - t0) / (step + 1) * (steps - step - 1)
                    log(f"epoch {epoch + 1}/{cfg.epochs} [{'#' * done}{'.' * (30 - done)}] "
                        f"loss {loss_sum / seen:.4f} train {100 * acc_sum / seen:.2f}% "
                        f"{left:.0f} s left ")
            test_acc = None
            if test_pixels is not None:
                test_acc = self.evaluate(test_pixels, test_labels)
            dt = time.perf_counter() - t0
            self.train_seconds += dt
            stats = EpochStats(epoch + 1, lr, loss_sum / n, acc_sum / n, test_acc, dt)
            self.history.append(stats)
            log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.2e} loss {stats.loss:.4f} "
                f"train {100 * stats.train_accuracy:.2f}% "
                + (f"test {100 * test_acc:.2f}% " if test_acc is not None else "")
                + f"({dt:.1f} s)", final=True)
        if cfg.recalibrate_bn and cfg.recalibrate_epochs:
            self.recalibrate_augmented(train_pixels, cfg.recalibrate_epochs)
            log(f"batch-norm statistics recalibrated on {cfg.recalibrate_epochs} epoch(s) of "
                f"augmented training passes", final=True)
        elif cfg.recalibrate_bn:
            self.recalibrate(train_pixels)
            log("batch-norm statistics recalibrated on the un-augmented training images", final=True)
        return self.history

    def recalibrate_augmented(self, pixels, epochs: int) -> None:
        """Batch-norm statistics as training sees them, without its noise: the exact mean of
        the batch statistics of ``epochs`` epochs of training forward passes (random augmentation,
        dropout, weight noise, batch-normalised earlier layers), with no weight update.

        The running averages kept during training estimate the same quantities, but with
        momentum 0.1 they are dominated by the last ten batches and lag the last updates. The
        population statistics of the un-augmented images (:meth:`recalibrate`) describe
        another distribution. On one MLP run (60 epochs, shifts, dropout 0.2) they scored
        98.58 % where the running averages scored 98.72 % and these 98.88 %; but over ten MLP
        runs these gained -0.14 to +0.16 points on the running averages, about nothing on
        average, and no recipe uses them now (README). Draws come from a generator of their
        own, seeded from ``(cfg.seed, 2)``.
        """
        t0 = time.perf_counter()
        cfg, net = self.cfg, self.net
        rng = np.random.default_rng((cfg.seed, 2))
        bns = [bn for bn in net.bns if bn is not None]
        saved = net.rng, [bn.momentum for bn in bns]
        net.rng = rng
        try:
            batches = 0
            for _ in range(epochs):
                order = rng.permutation(len(pixels))
                for start in range(0, len(pixels), cfg.batch_size):
                    idx = order[start:start + cfg.batch_size]
                    for bn in bns:      # running mean of the batch statistics, exact
                        bn.momentum = 1.0 / (batches + 1)
                    net.forward(_augment(pixels[idx].reshape(-1, 28, 28), rng, cfg),
                                train=True)
                    batches += 1
        finally:
            net.rng = saved[0]
            for bn, momentum in zip(bns, saved[1]):
                bn.momentum = momentum
            net.cache = []
        self.train_seconds += time.perf_counter() - t0

    def recalibrate(self, pixels) -> None:
        """Batch-norm statistics from ``pixels`` without training (see :meth:`fit`): e.g. the
        thresholds of a model for the reads of one chip."""
        t0 = time.perf_counter()
        self.net.recalibrate(pixels)
        self.train_seconds += time.perf_counter() - t0

    def predict(self, pixels, batch_size: int | None = None) -> np.ndarray:
        """Class predictions of the float network in inference mode (ties: lowest index)."""
        out = []
        batch_size = batch_size or self.net.inference_batch()
        binary = self.net.binary_weights()
        for start in range(0, len(pixels), batch_size):
            scores = self.net.forward(pixels[start:start + batch_size], train=False,
                                      binary=binary)
            out.append(np.argmax(scores, axis=1))
        return np.concatenate(out)

    def evaluate(self, pixels, labels) -> float:
        return float((self.predict(pixels) == labels).mean())

    def export(self, metadata: dict | None = None) -> BnnModel:
        """Integer model: binary weights and batch-norm folded into thresholds."""
        layers = []
        for i, (wts, bn) in enumerate(zip(self.net.weights, self.net.bns)):
            w = wts.binary().astype(np.int8)
            threshold = batchnorm = None
            if bn is not None:
                lo, hi = preactivation_range(self.arch, i, w)
                batchnorm = bn.as_batchnorm()
                threshold = fold_batchnorm(batchnorm, lo, hi)
            layers.append(Layer(weight=w, threshold=threshold, batchnorm=batchnorm))
        meta = {"training": asdict(self.cfg), "train_seconds": round(self.train_seconds, 1)}
        meta.update(metadata or {})
        return BnnModel(arch=self.arch, layers=layers, metadata=meta)
