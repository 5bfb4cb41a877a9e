"""Golden BNN primitives against plain-loop reference implementations written here."""

import numpy as np
import pytest

from golden.bnn import (Domain, argmax_class, binary_conv2d, binary_dense, flatten, im2col,
                        maxpool2d, sign)


def rand_pm1(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def rand_input(rng, shape, domain):
    lo, hi = domain.value
    return np.where(rng.random(shape) < 0.5, lo, hi).astype(np.int8)


def naive_conv(x, w, pad, off):
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.full((n, c, h + 2 * pad, wd + 2 * pad), off, dtype=np.int64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((n, m, ho, wo), dtype=np.int64)
    for b in range(n):
        for o in range(m):
            for i in range(ho):
                for j in range(wo):
                    acc = 0
                    for ci in range(c):
                        for di in range(kh):
                            for dj in range(kw):
                                acc += int(xp[b, ci, i + di, j + dj]) * int(w[o, ci, di, dj])
                    out[b, o, i, j] = acc
    return out


def test_sign_of_zero_is_plus_one():
    assert sign(np.array([-3, -1, 0, 1, 7])).tolist() == [-1, -1, 1, 1, 1]


@pytest.mark.parametrize("domain", list(Domain))
def test_dense_matches_loops(seed, domain):
    rng = np.random.default_rng(seed)
    x, w = rand_input(rng, (5, 37), domain), rand_pm1(rng, (37, 11))
    want = [[sum(int(x[i, k]) * int(w[k, j]) for k in range(37)) for j in range(11)] for i in range(5)]
    got = binary_dense(x, w, domain)
    assert got.dtype == np.int32 and got.tolist() == want


@pytest.mark.parametrize("domain", list(Domain))
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_conv2d_matches_loops_with_off_value_padding(seed, domain, pad):
    rng = np.random.default_rng(seed + pad)
    x, w = rand_input(rng, (2, 3, 6, 5), domain), rand_pm1(rng, (4, 3, 3, 3))
    got = binary_conv2d(x, w, pad, domain)
    assert np.array_equal(got, naive_conv(x, w, pad, domain.off))


def test_bipolar_padding_is_minus_one_not_zero():
    # A single +1 kernel on an all-+1 map: border outputs see -1 padding.
    x = np.ones((1, 1, 3, 3), np.int8)
    w = np.ones((1, 1, 3, 3), np.int8)
    out = binary_conv2d(x, w, 1, Domain.BIPOLAR)[0, 0]
    # corner: 4 inputs of +1 and 5 pads of -1
    assert out[0, 0] == 4 - 5 and out[1, 1] == 9
    out_u = binary_conv2d(x.astype(np.uint8), w, 1, Domain.UNIPOLAR)[0, 0]
    assert out_u[0, 0] == 4


def test_im2col_order_matches_weight_reshape(seed):
    rng = np.random.default_rng(seed)
    x = rand_input(rng, (1, 2, 4, 4), Domain.BIPOLAR)
    cols = im2col(x, (2, 3), 0, Domain.BIPOLAR)
    assert cols.shape == (1, 3, 2, 2 * 2 * 3)
    # window at output (1, 0): rows 1..2, cols 0..2, ordered channel, ky, kx
    assert cols[0, 1, 0].tolist() == x[0, :, 1:3, 0:3].reshape(-1).tolist()


def test_maxpool_matches_loops_and_drops_remainder(seed):
    rng = np.random.default_rng(seed)
    x = rand_input(rng, (2, 3, 7, 6), Domain.BIPOLAR)
    got = maxpool2d(x, 2)
    assert got.shape == (2, 3, 3, 3)
    for b, c, i, j in np.ndindex(*got.shape):
        assert got[b, c, i, j] == max(x[b, c, 2 * i + di, 2 * j + dj] for di in (0, 1) for dj in (0, 1))


def test_flatten_is_channel_major():
    x = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    assert flatten(x)[1].tolist() == list(range(12, 24))


def test_argmax_ties_go_to_lowest_index():
    assert argmax_class(np.array([[3, 5, 5, 1], [-2, -2, -2, -2]])).tolist() == [1, 0]


def test_domain_and_shape_errors_name_the_value():
    w = np.ones((4, 2), np.int8)
    with pytest.raises(ValueError, match=r"x must hold only \{0, 1\} \(unipolar\), found -1"):
        binary_dense(-np.ones((1, 4), np.int8), w, Domain.UNIPOLAR)
    with pytest.raises(ValueError, match=r"w must hold only \{1, -1\} \(bipolar\), found 0"):
        binary_dense(np.ones((1, 4), np.int8), np.zeros((4, 2), np.int8), Domain.UNIPOLAR)
    with pytest.raises(ValueError, match=r"needs x \(N, K\) and w \(K, M\); got \(1, 3\) and \(4, 2\)"):
        binary_dense(np.ones((1, 3), np.int8), w, Domain.BIPOLAR)
    with pytest.raises(ValueError, match="must hold integers"):
        binary_dense(np.ones((1, 4), np.float32), w, Domain.BIPOLAR)
    with pytest.raises(ValueError, match="padding must be a non-negative integer, not -1"):
        binary_conv2d(np.ones((1, 1, 3, 3), np.int8), np.ones((1, 1, 3, 3), np.int8), -1, Domain.BIPOLAR)
    with pytest.raises(ValueError, match="pool size must be a positive integer, not 0"):
        maxpool2d(np.ones((1, 1, 2, 2)), 0)
