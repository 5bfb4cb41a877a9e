"""Model files: round trip, validation of corrupt / mismatched files, golden inference."""

import dataclasses
import json
import zipfile

from pathlib import Path

import numpy as np
import pytest

from golden.bn_fold import fold_batchnorm
from golden.bnn import Domain, binary_conv2d, binary_dense, maxpool2d
from golden.model import (ARCHITECTURES, Architecture, BnnModel, Layer, LayerSpec,
                          ModelFormatError, infer, load_model, preactivation_range, save_model)
from sim.stimulus import random_batchnorm

TINY = Architecture("tiny", (1, 6, 6), (
    LayerSpec("conv", 3, kernel=3, padding=1, pool=2),
    LayerSpec("dense", 5),
    LayerSpec("dense", 4)))


def random_model(arch, seed) -> BnnModel:
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(arch.layers)):
        w = rng.choice(np.array([-1, 1], np.int8), size=arch.weight_shape(i))
        threshold = None
        if i < len(arch.layers) - 1:
            lo, hi = preactivation_range(arch, i, w)
            threshold = fold_batchnorm(random_batchnorm(rng, arch.layers[i].out, int(lo.min()),
                                                        int(hi.max())), lo, hi)
        layers.append(Layer(weight=w, threshold=threshold))
    return BnnModel(arch=arch, layers=layers, metadata={"seed": seed})


def test_round_trip_is_exact(tmp_path, seed):
    model = random_model(ARCHITECTURES["cnn"], seed)
    path = save_model(tmp_path / "m.npz", model)
    back = load_model(path)
    assert back.arch == model.arch and back.metadata["seed"] == seed
    for a, b in zip(model.layers, back.layers):
        assert np.array_equal(a.weight, b.weight) and a.weight.dtype == b.weight.dtype
        if a.threshold is not None:
            assert np.array_equal(a.threshold.threshold, b.threshold.threshold)
            assert np.array_equal(a.threshold.invert, b.threshold.invert)


def test_inference_matches_a_hand_chained_reference(seed):
    """infer() against the primitives chained by hand, layer by layer, with the float BN spec
    evaluated directly (no folded thresholds) for a model whose BN is known."""
    rng = np.random.default_rng(seed)
    ws = [rng.choice(np.array([-1, 1], np.int8), size=TINY.weight_shape(i)) for i in range(3)]
    pixels = (rng.random((40, 6, 6)) < 0.4).astype(np.uint8)
    # each layer folded on its real pre-activation range (a narrower one would clamp
    # thresholds that the float batch-norm below does not)
    ranges = [preactivation_range(TINY, i, ws[i]) for i in range(2)]

    def bn_sign(a, bn, axis):
        shape = [1] * a.ndim
        shape[axis] = -1
        g, b, m, v = (p.reshape(shape) for p in (bn.gamma, bn.beta, bn.mean, bn.var))
        return np.where(g * (a - m) / np.sqrt(v + bn.eps) + b >= 0, 1, -1)

    def centred_batchnorm(a, axis, lo, hi):
        """Random batch-norm parameters with each channel's mean near the median of its
        pre-activation, so the outputs tend to change from image to image."""
        bn = random_batchnorm(rng, a.shape[axis], int(lo.min()), int(hi.max()))
        other = tuple(k for k in range(a.ndim) if k != axis)
        centre = np.median(a, axis=other) + rng.uniform(-0.5, 0.5, a.shape[axis])
        return dataclasses.replace(bn, mean=centre)

    a0 = binary_conv2d(pixels[:, None], ws[0], 1, Domain.UNIPOLAR)
    # random batch-norms (some channels constant by design: gamma = 0, tiny gamma, large
    # beta) until the stimulus moves the outputs -- agreement on constant outputs proves
    # nothing
    for _ in range(50):
        bn0 = centred_batchnorm(a0, 1, *ranges[0])
        x1 = maxpool2d(bn_sign(a0, bn0, 1), 2).reshape(40, -1)
        a1 = binary_dense(x1, ws[1], Domain.BIPOLAR)
        bn1 = centred_batchnorm(a1, 1, *ranges[1])
        x2 = bn_sign(a1, bn1, 1)
        scores = binary_dense(x2, ws[2], Domain.BIPOLAR)
        if len(np.unique(scores, axis=0)) >= 2:
            break
    assert len(np.unique(scores, axis=0)) >= 2, f"seed {seed}: no batch-norm moved the scores"
    model = BnnModel(TINY, [Layer(ws[0], fold_batchnorm(bn0, *ranges[0])),
                            Layer(ws[1], fold_batchnorm(bn1, *ranges[1])), Layer(ws[2])])
    got = infer(model, pixels, keep_layers=True)
    assert np.array_equal(got.scores, scores)
    assert np.array_equal(got.predictions, np.argmax(scores, axis=1))
    assert np.array_equal(got.layer_bits[1], (x2 + 1) // 2)


def corrupt(tmp_path, model, edit):
    """Save ``model``, rewrite one record with ``edit(arrays)``, return the path."""
    path = save_model(tmp_path / "m.npz", model)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


def set_meta(arrays, **changes):
    meta = json.loads(arrays["metadata"].tobytes())
    meta.update(changes)
    arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.__setitem__("layer0.weight", np.zeros_like(a["layer0.weight"])),
     "layer 0 weights must be exactly ±1, found 0"),
    (lambda a: a.__setitem__("layer1.weight", a["layer1.weight"].astype(np.float32)),
     "layer 1 weight must be an int8 array, not float32"),
    (lambda a: a.__setitem__("layer1.weight", a["layer1.weight"][:-1]),
     r"layer 1 weight has shape \(26, 5\), architecture needs \(27, 5\)"),
    (lambda a: a.__setitem__("layer1.threshold", a["layer1.threshold"].astype(np.float64) + 0.5),
     "layer1.threshold must be int64 \\(integral thresholds\\), not float64"),
    (lambda a: a.__setitem__("layer1.threshold", a["layer1.threshold"] + 1000),
     r"layer 1 channel 0: threshold \d+ outside the reachable range \[-27, 27\]"),
    (lambda a: a.pop("layer1.invert"), "missing layer1.invert"),
    (lambda a: a.__setitem__("layer2.threshold", np.zeros(4, np.int64)),
     r"unexpected records \['layer2.threshold'\]"),
    (lambda a: set_meta(a, format="something-else"), "format is 'something-else', expected 'mbnn-model'"),
    (lambda a: set_meta(a, format_version=99), "format version 99 is not supported"),
    (lambda a: a.__setitem__("metadata", np.frombuffer(b"{not json", np.uint8)),
     "metadata is not valid JSON"),
    (lambda a: a.pop("metadata"), "no metadata record"),
    # members of the wrong kind
    (lambda a: a.__setitem__("metadata", np.array(["{}"])),
     r"metadata must be a 1-D uint8 array \(UTF-8 JSON\), not <U2"),
    (lambda a: a.__setitem__("layer0.invert", np.array("yes")), "layer0.invert must be bool"),
    (lambda a: a.__setitem__("notes.txt", np.zeros(1)), r"unexpected records \['notes.txt'\]"),
    # nesting deeper than Python's json can decode (it raised RecursionError)
    (lambda a: a.__setitem__("metadata", np.frombuffer(b"[" * 100_000 + b"]" * 100_000,
                                                       np.uint8)),
     "metadata is nested too deeply"),
])
def test_bad_model_files_are_rejected(tmp_path, seed, edit, message):
    path = corrupt(tmp_path, random_model(TINY, seed), edit)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_truncated_pickled_and_missing_files(tmp_path, seed):
    path = save_model(tmp_path / "m.npz", random_model(TINY, seed))
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFormatError, match="not a readable mbnn model file"):
        load_model(tmp_path / "cut.npz")
    # An object array would need pickle to load: refused, nothing executed.
    np.savez(tmp_path / "obj.npz", metadata=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFormatError, match="not a readable mbnn model file"):
        load_model(tmp_path / "obj.npz")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "nope.npz")
    assert zipfile.is_zipfile(path)


def _damage_first_member(path: Path, dest: Path) -> Path:
    """A copy of the archive ``path`` whose first member's deflate stream is damaged (the
    zip directory and CRCs intact, so only decompression can notice)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    assert info.compress_type == zipfile.ZIP_DEFLATED
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 8, start + 40):
        raw[k] ^= 0xFF
    dest.write_bytes(bytes(raw))
    return dest


def test_a_header_declaring_more_than_the_member_holds_is_refused_before_allocating(
        tmp_path, seed):
    """A damaged ``.npy`` header that declares an array of 10**15 bytes: refused from the zip
    directory's sizes (numpy would try to allocate it: a MemoryError, or on a large machine
    minutes of swapping)."""
    path = save_model(tmp_path / "m.npz", random_model(TINY, seed))
    header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1000000, 1000000, 1000), }"
    header = header.ljust(117) + "\n"
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(tmp_path / "huge.npz", "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename == "layer0.weight.npy":
                data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
            out.writestr(info.filename, data)
    with pytest.raises(ModelFormatError, match=r"huge.npz: member 'layer0.weight' declares a "
                                               r"int8 array of shape \(1000000, 1000000, 1000\)"):
        load_model(tmp_path / "huge.npz")


def test_damaged_npy_and_directory_models_are_named(tmp_path, seed):
    path = save_model(tmp_path / "m.npz", random_model(TINY, seed))
    damaged = _damage_first_member(path, tmp_path / "damaged.npz")
    with pytest.raises(ModelFormatError, match=r"damaged.npz: not a readable mbnn model file "
                                               r"\(member '[^']+': "):
        load_model(damaged)
    np.save(tmp_path / "w.npy", np.zeros(3))
    with pytest.raises(ModelFormatError, match=r"w.npy: a single .npy array, expected an .npz"):
        load_model(tmp_path / "w.npy")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ModelFormatError, match=r"dir.npz: is a directory, expected a model"):
        load_model(tmp_path / "dir.npz")


def test_architecture_validation_messages():
    with pytest.raises(ValueError, match="layer kind must be 'conv' or 'dense', not 'lstm'"):
        LayerSpec("lstm", 4)
    with pytest.raises(ValueError, match="the last layer must be dense"):
        Architecture("x", (1, 4, 4), (LayerSpec("conv", 2, kernel=3),))
    with pytest.raises(ValueError, match=r"layer 0: kernel 5 too large for \(1, 4, 4\)"):
        Architecture("x", (1, 4, 4), (LayerSpec("conv", 2, kernel=5), LayerSpec("dense", 2)))
    with pytest.raises(ValueError, match="dense layers take no kernel, padding or pool"):
        LayerSpec("dense", 4, pool=2)


def test_save_is_atomic(tmp_path, seed, monkeypatch):
    """A failure while writing leaves no file (and no temp file) behind."""
    import golden.fileio as fileio
    model = random_model(TINY, seed)

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(tmp_path / "m.npz", model)
    assert list(tmp_path.iterdir()) == []


def test_batched_inference_equals_one_batch(seed):
    model = random_model(TINY, seed)
    pixels = (np.random.default_rng(seed).random((50, 6, 6)) < 0.5).astype(np.uint8)
    whole = infer(model, pixels, keep_layers=True, batch_size=1000)
    chunked = infer(model, pixels, keep_layers=True, batch_size=7)
    assert np.array_equal(whole.scores, chunked.scores)
    for a, b in zip(whole.layer_bits, chunked.layer_bits):
        assert np.array_equal(a, b)
