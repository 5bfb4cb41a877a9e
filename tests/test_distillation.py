"""Knowledge distillation: the float teacher's gradients, the distillation loss's gradient, and
its configuration."""

import numpy as np
import pytest

from golden.mnist import binarize_pixels, load_mnist
from golden.model import ARCHITECTURES, Architecture, LayerSpec
from golden.teacher import FloatTeacher
from golden.train import TrainConfig, Trainer, _Adam, _softmax

from conftest import assert_same_models

SMALL = Architecture("small", (784,), (LayerSpec("dense", 16), LayerSpec("dense", 12),
                                       LayerSpec("dense", 10)))


class _Recorder:
    """An optimiser that keeps the last gradient and leaves the parameter alone."""

    def __init__(self, shape):
        self.grad = None

    def step(self, param, grad, lr):
        self.grad = np.array(grad, np.float64)


def _teacher_in_float64(seed, dropout):
    teacher = FloatTeacher(SMALL, np.random.default_rng(seed), dropout, _Recorder)
    teacher.weights = [w.astype(np.float64) for w in teacher.weights]
    teacher.biases = [b.astype(np.float64) + 0.01 for b in teacher.biases]
    return teacher


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_teacher_gradients_match_finite_differences(seed, dropout):
    """Every weight's and bias's gradient (ReLU, dropout masks, softmax cross-entropy) against
    central differences of the same loss in float64, the masks drawn identically each time."""
    rng = np.random.default_rng(seed)
    x = (rng.random((8, 784)) < 0.3).astype(np.float32)
    y = rng.integers(0, 10, 8)
    teacher = _teacher_in_float64(seed, dropout)

    def loss():
        teacher.rng = np.random.default_rng(seed + 1)      # the same dropout masks every time
        z, _ = teacher._forward(x, True)
        p = _softmax(np.asarray(z, np.float64))
        return -np.log(p[np.arange(8), y]).mean()

    teacher.rng = np.random.default_rng(seed + 1)
    teacher.train_step(x, y, 0.0)
    params = teacher.weights + teacher.biases
    checked = 0
    for param, opt in zip(params, teacher._optimizers):
        for _ in range(6):
            idx = tuple(rng.integers(0, n) for n in param.shape)
            h = 1e-6
            param[idx] += h
            up = loss()
            param[idx] -= 2 * h
            down = loss()
            param[idx] += h
            num = (up - down) / (2 * h)
            assert abs(num - opt.grad[idx]) <= 1e-6 + 1e-4 * abs(num), (seed, idx, num)
            checked += num != 0
    assert checked >= 10        # the comparison saw live gradients, not only dead ReLUs


def test_distillation_loss_gradient_matches_finite_differences(seed):
    """``train_step``'s gradient with respect to the scores and the learned log-temperature,
    for ``(1 - a) CE + a T^2 KL(soft || softmax(logits / T))``, against central differences of
    the loss it returns (the network's forward and backward replaced by fixed scores)."""
    rng = np.random.default_rng(seed)
    cfg = TrainConfig(arch="mlp250", distill=0.7, distill_temperature=3.0, seed=seed)
    net = Trainer(cfg).net
    scores = rng.integers(-20, 21, size=(5, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5)
    soft = _softmax(rng.normal(size=(5, 10)) * 2)
    seen = {}
    net.forward = lambda pixels, train: pixels
    net.backward = lambda g, lr: seen.__setitem__("g", g.astype(np.float64))
    net.opt_scale.step = lambda param, grad, lr: seen.__setitem__("dscale", grad)
    loss0, _ = net.train_step(scores, labels, 0.0, soft)
    g, dscale = seen["g"], seen["dscale"]
    h = 1e-3
    num = np.zeros_like(g)
    for idx in np.ndindex(*scores.shape):
        up, down = scores.astype(np.float64), scores.astype(np.float64)
        up[idx] += h
        down[idx] -= h
        num[idx] = (net.train_step(up, labels, 0.0, soft)[0]
                    - net.train_step(down, labels, 0.0, soft)[0]) / (2 * h)
    assert np.abs(num - g).max() < 1e-6
    log_scale = float(net.log_scale)
    losses = []
    for d in (h, -h):
        net.log_scale = np.array(log_scale + d)
        losses.append(net.train_step(scores, labels, 0.0, soft)[0])
    assert abs((losses[0] - losses[1]) / (2 * h) - dscale) < 1e-6
    assert np.abs(g).max() > 1e-3 and loss0 > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(distill=1.5), "distill must be in \\[0, 1\\], not 1.5"),
    (dict(distill_temperature=0.0), "distill_temperature must be > 0, not 0.0"),
    (dict(teacher_epochs=0), "teacher_epochs must be a positive integer, not 0"),
    (dict(arch="cnn", distill=0.5), "distill needs an all-dense architecture .* not 'cnn'"),
])
def test_bad_distillation_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_teacher_refuses_a_convolutional_architecture():
    with pytest.raises(ValueError, match="all-dense architecture, not 'cnn'"):
        FloatTeacher(ARCHITECTURES["cnn"], np.random.default_rng(0), 0.0, _Adam)


def test_distilled_training_is_deterministic_and_its_teacher_learns(seed):
    train, test = load_mnist("train"), load_mnist("test")
    x, y = binarize_pixels(train.images[:2000]), train.labels[:2000].astype(np.int64)
    xt, yt = binarize_pixels(test.images[:1000]), test.labels[:1000].astype(np.int64)
    cfg = TrainConfig(arch="mlp250", epochs=1, seed=seed, distill=0.5, teacher_epochs=2,
                      lr_start=0.03, batch_size=20)
    models, lines = [], []
    for _ in range(2):
        trainer = Trainer(cfg)
        trainer.fit(x, y, xt, yt, log=lambda text, final=False: lines.append(text))
        models.append(trainer.export())
    assert_same_models(*models)
    # the teacher's epochs logged the same loss and accuracy in both runs (times aside)
    teacher_lines = [t.rsplit("(", 1)[0] for t in lines if t.startswith("teacher epoch 2/2")]
    print(f"seed {seed}: {teacher_lines[0]}")
    assert len(teacher_lines) == 2 and teacher_lines[0] == teacher_lines[1]
    assert float(teacher_lines[0].split("test ")[1].split("%")[0]) > 75.0   # chance: 10 %
    assert models[0].metadata["training"]["distill"] == 0.5
