"""Pack and unpack struct payloads of Amaranth-generated ports.

Amaranth flattens a ``StructLayout`` into one port vector with the first field at bit 0. The
codec reads offsets and widths from the layout the RTL was built from, so testbenches never
hard-code bit positions.
"""

from __future__ import annotations

import numpy as np
from amaranth.lib import data

__all__ = ["PayloadCodec"]


class PayloadCodec:
    """Convert between ``{field: value}`` dicts and the packed integer of a struct port.

    A field is an integer, or a list of integers for an ``ArrayLayout`` of scalars.
    """

    def __init__(self, layout: data.StructLayout):
        self.fields = {}
        for name, field in layout:
            shape = field.shape
            if isinstance(shape, data.ArrayLayout):
                elem = shape.elem_shape
                elem = elem if hasattr(elem, "width") else elem.as_shape()
                self.fields[name] = (field.offset, elem.width, elem.signed, shape.length)
            else:
                shape = shape if hasattr(shape, "width") else shape.as_shape()
                self.fields[name] = (field.offset, shape.width, shape.signed, None)
        self.width = layout.size

    @staticmethod
    def _range(width, signed) -> tuple[int, int]:
        """The smallest and largest value of a field of ``width`` bits."""
        return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)

    @classmethod
    def _encode(cls, name, v, width, signed) -> int:
        v = int(v)
        lo, hi = cls._range(width, signed)
        if not lo <= v <= hi:
            raise ValueError(f"field {name}={v} does not fit {width} "
                             f"{'signed' if signed else 'unsigned'} bits")
        return v & ((1 << width) - 1)

    @staticmethod
    def _decode(v, width, signed) -> int:
        if signed and v >> (width - 1):
            v -= 1 << width
        return v

    def pack(self, **values) -> int:
        missing = set(self.fields) - set(values)
        extra = set(values) - set(self.fields)
        if missing or extra:
            raise ValueError(f"payload fields must be exactly {sorted(self.fields)}; "
                             f"missing {sorted(missing)}, unknown {sorted(extra)}")
        word = 0
        for name, (offset, width, signed, count) in self.fields.items():
            if count is None:
                word |= self._encode(name, values[name], width, signed) << offset
                continue
            items = values[name]
            if not hasattr(items, "__len__"):
                items = list(items)
            if len(items) != count:
                raise ValueError(f"field {name} needs {count} elements, got {len(items)}")
            word |= self._pack_array(name, items, width, signed) << offset
        return word

    @classmethod
    def _pack_array(cls, name, items, width, signed) -> int:
        """The elements of an array field packed, element 0 at bit 0. Testbenches pack lane
        arrays every cycle (128 lanes of a 128-column array): numpy packs them at once,
        element by element only what numpy's int64 cannot hold exactly."""
        values = np.asarray(items)
        # (uint64 may not fit int64: element by element, so that a value too large is refused)
        if width > 62 or values.dtype.kind not in "iub" or values.dtype == np.uint64:
            word = 0
            for k, v in enumerate(items):
                word |= cls._encode(f"{name}[{k}]", v, width, signed) << (k * width)
            return word
        values = values.astype(np.int64, copy=False)
        lo, hi = cls._range(width, signed)
        outside = (values < lo) | (values > hi)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            cls._encode(f"{name}[{k}]", int(values[k]), width, signed)    # raises
        bits = (values[:, None] >> np.arange(width)) & 1     # two's complement, LSB first
        packed = np.packbits(bits.astype(np.uint8).ravel(), bitorder="little")
        return int.from_bytes(packed.tobytes(), "little")

    def unpack(self, word: int) -> dict:
        out = {}
        for name, (offset, width, signed, count) in self.fields.items():
            mask = (1 << width) - 1
            if count is None:
                out[name] = self._decode((word >> offset) & mask, width, signed)
            elif width > 62:
                out[name] = [self._decode((word >> (offset + k * width)) & mask, width, signed)
                             for k in range(count)]
            else:
                out[name] = self._unpack_array((word >> offset) & ((1 << (count * width)) - 1),
                                               width, signed, count)
        return out

    @staticmethod
    def _unpack_array(bits: int, width: int, signed: bool, count: int) -> list[int]:
        """``count`` elements of ``width`` bits from ``bits`` (element 0 at bit 0)."""
        raw = np.frombuffer(bits.to_bytes((count * width + 7) // 8, "little"), np.uint8)
        matrix = np.unpackbits(raw, bitorder="little")[:count * width].reshape(count, width)
        values = matrix.astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))
        if signed:
            values = np.where(values >> (width - 1), values - (np.int64(1) << width), values)
        return values.tolist()
