/* Lightning attention, one head, AVX-512: the per-token output (intra-chunk
 * term over the chunk's keys so far + inter-chunk term from the chunk-start
 * state) and the state fold. Called per (token, head) from the model's own
 * parallel loops, so no threads here. Vectors run over the value channel e,
 * up to 8 vectors (128 channels) at once so that the independent FMA chains
 * hide the FMA latency; each element's chain is the same whatever the
 * grouping. q.k dots use rl_dot16 (lanes over d, fixed tree). */
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

/* o[e0 .. e0 + 16*NCH) for channels e0.. of one head. */
static inline __attribute__((always_inline)) void
attend_cols(int NCH, const float *q, const float *s, int i, const float *v, int ldv,
            const float *S, int D, int e0, __m512 p, __m512 sc, float *o) {
    __m512 intra[8], inter[8];
    __mmask16 m[8];
#pragma GCC unroll 8
    for (int c = 0; c < NCH; c++) {
        m[c] = rl_tail16(D - e0 - 16 * c);
        intra[c] = _mm512_setzero_ps();
        inter[c] = _mm512_setzero_ps();
    }
    for (int j = 0; j <= i; j++) {
        __m512 sj = _mm512_set1_ps(s[j]);
        const float *vj = v + (size_t)j * (size_t)ldv + e0;
#pragma GCC unroll 8
        for (int c = 0; c < NCH; c++)
            intra[c] = _mm512_fmadd_ps(sj, _mm512_maskz_loadu_ps(m[c], vj + 16 * c), intra[c]);
    }
    for (int d = 0; d < D; d++) {
        __m512 qd = _mm512_set1_ps(q[d]);
        const float *Sd = S + (size_t)d * (size_t)D + e0;
#pragma GCC unroll 8
        for (int c = 0; c < NCH; c++)
            inter[c] = _mm512_fmadd_ps(qd, _mm512_maskz_loadu_ps(m[c], Sd + 16 * c), inter[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < NCH; c++)
        _mm512_mask_storeu_ps(o + e0 + 16 * c, m[c], _mm512_mul_ps(sc, _mm512_fmadd_ps(p, inter[c], intra[c])));
}

void rl_lightning_attend_avx512(const float *q, const float *k, int ldk, const float *v,
                                int ldv, int i, const float *S, const float *pw, int D,
                                float scale, float *o) {
    float s[RL_CHUNK];
    for (int j = 0; j <= i; j++) s[j] = rl_dot16(q, k + (size_t)j * (size_t)ldk, D) * pw[i - j];
    __m512 p = _mm512_set1_ps(pw[i + 1]), sc = _mm512_set1_ps(scale);
    for (int e0 = 0; e0 < D; e0 += 128) {
        int nch = (D - e0 + 15) / 16;
        switch (nch > 8 ? 8 : nch) {
        case 1: attend_cols(1, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        case 2: attend_cols(2, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        case 3: attend_cols(3, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        case 4: attend_cols(4, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        case 5: attend_cols(5, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        case 6: attend_cols(6, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        case 7: attend_cols(7, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        default: attend_cols(8, q, s, i, v, ldv, S, D, e0, p, sc, o); break;
        }
    }
}

/* Row d of the state, channels e0 .. e0 + 16*NCH:
 * S[d][e] = pw[b] S[d][e] + sum_j (pw[b-1-j] k_j[d]) v_j[e], j ascending. */
static inline __attribute__((always_inline)) void
fold_cols(int NCH, float *Sd, const float *k, int ldk, const float *v, int ldv, int b,
          const float *pw, int d, int D, int e0, __m512 decay) {
    __m512 acc[8];
    __mmask16 m[8];
#pragma GCC unroll 8
    for (int c = 0; c < NCH; c++) {
        m[c] = rl_tail16(D - e0 - 16 * c);
        acc[c] = _mm512_mul_ps(decay, _mm512_maskz_loadu_ps(m[c], Sd + e0 + 16 * c));
    }
    for (int j = 0; j < b; j++) {
        __m512 w = _mm512_set1_ps(pw[b - 1 - j] * k[(size_t)j * (size_t)ldk + d]);
        const float *vj = v + (size_t)j * (size_t)ldv + e0;
#pragma GCC unroll 8
        for (int c = 0; c < NCH; c++)
            acc[c] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[c], vj + 16 * c), acc[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < NCH; c++) _mm512_mask_storeu_ps(Sd + e0 + 16 * c, m[c], acc[c]);
}

void rl_lightning_fold_avx512(float *S, const float *k, int ldk, const float *v, int ldv,
                              int b, const float *pw, int D) {
    __m512 decay = _mm512_set1_ps(pw[b]);
    for (int d = 0; d < D; d++) {
        float *Sd = S + (size_t)d * (size_t)D;
        for (int e0 = 0; e0 < D; e0 += 128) {
            int nch = (D - e0 + 15) / 16;
            switch (nch > 8 ? 8 : nch) {
            case 1: fold_cols(1, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            case 2: fold_cols(2, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            case 3: fold_cols(3, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            case 4: fold_cols(4, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            case 5: fold_cols(5, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            case 6: fold_cols(6, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            case 7: fold_cols(7, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            default: fold_cols(8, Sd, k, ldk, v, ldv, b, pw, d, D, e0, decay); break;
            }
        }
    }
}
