"""The golden model's C kernels: fused element-wise passes that numpy can only make one array
pass at a time (``*.c`` beside this file): ``tile_codes`` (the evaluation read's rounding of a
row tile, :mod:`golden.analog.evaluate`), ``adam_latent`` and ``train_steps`` (training's
optimiser step and the CNN's unfolding, batch-norm and pooling, :mod:`golden.train`). Also
:func:`keep_freed_memory`, the allocator setting training runs with (through ctypes too).

Each kernel is specified by the numpy steps it replaces, performs the same IEEE-754
operations on each value, and is tested bit for bit against them; numpy remains the
fallback. A kernel is compiled from its source on first use with the system's C compiler
(the one Verilator needs) and cached under ``~/.cache/mbnn/native`` (``MBNN_NATIVE_DIR``
overrides), keyed by the source, the flags and the compiler, so an edited kernel is rebuilt
and concurrent processes never load a half-written library (temp file and rename).
``MBNN_NATIVE=0`` disables the kernels (numpy only).

The flags keep the arithmetic exact: no fast-math, no contraction of a multiply and an add
into an FMA (that rounds once where numpy rounds twice); ``-fno-trapping-math`` only lets
comparisons be vectorised without regard to floating-point exception flags, which nothing
reads. On x86-64 the kernels target
x86-64-v2 (SSE4.1's vector rounding, on every x86-64 CPU since about 2009), not the build
machine, so a cache shared between machines holds nothing they cannot run.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

__all__ = ["tile_codes", "adam_latent", "train_steps", "TrainSteps", "available", "KERNELS",
           "keep_freed_memory"]

_SOURCE_DIR = Path(__file__).resolve().parent
_FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math",
          "-ffp-contract=off"]
if platform.machine() in ("x86_64", "AMD64"):
    _FLAGS.append("-march=x86-64-v2")

_lock = threading.Lock()
_libraries: dict[str, ctypes.CDLL | None] = {}


def _cache_dir() -> Path:
    return Path(os.environ.get("MBNN_NATIVE_DIR")
                or Path.home() / ".cache" / "mbnn" / "native")


def _compiler() -> list[str] | None:
    """The C compiler's command (``CC`` may carry arguments, e.g. ``ccache gcc``)."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


def _build(name: str) -> Path:
    """The shared library of ``name``.c, compiled unless the cache holds this build of it."""
    source = _SOURCE_DIR / f"{name}.c"
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler (cc or gcc on PATH, or CC)")
    version = (subprocess.run([*cc, "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines() or [""])[0]
    key = hashlib.sha256("\0".join([source.read_text(), *_FLAGS, version,
                                    platform.machine()]).encode()).hexdigest()[:16]
    target = _cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        run = subprocess.run([*cc, *_FLAGS, "-o", tmp, str(source), "-lm"],
                             capture_output=True, text=True)
        if run.returncode:
            raise OSError(f"{' '.join(cc)} failed on {source.name}: {run.stderr.strip()}")
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
                    path = _build(name)
                    try:
                        lib = ctypes.CDLL(str(path))
                    except OSError:             # a damaged cache entry: build it again
                        path.unlink(missing_ok=True)
                        lib = ctypes.CDLL(str(_build(name)))
                except (OSError, subprocess.SubprocessError) as exc:
                    warnings.warn(f"mbnn: C kernel {name} unavailable, using numpy: {exc}",
                                  RuntimeWarning, stacklevel=3)
            _libraries[name] = lib
        return _libraries[name]


KERNELS = ("tile_codes", "adam_latent", "train_steps")      # the ``*.c`` files here


def available(name: str | None = None) -> bool:
    """Whether the kernel ``name`` (default: every one of :data:`KERNELS`) is compiled and
    loaded, building it if needed."""
    return all(_library(k) is not None for k in ([name] if name else KERNELS))


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


def adam_latent():
    """The fused Adam step on a layer's latent weights (``adam_latent.c``), or None.

    Returns a function ``(latent, m, v, grad, sign, step, b1, b2, eps, scale)`` over
    C-contiguous float32 arrays of one size: the moments ``m``, ``v`` advance by ``grad``
    (coefficients ``b1``, ``b2``, Python floats, rounded to float32 as numpy rounds them,
    ``1 - b`` included); then either ``step`` (an array) receives ``(m / (sqrt(v) + eps)) *
    scale`` (``scale`` a float64, the product taken in double as numpy takes it), or, with
    ``step`` None, ``latent`` moves by it, clipped to [-1, 1], and ``sign`` receives the signs
    of the new latent weights as ``copysign(1, latent)``.
    """
    lib = _library("adam_latent")
    if lib is None:
        return None
    fn = lib.mbnn_adam_latent
    p, f = ctypes.c_void_p, ctypes.c_float
    fn.restype = None
    fn.argtypes = [p, p, p, p, p, p, ctypes.c_int64, f, f, f, f, f, ctypes.c_double]
    f32 = np.float32

    def call(latent, m, v, grad, sign, step, b1, b2, eps, scale):
        arrays = {"latent": latent, "m": m, "v": v, "grad": grad}
        arrays.update({"step": step} if step is not None else {"sign": sign})
        if any(a.size != m.size for a in arrays.values()):
            raise ValueError("adam_latent: every array needs the moments' size")
        ptr = {name: _pointer(a, f32, name) for name, a in arrays.items()}
        fn(ptr["latent"], ptr["m"], ptr["v"], ptr["grad"], ptr.get("sign"), ptr.get("step"),
           m.size, f32(b1), f32(1 - b1), f32(b2), f32(1 - b2), f32(eps), float(scale))
    return call


class TrainSteps:
    """The convolutional network's training steps of ``train_steps.c``, each equal bit for bit
    to the numpy code in :mod:`golden.train` that specifies it (named in each method).
    Arrays in: float32, C-contiguous (NHWC for images); arrays out: fresh, C-contiguous."""

    def __init__(self, lib: ctypes.CDLL):
        p, i, f = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
        kinds = {"im2col_nhwc": [p, i, i, i, i, i, i, f, p],
                 "col2im_nhwc": [p, i, i, i, i, i, i, p],
                 "bn_statistics": [p, i, i, p, p, p],
                 "bn_normalize": [p, i, i, p, p, p, p, p],
                 "bn_backward_sums": [p, p, p, i, i, p, p],
                 "bn_backward_apply": [p, p, p, i, i, p, p, p, p],
                 "maxpool": [p, i, i, i, i, i, p, p],
                 "maxpool_backward": [p, p, p, i, i, i, i, i, p, p]}
        for name, argtypes in kinds.items():
            fn = getattr(lib, "mbnn_" + name)
            fn.restype, fn.argtypes = None, argtypes
            setattr(self, "_" + name, fn)

    @staticmethod
    def _in(array: np.ndarray, name: str, ndim: int) -> np.ndarray:
        array = np.ascontiguousarray(array)
        if array.dtype != np.float32 or array.ndim != ndim:
            raise TypeError(f"{name} must be a {ndim}-D float32 array, not {array.dtype} "
                            f"{array.shape}")
        return array

    @staticmethod
    def _ptr(array: np.ndarray) -> int:
        return array.__array_interface__["data"][0]

    def im2col(self, x, k: int, pad: int, pad_value: float):
        """``_im2col_nhwc``: the (N*Ho*Wo, k*k*C) windows of NHWC ``x``, and (N, Ho, Wo)."""
        x = self._in(x, "x", 4)
        n, h, w, c = x.shape
        ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        cols = np.empty((n * ho * wo, k * k * c), np.float32)
        self._im2col_nhwc(self._ptr(x), n, h, w, c, k, pad, pad_value, self._ptr(cols))
        return cols, (n, ho, wo)

    def col2im(self, gcols, x_shape, k: int, pad: int):
        """``_col2im_nhwc``: the input gradient (NHWC ``x_shape``) of the windows' gradient."""
        n, h, w, c = x_shape
        ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        gcols = self._in(gcols, "gcols", 2)
        if gcols.shape != (n * ho * wo, k * k * c):
            raise ValueError(f"gcols {gcols.shape} are not the windows of {x_shape}")
        gx = np.empty(x_shape, np.float32)
        self._col2im_nhwc(self._ptr(gcols), n, h, w, c, k, pad, self._ptr(gx))
        return gx

    def bn_statistics(self, a):
        """``_BatchNorm.forward_train``'s statistics over all axes but the last:
        (mean, deviations ``a - mean``, var), float32. Sums row by row, numpy's order for
        two or more channels (a single channel numpy sums pairwise: refused)."""
        a = self._in(a, "a", a.ndim)
        c = a.shape[-1]
        if c < 2:
            raise ValueError("bn_statistics sums two or more channels (numpy's order)")
        mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
        xhat = np.empty_like(a)
        self._bn_statistics(self._ptr(a), self._rows(a, "a"), c, self._ptr(mean),
                            self._ptr(xhat), self._ptr(var))
        return mean, xhat, var

    def bn_normalize(self, xhat, inv, gamma, beta, sign: bool = False):
        """``xhat *= inv`` in place, and ``y = xhat * gamma + beta`` (per channel, float32);
        with ``sign``, ``(y, _sign(y))``."""
        c = xhat.shape[-1]
        coefficients = [self._in(v, name, 1) for v, name in
                        ((inv, "inv"), (gamma, "gamma"), (beta, "beta"))]
        if not (xhat.flags.c_contiguous and xhat.flags.writeable) or xhat.dtype != np.float32 \
                or any(v.shape != (c,) for v in coefficients):
            raise TypeError("bn_normalize needs a writeable C-contiguous float32 xhat and one "
                            "float32 coefficient per channel")
        y = np.empty_like(xhat)
        signs = np.empty_like(xhat) if sign else None
        self._bn_normalize(self._ptr(xhat), self._rows(xhat, "xhat"), c,
                           *map(self._ptr, coefficients), self._ptr(y),
                           None if signs is None else self._ptr(signs))
        return (y, signs) if sign else y

    def _ste(self, y, shape):
        """The straight-through sign's input ``y`` as an array for the call (the caller
        holds it) and its pointer; (None, None) without one."""
        if y is None:
            return None, None
        y = self._in(y, "y", len(shape))
        if y.shape != shape:
            raise ValueError(f"y {y.shape} is not shaped as g {shape}")
        return y, self._ptr(y)

    @staticmethod
    def _rows(array, name: str) -> int:
        """Rows (all axes but the channels') of a batch-norm input: at least one, below 2**24
        (the count's float32 division is numpy's exact one there)."""
        rows = array.size // array.shape[-1] if array.shape[-1] else 0
        if not 0 < rows < 1 << 24:
            raise ValueError(f"{name} needs 1 to 2**24 - 1 rows, not {rows}")
        return rows

    def bn_backward_sums(self, g, xhat, y=None):
        """``_BatchNorm.backward``'s sums: (``g.sum``, ``(g * xhat).sum``) per channel, of
        ``g * (|y| <= 1)`` (the straight-through sign) when ``y`` is given."""
        g, xhat = self._in(g, "g", g.ndim), self._in(xhat, "xhat", xhat.ndim)
        if g.shape != xhat.shape:
            raise ValueError(f"g {g.shape} and xhat {xhat.shape} differ")
        c = g.shape[-1]
        if c < 2:
            raise ValueError("bn_backward_sums sums two or more channels (numpy's order)")
        dbeta, dgamma = np.empty(c, np.float32), np.empty(c, np.float32)
        y, y_ptr = self._ste(y, g.shape)
        self._bn_backward_sums(self._ptr(g), y_ptr, self._ptr(xhat), self._rows(g, "g"), c,
                               self._ptr(dbeta), self._ptr(dgamma))
        return dbeta, dgamma

    def bn_backward_apply(self, g, xhat, kg, kb, ks, y=None):
        """``((g - xhat * kg) - kb) * ks`` per channel, ``g`` passed through the
        straight-through sign of ``y`` first when it is given."""
        g, xhat = self._in(g, "g", g.ndim), self._in(xhat, "xhat", xhat.ndim)
        if g.shape != xhat.shape:
            raise ValueError(f"g {g.shape} and xhat {xhat.shape} differ")
        c = g.shape[-1]
        coefficients = [self._in(v, name, 1) for v, name in ((kg, "kg"), (kb, "kb"),
                                                             (ks, "ks"))]
        if any(v.shape != (c,) for v in coefficients):
            raise ValueError("bn_backward_apply needs one coefficient per channel")
        gx = np.empty_like(g)
        y, y_ptr = self._ste(y, g.shape)
        self._bn_backward_apply(self._ptr(g), y_ptr, self._ptr(xhat), self._rows(g, "g"), c,
                                *map(self._ptr, coefficients), self._ptr(gx))
        return gx

    def maxpool(self, y, p: int, sign: bool = False):
        """p x p max-pooling of NHWC ``y`` (rows and columns past a whole block dropped);
        with ``sign``, ``(pooled, _sign(pooled))``."""
        y = self._in(y, "y", 4)
        n, h, w, c = y.shape
        pooled = np.empty((n, h // p, w // p, c), np.float32)
        signs = np.empty_like(pooled) if sign else None
        self._maxpool(self._ptr(y), n, h, w, c, p, self._ptr(pooled),
                      None if signs is None else self._ptr(signs))
        return (pooled, signs) if sign else pooled

    def maxpool_backward(self, y, pooled, g, p: int):
        """``_Net.backward``'s straight-through sign of a pooled layer, ``g * (|pooled| <=
        1)``, then the pooling's backward: the gradient split between each block's maxima of
        ``y`` (the pooling's input), as the shares ``_Net.forward`` records."""
        y, pooled, g = self._in(y, "y", 4), self._in(pooled, "pooled", 4), self._in(g, "g", 4)
        n, h, w, c = y.shape
        if g.shape != (n, h // p, w // p, c) or pooled.shape != g.shape:
            raise ValueError(f"pooled {pooled.shape} and g {g.shape} are not the {p}x{p} "
                             f"pooling of {y.shape}")
        gx = np.empty_like(y)
        count = np.empty(2 * c, np.float32)
        self._maxpool_backward(self._ptr(y), self._ptr(pooled), self._ptr(g), n, h, w, c, p,
                               self._ptr(gx), self._ptr(count))
        return gx


def train_steps() -> TrainSteps | None:
    """The convolutional network's fused training steps (:class:`TrainSteps`), or None."""
    lib = _library("train_steps")
    if lib is None:
        return None
    if id(lib) not in _steps:
        _steps[id(lib)] = TrainSteps(lib)
    return _steps[id(lib)]


_steps: dict[int, TrainSteps] = {}


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc's mallopt parameters (malloc.h)
_heap_kept = False


def keep_freed_memory() -> bool:
    """Have this process's allocator keep the memory it frees for the next allocations
    instead of returning it to the system (glibc only; elsewhere nothing is done).

    Training allocates and frees hundreds of MiB of arrays per step. glibc hands blocks of
    more than its mmap threshold (at most 32 MiB: the CNN's unfolded inputs are 45 MiB a
    batch) straight back to the system, and trims the heap's top; every reuse then faults
    its pages in again, which costs 25-60 us a page on the sandboxed machines this project
    runs on (one CNN epoch on 1 000 images: 43 000 faults, 1.1 s of 2.9 s in the kernel).
    Raising both thresholds keeps the process at its peak heap (a few hundred MiB for
    training) and takes the faults out of every step after the first. Results do not
    change. Returns whether the setting was applied (once per process)."""
    global _heap_kept
    with _lock:
        if not _heap_kept:
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _heap_kept = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)
                              and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
        return _heap_kept
