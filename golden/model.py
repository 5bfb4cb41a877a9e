"""BNN model: architecture, exported integer parameters, file format, bit-exact inference.

A model is a chain of layers. Each hidden layer computes integer pre-activations (binary
convolution or dense product), applies its folded batch-norm threshold to get output bits, and
may max-pool them (an OR on bits). The last layer is dense and returns integer class scores;
the class is their argmax with ties going to the lowest index.

Layer inputs are bits ``x'``: the first layer sees binarized pixels directly (unipolar, padding
0); hidden layers see ±1 activations ``x = 2x' - 1`` (bipolar, padding -1, i.e. ``x' = 0``).
Thresholds in the file are on the pre-activation ``a = sum w*x`` of that domain; the crossbar
mapping re-expresses them on the crossbar sum (see ``golden.sign_constant``).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .bn_fold import BatchNorm, FoldedThreshold, fold_batchnorm
from .bnn import Domain, argmax_class, binary_conv2d, binary_dense, flatten, maxpool2d
from .fileio import atomic_write_bytes

__all__ = ["LayerSpec", "Architecture", "ARCHITECTURES", "Layer", "BnnModel", "Inference",
           "ModelFormatError", "infer", "save_model", "load_model", "FORMAT_NAME",
           "FORMAT_VERSION", "preactivation_range"]

FORMAT_NAME = "mbnn-model"
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """A model file is corrupt, truncated, of another format, or inconsistent."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer. ``kind`` is ``"conv"`` (stride 1, square ``kernel``, ``padding`` each side)
    or ``"dense"``; ``pool`` > 1 max-pools the output bits (hidden layers only)."""

    kind: str
    out: int
    kernel: int = 0
    padding: int = 0
    pool: int = 1

    def __post_init__(self):
        if self.kind not in ("conv", "dense"):
            raise ValueError(f"layer kind must be 'conv' or 'dense', not {self.kind!r}")
        for name in ("out", "pool"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"layer {name} must be a positive integer, not {v!r}")
        if self.kind == "conv":
            if not isinstance(self.kernel, int) or self.kernel < 1:
                raise ValueError(f"conv kernel must be a positive integer, not {self.kernel!r}")
            if not isinstance(self.padding, int) or self.padding < 0:
                raise ValueError(f"conv padding must be >= 0, not {self.padding!r}")
        elif self.kernel or self.padding or self.pool != 1:
            raise ValueError("dense layers take no kernel, padding or pool")


@dataclass(frozen=True)
class Architecture:
    """Input shape (C, H, W) or (features,) and the layer chain; the last layer is dense and
    produces the class scores."""

    name: str
    input_shape: tuple
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "layers", tuple(
            l if isinstance(l, LayerSpec) else LayerSpec(**l) for l in self.layers))
        if not self.layers or self.layers[-1].kind != "dense":
            raise ValueError("the last layer must be dense (it produces the class scores)")
        if self.layers[-1].pool != 1:
            raise ValueError("the output layer cannot pool")
        self.shapes()   # validates the chain

    def shapes(self) -> list[tuple[tuple, tuple, int]]:
        """Per layer: (input shape, output shape after pooling, fan-in)."""
        shape, out = self.input_shape, []
        for i, spec in enumerate(self.layers):
            if spec.kind == "conv":
                if len(shape) != 3:
                    raise ValueError(f"layer {i}: conv needs a (C, H, W) input, got {shape}")
                c, h, w = shape
                ho, wo = h + 2 * spec.padding - spec.kernel + 1, w + 2 * spec.padding - spec.kernel + 1
                if ho < 1 or wo < 1:
                    raise ValueError(f"layer {i}: kernel {spec.kernel} too large for {shape}")
                if spec.pool > min(ho, wo):
                    raise ValueError(f"layer {i}: pool {spec.pool} larger than the {ho}x{wo} map")
                new = (spec.out, ho // spec.pool, wo // spec.pool)
                fan_in = c * spec.kernel ** 2
            else:
                fan_in = int(np.prod(shape))
                new = (spec.out,)
            out.append((shape, new, fan_in))
            shape = new
        return out

    def weight_shape(self, i: int) -> tuple:
        spec, (shape_in, _, fan_in) = self.layers[i], self.shapes()[i]
        if spec.kind == "conv":
            return (spec.out, shape_in[0], spec.kernel, spec.kernel)
        return (fan_in, spec.out)

    @property
    def classes(self) -> int:
        return self.layers[-1].out

    def to_json(self) -> dict:
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [asdict(l) for l in self.layers]}

    @classmethod
    def from_json(cls, d: dict) -> "Architecture":
        try:
            return cls(name=str(d["name"]), input_shape=tuple(d["input_shape"]),
                       layers=tuple(LayerSpec(**l) for l in d["layers"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed architecture description: {exc}") from exc


# The two shipped architectures. The MLP follows the 3x1024 binarized MLPs of the literature.
# The CNN's unrolled kernels need 9, 576 and 1152 crossbar rows (1, 5 and 9 tiles of 128) and
# its widest layer has 512 columns; a 32-64-64 / 256 version of it stopped at 98.4 % test
# accuracy after 6 epochs, which is why it is this wide.
ARCHITECTURES = {
    "mlp": Architecture("mlp", (784,), (
        LayerSpec("dense", 1024), LayerSpec("dense", 1024), LayerSpec("dense", 1024),
        LayerSpec("dense", 10))),
    "cnn": Architecture("cnn", (1, 28, 28), (
        LayerSpec("conv", 64, kernel=3, padding=1, pool=2),
        LayerSpec("conv", 128, kernel=3, padding=1, pool=2),
        LayerSpec("conv", 128, kernel=3, padding=1),
        LayerSpec("dense", 512),
        LayerSpec("dense", 10))),
    # The network of the mixed-precision in-situ training experiment of Nandakumar et al.
    # (Front. Neurosci. 14:406, 2020), here binary: for comparisons with it (no shipped model).
    "mlp250": Architecture("mlp250", (784,), (LayerSpec("dense", 250), LayerSpec("dense", 10))),
}


def preactivation_range(arch: Architecture, i: int, weight: np.ndarray) -> tuple:
    """Inclusive per-channel range of layer ``i``'s integer pre-activation.

    The first layer sees unipolar inputs, so its range is ``[-#(w=-1), #(w=+1)]`` per output
    channel; hidden layers see ±1 inputs and reach ``[-fan_in, fan_in]``.
    """
    out = arch.layers[i].out
    if i == 0:
        w = weight.reshape(out, -1) if arch.layers[0].kind == "conv" else weight.T
        return -(w < 0).sum(axis=1).astype(np.int64), (w > 0).sum(axis=1).astype(np.int64)
    fan_in = arch.shapes()[i][2]
    return np.full(out, -fan_in, np.int64), np.full(out, fan_in, np.int64)


@dataclass
class Layer:
    """Exported integer parameters of one layer (``threshold`` is None for the output layer).

    ``batchnorm`` optionally keeps the float batch-norm the threshold was folded from, so the
    training code can rebuild its float network (evaluation, fine-tuning); when present, loading
    re-folds it and rejects a file whose thresholds disagree.
    """

    weight: np.ndarray
    threshold: FoldedThreshold | None = None
    batchnorm: BatchNorm | None = None


@dataclass
class BnnModel:
    arch: Architecture
    layers: list
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        validate_layers(self.arch, self.layers)


def validate_layers(arch: Architecture, layers: list) -> None:
    if len(layers) != len(arch.layers):
        raise ModelFormatError(f"architecture has {len(arch.layers)} layers, model has {len(layers)}")
    for i, layer in enumerate(layers):
        want = arch.weight_shape(i)
        w = layer.weight
        if not isinstance(w, np.ndarray) or w.dtype != np.int8:
            raise ModelFormatError(f"layer {i} weight must be an int8 array, not "
                                   f"{getattr(w, 'dtype', type(w))}")
        if w.shape != want:
            raise ModelFormatError(f"layer {i} weight has shape {w.shape}, architecture needs {want}")
        if not np.all((w == 1) | (w == -1)):
            raise ModelFormatError(f"layer {i} weights must be exactly ±1, found {w[(w != 1) & (w != -1)][0]}")
        last = i == len(layers) - 1
        if last and layer.threshold is not None:
            raise ModelFormatError(f"output layer {i} has thresholds; it must produce raw scores")
        if not last:
            if layer.threshold is None:
                raise ModelFormatError(f"hidden layer {i} has no thresholds")
            t = layer.threshold
            if t.channels != arch.layers[i].out:
                raise ModelFormatError(f"layer {i} has {t.channels} thresholds for "
                                       f"{arch.layers[i].out} channels")
            lo, hi = preactivation_range(arch, i, w)
            if np.any(t.threshold < lo) or np.any(t.threshold > hi):
                bad = int(np.argmax((t.threshold < lo) | (t.threshold > hi)))
                raise ModelFormatError(f"layer {i} channel {bad}: threshold {t.threshold[bad]} "
                                       f"outside the reachable range [{lo[bad]}, {hi[bad]}]")
            if layer.batchnorm is not None:
                if layer.batchnorm.channels != t.channels:
                    raise ModelFormatError(f"layer {i} batch-norm has {layer.batchnorm.channels} "
                                           f"channels, thresholds {t.channels}")
                refold = fold_batchnorm(layer.batchnorm, lo, hi)
                differ = (refold.threshold != t.threshold) | (refold.invert != t.invert)
                if differ.any():
                    c = int(np.argmax(differ))
                    raise ModelFormatError(
                        f"layer {i} channel {c}: stored threshold ({t.threshold[c]}, invert "
                        f"{bool(t.invert[c])}) is not the fold of the stored batch-norm "
                        f"({refold.threshold[c]}, invert {bool(refold.invert[c])})")
        elif layer.batchnorm is not None:
            raise ModelFormatError(f"output layer {i} has a batch-norm")


@dataclass
class Inference:
    """``scores`` int32 (N, classes); ``predictions`` (N,); ``layer_bits`` every hidden
    layer's output bits after pooling (uint8), in order."""

    scores: np.ndarray
    predictions: np.ndarray
    layer_bits: list


# Images per chunk of :func:`infer`: the largest pre-activation map of a chunk (float32) is kept
# near this size. Larger chunks of the CNN ran slower on this machine (fresh memory on every
# chunk); the MLP's 1000 images stay within it.
_CHUNK_BYTES = 16 << 20


def infer(model: BnnModel, pixels: np.ndarray, keep_layers: bool = False,
          batch_size: int | None = None, workers: int | None = None) -> Inference:
    """Bit-exact integer inference.

    Parameters
    ----------
    pixels : array (N, *input_shape) or (N, 28, 28) of {0, 1}
        Binarized input images.
    keep_layers : bool
        Keep every hidden layer's output bits (memory grows with N).
    batch_size : int, optional
        Images per chunk; bounds the memory of the convolutions' maps. Default: up to 1000,
        fewer when one image's largest pre-activation map is large.
    workers : int, optional
        Threads the chunks run on (default: every core), each with a single-threaded BLAS:
        the products of a chunk are small, and a multi-threaded BLAS hands every product to
        its threads -- on a loaded machine (tests in parallel) that cost more than the
        products (measured: the CNN's 10 000 test images several times slower).
    """
    pixels = np.asarray(pixels)
    if batch_size is None:
        largest = max(int(np.prod(out)) * spec.pool ** 2
                      for spec, (_, out, _) in zip(model.arch.layers, model.arch.shapes()))
        batch_size = int(np.clip(_CHUNK_BYTES // (4 * largest), 1, 1000))
    starts = range(0, len(pixels), batch_size)
    workers = min(len(starts), os.cpu_count() or 1) if workers is None else workers
    with threadpool_limits(1, user_api="blas"):
        if workers <= 1:
            parts = [_infer_batch(model, pixels[i:i + batch_size], keep_layers) for i in starts]
        else:
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(
                    lambda i: _infer_batch(model, pixels[i:i + batch_size], keep_layers),
                    starts))
    if len(parts) == 1:
        return parts[0]
    return Inference(
        scores=np.concatenate([p.scores for p in parts]),
        predictions=np.concatenate([p.predictions for p in parts]),
        layer_bits=[np.concatenate(layer) for layer in zip(*(p.layer_bits for p in parts))])


def _infer_batch(model: BnnModel, pixels: np.ndarray, keep_layers: bool) -> Inference:
    arch = model.arch
    x = pixels.reshape((pixels.shape[0],) + arch.input_shape)
    domain = Domain.UNIPOLAR
    kept = []
    for i, (spec, layer) in enumerate(zip(arch.layers, model.layers)):
        if spec.kind == "conv":
            a = binary_conv2d(x, layer.weight, spec.padding, domain)
            bits = layer.threshold.bits(np.moveaxis(a, 1, -1))
            bits = np.moveaxis(bits, -1, 1)
            if spec.pool > 1:
                bits = maxpool2d(bits, spec.pool)
        else:
            if x.ndim > 2:
                x = flatten(x)
            a = binary_dense(x, layer.weight, domain)
            if layer.threshold is None:
                return Inference(scores=a, predictions=argmax_class(a), layer_bits=kept)
            bits = layer.threshold.bits(a)
        if keep_layers:
            kept.append(bits)
        x = (2 * bits.astype(np.int8) - 1).astype(np.int8)
        domain = Domain.BIPOLAR
    raise AssertionError("unreachable: the architecture ends in a dense layer")


def save_model(path: str | Path, model: BnnModel) -> Path:
    """Write ``model`` as ``.npz`` (no pickled objects) with its metadata as embedded JSON."""
    meta = dict(model.metadata)
    meta.update(format=FORMAT_NAME, format_version=FORMAT_VERSION,
                architecture=model.arch.to_json())
    arrays = {"metadata": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)}
    for i, layer in enumerate(model.layers):
        arrays[f"layer{i}.weight"] = layer.weight
        if layer.threshold is not None:
            arrays[f"layer{i}.threshold"] = layer.threshold.threshold.astype(np.int64)
            arrays[f"layer{i}.invert"] = layer.threshold.invert.astype(np.bool_)
        if layer.batchnorm is not None:
            bn = layer.batchnorm
            arrays[f"layer{i}.batchnorm"] = np.stack([bn.gamma, bn.beta, bn.mean, bn.var])
            arrays[f"layer{i}.batchnorm_eps"] = np.array(bn.eps, np.float64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _check_member_size(archive: zipfile.ZipFile, member: str, path: Path) -> None:
    """Refuse an archive member whose ``.npy`` header declares more data than the member holds,
    before numpy allocates what the header asks for (a damaged or hostile header can declare
    terabytes)."""
    name = member if member in archive.namelist() else f"{member}.npy"
    stored = archive.getinfo(name).file_size
    with archive.open(name) as f:
        try:
            major, _ = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        except ValueError:
            return            # not an array header: np.load names what is wrong with it
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared > stored:
            raise ModelFormatError(f"{path}: member {member!r} declares a {dtype} array of shape "
                                   f"{shape} ({declared:.3g} bytes) but holds {stored} bytes")


def load_model(path: str | Path) -> BnnModel:
    """Load and validate a model file; nothing in it is executed (no pickle).

    Raises
    ------
    FileNotFoundError
    ModelFormatError
        Corrupt or truncated file, other format or version, shapes/dtypes/values that do not
        match the architecture, weights not ±1, thresholds not integral or out of range.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFormatError(f"{path}: is a directory, expected a model file (.npz)")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise ModelFormatError(f"{path}: not a readable mbnn model file ({exc})") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ModelFormatError(f"{path}: a single .npy array, expected an .npz model archive "
                               f"(mbnn train --out writes one)")
    member = None
    try:
        with loaded as z:
            arrays = {}
            for member in z.files:
                _check_member_size(loaded.zip, member, path)
                arrays[member] = z[member]
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError) as exc:
        raise ModelFormatError(f"{path}: not a readable mbnn model file (member {member!r}: "
                               f"{exc})") from exc
    if "metadata" not in arrays:
        raise ModelFormatError(f"{path}: no metadata record")
    record = arrays.pop("metadata")
    if record.dtype != np.uint8 or record.ndim != 1:
        raise ModelFormatError(f"{path}: metadata must be a 1-D uint8 array (UTF-8 JSON), not "
                               f"{record.dtype} of shape {record.shape}")
    try:
        meta = json.loads(record.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: metadata is not valid JSON ({exc})") from exc
    except RecursionError:
        # json gives up on nesting deeper than Python's recursion limit; no model needs it
        raise ModelFormatError(f"{path}: metadata is nested too deeply to be a model's "
                               f"description") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path}: format is {meta.get('format') if isinstance(meta, dict) else meta!r}, "
                               f"expected {FORMAT_NAME!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path}: format version {meta.get('format_version')!r} is not "
                               f"supported (this mbnn reads version {FORMAT_VERSION})")
    try:
        arch = Architecture.from_json(meta["architecture"])
    except (KeyError, ValueError) as exc:
        raise ModelFormatError(f"{path}: bad architecture: {exc}") from exc
    layers, expected = [], set()
    for i in range(len(arch.layers)):
        wkey = f"layer{i}.weight"
        expected.add(wkey)
        if wkey not in arrays:
            raise ModelFormatError(f"{path}: missing {wkey}")
        threshold = None
        if i < len(arch.layers) - 1:
            tkey, ikey = f"layer{i}.threshold", f"layer{i}.invert"
            expected |= {tkey, ikey}
            for k in (tkey, ikey):
                if k not in arrays:
                    raise ModelFormatError(f"{path}: missing {k}")
            t, inv = arrays[tkey], arrays[ikey]
            if t.dtype != np.int64:
                raise ModelFormatError(f"{path}: {tkey} must be int64 (integral thresholds), not {t.dtype}")
            if inv.dtype != np.bool_:
                raise ModelFormatError(f"{path}: {ikey} must be bool, not {inv.dtype}")
            if t.ndim != 1 or inv.shape != t.shape:
                raise ModelFormatError(f"{path}: {tkey} and {ikey} must be 1-D of equal length")
            threshold = FoldedThreshold(threshold=t, invert=inv)
        batchnorm = None
        bkey, ekey = f"layer{i}.batchnorm", f"layer{i}.batchnorm_eps"
        if bkey in arrays or ekey in arrays:
            expected |= {bkey, ekey}
            if bkey not in arrays or ekey not in arrays:
                raise ModelFormatError(f"{path}: {bkey} and {ekey} must come together")
            b, eps = arrays[bkey], arrays[ekey]
            if b.dtype != np.float64 or b.ndim != 2 or b.shape[0] != 4 or eps.shape != ():
                raise ModelFormatError(f"{path}: {bkey} must be float64 (4, channels) with a "
                                       f"scalar {ekey}")
            try:
                batchnorm = BatchNorm(gamma=b[0], beta=b[1], mean=b[2], var=b[3], eps=float(eps))
            except ValueError as exc:
                raise ModelFormatError(f"{path}: {bkey}: {exc}") from exc
        layers.append(Layer(weight=arrays[wkey], threshold=threshold, batchnorm=batchnorm))
    unknown = sorted(set(arrays) - expected)
    if unknown:
        raise ModelFormatError(f"{path}: unexpected records {unknown} for a {len(arch.layers)}-layer model")
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "architecture")}
    try:
        return BnnModel(arch=arch, layers=layers, metadata=meta)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from exc
