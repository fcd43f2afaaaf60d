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

/* o_h[e0 .. e0+16*NCH) (masked at D) = inv_h * sum_j p_h[j] v_j, j ascending,
 * for the NH heads h0.. of the group: each value row is read once for all of
 * them (the group shares its kv head). */
static inline __attribute__((always_inline)) void
wsum(int NH, int NCH, const float *p, int n_keys, const rl_kv_view *kv, int kvh, int D, int e0,
     const float *inv, float *o) {
    __m512 acc[4][4];
    __mmask16 m[4];
#pragma GCC unroll 4
    for (int c = 0; c < NCH; c++) m[c] = rl_tail16(D - e0 - 16 * c);
#pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NCH; c++) acc[h][c] = _mm512_setzero_ps();
    for (int j = 0; j < n_keys; j++) {
        const float *vj = row(kv->v_pages, kv, j, kvh, D) + e0;
        __m512 v[4];
#pragma GCC unroll 4
        for (int c = 0; c < NCH; c++) v[c] = _mm512_maskz_loadu_ps(m[c], vj + 16 * c);
#pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            __m512 pj = _mm512_set1_ps(p[(size_t)h * (size_t)n_keys + (size_t)j]);
#pragma GCC unroll 4
            for (int c = 0; c < NCH; c++) acc[h][c] = _mm512_fmadd_ps(pj, v[c], acc[h][c]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < NH; h++) {
        __m512 iv = _mm512_set1_ps(inv[h]);
#pragma GCC unroll 4
        for (int c = 0; c < NCH; c++)
            _mm512_mask_storeu_ps(o + (size_t)h * (size_t)D + e0 + 16 * c, m[c],
                                  _mm512_mul_ps(acc[h][c], iv));
    }
}

#define WSUM_NCH(NH)                                                                        \
    switch (nch) {                                                                          \
    case 1: wsum(NH, 1, p, n_keys, kv, kvh, D, e0, inv, oh); break;                         \
    case 2: wsum(NH, 2, p, n_keys, kv, kvh, D, e0, inv, oh); break;                         \
    case 3: wsum(NH, 3, p, n_keys, kv, kvh, D, e0, inv, oh); break;                         \
    default: wsum(NH, 4, p, n_keys, kv, kvh, D, e0, inv, oh); break;                        \
    }

/* scratch: gq * n_keys floats (scores, then probabilities, head-major). */
void rl_gqa_attend_avx512(const float *q, int gq, const rl_kv_view *kv, int kvh, int n_keys,
                          int D, float scale, float *scratch, float *o) {
    float inv_all[64]; /* gq <= 64: checked by the config */
    /* scores: each key row is read once for all heads of the group */
    for (int j = 0; j < n_keys; j++) {
        const float *kj = row(kv->k_pages, kv, j, kvh, D);
        for (int h = 0; h < gq; h++)
            scratch[(size_t)h * (size_t)n_keys + (size_t)j] =
                rl_dot16(q + (size_t)h * (size_t)D, kj, D) * scale;
    }
    for (int h = 0; h < gq; h++) {
        float *sc = scratch + (size_t)h * (size_t)n_keys;
        float mx = -INFINITY;
        for (int j = 0; j < n_keys; j++) mx = sc[j] > mx ? sc[j] : mx;
        __m512 mv = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
        for (int j = 0; j < n_keys; j += 16) {
            __mmask16 m = rl_tail16(n_keys - j);
            __m512 e = rl_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sc + j), mv));
            e = _mm512_maskz_mov_ps(m, e);
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(sc + j, m, e);
        }
        inv_all[h] = n_keys > 0 ? 1.0f / rl_hsum16(sum) : 0.0f;
    }
    /* weighted sums: up to 4 heads x 64 channels per pass over the values */
    for (int h0 = 0; h0 < gq; h0 += 4) {
        int nh = gq - h0 < 4 ? gq - h0 : 4;
        const float *p = scratch + (size_t)h0 * (size_t)n_keys;
        const float *inv = inv_all + h0;
        float *oh = o + (size_t)h0 * (size_t)D;
        for (int e0 = 0; e0 < D; e0 += 64) {
            int nch = (D - e0 + 15) / 16;
            switch (nh) {
            case 1: WSUM_NCH(1) break;
            case 2: WSUM_NCH(2) break;
            case 3: WSUM_NCH(3) break;
            default: WSUM_NCH(4) break;
            }
        }
    }
}
