"""Crossbar mapping: tiled, ADC-quantised inference against the unmapped golden model."""

from pathlib import Path

import numpy as np
import pytest

from golden.chip import ChipConfig, load_chip_config
from golden.mapping import accumulate, compile_model, crossbar_read, mapped_infer
from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pixels():
    return binarize_pixels(load_mnist("test").images)


# Array sizes: the default, one that divides nothing, tall-narrow, and larger than most layers.
CHIPS = [ChipConfig(128, 128), ChipConfig(100, 50), ChipConfig(37, 64), ChipConfig(512, 256)]


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: f"{c.rows}x{c.columns}")
@pytest.mark.parametrize("arch, images", [("mlp", 2000), ("cnn", 200)])
def test_mapped_inference_equals_unmapped(pixels, chip, arch, images):
    model = load_model(REPO / "models" / f"{arch}.npz")
    mapped = compile_model(model, chip)
    want = infer(model, pixels[:images], keep_layers=True)
    got = mapped_infer(mapped, pixels[:images], keep_layers=True)
    assert np.array_equal(got.scores, want.scores)
    for i, (g, w) in enumerate(zip(got.layer_bits, want.layer_bits)):
        assert np.array_equal(g, w), f"layer {i} bits differ"
    print(f"{arch} on {chip.rows}x{chip.columns}: {mapped.tiles} tiles, "
          f"{[l.tiles for l in mapped.layers]}")


def test_adc_saturation_is_modelled_exactly(seed):
    """A 5-bit ADC on 64-row tiles clips; compare with a plain loop over tiles and columns."""
    rng = np.random.default_rng(seed)
    chip = ChipConfig(rows=64, columns=16, adc_bits=5)
    assert not chip.adc_exact and (chip.adc_min, chip.adc_max) == (-16, 15)
    model_w = rng.choice(np.array([-1, 1], np.int8), size=(150, 20))
    # bias the weights so column sums often exceed the ADC range
    model_w[:, :10] = np.where(rng.random((150, 10)) < 0.85, 1, -1)
    bits = (rng.random((30, 150)) < 0.6).astype(np.uint8)
    from golden.mapping import FeatureMap, MappedLayer
    layer = MappedLayer(index=1, kind="dense", weights=model_w, row_tiles=3, column_tiles=2,
                        correction_scale=2, correction_bias=model_w.sum(axis=0, dtype=np.int64),
                        threshold=None, input_map=FeatureMap(150, 1, 1, 150))
    got = accumulate(bits, layer, chip)
    want = np.zeros((30, 20), np.int64)
    for p in range(30):
        for c in range(20):
            total = 0
            for start in range(0, 150, 64):
                partial = sum(int(bits[p, k]) * int(model_w[k, c]) for k in range(start, min(start + 64, 150)))
                total += min(max(partial, -16), 15)
            want[p, c] = 2 * total - int(model_w[:, c].sum())
    assert np.array_equal(got, want)
    assert not np.array_equal(got, 2 * (bits.astype(np.int64) @ model_w) - model_w.sum(axis=0))
    with pytest.raises(ValueError, match=r"tile \(65, 16\) does not fit a 64x16 array"):
        crossbar_read(bits[:, :65], model_w[:65, :16], chip)


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 8, 64, 100, 127, 128, 129, 255, 256, 1000])
def test_the_exact_adc_width_is_the_narrowest_that_never_clips(rows):
    """The default ADC width, derived here by search rather than by the formula the code uses:
    the narrowest signed width whose range holds both extreme column sums of a full array
    (every word line driven, every weight +1, or every weight -1). Its reads of those columns
    are exact; one bit fewer clips them."""
    want = next(b for b in range(2, 64) if -(2 ** (b - 1)) <= -rows and rows <= 2 ** (b - 1) - 1)
    chip = ChipConfig(rows=rows, columns=2)
    assert chip.adc_bits == chip.exact_adc_bits == want and chip.adc_exact
    bits = np.ones((1, rows), np.uint8)
    extremes = np.stack([np.ones(rows, np.int8), -np.ones(rows, np.int8)], axis=1)
    assert crossbar_read(bits, extremes, chip).tolist() == [[rows, -rows]]
    if want > 2:
        narrow = ChipConfig(rows=rows, columns=2, adc_bits=want - 1)
        assert not narrow.adc_exact
        assert crossbar_read(bits, extremes, narrow).tolist() != [[rows, -rows]]


def test_chip_config_defaults_and_derived_values():
    chip = ChipConfig()
    assert (chip.rows, chip.columns, chip.adc_bits, chip.adc_exact) == (128, 128, 9, True)
    assert chip.tiles(784, 1024) == (7, 8)
    assert ChipConfig(rows=127).adc_bits == 8
    assert load_chip_config(REPO / "configs" / "chip.toml") == chip


@pytest.mark.parametrize("text, message", [
    ("[array]\nrows = 0\n", "rows must be an integer in 1..65536, not 0"),
    ("[array]\nmapping = 'crossed'\n", "mapping must be one of differential, reference_column, not 'crossed'"),
    ("[adc]\nbits = 1\n", "adc_bits must be an integer in 2..24, not 1"),
    ("[adc]\nbitz = 8\n", "unknown key 'bitz' in \\[adc\\]"),
    ("[arrays]\nrows = 8\n", "unknown table \\[arrays\\]"),
    ("rows = [", "not valid TOML"),
    ("[chip]\nclock_mhz = -5\n", "clock_mhz must be a number in \\(0, 10000\\], not -5"),
])
def test_bad_chip_config_is_rejected(tmp_path, text, message):
    path = tmp_path / "chip.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_chip_config(path)


# The random tiny CNN of the whole-core regressions (3 input channels, a 9x7 map, padding 1
# then 0, pooling that crops an odd map) is checked on the RTL against the *tiled* golden
# model, which shares its mapping code with the generator. Here the tiled model must equal the
# plain one (exact ADCs), so a mapping error such as a height/width swap cannot pass both.
TINY_CHIPS = [ChipConfig(16, 8), ChipConfig(5, 3), ChipConfig(27, 10), ChipConfig(64, 64)]


@pytest.mark.parametrize("chip", TINY_CHIPS, ids=lambda c: f"{c.rows}x{c.columns}")
def test_tiled_tiny_cnn_equals_the_plain_model(seed, chip):
    from sim.regressions import CORE_SETS
    model = CORE_SETS["tiny_16x8"].load(seed)
    arch = model.arch
    assert arch.input_shape[0] > 1 and arch.input_shape[1] != arch.input_shape[2]
    rng = np.random.default_rng([seed, 7])
    x = (rng.random((200,) + arch.input_shape) < 0.5).astype(np.uint8)
    mapped = compile_model(model, chip)
    assert chip.adc_exact
    want = infer(model, x, keep_layers=True)
    got = mapped_infer(mapped, x, keep_layers=True)
    # the stimulus must move the outputs, or equality proves nothing
    assert len(np.unique(want.scores, axis=0)) >= 10, "stimulus does not vary the scores"
    for i, bits in enumerate(want.layer_bits):
        assert 0 < bits.mean() < 1, f"layer {i} bits are constant"
    assert np.array_equal(got.scores, want.scores), f"seed {seed}: tiled scores differ"
    for i, (g, w) in enumerate(zip(got.layer_bits, want.layer_bits)):
        assert np.array_equal(g, w), f"seed {seed}: layer {i} bits differ"
    print(f"seed {seed}, {chip.rows}x{chip.columns}: {mapped.tiles} tiles")
