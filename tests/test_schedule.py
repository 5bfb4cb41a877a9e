"""The core's read schedule (golden twin of the RTL sequencer) against the plain model."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from golden.chip import ChipConfig
from golden.mapping import compile_model
from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model
from golden.schedule import (WriteMode, buffer_shapes, check_hardware_mappable, commands,
                             execute)

REPO = Path(__file__).resolve().parent.parent
CHIPS = [ChipConfig(128, 128), ChipConfig(100, 50), ChipConfig(64, 32), ChipConfig(48, 16)]
# chips reading several arrays per cycle: every row tile of a pixel at once (the MLP has at
# most 8), groups that leave a partial last group (3), pairs
PARALLEL_CHIPS = [ChipConfig(128, 128, arrays=8, parallel_reads=8),
                  ChipConfig(64, 32, arrays=4, parallel_reads=3),
                  ChipConfig(48, 16, arrays=2, parallel_reads=2)]


def _chip_id(chip):
    return f"{chip.rows}x{chip.columns}" + (f"-p{chip.parallel_reads}"
                                            if chip.parallel_reads > 1 else "")


@pytest.fixture(scope="module")
def pixels():
    return binarize_pixels(load_mnist("test").images[:40])


@pytest.mark.parametrize("chip", CHIPS + PARALLEL_CHIPS[:2], ids=_chip_id)
@pytest.mark.parametrize("arch, images", [("mlp", 12), ("cnn", 3)])
def test_schedule_execution_equals_model(pixels, chip, arch, images):
    """Buffers, gathers, tiles, parallel reads with their adder tree and pooled writes, run
    command by command, reproduce the unmapped model's scores and every layer's bits (read
    back out of the buffers)."""
    model = load_model(REPO / "models" / f"{arch}.npz")
    mapped = compile_model(model, chip)
    cmds = commands(mapped)
    want = infer(model, pixels[:images], keep_layers=True)
    for i in range(images):
        scores, cls, buffers = execute(mapped, pixels[i], cmds)
        assert np.array_equal(scores, want.scores[i])
        assert cls == want.predictions[i]
        for li, layer in enumerate(mapped.layers[:-1]):
            omap = layer.output_map(chip)
            flat = buffers[li + 1].reshape(-1)[:omap.bits]
            got = flat.reshape(omap.height, omap.width, omap.stride)[..., :omap.channels]
            ref = want.layer_bits[li][i]
            ref = ref.transpose(1, 2, 0) if ref.ndim == 3 else ref.reshape(1, 1, -1)
            assert np.array_equal(got, ref), f"image {i} layer {li}"


@pytest.mark.parametrize("chip", CHIPS[:2] + PARALLEL_CHIPS, ids=_chip_id)
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_schedule_reads_every_tile_once_per_pixel(chip, arch):
    model = load_model(REPO / "models" / f"{arch}.npz")
    mapped = compile_model(model, chip)
    cmds = commands(mapped)
    group = chip.parallel_reads
    assert sum(len(c.reads) for c in cmds) == mapped.reads_per_image
    reads = Counter(r.tile for c in cmds for r in c.reads)
    for layer in mapped.layers:
        for t in range(layer.tile_base, layer.tile_base + layer.tiles):
            assert reads[t] == layer.pixels
    # every (pixel, column tile) closes exactly once, its row tiles run 0..rt-1 in order, in
    # groups of `parallel_reads` consecutive row tiles (the last one possibly shorter) read by
    # lanes 0, 1, ... in order; so the cycles are pixels * column tiles * ceil(row tiles / P)
    for layer in mapped.layers:
        mine = [c for c in cmds if c.layer == layer.index]
        outputs = layer.pixels * layer.column_tiles
        assert [r.rt for c in mine for r in c.reads] == list(range(layer.row_tiles)) * outputs
        assert all(c.rt == c.reads[0].rt and 1 <= len(c.reads) <= group for c in mine)
        assert all(len(c.reads) == group for c in mine if not c.last)
        assert sum(c.last for c in mine) == outputs
        assert sum(c.first for c in mine) == outputs
        groups = -(-layer.row_tiles // group)
        assert len(mine) == outputs * groups == layer.read_cycles(group)
    assert len(cmds) == mapped.read_cycles_per_image
    # a write lands inside its buffer; pooled windows are opened before they are OR-ed into
    shapes = buffer_shapes(mapped)
    opened = set()
    for c in cmds:
        if c.write_mode == WriteMode.NONE:
            continue
        assert 0 <= c.write_addr < shapes[c.layer + 1].depth
        key = (c.layer, c.write_addr, c.write_chunk)
        if c.write_mode == WriteMode.OVERWRITE:
            assert key not in opened
            opened.add(key)
        else:
            assert key in opened


@pytest.mark.parametrize("arch, words", [("cnn", 16), ("mlp", 7), ("mlp", 1)])
def test_input_beats_carry_the_image_in_buffer_order(pixels, arch, words):
    """The input stream (`chip.input_words` buffer words per beat, the first word lowest):
    its bits, beat after beat, are the image in the first buffer's layout -- position-major,
    channels padded to the word -- here derived from the pixels directly."""
    from golden.schedule import input_beats
    model = load_model(REPO / "models" / f"{arch}.npz")
    mapped = compile_model(model, ChipConfig(128, 128, input_words=words))
    shape = buffer_shapes(mapped)[0]
    beats = input_beats(mapped, pixels[0])
    assert len(beats) == shape.depth // words
    width = words * shape.word_bits
    got = np.array([(b >> k) & 1 for b in beats for k in range(width)], np.uint8)
    img = np.asarray(pixels[0], np.uint8).reshape(tuple(mapped.input_shape))
    if img.ndim == 3:       # (C, H, W) -> per position its channels, padded to the word
        c = img.shape[0]
        per_pos = np.zeros(img.shape[1:] + (shape.word_bits,), np.uint8)
        per_pos[..., :c] = img.transpose(1, 2, 0)
        want = per_pos.reshape(-1)
    else:                   # dense: the bits in order, zero-padded to whole words
        want = np.zeros(shape.depth * shape.word_bits, np.uint8)
        want[:img.size] = img.reshape(-1)
    assert np.array_equal(got, want)


def test_unsupported_chunking_is_rejected():
    """Dense after a hidden layer needs whole chunks per word; 40 rows vs 16-column chunks."""
    model = load_model(REPO / "models" / "mlp.npz")
    with pytest.raises(ValueError, match=r"array rows \(40\) to be a multiple of the 16-bit"):
        check_hardware_mappable(compile_model(model, ChipConfig(40, 16)))


@pytest.mark.parametrize("chip", CHIPS, ids=_chip_id)
def test_layer_words_are_the_executed_buffers(pixels, chip):
    """The layout function testbenches use to turn the model's layer bits into buffer words
    gives exactly what the schedule leaves in the buffers."""
    from golden.schedule import layer_words
    model = load_model(REPO / "models" / "cnn.npz")
    mapped = compile_model(model, chip)
    want = infer(model, pixels[:2], keep_layers=True)
    for i in range(2):
        _, _, buffers = execute(mapped, pixels[i])
        for li in range(len(mapped.layers) - 1):
            assert np.array_equal(layer_words(mapped, li, want.layer_bits[li][i]),
                                  buffers[li + 1]), f"layer {li}"


@pytest.mark.parametrize("settings, message", [
    ({"parallel_reads": 0}, "parallel_reads must be"),
    ({"parallel_reads": 5, "arrays": 4}, r"parallel_reads \(5\) must not exceed arrays \(4\)"),
    ({"parallel_reads": 2.0, "arrays": 4}, "parallel_reads must be"),
])
def test_bad_parallel_reads_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ChipConfig(128, 128, **settings)
