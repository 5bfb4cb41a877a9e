// mbnn behavioural crossbar: real-valued conductances, one array read per cycle.
//
// Holds the conductance pair (G+, G-) of every cell of every array ("tile") of a model, loaded
// from the files `mbnn generate` writes: IEEE-754 doubles in hex, one per line, so the values
// are bit for bit those of golden/conductance.py. A read drives the word lines `wl` of array
// `tile` with V_READ where the bit is 1 and leaves them at 0 V otherwise (sign-constant
// inputs). Each column's sense path forms the differential current I = I+ - I- and its ADC
// returns floor(I / lsb_a + 0.5) saturated to ADC_BITS signed, lsb_a = V_READ * G_UNIT *
// LSB_SCALE: with LSB_SCALE = 1 the signed column sum in weight units. G_UNIT is the nominal
// conductance difference of one weight (G_ON - G_OFF for pairs, half that against a reference
// column). With ADC_ERRORS = 1 every column of every array has a gain and an offset (LSB),
// loaded from GAIN_FILE / OFFSET_FILE (doubles in hex, tile-major): x = I / lsb_a * gain +
// offset before the rounding.
//
// The conductances are those a read sees: for a programmed non-ideal chip, the effective
// conductances of each array with its device errors, drift and wire/source/sense parasitics
// (golden/analog/chip_state.py). A read is then a linear map of the word-line inputs, so
// I+ - I- = V_READ * sum(x' (G+ - G-)); the model stores G+ - G- per cell after loading, which
// halves the work of a read (Icarus interprets every loop iteration). The operations and
// their order are the specification's (golden.analog.chip_state.analog_read): one subtraction
// per cell, a sum over driven rows in ascending order from 0.0, V_READ * sum / lsb_a, gain,
// offset, floor(x + 0.5), saturation -- so the codes agree bit for bit.
//
// Defined MBNN_CROSSBAR_VPI (Icarus only) replaces the loops by the system task
// $mbnn_crossbar_read of mbnn_crossbar_vpi.c: the same operations in the same order, compiled,
// for whole-network runs that Icarus would otherwise spend summing conductances.
//
// Codes appear one cycle after `read`, with `valid`: a fixed latency the core relies on.
// The specification is golden.mapping.crossbar_read; tests compare against it.
`timescale 1ns/1ps
module mbnn_crossbar #(
    parameter integer ROWS = 128,
    parameter integer COLS = 128,
    parameter integer TILES = 1,
    parameter integer TILE_BITS = 1,
    parameter integer ADC_BITS = 9,
    parameter real V_READ = 0.2,
    parameter real G_UNIT = 90.0e-6,
    parameter real LSB_SCALE = 1.0,
    parameter integer ADC_ERRORS = 0,
    parameter GPOS_FILE = "gpos.hex",
    parameter GNEG_FILE = "gneg.hex",
    parameter GAIN_FILE = "adc_gain.hex",
    parameter OFFSET_FILE = "adc_offset.hex"
) (
    input  wire                     clk,
    input  wire                     read,
    input  wire [TILE_BITS-1:0]     tile,
    input  wire [ROWS-1:0]          wl,
    output reg                      valid,
    output reg  [COLS*ADC_BITS-1:0] codes
);
    localparam integer CELLS = TILES * ROWS * COLS;
    localparam integer CODE_MAX = (1 << (ADC_BITS - 1)) - 1;
    localparam integer CODE_MIN = -(1 << (ADC_BITS - 1));

    // Codes are assembled here and written to the output once per read: 128 separate
    // part-select updates of `codes` would each wake the logic downstream.
    reg [COLS*ADC_BITS-1:0] next_codes;

`ifndef MBNN_CROSSBAR_VPI
    reg [63:0] gpos_bits [0:CELLS-1];
    reg [63:0] gneg_bits [0:CELLS-1];
    real g_diff [0:CELLS-1];
    real current [0:COLS-1];
    real lsb_a, x;
    integer r, c, k, base;
    // The saturated code as an integer; only its ADC_BITS low bits leave (it lies in
    // [CODE_MIN, CODE_MAX] by the saturation, so they are its two's complement), the rest are
    // unread by design.
    /* verilator lint_off UNUSEDSIGNAL */
    integer code;
    /* verilator lint_on UNUSEDSIGNAL */
    localparam integer ADC_CELLS = (ADC_ERRORS != 0) ? TILES * COLS : 1;
    reg [63:0] gain_bits [0:ADC_CELLS-1];
    reg [63:0] offset_bits [0:ADC_CELLS-1];
    real adc_gain [0:ADC_CELLS-1];
    real adc_offset [0:ADC_CELLS-1];

    initial begin
        $readmemh(GPOS_FILE, gpos_bits);
        $readmemh(GNEG_FILE, gneg_bits);
        for (r = 0; r < CELLS; r = r + 1)
            g_diff[r] = $bitstoreal(gpos_bits[r]) - $bitstoreal(gneg_bits[r]);
        if (ADC_ERRORS != 0) begin
            $readmemh(GAIN_FILE, gain_bits);
            $readmemh(OFFSET_FILE, offset_bits);
            for (r = 0; r < ADC_CELLS; r = r + 1) begin
                adc_gain[r] = $bitstoreal(gain_bits[r]);
                adc_offset[r] = $bitstoreal(offset_bits[r]);
            end
        end
        lsb_a = (V_READ * G_UNIT) * LSB_SCALE;
    end
`endif

    initial begin
        valid = 1'b0;
        codes = {COLS*ADC_BITS{1'b0}};
    end

    // Behavioural model: the loops compute a read with blocking assignments to temporaries
    // (currents, codes) inside the clocked process; only the outputs are registered.
    /* verilator lint_off BLKSEQ */
    always @(posedge clk) begin
        valid <= read;
        if (read) begin
`ifdef MBNN_CROSSBAR_VPI
            $mbnn_crossbar_read(tile, wl, next_codes, ROWS, COLS, TILES, ADC_BITS, ADC_ERRORS,
                                V_READ, G_UNIT, LSB_SCALE, GPOS_FILE, GNEG_FILE, GAIN_FILE,
                                OFFSET_FILE);
`else
            for (c = 0; c < COLS; c = c + 1)
                current[c] = 0.0;
            for (r = 0; r < ROWS; r = r + 1) begin
                if (wl[r]) begin
                    base = (tile * ROWS + r) * COLS;
                    // Eight columns per iteration: Icarus interprets every loop test and
                    // increment, and this cuts a read's time by about 40 % there.
                    for (c = 0; c + 8 <= COLS; c = c + 8) begin
                        k = base + c;
                        current[c]     = current[c]     + g_diff[k];
                        current[c + 1] = current[c + 1] + g_diff[k + 1];
                        current[c + 2] = current[c + 2] + g_diff[k + 2];
                        current[c + 3] = current[c + 3] + g_diff[k + 3];
                        current[c + 4] = current[c + 4] + g_diff[k + 4];
                        current[c + 5] = current[c + 5] + g_diff[k + 5];
                        current[c + 6] = current[c + 6] + g_diff[k + 6];
                        current[c + 7] = current[c + 7] + g_diff[k + 7];
                    end
                    for (c = c; c < COLS; c = c + 1)
                        current[c] = current[c] + g_diff[base + c];
                end
            end
            for (c = 0; c < COLS; c = c + 1) begin
                // current[c] holds sum(x' * (G+ - G-)); times V_READ it is the column current
                x = V_READ * current[c] / lsb_a;
                if (ADC_ERRORS != 0) begin
                    x = x * adc_gain[tile * COLS + c];
                    x = x + adc_offset[tile * COLS + c];
                end
                // saturate in the real domain: $rtoi of a value beyond 32 bits is undefined
                x = $floor(x + 0.5);
                if (x > CODE_MAX) code = CODE_MAX;
                else if (x < CODE_MIN) code = CODE_MIN;
                else code = $rtoi(x);
                next_codes[c*ADC_BITS +: ADC_BITS] = code[ADC_BITS-1:0];
            end
`endif
            codes <= next_codes;
        end
    end
    /* verilator lint_on BLKSEQ */
endmodule
