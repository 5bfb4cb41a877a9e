"""Reader for SPICE raw result files (as written by VACASK), real-valued binary or ASCII."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["RawFormatError", "read_raw"]


class RawFormatError(ValueError):
    """The file is not a raw file this reader understands."""


def read_raw(path: str | Path) -> dict[str, np.ndarray]:
    """Read the first plot of a raw file: ``{variable name: values over points}``."""
    path = Path(path)
    blob = path.read_bytes()
    header: dict[str, str] = {}
    names: list[str] = []
    pos = 0
    in_vars = False
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise RawFormatError(f"{path}: header ends before the data section")
        line = blob[pos:end].decode("ascii", "replace")
        pos = end + 1
        if in_vars and line.startswith(("\t", " ")) and line.strip():
            names.append(line.split()[1])
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "variables":
            in_vars = True
            continue
        in_vars = False
        if key in ("binary", "values"):
            kind = key
            break
        header[key] = value.strip()
    try:
        nvars, npoints = int(header["no. variables"]), int(header["no. points"])
    except (KeyError, ValueError) as exc:
        raise RawFormatError(f"{path}: missing or bad variable/point count in header") from exc
    if "complex" in header.get("flags", ""):
        raise RawFormatError(f"{path}: complex data is not supported")
    if len(names) != nvars:
        raise RawFormatError(f"{path}: header lists {len(names)} variables, declares {nvars}")
    if kind == "binary":
        need = nvars * npoints * 8
        if len(blob) - pos < need:
            raise RawFormatError(f"{path}: truncated: {len(blob) - pos} data bytes, need {need}")
        data = np.frombuffer(blob, dtype="<f8", count=nvars * npoints, offset=pos)
    else:
        tokens = blob[pos:].decode("ascii").split()
        # ASCII: each point is an index followed by nvars values
        values = [float(t) for i, t in enumerate(tokens) if i % (nvars + 1) != 0]
        data = np.array(values[: nvars * npoints])
    data = data.reshape(npoints, nvars)
    return {name: data[:, i].copy() for i, name in enumerate(names)}
