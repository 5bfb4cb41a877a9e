"""Programmed conductances of the crossbar arrays, and the files the behavioural models load.

Each weight is stored as a conductance pair read differentially (``differential``: G+ and G-
of the pair, ``w = +1`` as (G_on, G_off), ``-1`` as (G_off, G_on)), or as one cell against a
shared reference column (``reference_column``: ``+1`` = G_on, ``-1`` = G_off, reference
(G_on + G_off) / 2 on every row). Either way a column's differential current is
``I = V_read * G_unit * sum(w * x')`` with ``G_unit`` = ``G_on - G_off`` (differential) or half
that (reference column), so ``I / (V_read * G_unit)`` is the signed column sum the ADC codes.
Cells that carry no weight (padded rows, unused rows and columns of a partly filled array) get
equal conductances on both sides: they contribute no current difference.

These are the **target** conductances of the mapping. For an ideal device
(:class:`golden.analog.devices.IdealDevice`, the ``ideal`` preset) they are the programmed
conductances, bit for bit; a non-ideal device turns them into programmed cells with
:meth:`golden.analog.devices.Device.program` (drawn once per programmed array). Level devices
reach G_on and G_off, but not the reference-column target (G_on + G_off) / 2 unless it is one
of their levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analog.devices import Device, IdealDevice
from .mapping import MappedModel

__all__ = ["IdealDevice", "ArrayConductances", "program", "program_tiles", "hex_lines",
           "read_hex_lines"]


@dataclass(frozen=True)
class ArrayConductances:
    """Per-cell conductances (tiles, rows, columns) in siemens, and the unit of one weight."""

    g_pos_s: np.ndarray
    g_neg_s: np.ndarray
    g_unit_s: float
    v_read_v: float


def program(mapped: MappedModel, device: Device | None = None) -> ArrayConductances:
    """Target conductances of every array of ``mapped`` (tile order of ``MappedLayer.tile_base``:
    tile ``(rt, ct)`` of a layer is ``tile_base + ct * row_tiles + rt``) for ``device``
    (default: the chip's, ``mapped.chip.device``)."""
    chip = mapped.chip
    device = chip.device if device is None else device
    weights = np.zeros((mapped.tiles, chip.rows, chip.columns), np.int8)
    used = np.zeros(weights.shape, bool)
    for layer in mapped.layers:
        rows, out = layer.weights.shape
        for ct in range(layer.column_tiles):
            for rt in range(layer.row_tiles):
                r0, r1 = rt * chip.rows, min((rt + 1) * chip.rows, rows)
                c0, c1 = ct * chip.columns, min((ct + 1) * chip.columns, out)
                t = layer.tile_base + ct * layer.row_tiles + rt
                weights[t, :r1 - r0, :c1 - c0] = layer.weights[r0:r1, c0:c1]
                used[t, :r1 - r0, :c1 - c0] = True
    return program_tiles(weights, used, chip.mapping, device)


def program_tiles(weights: np.ndarray, used: np.ndarray, mapping: str,
                  device: Device = IdealDevice()) -> ArrayConductances:
    """Conductances of arrays holding ``weights`` (tiles, rows, columns) of -1/0/+1; cells
    where ``used`` is false, and weights of 0, carry no weight."""
    g_on, g_off = float(device.g_on_s), float(device.g_off_s)
    g_ref = (g_on + g_off) / 2
    carries = np.asarray(used, bool) & (weights != 0)
    if mapping == "differential":
        g_pos = np.where(carries & (weights > 0), g_on, g_off)
        g_neg = np.where(carries & (weights < 0), g_on, g_off)
        unit = g_on - g_off
    elif mapping == "reference_column":
        g_pos = np.where(carries, np.where(weights > 0, g_on, g_off), g_ref)
        g_neg = np.full(weights.shape, g_ref)
        unit = (g_on - g_off) / 2
    else:
        raise ValueError(f"mapping must be 'differential' or 'reference_column', not {mapping!r}")
    return ArrayConductances(g_pos.astype(np.float64), g_neg.astype(np.float64), unit,
                             float(device.v_read_v))


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_lines(values: np.ndarray) -> bytes:
    """IEEE-754 doubles as 16 hex digits per line (``$readmemh`` + ``$bitstoreal`` give the
    exact same values back)."""
    b = np.ascontiguousarray(values, dtype=">f8").reshape(-1).view(np.uint8).reshape(-1, 8)
    out = np.empty((len(b), 17), np.uint8)
    out[:, 0:16:2] = _HEX[b >> 4]
    out[:, 1:16:2] = _HEX[b & 15]
    out[:, 16] = ord("\n")
    return out.tobytes()


_NIBBLE = np.full(256, 255, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def read_hex_lines(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """The doubles of :func:`hex_lines` back (float64, one per line), bit for bit."""
    raw = np.frombuffer(data, np.uint8)
    if len(raw) % 17 or (len(raw) and np.any(raw[16::17] != ord("\n"))):
        raise ValueError(f"{name}: not 16 hex digits per line")
    nib = _NIBBLE[raw.reshape(-1, 17)[:, :16]]
    if np.any(nib == 255):
        raise ValueError(f"{name}: a character that is not a hex digit")
    b = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return b.copy().view(">f8").astype(np.float64).reshape(-1)
