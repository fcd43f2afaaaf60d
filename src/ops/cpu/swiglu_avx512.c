/* SwiGLU h = silu(g) * u, AVX-512 with the vector exp of vmath_avx512.h. */
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

void rl_swiglu_avx512(const float *g, const float *u, int n, float *h) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = rl_tail16(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(gv, rl_sigmoid16(gv)), _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(h + i, m, v);
    }
}
