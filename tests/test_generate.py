"""Verilog generation: deterministic, lint-clean under Verilator -Wall, and the CLI's errors."""

import re
import subprocess
import sys

import pytest

from golden.bn_binarize import BNBinarizeParams
from periphery.generate import bn_binarize_verilog
from sim import toolchain
from sim.runner import LINT_WAIVERS

from conftest import require_simulator


def mbnn(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def verilator_lint(*files):
    require_simulator("verilator")
    exe = toolchain.require("verilator").executable
    return subprocess.run([exe, "--lint-only", "-Wall", *map(str, files)], capture_output=True,
                          text=True, timeout=120)


def test_cli_generation_is_byte_identical_across_runs(tmp_path):
    outs = []
    for run in ("a", "b"):
        r = mbnn("generate", "bn-binarize", "--channels", "10", "--acc-width", "11",
                 "--fan-in", "784", "--out", str(tmp_path / run))
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / run / "bn_binarize.v").read_bytes())
    assert outs[0] == outs[1]
    assert b"module bn_binarize(" in outs[0] and b'"fan_in": 784' in outs[0]
    assert str(tmp_path).encode() not in outs[0], "absolute paths leak into the HDL"


def test_lint_waivers_do_not_hide_real_unused_signals(tmp_path):
    source = tmp_path / "probe.v"
    source.write_text("module probe(input clk, input [3:0] spare, output reg q);\n"
                      "  wire [1:0] \\alias.field ;\n  assign \\alias.field  = 2'b00;\n"
                      "  always @(posedge clk) q <= 1'b1;\nendmodule\n")
    r = verilator_lint(LINT_WAIVERS, source)
    assert "Signal is not used: 'spare'" in r.stderr
    assert "alias.field" not in r.stderr


def test_module_name_is_validated():
    with pytest.raises(ValueError, match="module name must be a Verilog identifier, not '1bad'"):
        bn_binarize_verilog(BNBinarizeParams(channels=2, acc_width=4), name="1bad")


@pytest.mark.parametrize("args, message", [
    (["--channels", "0", "--acc-width", "8"], "--channels: expected a positive integer, not 0"),
    (["--channels", "x", "--acc-width", "8"], "--channels: expected a positive integer, not 'x'"),
    (["--channels", "4", "--acc-width", "9", "--fan-in", "784"],
     r"acc_width 9 cannot hold pre-activations in \[-784, 784\]"),
    (["--channels", "4", "--acc-width", "65"], "acc_width must be at most 64, not 65"),
])
def test_cli_rejects_bad_parameters_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    r = mbnn("generate", "bn-binarize", *args, "--out", str(out))
    assert r.returncode != 0
    assert re.search(message, r.stderr), r.stderr
    assert not out.exists()


def test_cli_help_lists_commands():
    r = mbnn("--help")
    assert r.returncode == 0
    for command in ("generate", "regress", "demo"):
        assert command in r.stdout
    r = mbnn("regress", "--set", "nope")
    assert r.returncode == 2 and "unknown parameter set 'nope'" in r.stderr


def test_a_build_failure_is_reported_as_a_failed_run(tmp_path):
    """A Verilog error stops the build; the runner reports it instead of crashing, and a
    simulation that dies without results is a failed run too."""
    require_simulator("verilator")
    from sim.runner import run_cocotb
    source = tmp_path / "broken.v"
    source.write_text("module broken(input clk, output q);\n  assign q = ;\nendmodule\n")
    result = run_cocotb(simulator="verilator", sources=[source], toplevel="broken",
                        test_module="sim.tb.tb_bn_binarize", build_dir=tmp_path / "b", params={})
    assert not result.ok and result.outcomes[0].name == "build"
    assert "build.log" in result.outcomes[0].message
    assert "syntax error" in (tmp_path / "b" / "build.log").read_text()
    fine = tmp_path / "fine.v"
    fine.write_text("module fine(input clk, output q);\n  assign q = clk;\nendmodule\n")
    # params={} cannot build BNBinarizeParams, so the test module dies on import
    result = run_cocotb(simulator="icarus", sources=[fine], toplevel="fine",
                        test_module="sim.tb.tb_bn_binarize", build_dir=tmp_path / "f", params={})
    assert not result.ok and "no results written" in result.outcomes[0].message
