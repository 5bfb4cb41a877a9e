"""Mixed-precision update unit: the golden twin of ``periphery.update_unit``.

In-situ training after Nandakumar et al. (2020, Front. Neurosci. 14:406): the crossbar holds
the weights, a digital accumulator ``chi`` per weight collects the (learning-rate scaled)
gradient updates, and only when ``|chi|`` reaches the device's update granularity ``epsilon``
does the unit ask for pulses. For one update ``delta`` of weight ``i`` (integers: ``chi`` and
``delta`` are fixed point with ``frac_bits`` fraction bits, ``epsilon`` in the same LSBs)::

    x       = saturate(chi[i] + delta)                 to the signed chi_bits range
    m       = min(trunc(|x| / epsilon[layer(i)]), max_pulses)
    n       = sign(x) * m                              pulses (n > 0: towards +1)
    chi[i]  = x - n * epsilon[layer(i)]
    emit (i, n) when n != 0

``trunc`` rounds towards zero, so ``chi`` keeps the sign and the remainder of the update that
has not been applied; ``max_pulses`` caps one update's pulses (the rest stays in ``chi`` and
is applied by later updates). A binary device reads a command as one sign flip towards
``sign(n)`` (none when the weight is already there); a multi-level device as ``|n|`` level
steps. Updates are applied in order: an update sees the ``chi`` every earlier one left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import check_int
from .widths import index_bits

__all__ = ["UpdateUnitParams", "apply_updates", "apply_update_batch", "to_fixed"]


@dataclass(frozen=True)
class UpdateUnitParams:
    """Shape and constants of one update unit.

    Parameters
    ----------
    chi_bits : int
        Signed width of a ``chi`` (2..32).
    frac_bits : int
        Fraction bits of ``chi`` and of an update (0..chi_bits-1): one LSB is
        ``2**-frac_bits`` weight-update units.
    update_bits : int
        Signed width of an incoming update (2..chi_bits).
    epsilon : tuple of int
        Per layer, the device's update granularity in ``chi`` LSBs: positive, and a ``chi``
        must hold one (``epsilon < 2**(chi_bits - 1)``).
    layer_sizes : tuple of int
        Weights per layer; weight ``i`` belongs to the layer whose range holds it (the
        ``chi`` memory has ``sum(layer_sizes)`` entries, layers in order).
    max_pulses : int
        Most pulses one update may ask for (1..15).
    """

    chi_bits: int
    frac_bits: int
    update_bits: int
    epsilon: tuple
    layer_sizes: tuple
    max_pulses: int = 1

    def __post_init__(self):
        check_int("chi_bits", self.chi_bits, 2, 32)
        check_int("frac_bits", self.frac_bits, 0, self.chi_bits - 1)
        check_int("update_bits", self.update_bits, 2, self.chi_bits)
        check_int("max_pulses", self.max_pulses, 1, 15)
        object.__setattr__(self, "epsilon", tuple(self.epsilon))
        object.__setattr__(self, "layer_sizes", tuple(self.layer_sizes))
        if not self.layer_sizes or len(self.epsilon) != len(self.layer_sizes):
            raise ValueError(f"epsilon needs one value per layer: {len(self.epsilon)} for "
                             f"{len(self.layer_sizes)} layers")
        for k, size in enumerate(self.layer_sizes):
            check_int(f"layer_sizes[{k}]", size, 1, 1 << 30)
        for k, eps in enumerate(self.epsilon):
            if isinstance(eps, bool) or not isinstance(eps, (int, np.integer)) or eps <= 0:
                raise ValueError(f"epsilon[{k}] must be a positive integer (chi LSBs), not "
                                 f"{eps!r}")
            if eps > self.chi_max:
                raise ValueError(f"epsilon[{k}] = {eps} LSBs does not fit a chi of "
                                 f"{self.chi_bits} bits (at most {self.chi_max}): chi could "
                                 f"never reach one update granularity")

    @property
    def chi_min(self) -> int:
        return -(1 << (self.chi_bits - 1))

    @property
    def chi_max(self) -> int:
        return (1 << (self.chi_bits - 1)) - 1

    @property
    def update_min(self) -> int:
        return -(1 << (self.update_bits - 1))

    @property
    def update_max(self) -> int:
        return (1 << (self.update_bits - 1)) - 1

    @property
    def weights(self) -> int:
        """Entries of the ``chi`` memory."""
        return sum(self.layer_sizes)

    @property
    def index_bits(self) -> int:
        return index_bits(self.weights)

    @property
    def pulse_bits(self) -> int:
        """Signed width of a command's ``n`` (``-max_pulses .. max_pulses``)."""
        return self.max_pulses.bit_length() + 1

    @property
    def layer_starts(self) -> tuple:
        """First weight index of every layer."""
        return tuple(int(v) for v in np.cumsum((0,) + self.layer_sizes[:-1]))

    def layer_of(self, index: int) -> int:
        return int(np.searchsorted(np.cumsum(self.layer_sizes), index, side="right"))

    def check_learning_rate(self, learning_rate: float, gradient_max: float) -> int:
        """The largest update ``learning_rate * gradient_max`` in ``chi`` LSBs, or
        ``ValueError`` naming the learning rate when that update does not fit an update word
        (it would be clipped: with ``update_bits == chi_bits``, saturate ``chi`` in one
        update)."""
        lr = float(learning_rate)
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be a positive finite number, not "
                             f"{learning_rate!r}")
        largest = int(np.floor(lr * float(gradient_max) * (1 << self.frac_bits) + 0.5))
        if largest > self.update_max:
            raise ValueError(
                f"learning rate {lr:g}: updates can reach {lr * gradient_max:g}, "
                f"{largest} LSBs at {self.frac_bits} fraction bits, more than an update of "
                f"{self.update_bits} bits holds ({self.update_max}); lower the learning rate "
                f"or widen update_bits")
        return largest


def to_fixed(values, frac_bits: int, dtype=np.int64) -> np.ndarray:
    """Real updates as fixed-point integers: ``floor(v * 2**frac_bits + 0.5)`` (round half
    up; in float64, exact for float32 values), as ``dtype`` (default int64; a narrower one
    must hold the values)."""
    v = np.array(values, np.float64)
    v *= 1 << frac_bits
    v += 0.5
    np.floor(v, out=v)
    return v.astype(dtype)


def apply_updates(params: UpdateUnitParams, chi: np.ndarray, updates) -> list[tuple[int, int]]:
    """Apply ``updates`` (``(index, delta)`` pairs, in order) to ``chi`` (int64 array of
    ``params.weights`` values, changed in place) by the arithmetic of the module docstring.
    Returns the commands ``(index, n)`` with ``n != 0``, in order. ``ValueError`` for an
    index outside the memory or a delta outside the update width."""
    chi = np.asarray(chi)
    if chi.shape != (params.weights,):
        raise ValueError(f"chi has shape {chi.shape}, expected ({params.weights},)")
    ends = np.cumsum(params.layer_sizes)
    out = []
    for index, delta in updates:
        index, delta = int(index), int(delta)
        if not 0 <= index < params.weights:
            raise ValueError(f"update index {index} outside 0..{params.weights - 1}")
        if not params.update_min <= delta <= params.update_max:
            raise ValueError(f"update {delta} outside the {params.update_bits}-bit range")
        eps = params.epsilon[int(np.searchsorted(ends, index, side="right"))]
        x = min(max(int(chi[index]) + delta, params.chi_min), params.chi_max)
        m = min(abs(x) // eps, params.max_pulses)
        n = m if x >= 0 else -m
        chi[index] = x - n * eps
        if n:
            out.append((index, n))
    return out


def apply_update_batch(params: UpdateUnitParams, chi: np.ndarray,
                       deltas: np.ndarray) -> np.ndarray:
    """One update of every weight at once (a training batch's): ``deltas`` (integers, one per
    weight, in the update width) applied to ``chi`` in place by the arithmetic of
    :func:`apply_updates`, which it equals when every weight is updated once (tested).
    Returns ``n`` per weight (0: no pulse). The arithmetic runs in ``chi``'s integer type
    when it holds every sum ``chi + delta`` (int32 for up to 30-bit chi: half the memory
    traffic of int64), else in int64."""
    chi = np.asarray(chi)
    work = chi.dtype if np.issubdtype(chi.dtype, np.signedinteger) and \
        np.iinfo(chi.dtype).max >= params.chi_max + params.update_max and \
        np.iinfo(chi.dtype).min <= params.chi_min + params.update_min else np.dtype(np.int64)
    deltas = np.asarray(deltas)
    if chi.shape != (params.weights,) or deltas.shape != chi.shape:
        raise ValueError(f"chi {chi.shape} and deltas {deltas.shape}: expected "
                         f"({params.weights},) each")
    if deltas.size and (deltas.min() < params.update_min or deltas.max() > params.update_max):
        raise ValueError(f"updates {deltas.min()}..{deltas.max()} outside the "
                         f"{params.update_bits}-bit range")
    if len(set(params.epsilon)) == 1:       # one granularity: no per-weight array
        eps = work.type(params.epsilon[0])
    else:
        eps = np.repeat(np.asarray(params.epsilon, work), params.layer_sizes)
    x = chi.astype(work)
    x += deltas
    np.clip(x, params.chi_min, params.chi_max, out=x)
    m = np.abs(x)
    if params.max_pulses == 1:              # min(trunc(|x| / eps), 1) without a division
        m = (m >= eps).astype(work)
    else:
        m //= eps
        np.minimum(m, params.max_pulses, out=m)
    n = np.where(x < 0, -m, m)
    x -= n * eps
    chi[...] = x
    return n
