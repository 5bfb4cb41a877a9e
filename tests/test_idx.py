"""IDX reader and the vendored MNIST."""

import gzip
import struct

import numpy as np
import pytest

from golden.idx import IdxFormatError, parse_idx, read_idx
from golden.mnist import binarize_pixels, load_mnist


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_round_trip_of_every_type():
    for code, dtype in [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                        (0x0D, np.float32), (0x0E, np.float64)]:
        a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        out = parse_idx(idx_bytes(a, code))
        assert out.dtype == np.dtype(dtype) and np.array_equal(out, a)


def test_mnist_test_split_has_published_shape_and_label_counts():
    test = load_mnist("test")
    assert test.images.shape == (10000, 28, 28) and test.images.dtype == np.uint8
    # Published class counts of the MNIST test set.
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_train_split_loads():
    train = load_mnist("train")
    assert train.images.shape == (60000, 28, 28) and len(train) == 60000
    assert np.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_binarize_pixels_threshold():
    px = np.array([0, 127, 128, 255], dtype=np.uint8)
    assert binarize_pixels(px).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="pixel threshold must be in 1..255, not 0"):
        binarize_pixels(px, 0)


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic number 0x01000801"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    (b"\x00\x00", "too short for an IDX header"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", r"truncated: 10 bytes, header shape \(3,\)"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "has trailing bytes"),
])
def test_bad_files_are_rejected_with_a_clear_message(raw, message):
    with pytest.raises(IdxFormatError, match=message):
        parse_idx(raw)


def test_wrong_dimensions_and_dtype_are_rejected():
    raw = idx_bytes(np.zeros((2, 2), np.uint8))
    with pytest.raises(IdxFormatError, match="has 2 dimensions, expected 3"):
        parse_idx(raw, expect_ndim=3)
    with pytest.raises(IdxFormatError, match="element type is uint8, expected int32"):
        parse_idx(raw, expect_dtype=np.int32)


def test_truncated_and_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(IdxFormatError, match="cannot decompress"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "junk.gz").write_bytes(b"not gzip at all")
    with pytest.raises(IdxFormatError, match="cannot decompress"):
        read_idx(tmp_path / "junk.gz")
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "missing.gz")
    # a damaged deflate stream (valid header, bytes flipped inside the compressed data)
    data = bytearray(gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint16) % 251)))
    for k in range(20, 40):
        data[k] ^= 0xFF
    (tmp_path / "damaged.gz").write_bytes(bytes(data))
    with pytest.raises(IdxFormatError, match="damaged.gz: cannot decompress"):
        read_idx(tmp_path / "damaged.gz")
    (tmp_path / "dir.gz").mkdir()
    with pytest.raises(IdxFormatError, match="dir.gz: is a directory, expected an IDX file"):
        read_idx(tmp_path / "dir.gz")


def test_mnist_with_wrong_shape_is_rejected(tmp_path):
    # A well-formed IDX file that is not MNIST's test split.
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(IdxFormatError, match=r"shape \(5, 28, 28\), expected \(10000, 28, 28\)"):
        load_mnist("test", tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("validation")
