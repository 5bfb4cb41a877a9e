/* The convolutional network's training steps that numpy makes in many array passes, each in
 * one or two passes here. golden/train.py's numpy code specifies every one of them and stays
 * the fallback; these perform the same single-precision IEEE-754 operations in the same
 * order -- copies, the sums in numpy's order for a reduction over the leading axes of a
 * C-contiguous array (row by row, from +0.0), one rounding per operation
 * (the build forbids FMA contraction and fast-math) -- so training is bit-identical with or
 * without them (tested per step and on whole epochs).
 *
 * Layouts are NHWC and C-contiguous; `rows` is N*H*W, `c` the channels.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The k x k windows of x (n, h, w, c) with `pad` rows of `pad_value` around, as rows
 * (n, ho, wo) of columns (ky, kx, c): cols[n, oy, ox, ky, kx, :] = x[n, oy+ky-pad,
 * ox+kx-pad, :], or pad_value outside x. */
void mbnn_im2col_nhwc(const float *restrict x, int64_t n, int64_t h, int64_t w, int64_t c,
                      int64_t k, int64_t pad, float pad_value, float *restrict cols)
{
    int64_t ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t oy = 0; oy < ho; oy++)
            for (int64_t ox = 0; ox < wo; ox++) {
                float *out = cols + (((i * ho + oy) * wo + ox) * k * k) * c;
                for (int64_t ky = 0; ky < k; ky++) {
                    int64_t iy = oy + ky - pad;
                    for (int64_t kx = 0; kx < k; kx++, out += c) {
                        int64_t ix = ox + kx - pad;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                            for (int64_t j = 0; j < c; j++)
                                out[j] = pad_value;
                        } else {
                            memcpy(out, x + ((i * h + iy) * w + ix) * c, c * sizeof(float));
                        }
                    }
                }
            }
}

/* The adjoint of mbnn_im2col_nhwc: gx (n, h, w, c) = the sum of every window gradient
 * gcols (n, ho, wo, k, k, c) that covers the pixel, as numpy's padded accumulation takes it:
 * from +0.0, adding the windows in (ky, kx) order. */
void mbnn_col2im_nhwc(const float *restrict gcols, int64_t n, int64_t h, int64_t w, int64_t c,
                      int64_t k, int64_t pad, float *restrict gx)
{
    int64_t ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t iy = 0; iy < h; iy++)
            for (int64_t ix = 0; ix < w; ix++) {
                float *out = gx + ((i * h + iy) * w + ix) * c;
                for (int64_t j = 0; j < c; j++)
                    out[j] = 0.0f;
                for (int64_t ky = 0; ky < k; ky++) {
                    int64_t oy = iy + pad - ky;
                    if (oy < 0 || oy >= ho)
                        continue;
                    for (int64_t kx = 0; kx < k; kx++) {
                        int64_t ox = ix + pad - kx;
                        if (ox < 0 || ox >= wo)
                            continue;
                        const float *g = gcols + ((((i * ho + oy) * wo + ox) * k + ky) * k + kx) * c;
                        for (int64_t j = 0; j < c; j++)
                            out[j] += g[j];
                    }
                }
            }
}

/* Sum over rows of a (rows, c) as numpy's a.sum(axis=0) takes it: from +0.0, row by row (so
 * a column of -0.0 sums to +0.0). */
static void row_sum(const float *restrict a, int64_t rows, int64_t c, float *restrict sum)
{
    for (int64_t j = 0; j < c; j++)
        sum[j] = 0.0f;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++)
            sum[j] += a[r * c + j];
}

/* Batch-norm statistics in training: mean = a.sum(0) / rows; xhat = a - mean (the deviations,
 * written); var = square(xhat).sum(0) / rows. */
void mbnn_bn_statistics(const float *restrict a, int64_t rows, int64_t c, float *restrict mean,
                        float *restrict xhat, float *restrict var)
{
    float count = (float)rows;
    row_sum(a, rows, c, mean);
    for (int64_t j = 0; j < c; j++)
        mean[j] = mean[j] / count;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++)
            xhat[r * c + j] = a[r * c + j] - mean[j];
    for (int64_t j = 0; j < c; j++)
        var[j] = 0.0f;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++) {
            float sq = xhat[r * c + j] * xhat[r * c + j];
            var[j] = var[j] + sq;
        }
    for (int64_t j = 0; j < c; j++)
        var[j] = var[j] / count;
}

/* Batch-norm output in training: xhat *= inv (in place); y = xhat * gamma + beta (rounded
 * after the product and after the sum); and, where `sign` is not NULL, the next layer's
 * input sign = y >= 0 ? 1 : -1 (numpy's 2 * (y >= 0) - 1). */
void mbnn_bn_normalize(float *restrict xhat, int64_t rows, int64_t c, const float *restrict inv,
                       const float *restrict gamma, const float *restrict beta,
                       float *restrict y, float *restrict sign)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++) {
            float v = xhat[r * c + j] * inv[j];
            xhat[r * c + j] = v;
            float q = v * gamma[j];
            y[r * c + j] = q + beta[j];
        }
    if (sign)
        for (int64_t i = 0; i < rows * c; i++)
            sign[i] = y[i] >= 0.0f ? 1.0f : -1.0f;
}

/* The straight-through sign's gradient, g * (|y| <= 1) with the condition as 1.0 or 0.0;
 * y NULL: g itself. */
static inline float passed(const float *restrict g, const float *restrict y, int64_t i)
{
    return y ? g[i] * (fabsf(y[i]) <= 1.0f ? 1.0f : 0.0f) : g[i];
}

/* Batch-norm backward, first pass, of the gradient g after the straight-through sign of y
 * (y NULL: none; the pooled layers pass it in the pooling's backward): dbeta = g.sum(0);
 * dgamma = (g * xhat).sum(0). */
void mbnn_bn_backward_sums(const float *restrict g, const float *restrict y,
                           const float *restrict xhat, int64_t rows, int64_t c,
                           float *restrict dbeta, float *restrict dgamma)
{
    for (int64_t j = 0; j < c; j++) {
        dbeta[j] = 0.0f;
        dgamma[j] = 0.0f;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++) {
            float gj = passed(g, y, r * c + j);
            dbeta[j] = dbeta[j] + gj;
            float q = gj * xhat[r * c + j];
            dgamma[j] = dgamma[j] + q;
        }
}

/* Batch-norm backward, second pass: gx = ((g - xhat * kg) - kb) * ks, each step rounded, g
 * after the straight-through sign of y as in the first pass. */
void mbnn_bn_backward_apply(const float *restrict g, const float *restrict y,
                            const float *restrict xhat, int64_t rows, int64_t c,
                            const float *restrict kg, const float *restrict kb,
                            const float *restrict ks, float *restrict gx)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++) {
            float t = xhat[r * c + j] * kg[j];
            t = passed(g, y, r * c + j) - t;
            t = t - kb[j];
            gx[r * c + j] = t * ks[j];
        }
}

/* p x p max-pooling of y (n, h, w, c), rows and columns past a whole block dropped:
 * pooled (n, h/p, w/p, c) the block maxima; where `sign` is not NULL, their signs as in
 * mbnn_bn_normalize. */
void mbnn_maxpool(const float *restrict y, int64_t n, int64_t h, int64_t w, int64_t c,
                  int64_t p, float *restrict pooled, float *restrict sign)
{
    int64_t hp = h / p, wp = w / p;
    for (int64_t i = 0; i < n; i++)
        for (int64_t by = 0; by < hp; by++)
            for (int64_t bx = 0; bx < wp; bx++) {
                float *best = pooled + ((i * hp + by) * wp + bx) * c;
                const float *first = y + ((i * h + by * p) * w + bx * p) * c;
                memcpy(best, first, c * sizeof(float));
                for (int64_t dy = 0; dy < p; dy++)
                    for (int64_t dx = 0; dx < p; dx++) {
                        const float *v = first + (dy * w + dx) * c;
                        for (int64_t j = 0; j < c; j++)     /* a NaN wins, as in numpy */
                            best[j] = (v[j] > best[j] || v[j] != v[j]) ? v[j] : best[j];
                    }
            }
    if (sign)
        for (int64_t i = 0; i < n * hp * wp * c; i++)
            sign[i] = pooled[i] >= 0.0f ? 1.0f : -1.0f;
}

/* The backward of the pooling and of the sign before it: the pooled gradient g (n, h/p, w/p,
 * c) passes the straight-through sign (g * (|pooled| <= 1), the condition as 1.0 or 0.0) and
 * is split between the elements of y (n, h, w, c) equal to their block's maximum: each gets
 * share * g with share = 1/count of them (float32), the others share 0, the dropped rows and
 * columns +0.0. `count` is room for 2c floats. */
void mbnn_maxpool_backward(const float *restrict y, const float *restrict pooled,
                           const float *restrict g, int64_t n, int64_t h, int64_t w, int64_t c,
                           int64_t p, float *restrict gx, float *restrict count)
{
    int64_t hp = h / p, wp = w / p;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t by = 0; by < hp; by++)
            for (int64_t bx = 0; bx < wp; bx++) {
                int64_t block = ((i * hp + by) * wp + bx) * c;
                const float *best = pooled + block, *gb = g + block;
                int64_t first = ((i * h + by * p) * w + bx * p) * c;
                for (int64_t j = 0; j < c; j++)
                    count[j] = 0.0f;
                for (int64_t dy = 0; dy < p; dy++)
                    for (int64_t dx = 0; dx < p; dx++) {
                        const float *v = y + first + (dy * w + dx) * c;
                        for (int64_t j = 0; j < c; j++)
                            count[j] += v[j] == best[j] ? 1.0f : 0.0f;
                    }
                float *passed = count + c;
                for (int64_t j = 0; j < c; j++) {
                    count[j] = 1.0f / count[j];
                    passed[j] = gb[j] * (fabsf(best[j]) <= 1.0f ? 1.0f : 0.0f);
                }
                for (int64_t dy = 0; dy < p; dy++)
                    for (int64_t dx = 0; dx < p; dx++) {
                        int64_t at = first + (dy * w + dx) * c;
                        for (int64_t j = 0; j < c; j++) {
                            float part = count[j];
                            float share = y[at + j] == best[j] ? part : 0.0f;
                            gx[at + j] = share * passed[j];
                        }
                    }
            }
        /* the rows and columns no block covers */
        for (int64_t yy = 0; yy < h; yy++)
            for (int64_t xx = 0; xx < w; xx++)
                if (yy >= hp * p || xx >= wp * p)
                    for (int64_t j = 0; j < c; j++)
                        gx[((i * h + yy) * w + xx) * c + j] = 0.0f;
    }
}
