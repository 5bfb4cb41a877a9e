"""BN-binarize block: parameters shared with the RTL, and its golden twin.

The block receives one signed pre-activation per lane and beat, together with a channel index
(a table entry), and emits each lane's output bit ``(a[k] >= threshold[c][k]) XOR
invert[c][k]`` (1 means +1). Thresholds and directions live in a table written through a
configuration port; they come from :func:`golden.bn_fold.fold_batchnorm` in canonical form.
With one lane (the default) a beat is one channel's pre-activation; the inference core uses
one block with a lane per array column, an entry per (layer, column tile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bn_fold import FoldedThreshold
from .widths import index_bits

__all__ = ["BNBinarizeParams", "BNBinarizeModel"]

MAX_CHANNELS = 65536
MAX_ACC_WIDTH = 64
MAX_LANES = 4096


def _positive_int(name: str, value, upper: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be at most {upper}, not {value}")


@dataclass(frozen=True)
class BNBinarizeParams:
    """Shape of one BN-binarize block.

    Parameters
    ----------
    channels : int
        Number of output channels (threshold table depth), 1..65536.
    acc_width : int
        Width in bits of the signed pre-activation (two's complement), 2..64.
    fan_in : int, optional
        Number of +-1 products summed into a pre-activation; if given, the configured range is
        ``[-fan_in, fan_in]`` and ``acc_width`` must be able to hold it.
    lanes : int
        Pre-activations per beat, each with its own threshold and direction in every entry
        (1..4096; default 1).
    """

    channels: int
    acc_width: int
    fan_in: int | None = None
    lanes: int = 1

    def __post_init__(self):
        _positive_int("channels", self.channels, MAX_CHANNELS)
        _positive_int("lanes", self.lanes, MAX_LANES)
        _positive_int("acc_width", self.acc_width, MAX_ACC_WIDTH)
        if self.acc_width < 2:
            raise ValueError(f"acc_width must be at least 2 (sign + one magnitude bit), "
                             f"not {self.acc_width}")
        if self.fan_in is not None:
            _positive_int("fan_in", self.fan_in)
            need = self.fan_in.bit_length() + 1
            if self.acc_width < need:
                raise ValueError(
                    f"acc_width {self.acc_width} cannot hold pre-activations in "
                    f"[-{self.fan_in}, {self.fan_in}] (fan_in={self.fan_in}); need at least "
                    f"{need} bits")

    @property
    def channel_width(self) -> int:
        """Bits of the channel index (at least 1, so the port exists in HDL)."""
        return index_bits(self.channels)

    @property
    def width_min(self) -> int:
        """Most negative value the ``acc_width``-bit port can carry."""
        return -(1 << (self.acc_width - 1))

    @property
    def width_max(self) -> int:
        return (1 << (self.acc_width - 1)) - 1

    @property
    def preact_min(self) -> int:
        """Configured pre-activation range: ``[-fan_in, fan_in]``, else the full width."""
        return -self.fan_in if self.fan_in is not None else self.width_min

    @property
    def preact_max(self) -> int:
        return self.fan_in if self.fan_in is not None else self.width_max

    @property
    def latency(self) -> int:
        """Cycles from an accepted input beat to its output beat being valid
        (threshold-table read, then compare)."""
        return 2

    def check_threshold(self, channel: int, threshold: int) -> None:
        """Reject a table write the hardware could not hold."""
        if not 0 <= channel < self.channels:
            raise ValueError(f"channel {channel} out of range 0..{self.channels - 1}")
        if not self.preact_min <= threshold <= self.preact_max:
            raise ValueError(f"threshold {threshold} for channel {channel} outside the "
                             f"pre-activation range [{self.preact_min}, {self.preact_max}]; "
                             "fold it with fold_batchnorm to get the canonical form")


class BNBinarizeModel:
    """Golden twin of the BN-binarize block.

    Holds the threshold table (all zero after power-up, like the hardware memory) and computes
    output bits. This is the only place the block's arithmetic is specified. ``threshold`` and
    ``invert`` have shape ``(channels, lanes)``.
    """

    def __init__(self, params: BNBinarizeParams):
        self.params = params
        self.threshold = np.zeros((params.channels, params.lanes), dtype=np.int64)
        self.invert = np.zeros((params.channels, params.lanes), dtype=bool)

    def write(self, channel: int, threshold, invert) -> None:
        """Write entry ``channel``: one threshold and direction per lane (scalars broadcast to
        every lane)."""
        t = np.broadcast_to(np.asarray(threshold, dtype=object), (self.params.lanes,))
        inv = np.broadcast_to(np.asarray(invert), (self.params.lanes,))
        for value in t:
            self.params.check_threshold(channel, int(value))
        self.threshold[channel] = [int(v) for v in t]
        self.invert[channel] = inv.astype(bool)

    def load(self, folded: FoldedThreshold) -> None:
        """Write a whole folded layer: channel ``c`` lane ``k`` is the folded layer's channel
        ``c * lanes + k``."""
        p = self.params
        if folded.channels != p.channels * p.lanes:
            raise ValueError(f"folded thresholds have {folded.channels} channels, the block "
                             f"has {p.channels} entries of {p.lanes} lanes")
        for c in range(p.channels):
            lanes = slice(c * p.lanes, (c + 1) * p.lanes)
            self.write(c, folded.threshold[lanes], folded.invert[lanes])

    def output_bits(self, channel: int, values) -> int:
        """Output bits of pre-activations ``values`` (one per lane) of entry ``channel``:
        bit ``k`` is lane ``k``'s."""
        p = self.params
        if not 0 <= channel < p.channels:
            raise ValueError(f"channel {channel} out of range 0..{p.channels - 1}")
        values = np.broadcast_to(np.asarray(values, dtype=object), (p.lanes,))
        bits = 0
        for k, value in enumerate(values):
            value = int(value)
            if not p.width_min <= value <= p.width_max:
                raise ValueError(f"pre-activation {value} does not fit {p.acc_width} signed "
                                 f"bits")
            bits |= int((value >= self.threshold[channel, k]) ^ self.invert[channel, k]) << k
        return bits

    def output_bit(self, channel: int, value: int) -> int:
        """Output bit (0/1) of a one-lane block for pre-activation ``value`` of ``channel``."""
        return self.output_bits(channel, value)
