// mbnn behavioural crossbar: real-valued conductances, one array read per cycle.
//
// Holds the conductance pair (G+, G-) of every cell of every array ("tile") of a model,
// loaded from the files `mbnn generate` writes (IEEE-754 doubles in hex, one per line, so the
// values are exactly the golden mapping's). A read drives the word lines `wl` of array `tile`
// with V_READ where the bit is 1 (0 V otherwise, i.e. sign-constant inputs); each column's
// sense path forms I = I+ - I- and its ADC returns round(I / (V_READ * G_UNIT)) saturated to
// ADC_BITS signed -- the signed column sum in weight units. G_UNIT is the conductance
// difference of one weight (G_ON - G_OFF for differential pairs, half that against a
// reference column). Codes appear one cycle after `read` (`valid`), a fixed latency the core
// relies on. Ideal devices: the golden model's crossbar_read is the specification.
`timescale 1ns/1ps
module mbnn_crossbar #(
    parameter integer ROWS = 128,
    parameter integer COLS = 128,
    parameter integer TILES = 1,
    parameter integer TILE_BITS = 1,
    parameter integer ADC_BITS = 9,
    parameter real V_READ = 0.2,
    parameter real G_UNIT = 90.0e-6,
    parameter GPOS_FILE = "gpos.hex",
    parameter GNEG_FILE = "gneg.hex"
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

    reg [63:0] gpos [0:CELLS-1];
    reg [63:0] gneg [0:CELLS-1];
    real i_pos [0:COLS-1];
    real i_neg [0:COLS-1];
    real lsb;
    integer r, c, base, code;

    initial begin
        $readmemh(GPOS_FILE, gpos);
        $readmemh(GNEG_FILE, gneg);
        valid = 1'b0;
        codes = {COLS*ADC_BITS{1'b0}};
    end

    always @(posedge clk) begin
        valid <= read;
        if (read) begin
            for (c = 0; c < COLS; c = c + 1) begin
                i_pos[c] = 0.0;
                i_neg[c] = 0.0;
            end
            for (r = 0; r < ROWS; r = r + 1) begin
                if (wl[r]) begin
                    base = (tile * ROWS + r) * COLS;
                    for (c = 0; c < COLS; c = c + 1) begin
                        i_pos[c] = i_pos[c] + V_READ * $bitstoreal(gpos[base + c]);
                        i_neg[c] = i_neg[c] + V_READ * $bitstoreal(gneg[base + c]);
                    end
                end
            end
            lsb = V_READ * G_UNIT;
            for (c = 0; c < COLS; c = c + 1) begin
                code = $rtoi($floor((i_pos[c] - i_neg[c]) / lsb + 0.5));
                if (code > CODE_MAX) code = CODE_MAX;
                if (code < CODE_MIN) code = CODE_MIN;
                codes[c*ADC_BITS +: ADC_BITS] <= code[ADC_BITS-1:0];
            end
        end
    end
endmodule
