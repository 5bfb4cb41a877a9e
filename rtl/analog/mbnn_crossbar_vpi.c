/* mbnn crossbar read as a compiled VPI system task, for Icarus Verilog.
 *
 * Icarus interprets the behavioural crossbar's loops (mbnn_crossbar.v) one statement at a
 * time; a 128x128 read costs it milliseconds, and whole-network runs spend most of their time
 * there. Compiled with MBNN_CROSSBAR_VPI defined, mbnn_crossbar.v calls
 *
 *     $mbnn_crossbar_read(tile, wl, codes, ROWS, COLS, TILES, ADC_BITS, ADC_ERRORS,
 *                         V_READ, G_UNIT, LSB_SCALE, GPOS_FILE, GNEG_FILE, GAIN_FILE,
 *                         OFFSET_FILE);
 *
 * instead, and this file computes the read with the same IEEE-754 double operations in the
 * same order as the Verilog (and golden.analog.chip_state.analog_read, the specification):
 * G+ - G- per cell once at load; per read, each column's sum starts at 0.0 and adds the
 * driven rows in ascending order; x = V_READ * sum / lsb_a with lsb_a = (V_READ * G_UNIT) *
 * LSB_SCALE; with ADC errors x = x * gain, then x = x + offset; floor(x + 0.5); saturation
 * to ADC_BITS signed. C evaluates these left to right in double precision on x86-64 (SSE2),
 * as Icarus does; the build passes -ffp-contract=off so that no multiply-add is fused.
 * The codes are therefore those of the Verilog loops bit for bit (tested on reads within
 * rounding of a decision boundary, tests/test_rtl_crossbar.py).
 *
 * The first call of each call site (one per read port of each crossbar instance) finds the
 * conductance and ADC-error files (16 hex digits per line, as `mbnn generate` writes them)
 * loaded by an earlier call site with the same files and parameters -- the ports of one
 * crossbar share one copy -- or loads them, and keeps them with the call site. A file that cannot be read or holds the wrong number of values ends the
 * simulation with an error naming it. Word-line bits that are X or Z count as not driven,
 * as the Verilog's `if (wl[r])` does, and a tile beyond the array count reads as all-zero
 * conductances, as the Verilog's out-of-range array reads do.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vpi_user.h>

#define ARGS 15

typedef struct {
    char *key;               /* the files and parameters it was loaded with */
    int rows, cols, tiles, adc_bits, adc_errors;
    double v_read, lsb_a;
    double *g_diff;          /* tiles * rows * cols: G+ - G-, row-major per tile */
    double *gain, *offset;   /* tiles * cols (ADC_ERRORS only) */
    double *sum;             /* cols: the column sums of one read */
    s_vpi_vecval *words;     /* the packed codes */
    int n_words;
} crossbar_t;

static void fail(const char *message, const char *detail)
{
    vpi_printf("ERROR: $mbnn_crossbar_read: %s%s\n", message, detail ? detail : "");
    vpi_control(vpiFinish, 1);
}

/* `count` doubles from a file of 16 hex digits per line; NULL (after fail()) on error. */
static double *load_hex(const char *path, size_t count)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fail("cannot open conductance file ", path);
        return NULL;
    }
    double *values = malloc(count * sizeof *values);
    char line[64];
    size_t n = 0;
    while (values && fgets(line, sizeof line, f)) {
        if (line[0] == '\n')
            continue;
        char *end;
        uint64_t bits = strtoull(line, &end, 16);
        if (end != line + 16 || (*end != '\n' && *end != '\0') || n == count) {
            free(values);
            values = NULL;
            break;
        }
        memcpy(&values[n++], &bits, sizeof bits);
    }
    fclose(f);
    if (!values || n != count) {
        free(values);
        fail("not the expected values (16 hex digits per line, one per cell) in ", path);
        return NULL;
    }
    return values;
}

static int int_arg(vpiHandle arg)
{
    s_vpi_value v = {.format = vpiIntVal};
    vpi_get_value(arg, &v);
    return v.value.integer;
}

static double real_arg(vpiHandle arg)
{
    s_vpi_value v = {.format = vpiRealVal};
    vpi_get_value(arg, &v);
    return v.value.real;
}

static char *string_arg(vpiHandle arg)
{
    s_vpi_value v = {.format = vpiStringVal};
    vpi_get_value(arg, &v);
    return strdup(v.value.str);
}

static crossbar_t *load(vpiHandle args[ARGS])
{
    crossbar_t *xb = calloc(1, sizeof *xb);
    xb->rows = int_arg(args[3]);
    xb->cols = int_arg(args[4]);
    xb->tiles = int_arg(args[5]);
    xb->adc_bits = int_arg(args[6]);
    xb->adc_errors = int_arg(args[7]);
    xb->v_read = real_arg(args[8]);
    double g_unit = real_arg(args[9]), lsb_scale = real_arg(args[10]);
    xb->lsb_a = (xb->v_read * g_unit) * lsb_scale;
    if (xb->rows < 1 || xb->cols < 1 || xb->tiles < 1 || xb->adc_bits < 2 || xb->adc_bits > 31) {
        fail("ROWS, COLS, TILES must be positive and ADC_BITS in 2..31", NULL);
        return NULL;
    }
    size_t cells = (size_t)xb->tiles * xb->rows * xb->cols;
    char *files[4];
    for (int i = 0; i < 4; i++)
        files[i] = string_arg(args[11 + i]);
    double *g_pos = load_hex(files[0], cells);
    double *g_neg = g_pos ? load_hex(files[1], cells) : NULL;
    if (g_neg) {
        xb->g_diff = malloc(cells * sizeof *xb->g_diff);
        for (size_t k = 0; k < cells; k++)
            xb->g_diff[k] = g_pos[k] - g_neg[k];
    }
    if (g_neg && xb->adc_errors) {
        xb->gain = load_hex(files[2], (size_t)xb->tiles * xb->cols);
        xb->offset = xb->gain ? load_hex(files[3], (size_t)xb->tiles * xb->cols) : NULL;
    }
    free(g_pos);
    free(g_neg);
    for (int i = 0; i < 4; i++)
        free(files[i]);
    if (!xb->g_diff || (xb->adc_errors && !xb->offset))
        return NULL;
    xb->sum = malloc(xb->cols * sizeof *xb->sum);
    xb->n_words = (xb->cols * xb->adc_bits + 31) / 32;
    xb->words = malloc(xb->n_words * sizeof *xb->words);
    return xb;
}

/* Crossbars loaded so far, shared by call sites with the same files and parameters. */
#define SHARED_MAX 64
static crossbar_t *shared[SHARED_MAX];
static int n_shared;

static crossbar_t *find_or_load(vpiHandle args[ARGS])
{
    char key[4096];
    int n = snprintf(key, sizeof key, "%d %d %d %d %d %.17g %.17g %.17g",
                     int_arg(args[3]), int_arg(args[4]), int_arg(args[5]), int_arg(args[6]),
                     int_arg(args[7]), real_arg(args[8]), real_arg(args[9]), real_arg(args[10]));
    for (int i = 11; i < 15 && n > 0 && n < (int)sizeof key; i++) {
        char *file = string_arg(args[i]);
        n += snprintf(key + n, sizeof key - n, " %s", file);
        free(file);
    }
    for (int i = 0; i < n_shared; i++)
        if (strcmp(shared[i]->key, key) == 0)
            return shared[i];
    crossbar_t *xb = load(args);
    if (xb && n_shared < SHARED_MAX) {
        xb->key = strdup(key);
        shared[n_shared++] = xb;
    } else if (xb) {
        xb->key = strdup(key);
    }
    return xb;
}

static PLI_INT32 read_calltf(PLI_BYTE8 *user_data)
{
    (void)user_data;
    vpiHandle call = vpi_handle(vpiSysTfCall, NULL);
    vpiHandle args[ARGS];
    vpiHandle it = vpi_iterate(vpiArgument, call);
    int n = 0;
    for (vpiHandle a; it && (a = vpi_scan(it)) != NULL;) {
        if (n < ARGS)
            args[n] = a;
        n++;
    }
    if (n != ARGS) {
        fail("expects 15 arguments (see rtl/analog/mbnn_crossbar_vpi.c)", NULL);
        return 0;
    }
    crossbar_t *xb = vpi_get_userdata(call);
    if (!xb) {
        xb = find_or_load(args);
        if (!xb)
            return 0;
        vpi_put_userdata(call, xb);
    }

    int tile = int_arg(args[0]);
    s_vpi_value wl = {.format = vpiVectorVal};
    vpi_get_value(args[1], &wl);
    for (int c = 0; c < xb->cols; c++)
        xb->sum[c] = 0.0;
    if (tile >= 0 && tile < xb->tiles) {
        for (int r = 0; r < xb->rows; r++) {
            const s_vpi_vecval *w = &wl.value.vector[r / 32];
            if (!((w->aval & ~w->bval) >> (r % 32) & 1))
                continue;
            const double *g = &xb->g_diff[((size_t)tile * xb->rows + r) * xb->cols];
            for (int c = 0; c < xb->cols; c++)
                xb->sum[c] = xb->sum[c] + g[c];
        }
    }
    const long code_max = (1L << (xb->adc_bits - 1)) - 1, code_min = -(1L << (xb->adc_bits - 1));
    const uint64_t mask = (1ULL << xb->adc_bits) - 1;
    memset(xb->words, 0, xb->n_words * sizeof *xb->words);
    for (int c = 0; c < xb->cols; c++) {
        double x = xb->v_read * xb->sum[c] / xb->lsb_a;
        if (xb->adc_errors) {
            int in_range = tile >= 0 && tile < xb->tiles;
            size_t k = (size_t)(in_range ? tile : 0) * xb->cols + c;
            x = x * (in_range ? xb->gain[k] : 0.0);
            x = x + (in_range ? xb->offset[k] : 0.0);
        }
        x = floor(x + 0.5);
        long code = x > code_max ? code_max : x < code_min ? code_min : (long)x;
        uint64_t field = (uint64_t)code & mask;
        long bit = (long)c * xb->adc_bits;
        for (int b = 0; b < xb->adc_bits; b++, bit++)
            if (field >> b & 1)
                xb->words[bit / 32].aval |= 1U << (bit % 32);
    }
    s_vpi_value out = {.format = vpiVectorVal};
    out.value.vector = xb->words;
    vpi_put_value(args[2], &out, NULL, vpiNoDelay);
    return 0;
}

static void register_read(void)
{
    s_vpi_systf_data tf = {.type = vpiSysTask, .tfname = "$mbnn_crossbar_read",
                           .calltf = read_calltf};
    vpi_register_systf(&tf);
}

void (*vlog_startup_routines[])(void) = {register_read, NULL};
