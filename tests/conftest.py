"""Shared pytest configuration: seed, simulator availability, build directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim import toolchain
from sim.runner import DEFAULT_SEED, REPO_ROOT


def pytest_configure(config):
    """One BLAS thread per xdist worker (``make test`` runs one worker per core). With its
    default of a thread per core in every worker, OpenBLAS oversubscribes the machine and its
    spinning threads slow both workers down: the MLP export test took 29 s beside the CNN's
    float evaluation, 2.2 s on its own. The environment variable reaches the simulators'
    Python (cocotb testbenches) and other child processes."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        os.environ["OMP_NUM_THREADS"] = "1"
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=1)


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=int(os.environ.get("MBNN_SEED", DEFAULT_SEED)),
                     help="global seed for random tests and cocotb runs (env MBNN_SEED)")


def pytest_report_header(config):
    seed = config.getoption("--seed")
    sims = ", ".join(f"{n}: {'found' if toolchain.find(n) else 'MISSING'}"
                     for n in toolchain.SIMULATORS)
    return [f"mbnn seed: {seed} (replay with --seed {seed} or MBNN_SEED={seed})",
            f"simulators: {sims}; CI={'yes' if toolchain.in_ci() else 'no'}"]


@pytest.fixture(scope="session")
def seed(request) -> int:
    return request.config.getoption("--seed")


def require_simulator(name: str) -> None:
    """Skip when a simulator is missing locally; fail in CI, where that is a setup error."""
    if toolchain.find(name) is None:
        message = f"simulator {name!r} is not installed (run scripts/bootstrap.sh)"
        if toolchain.in_ci():
            pytest.fail(message + " -- CI must run every simulator", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def build_root() -> Path:
    root = REPO_ROOT / "build" / "pytest"
    root.mkdir(parents=True, exist_ok=True)
    return root


def pytest_terminal_summary(terminalreporter):
    """Count the cocotb tests each simulator executed (reported by the RTL tests through
    ``record_property``, which also works across xdist workers)."""
    totals: dict[str, list[int]] = {}
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            props = dict(getattr(report, "user_properties", []))
            if "cocotb_simulator" in props and report.when == "call":
                t = totals.setdefault(props["cocotb_simulator"], [0, 0, 0])
                t[0] += props["cocotb_passed"]
                t[1] += props["cocotb_failed"]
                t[2] += 1
    if totals:
        terminalreporter.section("cocotb tests executed per simulator")
        for sim, (passed, failed, builds) in sorted(totals.items()):
            terminalreporter.write_line(f"{sim}: {passed} passed, {failed} failed "
                                        f"in {builds} builds")
    coverage: dict[str, list[int]] = {}
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            props = dict(getattr(report, "user_properties", []))
            if "coverage" in props and report.when == "call":
                block, hit, declared = props["coverage"]
                c = coverage.setdefault(block, [0, 0, 0])
                c[0] += hit
                c[1] += declared
                c[2] += 1
    if coverage:
        terminalreporter.section("functional coverage (bins hit / declared, summed over runs)")
        for block, (hit, declared, runs) in sorted(coverage.items()):
            terminalreporter.write_line(f"{block}: {hit}/{declared} in {runs} runs")


def check_cocotb_run(result, record_property, tests: int | None = None) -> None:
    """Print and record a cocotb run (for the per-simulator summary), then require it passed
    and, if ``tests`` is given, that exactly that many cocotb tests ran -- guarding against a
    test silently dropping out of a module (e.g. a decorator lost in an edit)."""
    print(result.summary())
    for outcome in result.outcomes:
        print(f"  cocotb {outcome.name}: {'PASS' if outcome.passed else 'FAIL'}")
    record_property("cocotb_simulator", result.simulator)
    record_property("cocotb_passed", result.passed)
    record_property("cocotb_failed", result.failed)
    if result.coverage:
        bins = result.coverage["bins"]
        record_property("coverage", (result.coverage["block"],
                                     sum(1 for b in bins.values() if b["hits"]), len(bins)))
    assert result.ok, result.summary()
    if tests is not None:
        assert len(result.outcomes) == tests, f"{len(result.outcomes)} cocotb tests ran, not {tests}"


def assert_same_models(a, b) -> None:
    """Two exported models are the same network: equal weights and thresholds, layer by
    layer."""
    import numpy as np
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(la.weight, lb.weight)
        assert (la.threshold is None) == (lb.threshold is None)
        if la.threshold is not None:
            assert np.array_equal(la.threshold.threshold, lb.threshold.threshold)


def run_main(argv, capsys) -> tuple[int, str, str]:
    """``mbnn`` in this process: (exit status, stdout, stderr); argparse's exits included."""
    from sim.cli import main
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err
