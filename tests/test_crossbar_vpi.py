"""The crossbar's compiled read (rtl/analog/mbnn_crossbar_vpi.c) on its own, without cocotb:
codes of a hand-made array, and the one clear error for each bad conductance file. Its codes
against the golden read on random, non-ideal and boundary arrays are in test_rtl_crossbar.py
(``icarus-vpi``)."""

import subprocess

import numpy as np
import pytest

from golden.conductance import hex_lines
from sim.runner import REPO_ROOT, build_crossbar_vpi

from conftest import require_simulator

# One read of a 3x2 array, word lines 0 and 2 driven; codes printed as signed integers.
TOP = """
`timescale 1ns/1ps
module top;
    reg clk = 0, read = 0;
    reg [0:0] tile = 0;
    reg [2:0] wl = 3'b101;
    wire valid;
    wire [9:0] codes;
    mbnn_crossbar #(.ROWS(3), .COLS(2), .TILES(1), .TILE_BITS(1), .ADC_BITS(5),
                    .V_READ(0.5), .G_UNIT(1.0e-5)) xb (
        .clk(clk), .read(read), .tile(tile), .wl(wl), .valid(valid), .codes(codes));
    always #5 clk = ~clk;
    initial begin
        #1 read = 1;          // registered at the rising edge at 5 ns
        #6 $display("codes %0d %0d valid %0d", $signed(codes[4:0]), $signed(codes[9:5]), valid);
        $finish;
    end
endmodule
"""


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    require_simulator("icarus")
    work = tmp_path_factory.mktemp("crossbar_vpi")
    build_crossbar_vpi(work)
    (work / "top.v").write_text(TOP)
    subprocess.run(["iverilog", "-g2005", "-DMBNN_CROSSBAR_VPI", "-o", str(work / "top.vvp"),
                    str(work / "top.v"), str(REPO_ROOT / "rtl" / "analog" / "mbnn_crossbar.v")],
                   check=True)

    def run(g_pos: bytes, g_neg: bytes | None) -> str:
        """The simulation's output with these files (``None``: no gneg.hex)."""
        (work / "gpos.hex").write_bytes(g_pos)
        (work / "gneg.hex").unlink(missing_ok=True)
        if g_neg is not None:
            (work / "gneg.hex").write_bytes(g_neg)
        done = subprocess.run(["vvp", "-n", "-M", str(work), "-m", "mbnn_crossbar", "top.vvp"],
                              cwd=work, capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr
    return run


def test_codes_of_a_hand_made_array(simulation):
    """Rows 0 and 2 driven: column sums of G+ - G- are 3 and -2 weight units (1e-5 S each), the
    third row (not driven) would add 7; codes 3 and -2."""
    g_pos = np.array([[2e-5, 0.0], [7e-5, 0.0], [1e-5, 0.0]])
    g_neg = np.array([[0.0, 1e-5], [0.0, 0.0], [0.0, 1e-5]])
    out = simulation(hex_lines(g_pos), hex_lines(g_neg))
    assert "codes 3 -2 valid 1" in out, out


@pytest.mark.parametrize("damage, expected", [
    ("missing", "cannot open conductance file gneg.hex"),
    ("short", "not the expected values (16 hex digits per line, one per cell) in gneg.hex"),
    ("long", "not the expected values (16 hex digits per line, one per cell) in gneg.hex"),
    ("not hex", "not the expected values (16 hex digits per line, one per cell) in gneg.hex"),
])
def test_a_bad_conductance_file_stops_the_simulation_naming_it(simulation, damage, expected):
    good = hex_lines(np.full(6, 1e-5))
    bad = {"missing": None, "short": good[:-17], "long": good + good[:17],
           "not hex": good.replace(b"3ee4", b"3eg4", 1)}[damage]
    assert bad != good
    out = simulation(good, bad)
    assert f"ERROR: $mbnn_crossbar_read: {expected}" in out, out
    assert "codes" not in out, out
