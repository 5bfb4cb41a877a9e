// mbnn behavioural crossbar: real-valued conductances, up to PORTS array reads per cycle.
//
// PORTS read ports (default 1; the core's chip.parallel_reads): port p reads array
// tile[p*TILE_BITS +: TILE_BITS] with word lines wl[p*ROWS +: ROWS] when read[p], and its
// codes are codes[p*COLS*ADC_BITS +: COLS*ADC_BITS] (a port that did not read keeps its
// previous codes). The ports are computed one after another with the same operations.
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
//
// Programming (PROGRAM = 1): the arrays start as a fresh chip -- the physical cells of
// CELLS_FILE (tile, row, physical column; PCOLS per row: G+/G- interleaved, or the weight
// cells then the reference column when REFERENCE = 1) -- and are written through the pulse
// port by the programming controller (periphery/programming.py). A verify read (`pcmd_op` 0)
// answers the cell's code on `pres` one cycle later, by golden.programming.verify_code's
// operations: floor((G - G_OFF) / (G_ON - G_OFF) * (2**VERIFY_BITS - 1) + 0.5), clipped. A
// pulse (`pcmd_op` 1) replays the device: the golden device model drew every pulse's outcome
// (golden.programming.program_cells), and PULSE_G_FILE holds the conductance after each pulse
// of the golden log in command order, PULSE_CMD_FILE the command {cell, set, step} the log
// expects. A pulse that is not the next command of the log counts in `replay_errors` (the
// controller did not do what the golden controller did); `pulses_replayed` counts the rest.
// Array reads use G+ - G- of the cells as they stand (no parasitic network: its effective
// conductances are not a per-cell function of the programmed cells). GPOS/GNEG files are
// not read in this mode.
`timescale 1ns/1ps
module mbnn_crossbar #(
    parameter integer ROWS = 128,
    parameter integer COLS = 128,
    parameter integer TILES = 1,
    parameter integer PORTS = 1,
    parameter integer TILE_BITS = 1,
    parameter integer ADC_BITS = 9,
    parameter real V_READ = 0.2,
    parameter real G_UNIT = 90.0e-6,
    parameter real LSB_SCALE = 1.0,
    parameter integer ADC_ERRORS = 0,
    parameter GPOS_FILE = "gpos.hex",
    parameter GNEG_FILE = "gneg.hex",
    parameter GAIN_FILE = "adc_gain.hex",
    parameter OFFSET_FILE = "adc_offset.hex",
    parameter integer PROGRAM = 0,
    parameter integer PCOLS = 2 * COLS,
    parameter integer REFERENCE = 0,
    parameter integer PULSES = 1,
    parameter integer CELL_BITS = 1,
    parameter integer STEP_BITS = 1,
    parameter integer VERIFY_BITS = 8,
    parameter real G_OFF = 0.0,
    parameter real G_ON = 1.0,
    parameter CELLS_FILE = "prog_cells.hex",
    parameter PULSE_G_FILE = "prog_pulse_g.hex",
    parameter PULSE_CMD_FILE = "prog_pulse_cmd.hex"
) (
    input  wire                     clk,
    input  wire [PORTS-1:0]                 read,
    input  wire [PORTS*TILE_BITS-1:0]       tile,
    input  wire [PORTS*ROWS-1:0]            wl,
    output reg                              valid,
    output reg  [PORTS*COLS*ADC_BITS-1:0]   codes,
    // pulse port (PROGRAM = 1)
    input  wire                     pcmd_valid,
    output wire                     pcmd_ready,
    input  wire                     pcmd_op,
    input  wire [CELL_BITS-1:0]     pcmd_cell,
    input  wire                     pcmd_set,
    input  wire [STEP_BITS-1:0]     pcmd_step,
    output reg                      pres_valid,
    input  wire                     pres_ready,
    output reg  [VERIFY_BITS-1:0]   pres_code,
    output reg  [31:0]              replay_errors,
    output reg  [31:0]              pulses_replayed
);
    localparam integer CELLS = TILES * ROWS * COLS;
    localparam integer CODE_MAX = (1 << (ADC_BITS - 1)) - 1;
    localparam integer CODE_MIN = -(1 << (ADC_BITS - 1));

    // A read port's inputs and codes, and all ports' codes: assembled here and written to the
    // output once per cycle of reads (128 separate part-select updates of `codes` would each
    // wake the logic downstream).
    reg [TILE_BITS-1:0] port_tile;
    reg [ROWS-1:0] port_wl;
    reg [COLS*ADC_BITS-1:0] next_codes;
    reg [PORTS*COLS*ADC_BITS-1:0] all_codes;
    integer pt;

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
        if (PROGRAM == 0) begin
            $readmemh(GPOS_FILE, gpos_bits);
            $readmemh(GNEG_FILE, gneg_bits);
            for (r = 0; r < CELLS; r = r + 1)
                g_diff[r] = $bitstoreal(gpos_bits[r]) - $bitstoreal(gneg_bits[r]);
        end
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

    // --- programming --------------------------------------------------------------------
    localparam integer PCELLS = (PROGRAM != 0) ? TILES * ROWS * PCOLS : 1;
    localparam integer PULSE_DEPTH = (PROGRAM != 0 && PULSES > 0) ? PULSES : 1;
    localparam integer CMD_BITS = CELL_BITS + 1 + STEP_BITS;
    localparam real VERIFY_FULL = (1 << VERIFY_BITS) - 1;
    reg [63:0] cell_bits [0:PCELLS-1];
    reg [63:0] pulse_g_bits [0:PULSE_DEPTH-1];
    reg [CMD_BITS-1:0] pulse_cmd [0:PULSE_DEPTH-1];
    real g_cell [0:PCELLS-1];
    real xv;
    integer p, pulse_next;
    // q: an index, or the verify code whose VERIFY_BITS low bits leave (clipped to them)
    /* verilator lint_off UNUSEDSIGNAL */
    integer q;
    /* verilator lint_on UNUSEDSIGNAL */
    initial begin
        pres_valid = 1'b0;
        pres_code = {VERIFY_BITS{1'b0}};
        replay_errors = 0;
        pulses_replayed = 0;
        pulse_next = 0;
        if (PROGRAM != 0) begin
`ifdef MBNN_CROSSBAR_VPI
            $display("mbnn_crossbar: PROGRAM = 1 needs the Verilog read, not MBNN_CROSSBAR_VPI");
            $finish;
`endif
            $readmemh(CELLS_FILE, cell_bits);
            for (p = 0; p < PCELLS; p = p + 1)
                g_cell[p] = $bitstoreal(cell_bits[p]);
            if (PULSES > 0) begin
                $readmemh(PULSE_G_FILE, pulse_g_bits);
                $readmemh(PULSE_CMD_FILE, pulse_cmd);
            end
`ifndef MBNN_CROSSBAR_VPI
            for (p = 0; p < TILES * ROWS; p = p + 1)
                form_row(p);
`endif
        end
    end

`ifndef MBNN_CROSSBAR_VPI
    // G+ - G- of the weights of physical row `row` (tile * ROWS + row) from its cells: one
    // subtraction per weight, the read's first operation. Formed again after every pulse that
    // lands in the row, so a read (in any port's process) always sees the cells as they stand.
    task form_row(input integer row);
        integer w, q0;
        begin
            q0 = row * PCOLS;
            for (w = 0; w < COLS; w = w + 1)
                if (REFERENCE != 0)
                    g_diff[row * COLS + w] = g_cell[q0 + w] - g_cell[q0 + COLS];
                else
                    g_diff[row * COLS + w] = g_cell[q0 + 2 * w] - g_cell[q0 + 2 * w + 1];
        end
    endtask
`endif
    // a read result waits for pres_ready; no command is taken over it
    assign pcmd_ready = !pres_valid || pres_ready;

    initial begin
        valid = 1'b0;
        // bit by bit: a replication this wide exceeds Verilator's replication limit
        for (pt = 0; pt < PORTS*COLS*ADC_BITS; pt = pt + 1) begin
            codes[pt] = 1'b0;
            all_codes[pt] = 1'b0;
        end
    end

    // Behavioural model: the loops compute a read with blocking assignments to temporaries
    // (currents, codes) inside the clocked process; only the outputs are registered.
    /* verilator lint_off BLKSEQ */
    always @(posedge clk) begin
        if (pres_valid && pres_ready)
            pres_valid <= 1'b0;
        if (PROGRAM != 0 && pcmd_valid) begin
            if (!pcmd_op) begin
                xv = (g_cell[pcmd_cell] - G_OFF) / (G_ON - G_OFF);
                xv = $floor(xv * VERIFY_FULL + 0.5);
                if (xv < 0.0) xv = 0.0;
                if (xv > VERIFY_FULL) xv = VERIFY_FULL;
                q = $rtoi(xv);
                pres_code <= q[VERIFY_BITS-1:0];
                pres_valid <= 1'b1;
            end else begin
                if (pulse_next >= PULSES || pulse_cmd[pulse_next] != {pcmd_cell, pcmd_set, pcmd_step}) begin
                    if (replay_errors < 5)
                        $display("mbnn_crossbar: pulse %0d (cell %0d set %0d step %0d) is not the golden log's next",
                                 pulse_next, pcmd_cell, pcmd_set, pcmd_step);
                    replay_errors <= replay_errors + 1;
                end else begin
                    g_cell[pcmd_cell] = $bitstoreal(pulse_g_bits[pulse_next]);
                    pulses_replayed <= pulses_replayed + 1;
`ifndef MBNN_CROSSBAR_VPI
                    // the cell index widens to the integer division by design
                    /* verilator lint_off WIDTHEXPAND */
                    form_row(pcmd_cell / PCOLS);
                    /* verilator lint_on WIDTHEXPAND */
`endif
                end
                pulse_next = pulse_next + 1;
            end
        end
        valid <= |read;
        // The ports in turn, in one process: `codes` is one register written once per cycle
        // of reads (separate processes writing its slices would make it a net of partial
        // drivers, which Icarus resolves bit by bit for every reader of the whole bus).
        for (pt = 0; pt < PORTS; pt = pt + 1) begin
            if (read[pt]) begin
                port_tile = tile[pt*TILE_BITS +: TILE_BITS];
                port_wl = wl[pt*ROWS +: ROWS];
`ifdef MBNN_CROSSBAR_VPI
                $mbnn_crossbar_read(port_tile, port_wl, next_codes, ROWS, COLS, TILES, ADC_BITS,
                                    ADC_ERRORS, V_READ, G_UNIT, LSB_SCALE, GPOS_FILE, GNEG_FILE,
                                    GAIN_FILE, OFFSET_FILE);
`else
                for (c = 0; c < COLS; c = c + 1)
                    current[c] = 0.0;
                for (r = 0; r < ROWS; r = r + 1) begin
                    if (port_wl[r]) begin
                        base = (port_tile * ROWS + r) * COLS;
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
                        x = x * adc_gain[port_tile * COLS + c];
                        x = x + adc_offset[port_tile * COLS + c];
                    end
                    // saturate in the real domain: $rtoi of a value beyond 32 bits is undefined
                    x = $floor(x + 0.5);
                    if (x > CODE_MAX) code = CODE_MAX;
                    else if (x < CODE_MIN) code = CODE_MIN;
                    else code = $rtoi(x);
                    next_codes[c*ADC_BITS +: ADC_BITS] = code[ADC_BITS-1:0];
                end
`endif
                all_codes[pt*COLS*ADC_BITS +: COLS*ADC_BITS] = next_codes;
            end
        end
        if (|read)
            codes <= all_codes;
    end
    /* verilator lint_on BLKSEQ */
endmodule


// mbnn weight memory: the target level of every cell the programming controller programs
// (golden.programming.model_targets), loaded from FILE (one hex level per line, cells in the
// controller's order) and read combinationally. It stands for the memory a host fills with the
// model's weights before programming; a generated memory initialiser cannot carry a whole
// model's millions of cells. It lives in this file so that a generated system still takes
// two Verilog files (crossbar models, generated system), hence the waiver.
/* verilator lint_off DECLFILENAME */
module mbnn_target_memory #(
    parameter integer CELLS = 1,
    parameter integer ADDR_BITS = 1,
    parameter integer LEVEL_BITS = 1,
    parameter FILE = "prog_targets.hex"
) (
    input  wire [ADDR_BITS-1:0]  addr,
    output wire [LEVEL_BITS-1:0] level
);
    reg [LEVEL_BITS-1:0] mem [0:CELLS-1];
    initial $readmemh(FILE, mem);
    assign level = mem[addr];
endmodule
/* verilator lint_on DECLFILENAME */
