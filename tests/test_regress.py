"""`mbnn regress` for CI farms: selection, shards, JUnit reports and their merging, external
RTL (`--export-rtl` / `--rtl-dir`) with its port check -- and, through that path, proof that
small deliberate faults in the generated RTL are each caught by the regression that covers
the faulty block."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sim.regress import RegressionTest, plan, shard
from sim.rtl_dir import RtlDirError, check_module, verilog_ports

from conftest import require_simulator

REPO = Path(__file__).resolve().parent.parent


def mbnn(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "sim.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def listed(*args) -> list[tuple[str, int]]:
    """(test id, seed) of each line `mbnn regress --list` prints."""
    r = mbnn("regress", "--list", *args)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if "  seed " in line]
    return [(row[0], int(row[2])) for row in rows]


# --- selection and shards -----------------------------------------------------------------


def test_plan_covers_every_block_and_whole_networks_on_both_simulators():
    ids = [t.id for t in plan(("icarus", "verilator"))]
    assert len(ids) == len(set(ids))
    for block in ("bn_binarize", "accumulator", "sequencer", "crossbar", "network"):
        for sim in ("icarus", "verilator"):
            assert any(i.startswith(f"{block}/") and i.endswith(f"/{sim}") for i in ids), \
                (block, sim)
    # the configurations the chip is checked on as whole networks (issue: CNN on 100x50,
    # reference-column mapping)
    assert "network/cnn_100x50/verilator" in ids
    assert "network/tiny_16x8_ref_nonideal/icarus" in ids


def test_filter_seeds_and_list():
    rows = listed("--filter", "^bn_binarize/c1_w2/", "--seeds", "3", "--seed", "7")
    assert rows == [(f"bn_binarize/c1_w2/{sim}", s) for sim in ("icarus", "verilator")
                    for s in (7, 8, 9)]
    assert listed("--sim", "icarus", "--filter", "c1_w2") == [("bn_binarize/c1_w2/icarus",
                                                               20261122)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_together_run_every_test_exactly_once(count):
    everything = listed("--seeds", "2")
    shards = [listed("--seeds", "2", "--shard", f"{i}/{count}") for i in range(1, count + 1)]
    union = [row for s in shards for row in s]
    assert sorted(union) == sorted(everything), "shards must partition the selection"
    assert all(shards), "a shard got no test"


def test_shards_balance_by_cost_deterministically():
    tests = [RegressionTest("b", f"s{k}", "icarus") for k in range(6)]
    items = [(t, 1) for t in tests]
    costs = {"b/s0/icarus": 10, "b/s1/icarus": 9, "b/s2/icarus": 5, "b/s3/icarus": 4,
             "b/s4/icarus": 1, "b/s5/icarus": 1}
    one = [t.set for t, _ in shard(items, 1, 2, costs)]
    two = [t.set for t, _ in shard(items, 2, 2, costs)]
    # longest first onto the least loaded: s0 -> 1, s1 -> 2, s2 -> 2, s3 -> 1, s4 -> 1, s5 -> 2
    assert one == ["s0", "s3", "s4"] and two == ["s1", "s2", "s5"]
    assert shard(items, 1, 2, costs) == shard(list(items), 1, 2, dict(costs))


@pytest.mark.parametrize("args, message", [
    (["--filter", "no-such-test"], "no tests selected"),
    (["--filter", "("], "--filter '(': not a regular expression"),
    (["--shard", "3/2", "--list"], "argument --shard: expected I/N with 1 <= I <= N"),
    (["--shard", "x", "--list"], "argument --shard: expected I/N"),
    (["--keep-waves"], "--keep-waves needs --waves"),
    (["--junit", "tests"], "--junit tests: is a directory"),
    (["--merge", "a.xml"], "--merge needs --junit FILE"),
    (["--rtl-dir", "tests", "--list", "--filter", "c1_w2"], None),   # --list runs nothing
    (["--rtl-dir", "no/such/dir", "--filter", "c1_w2"], "--rtl-dir no/such/dir: not a directory"),
    (["--rtl-dir", "tests", "--filter", "c1_w2"], "--rtl-dir tests: no manifest.json"),
    (["--seeds", "0"], "argument --seeds: expected a positive integer"),
])
def test_bad_regress_options_get_one_clear_line(args, message):
    r = mbnn("regress", *args)
    if message is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# --- JUnit reports ----------------------------------------------------------------------


def _cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


@pytest.mark.rtl
def test_parallel_run_with_seeds_writes_a_junit_report_and_merges(tmp_path):
    require_simulator("icarus")
    junit = tmp_path / "a.xml"
    r = mbnn("regress", "--sim", "icarus", "--filter", "^bn_binarize/c1_w2/", "--seeds", "2",
             "--seed", "11", "-j", "2", "--junit", junit, "--build", tmp_path / "build",
             "--waves")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RESULT: PASS" in r.stdout and "bn_binarize   icarus          2      0" in r.stdout
    cases = _cases(junit)
    assert [c.get("name") for c in cases] == ["c1_w2[icarus, seed 11]", "c1_w2[icarus, seed 12]"]
    props = [{p.get("name"): p.get("value") for p in c.iter("property")} for c in cases]
    assert [p["seed"] for p in props] == ["11", "12"]
    assert all(int(p["cocotb_passed"]) == 9 and p["cocotb_failed"] == "0" for p in props)
    # functional coverage in the report: every declared bin, hit at least once
    for p in props:
        bins = {k.removeprefix("coverage: "): int(v) for k, v in p.items()
                if k.startswith("coverage: ")}
        assert {"ge: a-T=+0", "le: a-T=-1", "o: stall of 4-15 cycles"} <= set(bins)
        assert min(bins.values()) >= 1, bins
    assert "bn_binarize   19/19" in r.stdout
    assert all(c.find("failure") is None for c in cases)
    # waveforms were dumped and, the tests having passed, deleted
    assert not list((tmp_path / "build").rglob("*.fst"))
    assert "waves" not in props[0]

    # merging shards' reports: every case once; an overlap is refused
    other = tmp_path / "b.xml"
    text = junit.read_text().replace("seed 11]", "seed 13]").replace("seed 12]", "seed 14]")
    other.write_text(text)
    merged = tmp_path / "all.xml"
    r = mbnn("regress", "--merge", junit, other, "--junit", merged)
    assert r.returncode == 0, r.stderr
    assert "4 tests, 0 failed" in r.stdout
    root = ET.parse(merged).getroot()
    assert root.get("tests") == "4" and root.get("failures") == "0"
    r = mbnn("regress", "--merge", junit, junit, "--junit", tmp_path / "dup.xml")
    assert r.returncode != 0 and "shards must not overlap" in r.stderr
    assert not (tmp_path / "dup.xml").exists()
    (tmp_path / "bad.xml").write_text("<html/>")
    r = mbnn("regress", "--merge", junit, tmp_path / "bad.xml", "--junit", tmp_path / "m.xml")
    assert r.returncode != 0 and "not a JUnit report" in r.stderr


# --- external RTL: the port check ---------------------------------------------------------


def test_port_reader_reads_both_header_styles():
    amaranth = ("module m(a, b, c);\n  input [3:0] a;\n  wire [3:0] a;\n  output b;\n"
                "  reg [7:0] x;\n  input c;\nendmodule\n")
    ansi = "module m #(parameter W = 4) (input wire [3:0] a, output reg b, input c);\nendmodule"
    want = {"a": ("input", 4), "b": ("output", 1), "c": ("input", 1)}
    assert verilog_ports(amaranth, "m") == want
    assert verilog_ports(ansi, "m") == want
    with pytest.raises(RtlDirError):
        verilog_ports(amaranth, "n")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("module bn_binarize(", "module bn_binarize_x("),
     "defines no module 'bn_binarize'"),
    (lambda t: t.replace("o__ready", "o_ready"), "has no port 'o__ready'"),
    (lambda t: t.replace("input [1:0] cfg__threshold;", "input [2:0] cfg__threshold;"),
     "port 'cfg__threshold' is input of 3 bits; the testbench expects input of 2 bits"),
    (lambda t: t.replace("output busy;", "input busy;"),
     "port 'busy' is input of 1 bits; the testbench expects output of 1 bits"),
])
def test_port_check_names_the_module_and_port(tmp_path, edit, message):
    from sim.regressions import generate_verilog
    gen = generate_verilog("bn_binarize", "c1_w2", tmp_path / "gen")["bn_binarize.v"][0]
    ext = tmp_path / "ext.v"
    ext.write_text(edit(gen.read_text()))
    with pytest.raises(RtlDirError, match=re.escape(message)):
        check_module(gen, ext, "bn_binarize")
    check_module(gen, gen, "bn_binarize")


# --- external RTL: faults are caught ------------------------------------------------------

# The sets the fault tests run on Icarus (each regression of its block, with the default seed)
FAULT_SETS = ("bn_binarize/c10_w8_k100", "accumulator/l5_c4_t7", "crossbar/diff_16x8_adc3",
              "network/tiny_16x8", "network/tiny_16x8_programmed")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The generated Verilog of the fault tests' sets, exported once."""
    out = tmp_path_factory.mktemp("rtl") / "tree"
    r = mbnn("regress", "--export-rtl", out, "--sim", "icarus",
             "--filter", "|".join(f"^{re.escape(k)}/" for k in FAULT_SETS))
    assert r.returncode == 0, r.stderr
    return out


def _copy_with(exported: Path, dest: Path, key: str | None = None, file: str | None = None,
               pattern: str | None = None, replacement: str | None = None) -> Path:
    """A copy of the exported tree; with ``pattern``, one fault put into ``key/file`` (every
    match replaced; the pattern must match, so a change in the generator cannot silently turn
    the fault into a no-op)."""
    shutil.copytree(exported, dest)
    if pattern is not None:
        path = dest / key / file
        text = path.read_text()
        faulty, n = re.subn(pattern, replacement, text)
        assert n >= 1, f"fault pattern {pattern!r} matches nothing in {key}/{file}"
        path.write_text(faulty)
    return dest


def _regress(tree: Path, key: str, build: Path):
    return mbnn("regress", "--sim", "icarus", "--filter", f"^{re.escape(key)}/icarus$",
                "--rtl-dir", tree, "--build", build, "--junit", build / "report.xml")


@pytest.mark.rtl
def test_unmodified_exported_rtl_passes(exported, tmp_path):
    require_simulator("icarus")
    tree = _copy_with(exported, tmp_path / "tree")
    r = mbnn("regress", "--sim", "icarus", "--rtl-dir", tree, "--build", tmp_path / "b", "-j",
             "2", "--filter", "|".join(f"^{re.escape(k)}/" for k in FAULT_SETS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(FAULT_SETS)} passed, 0 failed" in r.stdout


# (name, set, file, pattern, replacement): small faults a reviewer would try
FAULTS = [
    ("inverted threshold comparison", "bn_binarize/c10_w8_k100", "bn_binarize.v",
     r"(\$signed\(s1_value\) )>=( \$signed\(rd__data)", r"\1<\2"),
    ("comparison off by one (> for >=)", "bn_binarize/c10_w8_k100", "bn_binarize.v",
     r"(\$signed\(s1_value\) )>=( \$signed\(rd__data)", r"\1>\2"),
    ("block ignores o.ready", "bn_binarize/c10_w8_k100", "bn_binarize.v",
     r"\| o__ready;", "| 1'b1;"),
    ("input accepted while the pipeline stalls (a dropped beat)", "bn_binarize/c10_w8_k100",
     "bn_binarize.v", r"assign i__ready = [^;]*;", "assign i__ready = 1'b1;"),
    ("bit 0 of lane 1's running sum stuck at 1", "accumulator/l5_c4_t7", "accumulator.v",
     r"(assign \\\$\d+  = )(\$signed\(i__payload\[7:4\]\) \+ \$signed\(\\\$\d+ \));",
     r"\1(\2) | 1;"),
    ("ADC saturation bound off by one", "crossbar/diff_16x8_adc3", "mbnn_crossbar.v",
     r"(CODE_MAX = \(1 << \(ADC_BITS - 1\)\) - )1;", r"\g<1>2;"),
    ("inverted comparison in lane 3 of the core's BN-binarize block", "network/tiny_16x8",
     "bnn_system.v", r"(\$signed\(s1_value\[27:21\]\) )>=", r"\1<"),
    ("core ignores o.ready", "network/tiny_16x8", "bnn_system.v",
     r"(\.\\o__ready\$\d+ )\(o__ready\)", r"\1(1'b1)"),
    ("core takes input words without i.valid", "network/tiny_16x8", "bnn_system.v",
     r"\.i__valid\(i__valid\)", ".i__valid(1'b1)"),
    ("programming controller gives up a pulse early", "network/tiny_16x8_programmed",
     "bnn_system.v", r"tried == 5'h10;", "tried == 5'h0f;"),
    ("crossbar reads the fresh chip after programming (no refresh after a pulse)",
     "network/tiny_16x8_programmed", "mbnn_crossbar.v",
     r"form_row\(pcmd_cell / PCOLS\);", "// (no refresh)"),
]


@pytest.mark.rtl
@pytest.mark.parametrize("name, key, file, pattern, replacement", FAULTS,
                         ids=[f[0] for f in FAULTS])
def test_a_fault_in_the_rtl_fails_the_regression(exported, tmp_path, name, key, file, pattern,
                                                 replacement):
    require_simulator("icarus")
    tree = _copy_with(exported, tmp_path / "tree", key, file, pattern, replacement)
    r = _regress(tree, key, tmp_path / "build")
    assert r.returncode == 1, f"the fault '{name}' was not caught:\n{r.stdout}\n{r.stderr}"
    assert "RESULT: FAIL" in r.stdout and "0 passed, 1 failed" in r.stdout
    # the report names the failing test with its seed and the command that replays it
    case, = _cases(tmp_path / "build" / "report.xml")
    failure = case.find("failure")
    assert failure is not None
    print(f"{name}: {failure.text}")
    # caught by a check, not by a faulty edit that no longer compiles or runs
    assert not failure.get("message").startswith(("build:", "sim.tb.")), failure.text
    replay = f"mbnn regress --sim icarus --filter '^{key}/icarus$' --seed 20261122 --rtl-dir"
    assert "seed: 20261122" in failure.text and replay in failure.text



# --- lint ---------------------------------------------------------------------------------


def _lint(files, top):
    """`verilator --lint-only -Wall` with the project's waivers and the simulation builds'
    timescale (the crossbar model declares one; the generated modules take the tool's)."""
    from sim import toolchain
    from sim.runner import LINT_WAIVERS

    exe = toolchain.require("verilator").executable
    return subprocess.run([exe, "--lint-only", "-Wall", "--timescale", "1ns/1ps",
                           "--top-module", top, LINT_WAIVERS, *files],
                          capture_output=True, text=True, timeout=300)


def _top(key: str, files) -> str:
    return {"network": "bnn_system", "crossbar": "mbnn_crossbar"}.get(key.split("/")[0],
                                                                    files[0].stem)


@pytest.mark.rtl
def test_every_generated_block_and_core_is_clean_under_verilator_wall(tmp_path):
    """Lint of the Verilog of every regression (each block's parameter sets, every core set's
    sequencer and whole system with the crossbar), with only the waivers of
    rtl/lint/amaranth.vlt and the generator's scoped ones, each justified where it is written."""
    require_simulator("verilator")
    tree = tmp_path / "tree"
    r = mbnn("regress", "--export-rtl", tree, "--sim", "verilator")
    assert r.returncode == 0, r.stderr
    linted = []
    for key in sorted({str(p.parent.relative_to(tree)) for p in tree.rglob("*.v")}):
        files = sorted((tree / key).glob("*.v"))
        done = _lint(files, _top(key, files))
        assert done.returncode == 0 and "%Warning" not in done.stderr, f"{key}:\n{done.stderr}"
        linted.append(key)
    blocks = {k.split("/")[0] for k in linted}
    assert blocks == {"bn_binarize", "accumulator", "sequencer", "programming", "update_unit",
                      "crossbar", "network"}
    assert len(linted) == len({t.key for t in plan(("verilator",))})


@pytest.mark.rtl
@pytest.mark.parametrize("key, file, pattern, replacement, warning", [
    ("bn_binarize/c10_w8_k100", "bn_binarize.v", r"\| o__ready;", "| 1'b1;",
     "Signal is not used: 'o__ready'"),
])
def test_lint_still_flags_an_ignored_input_of_a_generated_top(exported, tmp_path, key, file,
                                                               pattern, replacement, warning):
    """The waivers are narrow: an input a generated block ignores still warns. (Not so for the
    whole system, where Amaranth's unread port aliases in the top module -- waived -- read
    every port: a dropped connection there is caught by the regression, see the fault tests
    above, not by lint.)"""
    require_simulator("verilator")
    tree = _copy_with(exported, tmp_path / "tree", key, file, pattern, replacement)
    files = sorted((tree / key).glob("*.v"))
    done = _lint(files, _top(key, files))
    assert done.returncode != 0 and warning in done.stderr, done.stderr


# --- the progress line --------------------------------------------------------------------


def _on_a_terminal(*args) -> tuple[int, str]:
    """Run ``mbnn`` with stdout and stderr on a pseudo-terminal; (exit status, output)."""
    import os
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", *map(str, args)], stdout=slave,
                            stderr=slave, cwd=REPO, env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:         # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=600), out.decode(errors="replace")


@pytest.mark.rtl
def test_progress_line_on_a_terminal_only(tmp_path):
    require_simulator("icarus")
    args = ("regress", "--sim", "icarus", "--filter", "^bn_binarize/c1_w2/icarus$", "--build",
            tmp_path / "b")
    rc, out = _on_a_terminal(*args)
    assert rc == 0, out
    assert "\r[0/1] 0 failed" in out and "running bn_binarize/c1_w2/icarus" in out, out
    assert "RESULT: PASS" in out
    piped = mbnn(*args)            # stdout a pipe: the same report, no status line
    assert piped.returncode == 0 and "RESULT: PASS" in piped.stdout
    assert "\r" not in piped.stdout and "[0/1]" not in piped.stdout
