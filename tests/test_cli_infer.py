"""`mbnn generate --model` and `mbnn infer`: outputs and errors. (The RTL runs themselves are
exercised in test_rtl_core.py; here the command line wraps them.)"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def mbnn(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=REPO)


def test_infer_golden_json_has_the_documented_fields():
    r = mbnn("infer", "--model", "models/mlp.npz", "--sim", "golden", "--images", "300",
             "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for key in ("images", "mismatches", "rtl_accuracy", "golden_accuracy", "cycles_per_image",
                "min_cycles_per_image", "images_per_s"):
        assert key in s
    assert s["images"] == 300 and s["mismatches"] == 0
    assert s["min_cycles_per_image"] == 192            # 56 + 64 + 64 + 8 array reads
    assert s["mapped_accuracy"] == s["golden_accuracy"]


def test_generate_model_with_config_file(tmp_path):
    cfg = tmp_path / "chip.toml"
    cfg.write_text('[array]\nrows = 64\ncolumns = 64\n[adc]\nbits = 8\n')
    out = tmp_path / "gen"
    r = mbnn("generate", "--model", "models/mlp.npz", "--config", str(cfg), "--out", str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chip"]["rows"] == 64 and manifest["chip"]["adc_bits"] == 8
    # 784 -> 13 row tiles x 16 column tiles, 1024 -> 16 x 16 twice, 1024 -> 16 x 1
    assert manifest["core"]["tiles"] == 13 * 16 + 2 * 16 * 16 + 16
    assert "generated" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["generate", "--model", "models/nope.npz", "--out", "{tmp}/o"], "nope.npz"),
    (["generate", "--model", "models/mlp.npz", "--config", "{tmp}/missing.toml",
      "--out", "{tmp}/o"], "chip configuration not found"),
    (["generate", "--model", "models/mlp.npz", "--config", "{tmp}/bad.toml", "--out", "{tmp}/o"],
     "rows must be an integer in 1..65536, not 0"),
    (["generate", "bn-binarize", "--model", "models/mlp.npz", "--out", "{tmp}/o"],
     "either a block"),
    (["generate", "--out", "{tmp}/o"], "give a block to generate"),
    (["infer", "--model", "models/mlp.npz", "--images", "0"], "expected a positive integer"),
    (["infer", "--model", "models/mlp.npz", "--sim", "golden", "--images", "20",
      "--offset", "9990"], "exceeds the 10000 MNIST test images"),
    (["infer", "--model", "models/mlp.npz", "--offset", "-1"], "--offset must be >= 0"),
    (["regress", "--seed", "-3"], "argument --seed: expected a seed >= 0, not -3"),
    (["demo", "--seed", "x"], "argument --seed: expected an integer seed, not 'x'"),
    (["train", "--arch", "mlp", "--seed", "-1", "--out", "{tmp}/o"],
     "argument --seed: expected a seed >= 0, not -1"),
    (["train", "--arch", "mlp", "--weight-noise", "nan", "--out", "{tmp}/o"],
     "argument --weight-noise: expected a finite number >= 0, not nan"),
    (["train", "--arch", "mlp", "--weight-noise", "-0.1", "--out", "{tmp}/o"],
     "argument --weight-noise: expected a finite number >= 0, not -0.1"),
    (["infer", "--model", "models/mlp.npz", "--sim", "verilator", "--crossbar", "compiled"],
     "--crossbar compiled is the crossbar's VPI read for Icarus; --sim verilator takes "
     "--crossbar behavioural"),
])
def test_bad_input_gives_a_clear_error_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "bad.toml").write_text("[array]\nrows = 0\n")
    r = mbnn(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode != 0
    assert re.search(re.escape(message), r.stderr), r.stderr
    assert not (tmp_path / "o").exists()
