/* One row tile's ADC codes of a block of reads, rounded, flagged and summed in one pass.
 *
 * The numpy evaluation read (golden/analog/evaluate.py, _LayerReader) specifies these
 * steps as separate array passes: code = rint(value); residual = |value - code|; flag the
 * values whose residual is above `limit`; clip the code into the ADC's range when the tile
 * can saturate; add it into the layer's sums. Each pass streamed the block through memory
 * (six reads and four writes of the block per row tile, which cost as much as the tile's
 * matrix product); here the block is read once and the sums read and written once.
 *
 * Every operation is one IEEE-754 single-precision operation, exactly as numpy performs it:
 * rintf rounds half to even (the default rounding mode, as np.rint), the subtraction is
 * exact (Sterbenz), fabsf and the comparisons are exact. The build (golden/native/__init__.py)
 * forbids contraction and fast-math, so the results are bit-identical to the numpy steps
 * (tested against them).
 */
#include <math.h>
#include <stdint.h>

#define SCAN 256    /* values per scan group: one branch per group, not per value */

static inline int64_t tile_codes(const float *restrict value, float *restrict sums, int64_t n,
                                 const int first, const int saturate, float limit,
                                 float code_min, float code_max, int64_t *restrict flag_index,
                                 float *restrict flag_code, float *restrict flag_residual)
{
    int64_t flagged = 0;
    for (int64_t start = 0; start < n; start += SCAN) {
        int64_t stop = start + SCAN < n ? start + SCAN : n;
        int hit = 0;
        for (int64_t i = start; i < stop; i++) {
            float code = rintf(value[i]);
            hit |= fabsf(value[i] - code) > limit;
            if (saturate)
                code = code < code_min ? code_min : (code > code_max ? code_max : code);
            sums[i] = first ? code : sums[i] + code;
        }
        if (!hit)
            continue;
        /* rare (a few values per 10 000 on the shipped networks): the flagged values, with
         * their unclipped codes, as numpy's flatnonzero would list them (ascending index) */
        for (int64_t i = start; i < stop; i++) {
            float code = rintf(value[i]);
            float residual = fabsf(value[i] - code);
            if (residual > limit) {
                flag_index[flagged] = i;
                flag_code[flagged] = code;
                flag_residual[flagged] = residual;
                flagged++;
            }
        }
    }
    return flagged;
}

/* `value` (n,) float32 ADC inputs in LSB; `sums` (n,) float32, set to the codes when
 * `first`, else the codes are added to it; `limit` as _read_limits gives it; the codes are
 * clipped into [code_min, code_max] when `saturate`. The flagged values' flat indices,
 * unclipped codes and residuals go to the three outputs (room for n each). Returns how many
 * were flagged. */
int64_t mbnn_tile_codes(const float *value, float *sums, int64_t n, int first, int saturate,
                        float limit, float code_min, float code_max, int64_t *flag_index,
                        float *flag_code, float *flag_residual)
{
    /* the four specialisations keep the branches on `first` and `saturate` out of the loop */
    if (first && saturate)
        return tile_codes(value, sums, n, 1, 1, limit, code_min, code_max, flag_index,
                          flag_code, flag_residual);
    if (first)
        return tile_codes(value, sums, n, 1, 0, limit, code_min, code_max, flag_index,
                          flag_code, flag_residual);
    if (saturate)
        return tile_codes(value, sums, n, 0, 1, limit, code_min, code_max, flag_index,
                          flag_code, flag_residual);
    return tile_codes(value, sums, n, 0, 0, limit, code_min, code_max, flag_index, flag_code,
                      flag_residual);
}
