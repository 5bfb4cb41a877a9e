"""Reader for the IDX file format used by MNIST.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of dimensions --
followed by one 32-bit size per dimension and the raw data. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IdxFormatError", "read_idx", "parse_idx"]

# Type codes of the IDX format and the numpy dtype of each (big-endian where it matters).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """The bytes are not a valid IDX file (or not the one the caller expected)."""


def parse_idx(raw: bytes, *, name: str = "<bytes>", expect_ndim: int | None = None,
              expect_dtype: np.dtype | None = None) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file.

    Parameters
    ----------
    raw : bytes
        Whole file contents.
    name : str
        Used in error messages.
    expect_ndim : int, optional
        Reject files whose number of dimensions differs.
    expect_dtype : numpy.dtype, optional
        Reject files whose element type differs.

    Returns
    -------
    numpy.ndarray
        Array in native byte order with the shape given by the header.

    Raises
    ------
    IdxFormatError
        On bad magic, unknown type code, unexpected dimensions or dtype, or a size that does not
        match the header (truncated or trailing bytes).
    """
    if len(raw) < 4:
        raise IdxFormatError(f"{name}: {len(raw)} bytes is too short for an IDX header (need 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(
            f"{name}: bad magic number 0x{raw[:4].hex()}: an IDX file starts with two zero bytes")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{type_code:02x}; expected one of {known}")
    dtype = _IDX_DTYPES[type_code]
    if ndim == 0:
        raise IdxFormatError(f"{name}: IDX header declares 0 dimensions; expected at least 1")
    if expect_ndim is not None and ndim != expect_ndim:
        raise IdxFormatError(f"{name}: has {ndim} dimensions, expected {expect_ndim}")
    if expect_dtype is not None and dtype != np.dtype(expect_dtype):
        raise IdxFormatError(f"{name}: element type is {dtype}, expected {np.dtype(expect_dtype)}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IdxFormatError(
            f"{name}: truncated header: {len(raw)} bytes, the {ndim} dimension sizes need {header_len}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{name}: {what}: {len(raw)} bytes, header shape {shape} of {dtype} needs {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path, **expect) -> np.ndarray:
    """Read an IDX file, gzip-compressed if its name ends in ``.gz``.

    Keyword arguments are passed to :func:`parse_idx`.
    """
    path = Path(path)
    if path.is_dir():
        raise IdxFormatError(f"{path}: is a directory, expected an IDX file")
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:   # a corrupt or truncated gzip stream
        raise IdxFormatError(f"{path}: cannot decompress: {exc}") from exc
    return parse_idx(raw, name=str(path), **expect)
