"""`mbnn spice-check`: the golden parasitic solver against VACASK from the command line, and its
answers to bad input (one line naming the option, non-zero exit, before any simulator runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_simulator

REPO = Path(__file__).resolve().parent.parent


def mbnn(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env)


@pytest.mark.parametrize("extra, nonlinear", [((), False), (("--iv-v0", "0.25"), True),
                                              (("--device", "rram"), False)])
def test_spice_check_json(seed, extra, nonlinear):
    require_simulator("vacask")
    r = mbnn("spice-check", "--rows", "24", "--cols", "20", "--r-wire", "2", "--r-source", "10",
             "--r-sense", "10", "--seed", str(seed), "--json", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert s["rows"] == 24 and s["columns"] == 20 and s["nonlinear"] is nonlinear
    assert s["max_rel_err"] <= (1e-6 if nonlinear else 1e-9)
    assert s["passed"] is True
    # a 24-row array with 2-ohm segments loses a few mV to tens of mV of its 0.2 V read
    assert 1e-4 < s["ir_drop_v"] < 0.2
    assert s["vacask_s"] > 0 and s["golden_precompute_s"] > 0


def test_spice_check_text_with_ngspice():
    require_simulator("vacask")
    require_simulator("ngspice")
    r = mbnn("spice-check", "--rows", "16", "--cols", "16", "--ngspice")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert float(lines["max_rel_err"].split()[0]) <= 1e-9
    assert float(lines["ngspice_max_rel_err"].split()[0]) <= 1e-9
    assert r.stdout.strip().endswith("RESULT PASS")


@pytest.mark.parametrize("args, message", [
    (("--r-wire", "-1"), "argument --r-wire: expected a finite resistance >= 0 ohms, not -1"),
    (("--r-sense", "nan"), "argument --r-sense: expected a finite resistance >= 0 ohms, not nan"),
    (("--r-source", "inf"), "argument --r-source: expected a finite resistance >= 0 ohms, "
                            "not inf"),
    (("--rows", "0"), "argument --rows: expected a positive integer, not 0"),
    (("--seed", "-3"), "argument --seed: expected a seed >= 0, not -3"),
    (("--iv-v0", "0"), "argument --iv-v0: expected a finite voltage > 0, not 0"),
    (("--device", "memristor"), "unknown device preset 'memristor'; expected one of ideal, "),
    (("--rows", "4096", "--cols", "4096"), "a 4096x4096 array needs about"),
    (("--iv-v0", "0.3", "--ngspice"), "--ngspice runs plain resistors"),
])
def test_spice_check_bad_input(args, message):
    base = {"--rows": "8", "--cols": "8"}
    argv = ["spice-check"]
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    r = mbnn(*argv, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]          # (argparse prints its usage first)
    assert message in last and last.startswith("mbnn")
    assert "Traceback" not in r.stderr


def test_spice_check_without_vacask_fails_cleanly(tmp_path):
    """With VACASK off PATH (and the wheel hidden) the command says so and exits 3."""
    fake_site = tmp_path / "site"
    fake_site.mkdir()
    (fake_site / "sitecustomize.py").write_text(
        "import shutil\n_which = shutil.which\n"
        "shutil.which = lambda name, *a, **k: None if name == 'vacask' else _which(name, *a, **k)\n")
    env = dict(os.environ, PYTHONPATH=str(fake_site))
    r = mbnn("spice-check", "--rows", "8", "--cols", "8", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "simulator 'vacask' not found" in r.stderr
