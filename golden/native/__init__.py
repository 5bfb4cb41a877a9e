"""The golden model's C kernels: fused element-wise passes that numpy can only make one array
pass at a time (``*.c`` beside this file).

Each kernel is specified by the numpy steps it replaces, performs the same IEEE-754
operations on each value, and is tested bit for bit against them; numpy remains the
fallback. A kernel is compiled from its source on first use with the system's C compiler
(the one Verilator needs) and cached under ``~/.cache/mbnn/native`` (``MBNN_NATIVE_DIR``
overrides), keyed by the source, the flags and the compiler, so an edited kernel is rebuilt
and concurrent processes never load a half-written library (temp file and rename).
``MBNN_NATIVE=0`` disables the kernels (numpy only).

The flags keep the arithmetic exact: no fast-math, no contraction of a multiply and an add
into an FMA (that rounds once where numpy rounds twice). On x86-64 the kernels target
x86-64-v2 (SSE4.1's vector rounding, on every x86-64 CPU since about 2009), not the build
machine, so a cache shared between machines holds nothing they cannot run.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

__all__ = ["tile_codes", "available"]

_SOURCE_DIR = Path(__file__).resolve().parent
_FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=off"]
if platform.machine() in ("x86_64", "AMD64"):
    _FLAGS.append("-march=x86-64-v2")

_lock = threading.Lock()
_libraries: dict[str, ctypes.CDLL | None] = {}


def _cache_dir() -> Path:
    return Path(os.environ.get("MBNN_NATIVE_DIR")
                or Path.home() / ".cache" / "mbnn" / "native")


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(name: str) -> Path:
    """The shared library of ``name``.c, compiled unless the cache holds this build of it."""
    source = _SOURCE_DIR / f"{name}.c"
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler (cc or gcc on PATH, or CC)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                             check=True).stdout.splitlines()[0]
    key = hashlib.sha256("\0".join([source.read_text(), *_FLAGS, version,
                                    platform.machine()]).encode()).hexdigest()[:16]
    target = _cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        run = subprocess.run([cc, *_FLAGS, "-o", tmp, str(source), "-lm"],
                             capture_output=True, text=True)
        if run.returncode:
            raise OSError(f"{cc} failed on {source.name}: {run.stderr.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _library(name: str) -> ctypes.CDLL | None:
    """The loaded kernel library, or None (numpy fallback; a warning says why, once)."""
    with _lock:
        if name not in _libraries:
            lib = None
            if os.environ.get("MBNN_NATIVE", "1") != "0":
                try:
                    lib = ctypes.CDLL(str(_build(name)))
                except (OSError, subprocess.SubprocessError) as exc:
                    warnings.warn(f"mbnn: C kernel {name} unavailable, using numpy: {exc}",
                                  RuntimeWarning, stacklevel=3)
            _libraries[name] = lib
        return _libraries[name]


def available(name: str = "tile_codes") -> bool:
    """Whether the kernel ``name`` is compiled and loaded (building it if needed)."""
    return _library(name) is not None


def _pointer(array: np.ndarray, dtype, name: str) -> int:
    """The address of a C-contiguous ``dtype`` array (checked here: ctypes' own array
    checks cost 3 us each, a tenth of a small call)."""
    if array.dtype != dtype or not array.flags.c_contiguous or not array.flags.writeable:
        raise TypeError(f"{name} must be a writeable C-contiguous {np.dtype(dtype).name} "
                        f"array, not {array.dtype} with flags {array.flags}")
    return array.__array_interface__["data"][0]


def tile_codes():
    """The fused rounding step of the evaluation read (``tile_codes.c``), or None.

    Returns a function ``(value, sums, first, saturate, limit, code_min, code_max,
    flag_index, flag_code, flag_residual) -> flagged`` over C-contiguous float32 arrays
    ``value`` and ``sums`` of equal size and outputs with room for that many values:
    ``sums = code`` (``first``) or ``sums += code`` with ``code = rint(value)`` (clipped into
    ``[code_min, code_max]`` when ``saturate``), and the values with ``|value - code| >
    limit`` listed in ascending flat order with their unclipped codes and residuals.
    """
    lib = _library("tile_codes")
    if lib is None:
        return None
    fn = lib.mbnn_tile_codes
    fn.restype = ctypes.c_int64
    p = ctypes.c_void_p
    fn.argtypes = [p, p, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_float,
                   ctypes.c_float, ctypes.c_float, p, p, p]
    f32, i64 = np.float32, np.int64

    def call(value, sums, first, saturate, limit, code_min, code_max, flag_index, flag_code,
             flag_residual):
        if value.size != sums.size or min(flag_index.size, flag_code.size,
                                          flag_residual.size) < value.size:
            raise ValueError("tile_codes: sums and the flag outputs need value's size")
        return int(fn(_pointer(value, f32, "value"), _pointer(sums, f32, "sums"), value.size,
                      int(first), int(saturate), limit, code_min, code_max,
                      _pointer(flag_index, i64, "flag_index"),
                      _pointer(flag_code, f32, "flag_code"),
                      _pointer(flag_residual, f32, "flag_residual")))
    return call
