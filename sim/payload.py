"""Pack and unpack struct payloads of Amaranth-generated ports.

Amaranth flattens a ``StructLayout`` into one port vector with the first field at bit 0. The
codec reads offsets and widths from the layout the RTL was built from, so testbenches never
hard-code bit positions.
"""

from __future__ import annotations

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
    def _encode(name, v, width, signed) -> int:
        v = int(v)
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
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
            items = list(values[name])
            if len(items) != count:
                raise ValueError(f"field {name} needs {count} elements, got {len(items)}")
            for k, v in enumerate(items):
                word |= self._encode(f"{name}[{k}]", v, width, signed) << (offset + k * width)
        return word

    def unpack(self, word: int) -> dict:
        out = {}
        for name, (offset, width, signed, count) in self.fields.items():
            mask = (1 << width) - 1
            if count is None:
                out[name] = self._decode((word >> offset) & mask, width, signed)
            else:
                out[name] = [self._decode((word >> (offset + k * width)) & mask, width, signed)
                             for k in range(count)]
        return out
