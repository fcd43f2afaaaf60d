/* Partial NeoX RoPE, AVX-512 (elementwise; the same products as the reference). */
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

void rl_rope_avx512(float *x, int n_heads, int head_dim, int rot, const float *cos_sin) {
    int half = rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * (size_t)head_dim;
        for (int j = 0; j < half; j += 16) {
            __mmask16 m = rl_tail16(half - j);
            __m512 a = _mm512_maskz_loadu_ps(m, xh + j), b = _mm512_maskz_loadu_ps(m, xh + j + half);
            __m512 c = _mm512_maskz_loadu_ps(m, cos_sin + j);
            __m512 s = _mm512_maskz_loadu_ps(m, cos_sin + half + j);
            __m512 na = _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s));
            __m512 nb = _mm512_add_ps(_mm512_mul_ps(b, c), _mm512_mul_ps(a, s));
            _mm512_mask_storeu_ps(xh + j, m, na);
            _mm512_mask_storeu_ps(xh + j + half, m, nb);
        }
    }
}
