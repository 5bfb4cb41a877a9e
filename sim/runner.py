"""Build generated RTL and run a cocotb test module on Icarus or Verilator.

Used by the pytest runners in ``tests/`` and by the ``mbnn`` command line, so both run the
same thing. Each (block, parameter set, simulator) gets its own build directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import toolchain
from .coverage import read_coverage

__all__ = ["TestOutcome", "RunResult", "run_cocotb", "build_crossbar_vpi", "LINT_WAIVERS",
           "DEFAULT_SEED"]

REPO_ROOT = Path(__file__).resolve().parent.parent
LINT_WAIVERS = REPO_ROOT / "rtl" / "lint" / "amaranth.vlt"
# Default global seed of regressions: fixed so CI is reproducible; override to explore.
DEFAULT_SEED = 20261122


@dataclass(frozen=True)
class TestOutcome:
    name: str
    passed: bool
    message: str = ""
    sim_time_ns: float = 0.0
    real_time_s: float = 0.0


@dataclass
class RunResult:
    simulator: str
    build_dir: Path
    seed: int
    outcomes: list[TestOutcome] = field(default_factory=list)
    build_s: float = 0.0
    test_s: float = 0.0
    # functional coverage the testbench saved (sim.coverage), or None
    coverage: dict | None = None

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(not o.passed for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and self.failed == 0

    def summary(self) -> str:
        lines = [f"{self.simulator}: {self.passed} passed, {self.failed} failed "
                 f"(seed {self.seed}, build {self.build_s:.1f} s, run {self.test_s:.1f} s, "
                 f"{self.build_dir})"]
        lines += [f"  FAILED {o.name}: {o.message}" for o in self.outcomes if not o.passed]
        return "\n".join(lines)


def _parse_results(xml_path: Path) -> list[TestOutcome]:
    if not xml_path.exists():
        return []
    outcomes = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        message = ""
        if failure is not None:
            message = failure.get("message") or (failure.text or "").strip()[:500]
        elif skipped is not None:
            message = "skipped: " + (skipped.get("message") or "")
        outcomes.append(TestOutcome(
            name=case.get("name", "?"),
            passed=failure is None and skipped is None,
            message=message,
            sim_time_ns=float(case.get("sim_time_ns", 0) or 0),
            real_time_s=float(case.get("time", 0) or 0),
        ))
    return outcomes


def _share_compiled_objects() -> None:
    """Let Verilator builds share compiled C++ objects through ccache (when installed).

    Every build compiles the same Verilator and cocotb runtime sources, and a clean clone
    compiles the same generated models as the run before it: the objects are cached per user,
    outside the checkout (``$MBNN_CCACHE_DIR``, else ``$CCACHE_DIR``, else
    ``~/.cache/mbnn/ccache``; 2 GB at most), as CI farms keep a compiler cache between jobs.
    Paths under the checkout are hashed relative to it (``CCACHE_BASEDIR``), so another clone
    hits the same objects. An object is reused only for identical preprocessed source, flags
    and compiler (ccache's guarantee); the precompiled headers Verilator makes for large
    models need the ``pch_defines``/``time_macros`` sloppiness (ccache's manual, *Precompiled
    headers*), and the header modification times of a freshly installed venv are not part of
    the identity (``include_file_mtime``/``include_file_ctime``: the contents are)."""
    ccache = shutil.which("ccache")
    if ccache is None or "OBJCACHE" in os.environ:
        return
    os.environ["OBJCACHE"] = ccache
    cache_dir = os.environ.get("MBNN_CCACHE_DIR") or os.environ.get("CCACHE_DIR") or \
        str(Path.home() / ".cache" / "mbnn" / "ccache")
    os.environ["CCACHE_DIR"] = cache_dir
    os.environ.setdefault("CCACHE_MAXSIZE", "2G")
    os.environ.setdefault("CCACHE_BASEDIR", str(REPO_ROOT))
    os.environ.setdefault("CCACHE_SLOPPINESS",
                          "pch_defines,time_macros,include_file_mtime,include_file_ctime")


def _top_level_verilator():
    """cocotb's Verilator runner, building with only the top module's signals visible to
    VPI (``--public-depth 1``) instead of every signal of the design (``--public-flat-rw``),
    into one C++ file (``--output-split 0``).

    mbnn's testbenches touch the top module's ports and signals only. Making every signal
    public kept Verilator from optimising any of them away and doubled the C++ it wrote: the
    shipped CNN's system compiled from 5.0 MB of C++ in 33 s of CPU, from 2.1 MB in 18 s
    with the top level alone (one run each, ``make -j2``). Split files compile in parallel
    but each one parses the runtime headers again and Verilator adds a precompiled header
    for them; the tests already keep both cores busy, so CPU time is what counts: one file
    took 13.7 s of CPU for the MLP's system instead of 19.4 s, in the same wall time. The one
    file holds the model's rarely run code too (construction, VPI tables), which Verilator
    compiles unoptimised when it is split off; ``-O1`` instead of ``-Os`` keeps that from
    costing more than the split saves: the 128-lane accumulator took 15.2 s of CPU instead
    of 21.6 s (runtime objects included), the CNN's system 12.0 s instead of 14.0 s, and the
    CNN's 200 images ran as fast (14.7 s against 14.5 s). The class is made on first use so
    that this module imports without cocotb."""
    from cocotb_tools.runner import Verilator

    class TopLevelVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            verilate = [a for a in cmds[0] if a != "--public-flat-rw"]
            if len(verilate) != len(cmds[0]) - 1:
                raise RuntimeError("cocotb's Verilator command changed: expected one "
                                   "--public-flat-rw to replace")
            cmds[0] = verilate[:1] + ["--public-depth", "1", "--output-split", "0"] + verilate[1:]
            cmds[1] = cmds[1] + ["OPT_FAST=-O1"]
            return cmds

    return TopLevelVerilator()


def build_crossbar_vpi(out_dir: Path) -> Path:
    """Compile ``rtl/analog/mbnn_crossbar_vpi.c`` into ``out_dir/mbnn_crossbar.vpi``, the
    module Icarus loads for ``$mbnn_crossbar_read``, with the compiler flags ``iverilog-vpi``
    reports and ``-ffp-contract=off`` (no fused multiply-add: the reads must round as the
    Verilog does). Returns the module's path.

    Raises
    ------
    RuntimeError
        The C compiler failed (its output is in the message)."""
    from periphery.generate_model import CROSSBAR_VPI_SOURCE

    out_dir = Path(out_dir)
    module = out_dir / "mbnn_crossbar.vpi"
    tmp = out_dir / f".mbnn_crossbar.vpi.{os.getpid()}"
    flags = {k: subprocess.run(["iverilog-vpi", f"--{k}"], capture_output=True, text=True,
                               check=True).stdout.split()
             for k in ("cflags", "ldflags", "ldlibs")}
    cmd = [os.environ.get("CC", "cc"), *flags["cflags"], "-ffp-contract=off", "-o", str(tmp),
           str(CROSSBAR_VPI_SOURCE), *flags["ldflags"], *flags["ldlibs"], "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"compiling {CROSSBAR_VPI_SOURCE.name} failed: {' '.join(cmd)}\n"
                           f"{done.stderr.strip()}")
    tmp.replace(module)
    return module


# The modules whose `assert` statements cocotb has pytest rewrite (for messages that show the
# compared values): the testbenches and the checkers they use. cocotb's default, "*.py",
# rewrites every module the simulator's Python imports -- numpy, scipy, Amaranth, golden --
# from source in every simulator process, and never caches the result where bytecode is not
# written (PYTHONDONTWRITEBYTECODE). An empty cocotb test importing golden.mapping ran in 2.3 s
# with it and 0.6 s without (imports 1.7 s and 0.2 s; one run each on Icarus).
ASSERTION_REWRITE_FILES = "tb_*.py scoreboard.py coverage.py"


def run_cocotb(*, simulator: str, sources: list[Path], toplevel: str, test_module: str,
               build_dir: Path, params: dict, seed: int = DEFAULT_SEED,
               testcase: str | None = None, waves: bool = False,
               hdl_parameters: dict | None = None, crossbar_vpi: bool = False,
               external: bool = False) -> RunResult:
    """Compile ``sources`` for ``simulator`` and run the cocotb ``test_module`` on them.

    Parameters
    ----------
    params : dict
        JSON-serialisable block parameters, passed to the test module as ``MBNN_PARAMS``.
    seed : int
        Global cocotb seed; each test derives its own from it and its name.
    hdl_parameters : dict, optional
        Verilog parameters of the toplevel (``-P``/``-G``).
    crossbar_vpi : bool
        Icarus only: the behavioural crossbar reads through the compiled system task of
        :func:`build_crossbar_vpi` (define ``MBNN_CROSSBAR_VPI``) instead of its Verilog
        loops -- the same codes, bit for bit, at a fraction of the time.
    external : bool
        The sources are not mbnn's generated RTL (``mbnn regress --rtl-dir``: an edited copy,
        a gate-level netlist): Verilator warnings are reported in the build log but not
        fatal. Generated RTL is built under ``-Wall`` and must be clean.

    Returns
    -------
    RunResult
        One outcome per cocotb test. No exception is raised for failing tests: check
        :attr:`RunResult.ok`.

    Raises
    ------
    toolchain.SimulatorMissing
        The simulator is not installed.
    """
    if simulator not in toolchain.RTL_SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(toolchain.RTL_SIMULATORS)}, "
                         f"not {simulator!r}")
    toolchain.require(simulator)
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if crossbar_vpi and simulator != "icarus":
        raise ValueError(f"the compiled crossbar read is an Icarus VPI module; {simulator} "
                         f"compiles the crossbar's Verilog itself")
    runner = _top_level_verilator() if simulator == "verilator" else get_runner(simulator)
    build_args: list = []
    defines: dict = {}
    test_args: list = []
    srcs = [Path(s) for s in sources]
    if simulator == "icarus":
        # The runner compiles with -g2012, where a declaration initialiser (`reg x = 0;`, which
        # Amaranth emits, together with a dummy register it relies on to wake every `always @*`
        # block at time 0) raises no event. Combinational logic whose inputs then never change
        # stays X (seen with constant-driven sequencer fields). Under -g2005 the initialisers
        # are time-0 assignments that do raise events; a later -g option wins.
        build_args = ["-g2005"]
        if waves:
            # cocotb's own dump module declares a SystemVerilog `string`, which -g2005 refuses;
            # this one is plain Verilog (FST, as vvp is told at test time)
            dump = build_dir / "mbnn_waves.v"
            dump.write_text(f'module mbnn_waves;\ninitial begin\n  $dumpfile("{toplevel}.fst");\n'
                            f'  $dumpvars(0, {toplevel});\nend\nendmodule\n')
            srcs.append(dump)
            build_args += ["-s", "mbnn_waves"]
        if crossbar_vpi:
            defines = {"MBNN_CROSSBAR_VPI": 1}
            test_args = ["-M", str(build_dir), "-m", "mbnn_crossbar"]
    if simulator == "verilator":
        # The generated HDL must be clean under -Wall with the documented waivers only; other
        # Verilog (a netlist's bit-level "loops" through vectors, UNOPTFLAT) only has to run.
        build_args = ["-Wno-fatal"] if external else ["-Wall"]
        srcs = [LINT_WAIVERS] + srcs
        _share_compiled_objects()
    t0 = time.perf_counter()
    try:
        if crossbar_vpi:
            build_crossbar_vpi(build_dir)
        runner.build(sources=srcs, hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=build_args, defines=defines, parameters=hdl_parameters or {},
                     timescale=("1ns", "1ps"), waves=waves and simulator != "icarus",
                     log_file=build_dir / "build.log")
    except RuntimeError as exc:   # compile or lint error: a failed run, reported like one
        return RunResult(simulator=simulator, build_dir=build_dir, seed=seed,
                         build_s=time.perf_counter() - t0,
                         outcomes=[TestOutcome(name="build", passed=False,
                                               message=f"{exc}; see {build_dir / 'build.log'}")])
    t1 = time.perf_counter()
    results_xml = build_dir / "results.xml"
    results_xml.unlink(missing_ok=True)
    coverage_file = build_dir / "coverage.json"
    coverage_file.unlink(missing_ok=True)
    env = {"MBNN_PARAMS": json.dumps(params, sort_keys=True),
           "MBNN_COVERAGE": str(coverage_file),
           "COCOTB_REWRITE_ASSERTION_FILES": ASSERTION_REWRITE_FILES,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                    test_dir=build_dir, seed=seed, extra_env=env, testcase=testcase,
                    test_args=test_args,
                    results_xml=str(results_xml), waves=waves, timescale=("1ns", "1ps"),
                    log_file=build_dir / "test.log")
    except (RuntimeError, SystemExit):
        # Under pytest the runner raises when the simulator dies before writing results;
        # elsewhere it returns. Either way the missing results are reported below.
        pass
    t2 = time.perf_counter()
    outcomes = _parse_results(results_xml)
    if not outcomes:
        outcomes = [TestOutcome(name=test_module, passed=False,
                                message=f"no results written; see {build_dir / 'test.log'}")]
    return RunResult(simulator=simulator, build_dir=build_dir, seed=seed, outcomes=outcomes,
                     build_s=t1 - t0, test_s=t2 - t1, coverage=read_coverage(coverage_file))
