"""Hardware-aware training: fault maps from a programmed chip, the training code's chip model
against the golden chip read, reprogramming the same chip, and fine-tuning that recovers."""

from dataclasses import replace

import numpy as np
import pytest

from golden.analog.aware_training import (RandomStuckCells, _pair_reads, chip_fault_maps,
                                          chip_weight_reads, fine_tune_on_chip, fixed_reads,
                                          layer_matrix, model_weights, programming_spread,
                                          reprogram_chip, stuck_counts)
from golden.analog.chip_state import analog_infer, program_chip
from golden.analog.devices import device_preset
from golden.bn_fold import BatchNorm
from golden.chip import ChipConfig
from golden.conductance import program
from golden.mapping import compile_model
from golden.mnist import binarize_pixels, load_mnist
from golden.model import ARCHITECTURES, Architecture, BnnModel, Layer, LayerSpec
from golden.train import TrainConfig, Trainer
from sim.stimulus import random_model as stimulus_model

from conftest import assert_same_models

# Input channels (2) and first-layer outputs (6) that do not fill the 4-column arrays of
# SMALL_CHIP, so the activation buffers carry padded channels (stride 8 for 6 channels).
TINY_CNN = Architecture("tiny_cnn", (2, 5, 5), (
    LayerSpec("conv", 6, kernel=3, padding=1, pool=2),
    LayerSpec("conv", 5, kernel=3, padding=1),
    LayerSpec("dense", 4)))
TINY_MLP = Architecture("tiny_mlp", (12,), (LayerSpec("dense", 7), LayerSpec("dense", 5)))
SMALL_CHIP = ChipConfig(rows=8, columns=4)
MNIST_MLP = Architecture("mnist_mlp", (784,), (LayerSpec("dense", 64), LayerSpec("dense", 10)))


def quiet(*args, **kwargs):
    pass


def random_model(arch, rng) -> BnnModel:
    """Random weights, thresholds at each channel's median pre-activation (so the bits keep
    changing from input to input: :func:`sim.stimulus.random_model`), and the batch-norm that
    folds to exactly those thresholds, which the training code evaluates in float:
    ``gamma = +-1`` (invert), ``mean = threshold - 0.5``, so ``bn(a) >= 0`` iff ``a >= t``."""
    model = stimulus_model(arch, rng)
    layers = []
    for layer in model.layers:
        bn = None
        if layer.threshold is not None:
            t = layer.threshold
            gamma = np.where(t.invert, -1.0, 1.0)
            bn = BatchNorm(gamma=gamma, beta=np.zeros_like(gamma), mean=t.threshold - 0.5,
                           var=np.ones_like(gamma), eps=0.0)
        layers.append(Layer(weight=layer.weight, threshold=layer.threshold, batchnorm=bn))
    return BnnModel(arch=arch, layers=layers, metadata={})


def single_cell_stuck_map(shape, rng, rate):
    """Stuck cells (+1 on, -1 off) at ``rate`` per cell, never both cells of one differential
    pair: a single stuck cell keeps every pre-activation inside the model's range."""
    stuck = rng.choice(np.array([-1, 1], np.int8), size=shape) * (rng.random(shape) < rate)
    stuck[..., 1::2] *= (stuck[..., 0::2] == 0)
    return stuck.astype(np.int8)


@pytest.mark.parametrize("arch", [TINY_CNN, TINY_MLP], ids=["conv", "dense"])
def test_model_weights_inverts_the_crossbar_layout(arch, seed):
    model = random_model(arch, np.random.default_rng(seed))
    mapped = compile_model(model, SMALL_CHIP)
    target = program(mapped)            # the arrays as golden.conductance places the weights
    per_tile = np.rint((target.g_pos_s - target.g_neg_s) / target.g_unit_s).astype(np.int8)
    for layer, original in zip(mapped.layers, model.layers):
        assert layer.row_tiles * layer.column_tiles > 1
        assert np.array_equal(layer_matrix(layer, SMALL_CHIP, per_tile), layer.weights)
        assert np.array_equal(model_weights(layer, layer.weights), original.weight)


def test_a_hand_placed_stuck_cell_lands_on_its_conv_weight(seed):
    """Layer 1 of TINY_CNN reads 6 channels padded to a stride of 8 and has 5 output channels
    on two column tiles (4 + 1): weight (o, c, ky, kx) is crossbar row (ky * 3 + kx) * 8 + c,
    column o. Row 49 is (2, 0, c=1), row 50 (2, 0, c=2), row 54 (2, 0, c=6) a padded channel;
    all three sit in row tile 6 (rows 1, 2 and 6 of it). Physical columns 2j and 2j + 1 are
    G+ and G- of the tile's weight column j."""
    print(f"seed {seed}")
    model = random_model(TINY_CNN, np.random.default_rng(seed))
    mapped = compile_model(model, SMALL_CHIP)
    state = program_chip(mapped)
    layer = mapped.layers[1]
    assert (layer.row_tiles, layer.column_tiles, layer.input_map.stride) == (9, 2, 8)
    second = layer.tile_base + 1 * layer.row_tiles + 6      # column tile 1: o = 4 + j
    first = layer.tile_base + 0 * layer.row_tiles + 6       # column tile 0: o = j
    stuck = np.zeros_like(state.stuck)
    stuck[second, 1, 0] = -1        # G+ of weight (4, 1, 2, 0) stuck off: +1 reads 0
    stuck[second, 1, 3] = 1         # G- of column j = 1 of tile column 1: o = 5, unused
    stuck[first, 2, 4] = 1          # G+ and G- of weight (2, 2, 2, 0): forced to +1
    stuck[first, 2, 5] = -1
    stuck[first, 6, 0] = 1          # a padded input channel: no weight
    faults = chip_fault_maps(mapped, replace(state, stuck=stuck))
    f = faults[1]
    assert (f.if_pos[4, 1, 2, 0], f.if_neg[4, 1, 2, 0]) == (0, -1)
    assert (f.if_pos[2, 2, 2, 0], f.if_neg[2, 2, 2, 0]) == (1, 1)
    assert np.count_nonzero(f.faulty) == 2
    for i in (0, 2):
        assert not faults[i].faulty.any()
    w = model.layers[1].weight
    counts = stuck_counts(model, mapped, replace(state, stuck=stuck))
    assert (counts.cells, counts.weights) == (3, 2)
    assert counts.misread == int(w[4, 1, 2, 0] == 1) + int(w[2, 2, 2, 0] == -1)


def test_forbidden_sign_reads_zero_in_the_golden_read(seed):
    """A one-layer dense model on unipolar pixels: with one pixel on, each score is the weight
    of that row. A +1 whose G+ is stuck off, or whose G- is stuck on, scores 0; a -1 with the
    same faults is unaffected; a -1 whose G+ is stuck on scores 0 (rram: G_off = 10 uS > 0)."""
    print(f"seed {seed}")
    arch = Architecture("one", (3,), (LayerSpec("dense", 4),))
    w = np.array([[1, 1, -1, -1], [-1, 1, 1, 1], [1, -1, -1, 1]], np.int8)
    model = BnnModel(arch=arch, layers=[Layer(weight=w, threshold=None)], metadata={})
    chip = ChipConfig(rows=4, columns=4, device=device_preset("rram", g_dtod_sigma_ln=0.0,
                                                              read_noise_std=0.0))
    mapped = compile_model(model, chip)
    state = program_chip(mapped, seed)
    stuck = np.zeros_like(state.stuck)
    stuck[0, 0, 0] = -1     # row 0, column 0 (+1): G+ off -> 0
    stuck[0, 0, 3] = 1      # row 0, column 1 (+1): G- on  -> 0
    stuck[0, 0, 4] = -1     # row 0, column 2 (-1): G+ off -> -1
    stuck[0, 0, 6] = 1      # row 0, column 3 (-1): G+ on  -> 0
    chip_state = reprogram_chip(mapped, replace(state, stuck=stuck), seed)
    scores = analog_infer(mapped, chip_state, np.eye(3, dtype=np.uint8)).scores
    assert scores[0].tolist() == [0, 0, -1, 0]
    assert np.array_equal(scores[1:], w[1:])
    f = chip_fault_maps(mapped, chip_state)[0]
    assert np.array_equal(f.read(w), scores)


@pytest.mark.parametrize("arch", [TINY_CNN, TINY_MLP], ids=["conv", "dense"])
def test_training_forward_with_chip_faults_equals_the_golden_chip(arch, seed, monkeypatch):
    """The training code's float evaluation with a chip's fault maps as reads gives the golden
    analog read's integer scores exactly: forbidden signs, the sign-constant correction of
    hidden layers (which subtracts the programmed signs), padding and the row order."""
    print(f"seed {seed}")
    monkeypatch.setitem(ARCHITECTURES, arch.name, arch)
    rng = np.random.default_rng(seed)
    model = random_model(arch, rng)
    mapped = compile_model(model, SMALL_CHIP)
    state = program_chip(mapped)
    stuck = single_cell_stuck_map(state.stuck.shape, rng, 0.15)
    chip_state = reprogram_chip(mapped, replace(state, stuck=stuck), seed)
    faults = chip_fault_maps(mapped, chip_state)
    assert sum(np.count_nonzero(f.read(l.weight) != l.weight)
               for f, l in zip(faults.values(), model.layers)) > 10
    x = (rng.random((300,) + arch.input_shape) < 0.5).astype(np.uint8)
    golden = analog_infer(mapped, chip_state, x)
    ideal = analog_infer(mapped, state, x)
    assert not np.array_equal(golden.scores, ideal.scores)
    assert len(np.unique(golden.scores, axis=0)) >= 10     # the scores depend on the input
    trainer = Trainer(TrainConfig(arch=arch.name, epochs=1), init=model,
                      reads=fixed_reads(faults))
    scores = trainer.net.forward(x.reshape(len(x), -1), train=False)
    assert np.array_equal(scores, golden.scores)


def test_reprogramming_keeps_the_stuck_cells_and_redraws_programming_error(seed):
    print(f"seed {seed}")
    device = device_preset("rram", stuck_on_rate=0.05, stuck_off_rate=0.1)
    chip = ChipConfig(rows=8, columns=4, device=device, r_wire_ohm=1.0, r_sense_ohm=5.0)
    rng = np.random.default_rng(seed)
    first, second = random_model(TINY_MLP, rng), random_model(TINY_MLP, rng)
    state = program_chip(compile_model(first, chip), seed)
    assert state.stuck.any()
    again = reprogram_chip(compile_model(second, chip), state, seed + 1)
    assert np.array_equal(again.stuck, state.stuck)
    on, off = state.stuck == 1, state.stuck == -1
    assert np.all(again.g_phys_s[on] == device.g_on_s)
    assert np.all(again.g_phys_s[off] == device.g_off_s)
    healthy = state.stuck == 0
    assert np.all(again.g_phys_s[healthy] != state.g_phys_s[healthy])


def test_reprogramming_a_fault_free_chip_is_programming_it(seed):
    """Without stuck cells or ADC errors, reprogram_chip makes program_chip's draws in its
    order: the same state bit for bit (parasitics included)."""
    chip = ChipConfig(rows=8, columns=4, device="rram", r_wire_ohm=1.0, r_source_ohm=2.0)
    mapped = compile_model(random_model(TINY_MLP, np.random.default_rng(seed)), chip)
    state = program_chip(mapped, seed)
    again = reprogram_chip(mapped, program_chip(mapped, seed + 7), seed)
    for name in ("g_pos_s", "g_neg_s", "g_phys_s", "stuck", "adc_gain"):
        assert np.array_equal(getattr(again, name), getattr(state, name)), name


def test_reprogramming_refuses_another_chip(seed):
    """A chip programmed for one configuration, or with another number of arrays, is not
    the chip a mapped model can be reprogrammed onto."""
    chip = ChipConfig(rows=8, columns=4, device="rram")
    model = random_model(TINY_MLP, np.random.default_rng(seed))
    state = program_chip(compile_model(model, chip), seed)
    with pytest.raises(ValueError, match="another chip configuration"):
        reprogram_chip(compile_model(model, replace(chip, rows=16)), state, seed)
    with pytest.raises(ValueError, match=f"has {state.tiles} arrays, the target"):
        reprogram_chip(compile_model(random_model(TINY_CNN, np.random.default_rng(seed)),
                                     chip), state, seed)


def test_measured_reads_are_the_chip_at_its_programmed_signs(seed):
    """With wire resistance and no programming error, a weight's measured read for the sign
    it holds is the chip's effective (G+ - G-) / G_unit; without wire resistance the measured
    reads are the fault maps."""
    print(f"seed {seed}")
    device = device_preset("rram", g_dtod_sigma_ln=0.0)
    rng = np.random.default_rng(seed)
    model = random_model(TINY_CNN, rng)
    for r_wire, exact in ((2.0, False), (0.0, True)):
        chip = ChipConfig(rows=8, columns=4, device=device, r_wire_ohm=r_wire)
        mapped = compile_model(model, chip)
        state = program_chip(mapped, seed)
        stuck = single_cell_stuck_map(state.stuck.shape, rng, 0.1)
        state = reprogram_chip(mapped, replace(state, stuck=stuck), seed)
        measured = chip_weight_reads(mapped, state)
        faults = chip_fault_maps(mapped, state)
        d = (state.g_pos_s - state.g_neg_s) / state.g_unit_s
        for layer, l in zip(mapped.layers, model.layers):
            chip_read = model_weights(layer, layer_matrix(layer, chip, d))
            np.testing.assert_allclose(measured[layer.index].read(l.weight), chip_read,
                                       rtol=0, atol=1e-9)
            same = np.allclose(measured[layer.index].if_pos, faults[layer.index].if_pos) and \
                np.allclose(measured[layer.index].if_neg, faults[layer.index].if_neg)
            assert same == exact
            if not exact:       # attenuation: healthy reads shrink below 1
                healthy = ~faults[layer.index].faulty
                assert 0.5 < np.abs(chip_read[healthy]).max() < 1


def test_random_stuck_cells_draw_the_pair_semantics_at_the_rates(seed):
    """Per-batch faults: frequencies of each read against the probabilities worked out by
    hand (G+ reads 1 unless stuck off, G- reads 0 unless stuck on), and the same table as a
    programmed chip's fault maps."""
    print(f"seed {seed}")
    p_on, p_off = 0.05, 0.1
    arch = Architecture("big", (1000,), (LayerSpec("dense", 200),))
    hook = RandomStuckCells(arch, p_on, p_off)
    pos, neg = hook(0, np.random.default_rng(seed), True)
    expect_pos = {1.0: (1 - p_off) * (1 - p_on), -1.0: p_off * p_on}
    expect_pos[0.0] = 1 - expect_pos[1.0] - expect_pos[-1.0]
    for value, p in expect_pos.items():
        assert abs(np.mean(pos == value) - p) < 4 * np.sqrt(p * (1 - p) / pos.size)
    assert set(np.unique(neg)) == {-1.0, 0.0, 1.0}
    assert abs(np.mean(neg == -1.0) - expect_pos[1.0]) < 0.003
    mean_pos, mean_neg = hook(0, None, False)
    assert np.allclose(mean_pos, 1 - p_off - p_on) and np.allclose(mean_neg, -(1 - p_off - p_on))
    # the same semantics as the chip's fault maps
    chip = ChipConfig(rows=16, columns=8, device=device_preset("rram", stuck_on_rate=0.2,
                                                               stuck_off_rate=0.3))
    model = random_model(TINY_MLP, np.random.default_rng(seed))
    mapped = compile_model(model, chip)
    state = program_chip(mapped, seed)
    f = chip_fault_maps(mapped, state)[0]
    sp, sn = (model_weights(mapped.layers[0], layer_matrix(mapped.layers[0], chip, side))
              for side in (state.stuck[:, :, 0::2], state.stuck[:, :, 1::2]))
    if_pos, if_neg = _pair_reads(sp == 1, sp == -1, sn == 1, sn == -1)
    assert np.array_equal(if_pos, f.if_pos) and np.array_equal(if_neg, f.if_neg)


def test_programming_spread_matches_programmed_pairs(seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for device in (device_preset("rram"), device_preset("pcm", drift_nu=0.0, drift_nu_dtod=0.0)):
        n = 200_000
        target = np.tile([[device.g_on_s, device.g_off_s]], (n, 1))
        g = device.read(device.program(target, rng).g_s, rng)
        w = (g[:, 0] - g[:, 1]) / (device.g_on_s - device.g_off_s)
        assert abs(w.std() / programming_spread(device) - 1) < 0.02, device.preset


@pytest.fixture(scope="module")
def mnist_small():
    train, test = load_mnist("train"), load_mnist("test")
    return (binarize_pixels(train.images[:4000]), train.labels[:4000].astype(np.int64),
            binarize_pixels(test.images[:1000]), test.labels[:1000].astype(np.int64))


def test_fine_tuning_on_a_faulty_chip_recovers_accuracy(mnist_small, seed, monkeypatch):
    """A small MNIST MLP on a chip with 10 % of cells stuck on and 20 % stuck off: fine-tuning
    against the chip's fault maps, then reprogramming the same chip, beats the same model
    reprogrammed without fine-tuning (same programming draw), its batch-norm recalibrated
    alone, and the first programming; the training code's estimate agrees with the golden
    read. Same seeds, same result. (Seeds 1-4 gained 13-45 points.)"""
    print(f"seed {seed}")
    monkeypatch.setitem(ARCHITECTURES, MNIST_MLP.name, MNIST_MLP)
    x, y, xt, yt = mnist_small
    base = Trainer(TrainConfig(arch=MNIST_MLP.name, epochs=3, seed=seed, lr_start=0.03,
                               lr_end=3e-3))
    base.fit(x, y, log=quiet)
    model = base.export()
    chip = ChipConfig(rows=64, columns=32, device=device_preset(
        "rram", stuck_on_rate=0.1, stuck_off_rate=0.2))
    cfg = TrainConfig(arch=MNIST_MLP.name, epochs=5, seed=seed, lr_start=0.01, lr_end=1e-3)
    results = [fine_tune_on_chip(model, chip, x, y, xt, yt, chip_seed=seed,
                                 program_seed=seed + 1, cfg=cfg, reads="stuck")
               for _ in range(2)]
    r = results[0]
    print(f"ideal {base.evaluate(xt, yt):.3f} before {r.before:.3f} control {r.control:.3f} "
          f"recalibrated {r.recalibrated:.3f} calibrated on chip {r.calibrated:.3f} "
          f"after {r.after:.3f} twin {r.twin_after:.3f}")
    assert r.counts.misread > 0.1 * r.counts.total_weights
    assert min(r.after - r.control, r.after - r.recalibrated, r.after - r.before) > 0.08
    assert abs(r.twin_after - r.after) < 0.03
    again = results[1]
    assert (again.before, again.control, again.recalibrated, again.calibrated, again.after) \
        == (r.before, r.control, r.recalibrated, r.calibrated, r.after)
    for a, b in zip(r.model.layers, again.model.layers):
        assert np.array_equal(a.weight, b.weight)
    assert stuck_counts(model, compile_model(model, chip),
                        program_chip(compile_model(model, chip), seed)) == r.counts


def test_healthy_reads_train_exactly_like_plain_training(mnist_small, seed, monkeypatch):
    """Reads of +1 and -1 for every weight are the plain binary network: the same seed
    gives the same exported model, bit for bit (slope 1, no correction mismatch)."""
    monkeypatch.setitem(ARCHITECTURES, MNIST_MLP.name, MNIST_MLP)
    x, y, _, _ = mnist_small
    healthy = {i: (np.ones(MNIST_MLP.weight_shape(i), np.float32),
                   -np.ones(MNIST_MLP.weight_shape(i), np.float32)) for i in range(2)}
    models = []
    for reads in (None, lambda layer, rng, train: healthy[layer]):
        t = Trainer(TrainConfig(arch=MNIST_MLP.name, epochs=1, seed=seed), reads=reads)
        t.fit(x[:1000], y[:1000], log=quiet)
        models.append(t.export())
    assert_same_models(*models)


def test_output_layer_gradient_is_the_derivative_of_the_read_forward(seed, monkeypatch):
    """The latent-weight gradient of the output layer with reads is the exact derivative of
    the loss when each weight reads ``a + b s`` for a continuous sign ``s`` (the
    straight-through estimate), correction mismatch ``sum(v - s)`` included: checked
    against central differences of that loss in float64."""
    print(f"seed {seed}")
    monkeypatch.setitem(ARCHITECTURES, MNIST_MLP.name, MNIST_MLP)
    rng = np.random.default_rng(seed)
    shapes = [MNIST_MLP.weight_shape(i) for i in range(2)]
    tables = {i: (rng.choice([1.0, 0.0, 0.8], size=s).astype(np.float32),
                  rng.choice([-1.0, 0.0, 1.0], size=s).astype(np.float32))
              for i, s in enumerate(shapes)}
    trainer = Trainer(TrainConfig(arch=MNIST_MLP.name, epochs=1, seed=seed),
                      reads=lambda layer, r, train: tables[layer])
    grads = {}
    monkeypatch.setattr(type(trainer.net.weights[1]), "update",
                        lambda self, grad, lr: grads.setdefault(id(self), grad.copy()))
    x = (rng.random((20, 784)) < 0.3).astype(np.uint8)
    y = rng.integers(0, 10, 20)
    scale = float(np.exp(trainer.net.log_scale))
    trainer.net.train_step(x, y, lr=0.0)
    h = trainer.net.cache[1]["x"].astype(np.float64)          # the output layer's input
    grad = grads[id(trainer.net.weights[1])]
    pos, neg = (t.astype(np.float64) for t in tables[1])
    a, b = (pos + neg) / 2, (pos - neg) / 2

    def loss(s):
        v = a + b * s
        z = scale * (h @ v + (v - s).sum(axis=0))
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    s0 = trainer.net.weights[1].binary().astype(np.float64)
    for r, c in zip(rng.integers(0, shapes[1][0], 25), rng.integers(0, 10, 25)):
        e = np.zeros_like(s0)
        e[r, c] = 1e-4
        numeric = (loss(s0 + e) - loss(s0 - e)) / 2e-4
        assert abs(grad[r, c] - numeric) < 1e-4 + 1e-3 * abs(numeric), (r, c)
    assert np.count_nonzero(grad[b == 0]) > 0       # frozen reads still set the correction
