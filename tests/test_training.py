"""Training: determinism, the float/integer agreement guarantee, hardware-aware hooks."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer
from golden.train import FAULT_OFF, TrainConfig, Trainer, _BinaryWeights

from conftest import assert_same_models

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mnist():
    train, test = load_mnist("train"), load_mnist("test")
    return (binarize_pixels(train.images), train.labels.astype(np.int64),
            binarize_pixels(test.images), test.labels.astype(np.int64))


def quiet(*args, **kwargs):
    pass


# The CNN is compared on 2000 test images (its float evaluation is the slow part; the shipped
# CNN's export is compared on all 10 000 in test_shipped_models.py).
@pytest.mark.parametrize("arch, n_train, n_test", [("mlp", 3000, 10000), ("cnn", 1500, 2000)])
def test_integer_export_predicts_exactly_like_the_float_network(mnist, seed, arch, n_train,
                                                                n_test):
    """After a short training run, the exported integer model (folded thresholds, no floats)
    and the training code's own float evaluation agree on every test image compared."""
    x, y, xt, yt = mnist
    xt, yt = xt[:n_test], yt[:n_test]
    trainer = Trainer(TrainConfig(arch=arch, epochs=1, seed=seed, lr_start=0.03))
    trainer.fit(x[:n_train], y[:n_train], log=quiet)
    model = trainer.export()
    float_pred = trainer.predict(xt)
    int_pred = infer(model, xt).predictions
    print(f"seed {seed}: float accuracy {(float_pred == yt).mean():.4f}")
    # Agreement is only meaningful if the network discriminates: well above chance, and
    # spreading its answers over the classes.
    assert (float_pred == yt).mean() > 0.3 and len(np.unique(float_pred)) >= 8
    assert np.array_equal(float_pred, int_pred)


def test_training_is_deterministic_for_a_seed(mnist, seed):
    x, y, _, _ = mnist
    models = []
    for _ in range(2):
        t = Trainer(TrainConfig(arch="mlp", epochs=1, seed=seed))
        t.fit(x[:1000], y[:1000], log=quiet)
        models.append(t.export())
    assert_same_models(*models)


def test_weight_noise_is_multiplicative_with_the_given_std(seed):
    rng = np.random.default_rng(seed)
    w = _BinaryWeights(rng, (200, 300))
    noisy = w.effective(rng, 0.1)
    ratio = noisy / w.binary()
    assert abs(ratio.mean() - 1) < 0.002 and abs(ratio.std() - 0.1) < 0.002
    assert np.array_equal(w.effective(rng, 0.0), w.binary())


def test_fault_map_forces_cells_and_freezes_their_latent_weights(mnist, seed):
    x, y, _, _ = mnist
    rng = np.random.default_rng(seed)
    shape = (784, 1024)
    fault = rng.choice(np.array([0, 1, -1, FAULT_OFF], np.int8), size=shape, p=[0.9, 0.03, 0.03, 0.04])
    trainer = Trainer(TrainConfig(arch="mlp", epochs=1, seed=seed), fault_maps={0: fault})
    weights = trainer.net.weights[0]
    before = weights.latent.copy()
    eff = weights.effective(rng, 0.0)
    assert np.all(eff[fault == 1] == 1) and np.all(eff[fault == -1] == -1)
    assert np.all(eff[fault == FAULT_OFF] == 0)
    trainer.fit(x[:500], y[:500], log=quiet)
    assert np.array_equal(weights.latent[fault != 0], before[fault != 0])
    assert not np.array_equal(weights.latent[fault == 0], before[fault == 0])
    with pytest.raises(ValueError, match="fault map codes must be"):
        Trainer(TrainConfig(arch="mlp", epochs=1), fault_maps={0: np.full(shape, 5)})


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="rnn"), "arch must be one of \\['cnn', 'mlp', 'mlp250'\\], not 'rnn'"),
    (dict(epochs=0), "epochs must be a positive integer, not 0"),
    (dict(lr_start=1e-3, lr_end=1e-2), "need 0 < lr_end <= lr_start"),
    (dict(dropout=1.0), "dropout must be in \\[0, 1\\), not 1.0"),
    (dict(recalibrate_epochs=-1), "recalibrate_epochs must be an integer >= 0, not -1"),
    (dict(rotate_augment=float("nan")), "rotate_augment must be a finite number >= 0, not nan"),
    (dict(elastic_augment=-1.0), "elastic_augment must be a finite number >= 0, not -1.0"),
    (dict(scale_augment=1.0), "scale_augment must be in \\[0, 1\\), not 1.0"),
    (dict(elastic_sigma=0.0), "elastic_sigma must be a finite number > 0, not 0.0"),
])
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_batchnorm_backward_matches_finite_differences(seed):
    from golden.train import _BatchNorm
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(6, 4, 4, 3))
    gout = rng.normal(size=a.shape)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.normal(size=3)

    def fresh():
        bn = _BatchNorm(3, 1e-5, 0.1)
        bn.gamma, bn.beta = gamma.copy(), beta.copy()
        return bn

    def loss(x):
        return float((fresh().forward_train(x) * gout).sum())
    bn = fresh()
    bn.forward_train(a)
    dx = bn.backward(gout.astype(np.float32), 0.0)
    h = 1e-2    # float32 internals: a larger step keeps rounding noise below the h^2 error
    num = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (loss(up) - loss(down)) / (2 * h)
    assert np.abs(num - dx).max() < 1e-3 * np.abs(num).max()


def test_col2im_is_the_adjoint_of_im2col(seed):
    """<im2col(x), c> == <x, col2im(c)>: the convolution's input gradient is exact."""
    from golden.train import _col2im_nhwc, _im2col_nhwc
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    cols, _ = _im2col_nhwc(x, 3, 1, 0.0)
    c = rng.normal(size=cols.shape).astype(np.float32)
    lhs = float((cols.astype(np.float64) * c).sum())
    rhs = float((x.astype(np.float64) * _col2im_nhwc(c, x.shape, 3, 1)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_batchnorm_sign_lookup_equals_the_golden_specification(seed):
    """The float network's inference activation -- the integral fast path, which evaluates
    the batch-norm expression once per (value, channel) and looks its sign up, and the plain
    path -- equals golden.bn_fold.bn_sign_reference on every element."""
    from golden.bn_fold import bn_sign_reference
    from golden.train import _BatchNorm
    rng = np.random.default_rng(seed)
    bn = _BatchNorm(16, 1e-5, 0.1)
    bn.gamma, bn.beta = rng.normal(size=16), rng.normal(size=16)
    bn.mean, bn.var = rng.normal(size=16) * 20, rng.random(16) * 50 + 1e-3
    # 300 values x 16 channels x 8 <= 40 320 elements: the lookup is taken
    a = rng.integers(-150, 150, size=(40, 9, 7, 16)).astype(np.float32)
    want = bn_sign_reference(a, bn.as_batchnorm())
    fast, plain = bn.sign_eval(a, integral=True), bn.sign_eval(a)
    assert fast.dtype == plain.dtype == np.float32
    assert np.array_equal(fast, want) and np.array_equal(plain, want)
    assert 0 < (want > 0).mean() < 1


def test_inference_in_any_pass_size_predicts_like_the_integer_model(seed):
    """The float network predicts what the golden integer model predicts, in its own pass
    size (50 images for a CNN) and in passes of 7, on random binary images."""
    from golden.model import load_model
    rng = np.random.default_rng(seed)
    model = load_model(REPO / "models" / "cnn.npz")
    trainer = Trainer(TrainConfig.recipe("cnn"), init=model)
    x = (rng.random((120, 784)) < 0.3).astype(np.uint8)
    want = infer(model, x).predictions
    assert trainer.net.inference_batch() == 50
    assert np.array_equal(trainer.predict(x), want)
    assert np.array_equal(trainer.predict(x, batch_size=7), want)


def test_progress_shows_loss_and_accuracy_during_and_after_each_epoch(mnist):
    """The progress bar (every 20 steps) carries the running loss, training accuracy and the
    epoch's time left; each epoch ends with one line of loss, train and test accuracy whose
    figures are the epoch's recorded statistics."""
    x, y, xt, yt = mnist
    lines = []
    trainer = Trainer(TrainConfig(arch="mlp", epochs=2, seed=3, batch_size=50))
    history = trainer.fit(x[:2100], y[:2100], xt[:200], yt[:200],
                          log=lambda text, final=False: lines.append((text, final)))
    bars = [t for t, final in lines if not final]
    ends = [t for t, final in lines if final]
    assert len(bars) == 2 * 3              # 42 steps an epoch: steps 0, 20 and 40
    assert all("] loss " in t and "% " in t and " s left" in t for t in bars), bars
    assert bars[2].startswith("epoch 1/2 [" + "#" * 29)
    for stats, line in zip(history, ends):
        assert f"loss {stats.loss:.4f}" in line
        assert f"train {100 * stats.train_accuracy:.2f}%" in line
        assert f"test {100 * stats.test_accuracy:.2f}%" in line


def test_augmented_recalibration_is_the_exact_mean_of_the_batch_statistics(mnist, seed):
    """Layer 0's statistics after ``recalibrate_augmented``: the mean over the epoch's batches
    (drawn from the generator of ``(seed, 2)``) of each batch's mean and (biased) variance of
    the pre-activation, computed here from the binary weights; weights, the training
    generator and the momentum are left as they were."""
    x, y, _, _ = mnist
    cfg = TrainConfig(arch="mlp250", epochs=1, seed=seed, batch_size=100, shift_augment=0,
                      dropout=0.0, recalibrate_bn=False)
    trainer = Trainer(cfg)
    trainer.fit(x[:300], y[:300], log=quiet)
    latent = [w.latent.copy() for w in trainer.net.weights]
    state = trainer.rng.bit_generator.state
    trainer.recalibrate_augmented(x[:300], 1)
    order = np.random.default_rng((seed, 2)).permutation(300)
    w = trainer.net.weights[0].binary().astype(np.float64)
    a = [x[order[s:s + 100]].reshape(100, -1).astype(np.float64) @ w for s in (0, 100, 200)]
    bn = trainer.net.bns[0]
    assert np.allclose(bn.mean, np.mean([b.mean(axis=0) for b in a], axis=0), rtol=1e-6)
    assert np.allclose(bn.var, np.mean([b.var(axis=0) for b in a], axis=0), rtol=1e-5)
    assert not np.allclose(bn.var, np.concatenate(a).var(axis=0), rtol=1e-3)  # not pooled
    assert all(np.array_equal(w.latent, l) for w, l in zip(trainer.net.weights, latent))
    assert trainer.rng.bit_generator.state == state and bn.momentum == cfg.bn_momentum


def test_augmented_recalibration_in_one_unaugmented_batch_is_the_population_statistics(mnist):
    """With no augmentation and every image in one batch, the training forward pass's batch
    statistics are the population statistics that :meth:`Trainer.recalibrate` computes in
    inference mode, in every layer."""
    x, y, _, _ = mnist
    cfg = TrainConfig(arch="mlp", epochs=1, seed=4, batch_size=100, shift_augment=0,
                      dropout=0.0, recalibrate_bn=False)
    trainer = Trainer(cfg)
    trainer.fit(x[:500], y[:500], log=quiet)
    trainer.recalibrate(x[:500])
    bns = [bn for bn in trainer.net.bns if bn is not None]
    population = [(bn.mean.copy(), bn.var.copy()) for bn in bns]
    for bn in bns:      # so that a recalibration that leaves them alone fails
        bn.mean, bn.var = np.zeros_like(bn.mean), np.ones_like(bn.var)
    trainer.cfg = replace(cfg, batch_size=500)
    trainer.recalibrate_augmented(x[:500], 2)
    for (mean, var), bn in zip(population, bns):
        assert np.allclose(bn.mean, mean, rtol=1e-5, atol=1e-3)
        assert np.allclose(bn.var, var, rtol=1e-4)
