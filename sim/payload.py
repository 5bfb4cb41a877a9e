"""Pack and unpack struct payloads of Amaranth-generated ports.

Amaranth flattens a ``StructLayout`` into one port vector with the first field at bit 0. The
codec reads offsets and widths from the layout the RTL was built from, so testbenches never
hard-code bit positions.
"""

from __future__ import annotations

from amaranth.lib import data

__all__ = ["PayloadCodec"]


class PayloadCodec:
    """Convert between ``{field: int}`` dicts and the packed integer of a struct port."""

    def __init__(self, layout: data.StructLayout):
        self.fields = {}
        for name, field in layout:
            shape = field.shape if hasattr(field.shape, "width") else field.shape.as_shape()
            self.fields[name] = (field.offset, shape.width, shape.signed)
        self.width = layout.size

    def pack(self, **values: int) -> int:
        missing = set(self.fields) - set(values)
        extra = set(values) - set(self.fields)
        if missing or extra:
            raise ValueError(f"payload fields must be exactly {sorted(self.fields)}; "
                             f"missing {sorted(missing)}, unknown {sorted(extra)}")
        word = 0
        for name, (offset, width, signed) in self.fields.items():
            v = int(values[name])
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            if not lo <= v <= hi:
                raise ValueError(f"field {name}={v} does not fit {width} "
                                 f"{'signed' if signed else 'unsigned'} bits")
            word |= (v & ((1 << width) - 1)) << offset
        return word

    def unpack(self, word: int) -> dict[str, int]:
        out = {}
        for name, (offset, width, signed) in self.fields.items():
            v = (word >> offset) & ((1 << width) - 1)
            if signed and v >> (width - 1):
                v -= 1 << width
            out[name] = v
        return out
