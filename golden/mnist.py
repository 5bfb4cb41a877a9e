"""Load the vendored MNIST data set (``data/mnist``), binarized the way the chip sees it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .idx import IdxFormatError, read_idx

__all__ = ["MnistSplit", "load_mnist", "binarize_pixels", "default_data_dir",
           "PIXEL_THRESHOLD"]

# Pixels >= this grey level (0..255) drive their word line (x' = 1); the others do not. Half-scale
# keeps stroke shapes intact on MNIST, whose strokes are mostly saturated.
PIXEL_THRESHOLD = 128

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


def default_data_dir() -> Path:
    """``$MBNN_DATA_DIR/mnist`` if set, else the repository's ``data/mnist``."""
    env = os.environ.get("MBNN_DATA_DIR")
    if env:
        return Path(env) / "mnist"
    return Path(__file__).resolve().parent.parent / "data" / "mnist"


@dataclass(frozen=True)
class MnistSplit:
    """One split of MNIST: ``images`` uint8 (N, 28, 28) grey levels, ``labels`` uint8 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def binarize_pixels(images: np.ndarray, threshold: int = PIXEL_THRESHOLD) -> np.ndarray:
    """Grey levels -> the chip's unipolar inputs {0, 1} (uint8)."""
    if not 0 < threshold <= 255:
        raise ValueError(f"pixel threshold must be in 1..255, not {threshold}")
    return (np.asarray(images) >= threshold).astype(np.uint8)


def load_mnist(split: str = "test", data_dir: str | Path | None = None) -> MnistSplit:
    """Load the ``"train"`` (60 000) or ``"test"`` (10 000) split.

    Raises
    ------
    ValueError
        Unknown split name.
    IdxFormatError
        A file is corrupt, truncated, or its shape does not match MNIST's.
    """
    if split not in _FILES:
        raise ValueError(f"MNIST split must be one of {sorted(_FILES)}, not {split!r}")
    image_file, label_file, count = _FILES[split]
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    images = read_idx(root / image_file, expect_ndim=3, expect_dtype=np.uint8)
    labels = read_idx(root / label_file, expect_ndim=1, expect_dtype=np.uint8)
    if images.shape != (count, 28, 28):
        raise IdxFormatError(f"{root / image_file}: shape {images.shape}, expected {(count, 28, 28)}")
    if labels.shape != (count,):
        raise IdxFormatError(f"{root / label_file}: shape {labels.shape}, expected {(count,)}")
    if labels.max() > 9:
        raise IdxFormatError(f"{root / label_file}: label {labels.max()} outside 0..9")
    return MnistSplit(images=images, labels=labels)
