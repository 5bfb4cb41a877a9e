"""Elements of array-shaped views as plain values, for loops over lanes."""

from __future__ import annotations

from amaranth import Shape, Value
from amaranth.lib import data

__all__ = ["elements"]


def elements(view) -> list:
    """The elements of a view of an ``ArrayLayout`` (or of a list of such values), each a slice
    of one cast of the whole array: signed values for a signed element shape, views for a
    layout-shaped one.

    A field of a struct is a slice of its signal, and ``view[k]`` a slice of that slice.
    Amaranth 0.5's lowering copies expression trees, so the inner slice is a new object at
    every use and its netlist builder copies the whole field for each one: a loop over 128
    lanes of a 1792-bit field cost 128 x 1792 nets (most of the seconds a shipped model's
    system took to generate). Here every element is one slice of the signal itself, which the
    builder shares. The same bits, so the same netlist and Verilog."""
    if isinstance(view, list):
        return view
    layout = view.shape()
    assert isinstance(layout, data.ArrayLayout), layout
    base, offset = Value.cast(view), 0
    # down to the signal (or operator) sliced: a slice is the value with `value`, `start` and
    # `stop` (amaranth.hdl keeps its class private)
    while all(hasattr(base, a) for a in ("value", "start", "stop")):
        base, offset = base.value, offset + base.start
    elem = layout.elem_shape
    width = Shape.cast(elem).width
    out = []
    for k in range(layout.length):
        bits = base[offset + k * width:offset + (k + 1) * width]
        if isinstance(elem, data.Layout):
            out.append(data.View(elem, bits))
        else:
            out.append(bits.as_signed() if Shape.cast(elem).signed else bits)
    return out
