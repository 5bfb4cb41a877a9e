"""Functional coverage bookkeeping (sim/coverage.py): a declared bin that no stimulus reached
fails the testbench's closure, naming the bin; hits are saved where the runner asks."""

import json

import pytest

from sim.coverage import Coverage, read_coverage, stall_class
from sim.regress import RegressionTest, coverage_table
from sim.regress import TestRecord as Record     # not collected as a test class


def test_a_declared_bin_never_hit_fails_the_closure_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MBNN_COVERAGE", str(tmp_path / "coverage.json"))
    cov = Coverage("block")
    cov.declare("ge: a-T=+0", "at the threshold")
    cov.declare("o: stall of 16+ cycles", "a long stall")
    cov.hit("ge: a-T=+0", 3)
    cov.hit("not declared here")            # a bin of another parameter set: ignored
    with pytest.raises(AssertionError, match=r"1 of 2 coverage bins never hit: "
                                             r"o: stall of 16\+ cycles \(a long stall\)"):
        cov.closure()
    saved = read_coverage(tmp_path / "coverage.json")      # saved even though it failed
    assert saved == {"block": "block", "bins": {
        "ge: a-T=+0": {"description": "at the threshold", "hits": 3},
        "o: stall of 16+ cycles": {"description": "a long stall", "hits": 0}}}
    cov.hit("o: stall of 16+ cycles")
    cov.closure()
    assert json.loads((tmp_path / "coverage.json").read_text())["bins"][
        "o: stall of 16+ cycles"]["hits"] == 1


def test_a_testbench_that_declares_nothing_fails():
    with pytest.raises(AssertionError, match="no coverage bins declared"):
        Coverage("empty").closure()


@pytest.mark.parametrize("cycles, cls", [(1, "1"), (2, "2-3"), (3, "2-3"), (4, "4-15"),
                                         (15, "4-15"), (16, "16+"), (400, "16+")])
def test_stall_classes(cycles, cls):
    assert stall_class(cycles) == cls


def test_the_regression_report_names_bins_no_run_hit():
    def record(sim, hits):
        rec = Record(test=RegressionTest("accumulator", "l5", sim), seed=1)
        rec.coverage = {"block": "accumulator",
                        "bins": {b: {"description": "", "hits": n} for b, n in hits.items()}}
        return rec
    text = coverage_table([record("icarus", {"a": 1, "b": 0}),
                           record("verilator", {"a": 0, "b": 0, "c": 2})])
    assert "accumulator   2/3; never hit: b" in text
    assert coverage_table([]) == "coverage: no testbench reported any"
