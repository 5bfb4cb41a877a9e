"""The golden model's C kernels against the numpy steps that specify them, bit for bit, and
their build: cached by source, refused inputs, and a clear fallback when no compiler runs."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from golden import native


def _kernel():
    kernel = native.tile_codes()
    if kernel is None or not native.available():
        if os.environ.get("CI"):
            pytest.fail("a C kernel did not build in CI (gcc is installed there)")
        pytest.skip("no C compiler here: the golden model runs numpy's steps")
    return kernel


def test_every_kernel_source_is_listed():
    """KERNELS (what bootstrap builds and available() checks) names every .c file."""
    sources = sorted(p.stem for p in native._SOURCE_DIR.glob("*.c"))
    assert sources == sorted(native.KERNELS)


def _numpy_tile_codes(value, sums, first, saturate, limit, code_min, code_max):
    """The steps of the evaluation read the kernel replaces, as golden/analog/evaluate.py's
    numpy path performs them."""
    code = np.rint(value)
    residual = np.abs(value - code)
    near = np.flatnonzero(residual > limit)
    flagged = (near, code[near], residual[near])
    if saturate:
        code = np.clip(code, np.float32(code_min), np.float32(code_max))
    return (code if first else sums + code), flagged


def _values(rng, n):
    """ADC inputs with exact ties (k + 0.5, where rint rounds to even), values one and two
    ulps either side of them, integers, and random fractions; some beyond +-300 LSB so that
    a code range of [-256, 255] clips them."""
    k = rng.integers(-300, 300, n).astype(np.float32)
    tie = k + np.float32(0.5)
    kind = rng.integers(0, 6, n)
    v = np.where(kind == 0, tie, k + rng.random(n, dtype=np.float32))
    v = np.where(kind == 1, np.nextafter(tie, np.float32(np.inf)), v)
    v = np.where(kind == 2, np.nextafter(tie, np.float32(-np.inf)), v)
    v = np.where(kind == 3, np.nextafter(np.nextafter(tie, tie - 1), tie - 1), v)
    v = np.where(kind == 4, k, v)
    return v.astype(np.float32)


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("saturate", [True, False])
def test_tile_codes_equal_the_numpy_steps(seed, first, saturate):
    """Codes, sums, flagged indices, unclipped codes and residuals are bitwise numpy's, on
    a size that is not a whole number of the kernel's scan groups; the ties (where rint's
    half-to-even rule decides) and near-ties are counted so the test cannot pass without
    them."""
    print(f"seed {seed}")
    kernel = _kernel()
    rng = np.random.default_rng(seed)
    n = 100_003
    value = _values(rng, n)
    sums = rng.integers(-5000, 5000, n).astype(np.float32)
    limit = np.float32(0.4999)
    want_sums, (near, near_code, near_residual) = _numpy_tile_codes(
        value, sums, first, saturate, limit, -256, 255)
    out = sums.copy()
    index = np.empty(n, np.int64)
    code, residual = np.empty(n, np.float32), np.empty(n, np.float32)
    flagged = kernel(value, out, first, saturate, float(limit), -256, 255, index, code,
                     residual)
    ties = int(np.sum(value - np.floor(value) == 0.5))
    print(f"{ties} exact ties, {flagged} flagged, {int(np.sum(np.abs(value) > 255.5))} clipped")
    assert ties > n // 10 and flagged > n // 3
    assert np.array_equal(out.view(np.uint32), want_sums.view(np.uint32))
    assert flagged == len(near)
    np.testing.assert_array_equal(index[:flagged], near)
    assert np.array_equal(code[:flagged].view(np.uint32), near_code.view(np.uint32))
    assert np.array_equal(residual[:flagged].view(np.uint32), near_residual.view(np.uint32))


def test_tile_codes_refuse_mismatched_arrays():
    kernel = _kernel()
    v, s = np.zeros(8, np.float32), np.zeros(8, np.float32)
    room = (np.empty(8, np.int64), np.empty(8, np.float32), np.empty(8, np.float32))
    with pytest.raises(ValueError, match="value's size"):
        kernel(v, np.zeros(7, np.float32), True, False, 0.4, -1, 1, *room)
    with pytest.raises(TypeError, match="sums must be a writeable C-contiguous float32"):
        kernel(v, s.astype(np.float64), True, False, 0.4, -1, 1, *room)
    with pytest.raises(TypeError, match="value must be a writeable C-contiguous float32"):
        kernel(np.zeros(16, np.float32)[::2], s, True, False, 0.4, -1, 1, *room)


def test_kernels_are_built_once_per_source(tmp_path, monkeypatch):
    """A build lands in the cache under a name keyed by the source, and a second build of
    the same source takes it from there (nothing rewritten); an edited source gets a new
    build; a damaged cache entry is built again when it fails to load."""
    if native._compiler() is None:
        pytest.skip("no C compiler here")
    cache, sources = tmp_path / "cache", tmp_path / "src"
    sources.mkdir()
    (sources / "tile_codes.c").write_text((native._SOURCE_DIR / "tile_codes.c").read_text())
    monkeypatch.setenv("MBNN_NATIVE_DIR", str(cache))
    monkeypatch.setattr(native, "_SOURCE_DIR", sources)
    first = native._build("tile_codes")
    assert first.parent == cache and first.name.startswith("tile_codes-")
    stamp = first.stat().st_mtime_ns
    assert native._build("tile_codes") == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.name]      # no temp files left
    (sources / "tile_codes.c").write_text((sources / "tile_codes.c").read_text() + "\n/* */\n")
    edited = native._build("tile_codes")
    assert edited != first and sorted(p.name for p in cache.iterdir()) == sorted(
        [first.name, edited.name])
    edited.write_bytes(b"not a shared library")
    monkeypatch.setattr(native, "_libraries", {})
    assert native.tile_codes() is not None and edited.stat().st_size > 1000


def test_a_failed_build_warns_once_and_falls_back(tmp_path, monkeypatch):
    """A compiler that reports a version and then fails on the source: one warning naming
    the kernel and the compiler's message, then numpy (None), the same answer without
    another attempt, and no temporary file left in the cache."""
    compiler = tmp_path / "broken-cc"
    compiler.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'broken-cc 1.0'; "
                        "exit 0; }\necho 'broken-cc: cannot compile' >&2\nexit 1\n")
    compiler.chmod(0o755)
    cache = tmp_path / "cache"
    monkeypatch.setattr(native, "_libraries", {})
    monkeypatch.setenv("MBNN_NATIVE_DIR", str(cache))
    monkeypatch.setenv("CC", str(compiler))
    with pytest.warns(RuntimeWarning, match="C kernel tile_codes unavailable, using numpy: "
                      ".*broken-cc failed on tile_codes.c: broken-cc: cannot compile"):
        assert native.tile_codes() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.tile_codes() is None
    assert list(cache.iterdir()) == []


def _train_state(arch: str, images: int, monkeypatch, kernels: bool, **overrides) -> list:
    """Every latent weight, Adam moment, batch-norm parameter and running statistic after one
    epoch of ``arch``'s recipe on the first ``images`` training images."""
    from golden.mnist import binarize_pixels, load_mnist
    from golden.train import TrainConfig, Trainer

    with monkeypatch.context() as patch:
        if not kernels:
            patch.setattr(native, "adam_latent", lambda: None)
            patch.setattr(native, "train_steps", lambda: None)
        train = load_mnist("train")
        x = binarize_pixels(train.images[:images])
        y = train.labels[:images].astype(np.int64)
        trainer = Trainer(TrainConfig.recipe(arch, epochs=1, seed=5, recalibrate_bn=False,
                                             **overrides))
        assert (trainer.net.steps is not None) == kernels
        assert all((w._kernel is not None) == kernels for w in trainer.net.weights)
        trainer.fit(x, y, log=lambda *a, **k: None)
    state = []
    for w in trainer.net.weights:
        state += [w.latent, w.opt.m, w.opt.v, w.binary()]
    for bn in trainer.net.bns:
        if bn is not None:
            state += [bn.gamma, bn.beta, bn.mean, bn.var]
    return [np.array(s, copy=True) for s in state]


@pytest.mark.parametrize("arch, images, overrides", [
    ("cnn", 200, {}),
    ("mlp", 400, {}),
    ("mlp", 400, {"weight_noise_std": 0.1}),
])
def test_training_with_the_kernels_is_bit_identical(arch, images, overrides, monkeypatch):
    """One epoch with the fused kernels (Adam, and the CNN's unfolding, batch-norm, pooling
    and their backward passes) leaves every weight, moment and statistic bit-identical to
    numpy's passes (the recipes' shifts and dropout included)."""
    _kernel()
    fused = _train_state(arch, images, monkeypatch, True, **overrides)
    plain = _train_state(arch, images, monkeypatch, False, **overrides)
    assert len(fused) == len(plain)
    for k, (a, b) in enumerate(zip(fused, plain)):
        assert a.dtype == b.dtype and a.shape == b.shape, k
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"array {k} differs"


def test_adam_kernel_equals_numpy_adam(seed):
    """Three steps of the fused update against _Adam.delta, clip and copysign, bitwise, in
    both modes (the step returned; the latent weights moved), weights starting at the clip
    bounds and at -0.0 included."""
    from golden.train import _Adam

    print(f"seed {seed}")
    _kernel()
    kernel = native.adam_latent()
    rng = np.random.default_rng(seed)
    shape = (300, 7)
    latent0 = rng.uniform(-1, 1, shape).astype(np.float32)
    latent0.flat[:3] = (1.0, -1.0, -0.0)
    ours, theirs = _Adam(shape), _Adam(shape)
    fused, plain = latent0.copy(), latent0.copy()
    sign = np.empty(shape, np.float32)
    for t, lr in enumerate((0.03, 0.01, 3e-4)):
        grad = (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 2, shape)).astype(np.float32)
        step = theirs.delta(grad, lr)
        if t == 1:      # the step-only mode, as the in-situ update uses it
            got = ours.fused_step(kernel, fused, grad, lr)
            assert np.array_equal(got.view(np.uint32), step.view(np.uint32))
            fused -= got
            np.clip(fused, -1, 1, out=fused)
        else:
            ours.fused_step(kernel, fused, grad, lr, sign)
        plain -= step
        np.clip(plain, -1, 1, out=plain)
        for a, b in ((ours.m, theirs.m), (ours.v, theirs.v), (fused, plain)):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), t
    assert np.array_equal(sign.view(np.uint32),
                          np.copysign(np.float32(1), plain).view(np.uint32))


def test_train_steps_equal_their_numpy_code(seed):
    """Each fused step against the numpy code in golden.train on awkward shapes: one input
    channel (where batch-norm keeps numpy's pairwise sums), an odd map (7 x 7: the pooling drops a row and a column), integer-valued maps
    (ties for the maximum in most blocks), values beyond the straight-through window."""
    import golden.train as train

    print(f"seed {seed}")
    _kernel()
    steps = native.train_steps()
    rng = np.random.default_rng(seed)
    ties = blocks_seen = 0
    for n, h, w, c, k, pad, pad_value in ((3, 28, 28, 1, 3, 1, 0.0), (2, 7, 7, 5, 3, 1, -1.0),
                                          (2, 6, 5, 3, 3, 0, -1.0), (4, 14, 14, 64, 3, 1, -1.0)):
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        want, shape = train._im2col_nhwc(x, k, pad, pad_value)
        got, got_shape = steps.im2col(x, k, pad, pad_value)
        assert got_shape == shape and np.array_equal(got, want)
        gcols = rng.standard_normal(want.shape).astype(np.float32)
        want = np.ascontiguousarray(train._col2im_nhwc(gcols, x.shape, k, pad))
        assert np.array_equal(steps.col2im(gcols, x.shape, k, pad).view(np.uint32),
                              want.view(np.uint32))

        a = np.round(rng.standard_normal((n, h, w, c)) * 3).astype(np.float32)
        fused_bn = train._BatchNorm(c, 1e-5, 0.1, steps)
        plain_bn = train._BatchNorm(c, 1e-5, 0.1)
        gamma, beta = rng.uniform(0.5, 2, c), rng.uniform(-1, 1, c)
        for bn in (fused_bn, plain_bn):
            bn.gamma, bn.beta = gamma.copy(), beta.copy()
        y_fused, y_plain = fused_bn.forward_train(a), plain_bn.forward_train(a)
        assert np.array_equal(y_fused.view(np.uint32), y_plain.view(np.uint32))
        assert np.array_equal(fused_bn.mean, plain_bn.mean)
        assert np.array_equal(fused_bn.var, plain_bn.var)
        g = rng.standard_normal(a.shape).astype(np.float32)
        # a channel whose gradient is -0.0 everywhere: numpy's sums start from +0.0
        g[..., 0] = -0.0
        y_ste = np.where(rng.random(a.shape) < 0.3, 3.0, 0.5).astype(np.float32)
        for ste in (None, y_ste):
            gx_fused = fused_bn.backward(g, 0.01, ste)
            gx_plain = plain_bn.backward(g, 0.01, ste)
            assert np.array_equal(gx_fused.view(np.uint32), gx_plain.view(np.uint32))
            assert np.array_equal(fused_bn.gamma, plain_bn.gamma)
            assert np.array_equal(fused_bn.beta, plain_bn.beta)
        if c > 1:
            dbeta, _ = steps.bn_backward_sums(g, a)
            assert np.array_equal(dbeta.view(np.uint32), g.sum(axis=(0, 1, 2)).view(np.uint32))
            assert np.signbit(dbeta[0]) == np.signbit(g[..., 0].sum())
            y_sign, signs = steps.bn_normalize(a.copy(), np.ones(c, np.float32),
                                               np.ones(c, np.float32), np.zeros(c, np.float32),
                                               sign=True)
            assert np.array_equal(signs, train._sign(y_sign))

        p = 2
        a.flat[5] = np.nan               # numpy's maximum propagates a NaN; so must the pool
        blocks = a[:, :h // p * p, :w // p * p].reshape(n, h // p, p, w // p, p, c)
        pooled = blocks.max(axis=(2, 4))
        got, signs = steps.maxpool(a, p, sign=True)
        assert np.array_equal(got, pooled, equal_nan=True)
        assert np.array_equal(signs, train._sign(pooled))
        a.flat[5] = 0.0
        blocks = a[:, :h // p * p, :w // p * p].reshape(n, h // p, p, w // p, p, c)
        pooled = blocks.max(axis=(2, 4))
        assert np.array_equal(steps.maxpool(a, p), pooled)
        ties += int(np.sum((blocks == pooled[:, :, None, :, None, :]).sum(axis=(2, 4)) > 1))
        blocks_seen += pooled.size
        gp = rng.standard_normal(pooled.shape).astype(np.float32)
        share = (blocks == pooled[:, :, None, :, None, :]).astype(np.float32)
        share /= share.sum(axis=(2, 4), keepdims=True)
        want = np.zeros(a.shape, np.float32)
        want[:, :h // p * p, :w // p * p] = (share * (gp * (np.abs(pooled) <= 1))[
            :, :, None, :, None, :]).reshape(n, h // p * p, w // p * p, c)
        got = steps.maxpool_backward(a, pooled, gp, p)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    print(f"{ties} of {blocks_seen} pooling blocks with a tie for the maximum")
    assert ties > blocks_seen // 10
