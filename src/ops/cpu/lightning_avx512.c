/* Lightning attention, one head, AVX-512: the per-token output (intra-chunk
 * term over the chunk's keys so far + inter-chunk term from the chunk-start
 * state) and the state fold. Called per (token, head) from the model's own
 * parallel loops, so no threads here. Vectors run over the value channel e;
 * q.k dots use rl_dot16 (lanes over d, fixed tree). */
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

void rl_lightning_attend_avx512(const float *q, const float *k, int ldk, const float *v,
                                int ldv, int i, const float *S, const float *pw, int D,
                                float scale, float *o) {
    float s[RL_CHUNK];
    for (int j = 0; j <= i; j++) s[j] = rl_dot16(q, k + (size_t)j * (size_t)ldk, D) * pw[i - j];
    __m512 p = _mm512_set1_ps(pw[i + 1]), sc = _mm512_set1_ps(scale);
    for (int e = 0; e < D; e += 16) {
        __mmask16 m = rl_tail16(D - e);
        __m512 intra = _mm512_setzero_ps(), inter = _mm512_setzero_ps();
        for (int j = 0; j <= i; j++)
            intra = _mm512_fmadd_ps(_mm512_set1_ps(s[j]),
                                    _mm512_maskz_loadu_ps(m, v + (size_t)j * (size_t)ldv + e), intra);
        for (int d = 0; d < D; d++)
            inter = _mm512_fmadd_ps(_mm512_set1_ps(q[d]),
                                    _mm512_maskz_loadu_ps(m, S + (size_t)d * (size_t)D + e), inter);
        _mm512_mask_storeu_ps(o + e, m, _mm512_mul_ps(sc, _mm512_fmadd_ps(p, inter, intra)));
    }
}

void rl_lightning_fold_avx512(float *S, const float *k, int ldk, const float *v, int ldv,
                              int b, const float *pw, int D) {
    __m512 decay = _mm512_set1_ps(pw[b]);
    for (int d = 0; d < D; d++) {
        float *Sd = S + (size_t)d * (size_t)D;
        for (int e = 0; e < D; e += 16) {
            __mmask16 m = rl_tail16(D - e);
            __m512 acc = _mm512_mul_ps(decay, _mm512_maskz_loadu_ps(m, Sd + e));
            for (int j = 0; j < b; j++)
                acc = _mm512_fmadd_ps(_mm512_set1_ps(pw[b - 1 - j] * k[(size_t)j * (size_t)ldk + d]),
                                      _mm512_maskz_loadu_ps(m, v + (size_t)j * (size_t)ldv + e), acc);
            _mm512_mask_storeu_ps(Sd + e, m, acc);
        }
    }
}
