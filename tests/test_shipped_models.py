"""The pre-trained models shipped in models/: accuracy, float/integer agreement, reproducibility."""

from pathlib import Path

import numpy as np
import pytest

from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model
from golden.train import TrainConfig, Trainer

MODELS = Path(__file__).resolve().parent.parent / "models"
# The floors the shipped models meet: issue 14's goals, the state of the art for fully binary
# networks of these sizes
TARGETS = {"mlp": 0.989, "cnn": 0.993}


@pytest.fixture(scope="module")
def test_set():
    test = load_mnist("test")
    return binarize_pixels(test.images), test.labels.astype(np.int64)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_shipped_model_meets_its_accuracy_target(arch):
    acc = load_model(MODELS / f"{arch}.npz").metadata["test_accuracy"]
    assert acc >= TARGETS[arch], f"{arch} accuracy {acc} below the target {TARGETS[arch]}"


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_shipped_model_records_its_recipe(arch):
    """The training configuration in the file is today's recipe with its seed: the slow
    retraining test rebuilds it from there, and ``mbnn train --arch`` trains it."""
    training = load_model(MODELS / f"{arch}.npz").metadata["training"]
    assert TrainConfig(**training) == TrainConfig.recipe(arch, seed=training["seed"])


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_training_evaluation_and_integer_inference_agree_on_all_test_images(arch, test_set):
    """The training code rebuilds its float network from the file (binary weights, float
    batch-norm) and must predict exactly what the folded integer model predicts; the golden
    (integer) accuracy on all test images is the one the file records."""
    pixels, labels = test_set
    model = load_model(MODELS / f"{arch}.npz")
    trainer = Trainer(TrainConfig.recipe(arch), init=model)
    float_pred = trainer.predict(pixels)
    int_pred = infer(model, pixels).predictions
    mismatches = int((float_pred != int_pred).sum())
    assert mismatches == 0, f"{mismatches} of {len(labels)} predictions differ"
    acc = float((int_pred == labels).mean())
    print(f"{arch}: golden test accuracy {acc:.4f} on {len(labels)} images")
    assert model.metadata["test_images"] == len(labels) == 10000
    assert acc == model.metadata["test_accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_retraining_from_the_recorded_seed_reproduces_the_accuracy(arch, test_set):
    pixels, labels = test_set
    model = load_model(MODELS / f"{arch}.npz")
    cfg = TrainConfig(**model.metadata["training"])
    print(f"retraining {arch} with {cfg}")
    train = load_mnist("train")
    trainer = Trainer(cfg)
    trainer.fit(binarize_pixels(train.images), train.labels.astype(np.int64))
    acc = float((infer(trainer.export(), pixels).predictions == labels).mean())
    print(f"{arch}: retrained {acc:.4f}, shipped {model.metadata['test_accuracy']:.4f}")
    assert abs(acc - model.metadata["test_accuracy"]) <= 0.003
