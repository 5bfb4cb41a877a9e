"""A real-valued teacher network for knowledge distillation of a binary MLP.

The teacher has the student's dense layer sizes with real weights and biases, ReLU hidden
activations and dropout, and sees the same binarized pixels, so what it knows is reachable by the
student's inputs. Its softened class probabilities (Hinton et al., "Distilling the Knowledge in a
Neural Network", arXiv:1503.02531) carry how alike the classes look, which the one-hot labels do
not: :class:`golden.train.Trainer` mixes them into the binary student's loss when
``TrainConfig.distill`` > 0. The teacher only shapes training; nothing of it is exported.

Training is numpy float32 with the optimiser passed in; draws come from the generator passed in, so a teacher is
reproducible from its seed.
"""

from __future__ import annotations

import numpy as np

from .model import Architecture

__all__ = ["FloatTeacher", "TEACHER_LR"]

# First and last epoch's Adam learning rate (exponential decay between them): the usual 1e-3
# for a float MLP, decayed a hundredfold so the teacher settles.
TEACHER_LR = (1e-3, 1e-5)


class FloatTeacher:
    """Real-valued MLP with the layer sizes of a dense :class:`Architecture`.

    Parameters
    ----------
    arch : Architecture
        All layers dense; the teacher copies their widths.
    rng : numpy.random.Generator
        Initial weights (He-normal) and dropout masks.
    dropout : float
        Probability of dropping a hidden activation during training.
    optimizer : callable
        ``optimizer(shape)`` returns an object whose ``step(param, grad, lr)`` updates
        ``param`` in place (the student's Adam, :class:`golden.train._Adam`).
    """

    def __init__(self, arch: Architecture, rng, dropout: float, optimizer):
        if any(spec.kind != "dense" for spec in arch.layers):
            raise ValueError(f"a float teacher needs an all-dense architecture, not {arch.name!r}")
        self.rng, self.dropout = rng, dropout
        sizes = [int(np.prod(arch.input_shape))] + [spec.out for spec in arch.layers]
        self.weights = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
                        for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(b, np.float32) for b in sizes[1:]]
        self._optimizers = [optimizer(p.shape) for p in self.weights + self.biases]

    def _forward(self, pixels, train: bool):
        x = pixels.reshape(len(pixels), -1).astype(np.float32)
        cache = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            drop = None
            if train and i > 0 and self.dropout > 0:
                keep = 1 - self.dropout
                drop = (self.rng.random(x.shape, dtype=np.float32) < keep) / np.float32(keep)
                x = x * drop
            cache.append((x, drop))
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0, out=x)
        return x, cache

    def logits(self, pixels) -> np.ndarray:
        """Class logits (float32, N x classes) in inference mode (no dropout)."""
        return self._forward(pixels, False)[0]

    def train_step(self, pixels, labels, lr: float) -> float:
        """One Adam step on softmax cross-entropy; returns the batch's mean loss."""
        z, cache = self._forward(pixels, True)
        z = z.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        n = len(labels)
        loss = float(-np.log(p[np.arange(n), labels] + 1e-12).mean())
        p[np.arange(n), labels] -= 1
        g = (p / n).astype(np.float32)
        grads_w, grads_b = [], []
        for i in range(len(self.weights) - 1, -1, -1):
            x, drop = cache[i]
            grads_w.append(x.T @ g)
            grads_b.append(g.sum(axis=0))
            if i > 0:
                g = g @ self.weights[i].T
                # ReLU's derivative, and the dropout mask that scaled this input
                g *= (x > 0) if drop is None else (x > 0) * drop
        grads = grads_w[::-1] + grads_b[::-1]
        for param, grad, opt in zip(self.weights + self.biases, grads, self._optimizers):
            opt.step(param, grad, lr)
        return loss
