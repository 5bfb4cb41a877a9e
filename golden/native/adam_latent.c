/* One Adam step on a layer's latent weights, in one pass.
 *
 * golden/train.py's _Adam.delta and _BinaryWeights.update specify it as numpy passes over
 * the layer (eleven of them, each streaming the weights' arrays through memory; on the MLP's
 * 2.9 M weights they took 40 % of an epoch):
 *
 *     m = m * b1;  m = m + grad * (1 - b1)
 *     v = v * b2;  v = v + (grad * grad) * (1 - b2)
 *     step = (m / (sqrt(v) + eps)) * (lr * correction)     (this product in double: numpy
 *                                                          multiplies float32 by the float64
 *                                                          scalar in double, then rounds)
 *     latent = clip(latent - step, -1, 1);  sign = copysign(1, latent)
 *
 * Each line is the same single-precision IEEE-754 operations in the same order, with the
 * float32 constants the numpy passes use (the caller rounds them from the same doubles), so
 * the new moments, latent weights and signs are bit-identical to numpy's (tested). The build
 * (golden/native/__init__.py) forbids contraction into FMAs and fast-math.
 */
#include <math.h>
#include <stdint.h>

/* `m`, `v`, `latent` (n,) float32 updated in place from `grad`; `sign` (n,) receives
 * copysign(1, latent) of the new latent weights. `step`, if not NULL, receives the step
 * instead and `latent` and `sign` are left alone (a caller that applies the step itself). */
void mbnn_adam_latent(float *restrict latent, float *restrict m, float *restrict v,
                      const float *restrict grad, float *restrict sign, float *restrict step,
                      int64_t n, float b1, float one_minus_b1, float b2, float one_minus_b2,
                      float eps, double scale)
{
    if (step) {
        for (int64_t i = 0; i < n; i++) {
            float g = grad[i];
            float mi = m[i] * b1 + g * one_minus_b1;
            float vi = v[i] * b2 + (g * g) * one_minus_b2;
            m[i] = mi;
            v[i] = vi;
            step[i] = (float)((double)(mi / (sqrtf(vi) + eps)) * scale);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = m[i] * b1 + g * one_minus_b1;
        float vi = v[i] * b2 + (g * g) * one_minus_b2;
        float w = latent[i] - (float)((double)(mi / (sqrtf(vi) + eps)) * scale);
        w = w < -1.0f ? -1.0f : (w > 1.0f ? 1.0f : w);
        m[i] = mi;
        v[i] = vi;
        latent[i] = w;
        sign[i] = copysignf(1.0f, w);
    }
}
