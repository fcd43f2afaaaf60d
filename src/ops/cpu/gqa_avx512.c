/* Causal softmax attention of the query heads sharing one kv head, over
 * paged keys/values, AVX-512. Keys are visited in ascending order; called per
 * (token, head group) from the model's parallel loops, so no threads here.
 * Scores: rl_dot16; softmax: max, rl_exp16, lane sums + fixed tree; output:
 * up to 8 vectors of 16 value channels kept in registers over the keys. */
#include <math.h>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

static inline const float *row(const float *const *pages, const rl_kv_view *kv, int j, int kvh,
                               int D) {
    return pages[j / kv->page_size] + (size_t)(j % kv->page_size) * (size_t)kv->ld +
           (size_t)kvh * (size_t)D;
}

/* o[e0 .. e0+16*NCH) (masked at D) = inv * sum_j p[j] v_j, j ascending. */
static inline __attribute__((always_inline)) void
wsum(int NCH, const float *p, int n_keys, const rl_kv_view *kv, int kvh, int D, int e0, float inv,
     float *o) {
    __m512 acc[8];
    __mmask16 m[8];
#pragma GCC unroll 8
    for (int c = 0; c < NCH; c++) {
        acc[c] = _mm512_setzero_ps();
        m[c] = rl_tail16(D - e0 - 16 * c);
    }
    for (int j = 0; j < n_keys; j++) {
        const float *vj = row(kv->v_pages, kv, j, kvh, D) + e0;
        __m512 pj = _mm512_set1_ps(p[j]);
#pragma GCC unroll 8
        for (int c = 0; c < NCH; c++)
            acc[c] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m[c], vj + 16 * c), acc[c]);
    }
    __m512 iv = _mm512_set1_ps(inv);
#pragma GCC unroll 8
    for (int c = 0; c < NCH; c++) _mm512_mask_storeu_ps(o + e0 + 16 * c, m[c], _mm512_mul_ps(acc[c], iv));
}

void rl_gqa_attend_avx512(const float *q, int gq, const rl_kv_view *kv, int kvh, int n_keys,
                          int D, float scale, float *scratch, float *o) {
    for (int h = 0; h < gq; h++) {
        const float *qh = q + (size_t)h * (size_t)D;
        float *oh = o + (size_t)h * (size_t)D;
        float mx = -INFINITY;
        for (int j = 0; j < n_keys; j++) {
            float s = rl_dot16(qh, row(kv->k_pages, kv, j, kvh, D), D) * scale;
            scratch[j] = s;
            mx = s > mx ? s : mx;
        }
        __m512 mv = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
        for (int j = 0; j < n_keys; j += 16) {
            __mmask16 m = rl_tail16(n_keys - j);
            __m512 e = rl_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scratch + j), mv));
            e = _mm512_maskz_mov_ps(m, e);
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(scratch + j, m, e);
        }
        float inv = n_keys > 0 ? 1.0f / rl_hsum16(sum) : 0.0f;
        /* the whole head in registers when D <= 128, else 128 channels at a time */
        for (int e0 = 0; e0 < D; e0 += 128) {
            int nch = (D - e0 + 15) / 16;
            switch (nch > 8 ? 8 : nch) {
            case 1: wsum(1, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            case 2: wsum(2, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            case 3: wsum(3, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            case 4: wsum(4, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            case 5: wsum(5, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            case 6: wsum(6, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            case 7: wsum(7, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            default: wsum(8, scratch, n_keys, kv, kvh, D, e0, inv, oh); break;
            }
        }
    }
}
