"""mbnn train / eval on the command line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parent.parent / "models"


def mbnn(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_train_then_eval_round_trip(tmp_path):
    out = tmp_path / "m.npz"
    r = mbnn("train", "--arch", "mlp", "--epochs", "1", "--train-images", "2000",
             "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    trained = json.loads(r.stdout)
    assert trained["images"] == 10000 and 0.5 < trained["test_accuracy"] < 1
    r = mbnn("eval", "--model", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"test_accuracy": trained["test_accuracy"], "images": 10000}


def test_eval_of_shipped_model_prints_its_stored_accuracy():
    """The MLP only: `mbnn eval` is the same golden inference for every architecture, and the
    CNN's stored accuracy is checked against a fresh golden evaluation in
    test_shipped_models.py (10 000 CNN images cost 7-9 s of the default run each time)."""
    from golden.model import load_model
    r = mbnn("eval", "--model", str(MODELS / "mlp.npz"), "--json")
    assert r.returncode == 0, r.stderr
    stored = load_model(MODELS / "mlp.npz").metadata["test_accuracy"]
    assert json.loads(r.stdout) == {"test_accuracy": stored, "images": 10000}


def test_bad_model_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    r = mbnn("eval", "--model", str(bad))
    assert r.returncode == 2 and "not a readable mbnn model file" in r.stderr
    r = mbnn("eval", "--model", str(tmp_path / "missing.npz"))
    assert r.returncode == 2 and "model file not found" in r.stderr
    r = mbnn("train", "--arch", "rnn", "--out", str(tmp_path / "x.npz"))
    assert r.returncode == 2 and "invalid choice: 'rnn'" in r.stderr


@pytest.mark.parametrize("where, extra, message", [
    # an --out under a file: refused before training (it failed with a traceback after it)
    ("under_file", [], "is not a directory"),
    ("dir", [], "is a directory; expected a file to write"),
    # a directory nothing can be written in, even by root: it failed after the training
    ("proc", [], "/proc is not writable"),
    # more training images than MNIST has: refused (it was recorded as given)
    ("ok", ["--train-images", "60001"], "--train-images 60001 exceeds the 60000 MNIST training"),
])
def test_train_refuses_bad_output_and_sizes_before_training(tmp_path, where, extra, message):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.npz").mkdir()
    out = {"under_file": tmp_path / "afile" / "m.npz", "dir": tmp_path / "adir.npz",
           "ok": tmp_path / "m.npz", "proc": Path("/proc/mbnn-test/m.npz")}[where]
    # --epochs 50 on all of MNIST would take many minutes: a quick answer proves the check
    # came first
    r = mbnn("train", "--arch", "mlp", "--epochs", "50", "--out", str(out), *extra)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("mbnn"), r.stderr
    assert not (tmp_path / "m.npz").exists() and "Traceback" not in r.stderr


def test_train_in_situ_writes_a_model_with_its_programming_figures(tmp_path):
    """The 784-250-10 MLP, one epoch on 1000 images with an RRAM chip in the loop: a model
    file with the chip's figures, the golden read's accuracy beside the training twin's;
    the same seed gives the same model file's weights."""
    from golden.model import load_model
    outs = []
    for name in ("a.npz", "b.npz"):
        out = tmp_path / name
        r = mbnn("train", "--arch", "mlp250", "--epochs", "1", "--train-images", "1000",
                 "--in-situ", "--device", "rram", "--seed", "3", "--out", str(out), "--json")
        assert r.returncode == 0, r.stderr
        outs.append((out, json.loads(r.stdout)))
    (out, got), (out2, got2) = outs
    assert got["device"] == "rram" and got["scheme"] == "chi" and got["epsilon"] == 0.25
    assert 0.5 < got["test_accuracy"] < 1 and abs(got["test_accuracy"] - got["twin_accuracy"]) < 0.02
    assert got["flips"] > 0 and got["pulses"] >= 2 * got["flips"] and got["energy_j"] > 0
    assert got["initial_programming"]["pulses"] > 0 and len(got["history"]) == 1
    model = load_model(out)
    assert model.metadata["test_accuracy"] == got["test_accuracy"]
    assert model.metadata["in_situ"]["device"] == "rram"
    assert model.metadata["in_situ"]["flips"] == got["flips"]
    for a, b in zip(model.layers, load_model(out2).layers):
        assert (a.weight == b.weight).all()
    assert got2["flips"] == got["flips"] and got2["test_accuracy"] == got["test_accuracy"]


@pytest.mark.parametrize("extra, message", [
    (["--in-situ", "--epsilon", "0"], "--epsilon: expected a finite number > 0, not 0"),
    (["--in-situ", "--epsilon", "nan"], "--epsilon: expected a finite number > 0, not nan"),
    (["--in-situ", "--device", "flash"], "--device: unknown device preset 'flash'"),
    (["--in-situ", "--weight-noise", "0.1"], "--weight-noise: in-situ training's noise"),
    (["--in-situ", "--epsilon", "1e-7"], "--epsilon 1e-07: a 24-bit chi with 16 fraction bits "
                                         "steps by 1.52588e-05"),
    (["--in-situ", "--epsilon", "200"], "--epsilon 200: a 24-bit chi with 16 fraction bits "
                                        "holds at most 127.99998"),
    (["--in-situ", "--scheme", "naive", "--epsilon", "0.5"],
     "--epsilon 0.5: the naive scheme programs every update and has no epsilon"),
    (["--device", "rram"], "--device is an option of --in-situ training"),
    (["--epsilon", "0.5"], "--epsilon is an option of --in-situ training"),
    (["--in-situ", "--init", "nosuch.npz"], "model file not found"),
    (["--in-situ", "--config", "nosuch.toml"], "nosuch.toml"),
])
def test_train_in_situ_refuses_bad_input_before_training(tmp_path, extra, message):
    out = tmp_path / "m.npz"
    r = mbnn("train", "--arch", "mlp", "--epochs", "50", "--out", str(out), *extra)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
