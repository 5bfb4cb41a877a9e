"""The simulators mbnn depends on are installed and work (in CI a missing one fails)."""

import subprocess

import pytest

from sim import toolchain
from sim.runner import REPO_ROOT
from sim.spice_raw import read_raw

from conftest import require_simulator


@pytest.mark.parametrize("name", toolchain.SIMULATORS)
def test_simulator_is_installed(name):
    require_simulator(name)
    sim = toolchain.find(name)
    print(sim.version)


RESISTOR_VA = """`include "disciplines.vams"
module smoke_res(p, n);
  inout p, n;
  electrical p, n;
  (* type="instance" *) parameter real r_ohm = 1e3 from (0:inf);
  analog I(p, n) <+ V(p, n) / r_ohm;
endmodule
"""

DIVIDER = """Verilog-A divider smoke test
load "smoke_res.va"
ground 0
model res smoke_res
model vsrc vsource
v1 (in 0) vsrc dc=0.3
r1 (in mid) res r_ohm=1k
r2 (mid 0) res r_ohm=3k
control
  analysis op1 op
endc
"""


def test_vacask_compiles_and_solves_a_verilog_a_divider(tmp_path):
    """OpenVAF compiles a Verilog-A resistor and VACASK solves a divider built from two of
    them; the answer is the analytic one to rounding error."""
    require_simulator("vacask")
    (tmp_path / "smoke_res.va").write_text(RESISTOR_VA)
    (tmp_path / "divider.sim").write_text(DIVIDER)
    exe = toolchain.require("vacask").executable
    run = subprocess.run([exe, "divider.sim"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    op = read_raw(tmp_path / "op1.raw")
    assert op["mid"][0] == pytest.approx(0.3 * 3e3 / 4e3, rel=1e-12)
    # the source's branch current flows into its + terminal: -0.3 V / 4 kOhm
    assert op["v1:flow(br)"][0] == pytest.approx(-0.3 / 4e3, rel=1e-12)


def test_ci_entry_sets_ci_itself():
    """`.ci/run` exports CI=true before the README's test command, so a local run of it fails
    on a missing simulator exactly as CI does."""
    lines = [l.strip() for l in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert "export CI=true" in lines and lines[-1] == "make test"
    assert lines.index("export CI=true") < lines.index("make test")


def test_ci_runs_a_non_default_seed():
    """CI runs another seed than the default developers get locally (both must pass)."""
    import subprocess
    from sim.runner import DEFAULT_SEED
    script = (REPO_ROOT / ".ci" / "run").read_text()
    # the seed the script exports when none is given: evaluate its export line alone
    line = next(l for l in script.splitlines() if l.startswith("export MBNN_SEED="))
    out = subprocess.run(["bash", "-c", f"unset MBNN_SEED; {line}; echo $MBNN_SEED"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.isdigit() and int(out) != DEFAULT_SEED
