"""sim.payload.PayloadCodec against Amaranth's own packing of the same layouts (``Layout.const``),
so the testbenches put every field where the generated RTL reads it."""

import numpy as np
import pytest
from amaranth import signed, unsigned
from amaranth.lib import data

from sim.payload import PayloadCodec

LAYOUTS = {
    "lanes of signed codes": data.StructLayout({
        "first": unsigned(1), "codes": data.ArrayLayout(signed(9), 128), "tile": unsigned(7)}),
    "unsigned array and wide scalar": data.StructLayout({
        "addr": data.ArrayLayout(unsigned(5), 17), "big": unsigned(70), "flag": unsigned(1)}),
    "wide array elements (element by element)": data.StructLayout({
        "wide": data.ArrayLayout(signed(64), 3), "small": signed(3)}),
}


def _random_values(layout, rng) -> dict:
    values = {}
    for name, field in layout:
        shape = field.shape
        count = shape.length if isinstance(shape, data.ArrayLayout) else None
        elem = shape.elem_shape if count is not None else shape
        lo, hi = ((-(1 << (elem.width - 1)), (1 << (elem.width - 1)) - 1) if elem.signed
                  else (0, (1 << elem.width) - 1))
        draw = [int(rng.integers(0, 1 << 62)) * (hi - lo) // ((1 << 62) - 1) + lo
                for _ in range(count or 1)]
        # the ends of the range too
        draw[0], draw[-1] = (lo, hi) if count else (draw[0], draw[0])
        values[name] = draw if count is not None else draw[0]
    return values


@pytest.mark.parametrize("name", LAYOUTS)
def test_pack_and_unpack_agree_with_amaranth(name, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng([seed, 11])
    layout = LAYOUTS[name]
    codec = PayloadCodec(layout)
    assert codec.width == layout.size
    for _ in range(50):
        values = _random_values(layout, rng)
        word = codec.pack(**values)
        assert word == layout.const(values).as_bits(), values
        assert codec.unpack(word) == values
        # numpy arrays of every integer kind pack the same
        as_arrays = {k: np.asarray(v, dtype=np.int64) if isinstance(v, list) else v
                     for k, v in values.items()}
        assert codec.pack(**as_arrays) == word


def test_out_of_range_elements_are_named():
    codec = PayloadCodec(LAYOUTS["lanes of signed codes"])
    codes = [0] * 128
    codes[77] = 256
    with pytest.raises(ValueError, match=r"field codes\[77\]=256 does not fit 9 signed bits"):
        codec.pack(first=0, codes=codes, tile=0)
    codes[77] = -257
    with pytest.raises(ValueError, match=r"codes\[77\]=-257"):
        codec.pack(first=0, codes=np.array(codes), tile=0)
    huge = np.zeros(128, np.uint64)
    huge[5] = np.uint64(2**64 - 1)                 # -1 if it were taken as int64
    with pytest.raises(ValueError, match=r"codes\[5\]=18446744073709551615"):
        codec.pack(first=0, codes=huge, tile=0)
    assert codec.pack(first=0, codes=(c for c in range(-64, 64)), tile=0) == \
        codec.pack(first=0, codes=list(range(-64, 64)), tile=0)
    with pytest.raises(ValueError, match="needs 128 elements, got 127"):
        codec.pack(first=0, codes=[0] * 127, tile=0)
    with pytest.raises(ValueError, match=r"missing \['tile'\]"):
        codec.pack(first=0, codes=[0] * 128)
