/* RMSNorm and the Lightning output's group RMSNorm + sigmoid gate, AVX-512.
 * Sums of squares: 16 lanes over i = l, l+16, ... then a fixed tree. */
#include <math.h>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

static float inv_rms(const float *x, int n, float eps) {
    float ss = rl_dot16(x, x, n);
    return 1.0f / sqrtf(ss / (float)n + eps);
}

void rl_rmsnorm_avx512(const float *x, int n, int dim, const float *w, float eps, float *y) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        float *yr = y + (size_t)r * (size_t)dim;
        __m512 inv = _mm512_set1_ps(inv_rms(xr, dim, eps));
        for (int i = 0; i < dim; i += 16) {
            __mmask16 m = rl_tail16(dim - i);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), inv);
            _mm512_mask_storeu_ps(yr + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), v));
        }
    }
}

void rl_group_norm_gate_avx512(const float *o, const float *gate, int dim, int groups,
                               const float *w, float eps, float *y) {
    int gs = dim / groups;
    for (int g = 0; g < groups; g++) {
        size_t b = (size_t)g * (size_t)gs;
        __m512 inv = _mm512_set1_ps(inv_rms(o + b, gs, eps));
        for (int i = 0; i < gs; i += 16) {
            __mmask16 m = rl_tail16(gs - i);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + b + i), inv);
            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + b + i));
            v = _mm512_mul_ps(v, rl_sigmoid16(_mm512_maskz_loadu_ps(m, gate + b + i)));
            _mm512_mask_storeu_ps(y + b + i, m, v);
        }
    }
}
