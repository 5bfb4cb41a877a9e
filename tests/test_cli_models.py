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


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_eval_of_shipped_model_prints_its_stored_accuracy(arch):
    from golden.model import load_model
    r = mbnn("eval", "--model", str(MODELS / f"{arch}.npz"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] == load_model(MODELS / f"{arch}.npz").metadata["test_accuracy"]


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
