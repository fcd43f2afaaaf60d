/* Causal softmax attention of the query heads sharing one kv head, over
 * paged keys/values (layout: rl_kv_view in ops.h), AVX-512. Called per
 * (token, kv head) from the model's parallel loops, so no threads here.
 *
 * Scores: keys are stored transposed per page, so 16 consecutive keys of
 * one channel are one vector: lane j accumulates q[d] * k_j[d] over d
 * ascending with FMAs (no horizontal sums), for up to 4 heads per pass over
 * the keys. Softmax: max, rl_exp16, lane sums + fixed tree. Output: each
 * value row is read once per group of up to 4 heads, 64 channels at a time.
 * Every step has a fixed order, the same in prefill and decode. */
#include <math.h>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

/* scores[h][j] = scale * q_h . k_j for NH heads over the cnt (<= 16*NC)
 * keys of one page: one sequential pass over the page's transposed key block
 * (channel by channel, NC vectors of 16 keys each), NH*NC accumulators. */
static inline __attribute__((always_inline)) void
scores(int NH, int NC, const float *q, int D, const float *kt, int P, int cnt, float scale,
       float *sc, size_t ldsc, const float *next) {
    __m512 acc[4][4];
    __mmask16 m[4];
#pragma GCC unroll 4
    for (int c = 0; c < NC; c++) m[c] = rl_tail16(cnt - 16 * c);
#pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[h][c] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
        const float *kd = kt + (size_t)d * (size_t)P;
        /* pages are separate allocations: fetch the next one's block ahead,
         * hardware prefetchers stop at page boundaries */
        if (next)
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++)
                _mm_prefetch((const char *)(next + (size_t)d * (size_t)P + 16 * c), _MM_HINT_T1);
        __m512 kv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) kv[c] = _mm512_maskz_loadu_ps(m[c], kd + 16 * c);
#pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            __m512 qd = _mm512_set1_ps(q[(size_t)h * (size_t)D + (size_t)d]);
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) acc[h][c] = _mm512_fmadd_ps(qd, kv[c], acc[h][c]);
        }
    }
    __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++)
            _mm512_mask_storeu_ps(sc + (size_t)h * ldsc + 16 * c, m[c], _mm512_mul_ps(acc[h][c], sv));
}

#define SCORES_NC(NH)                                                                       \
    switch (nc) {                                                                           \
    case 1: scores(NH, 1, qh, D, kt + 64 * g, P, cnt - 64 * g, scale, sc + j0 + 64 * g, ldp, ktn ? ktn + 64 * g : NULL); break; \
    case 2: scores(NH, 2, qh, D, kt + 64 * g, P, cnt - 64 * g, scale, sc + j0 + 64 * g, ldp, ktn ? ktn + 64 * g : NULL); break; \
    case 3: scores(NH, 3, qh, D, kt + 64 * g, P, cnt - 64 * g, scale, sc + j0 + 64 * g, ldp, ktn ? ktn + 64 * g : NULL); break; \
    default: scores(NH, 4, qh, D, kt + 64 * g, P, cnt - 64 * g, scale, sc + j0 + 64 * g, ldp, ktn ? ktn + 64 * g : NULL); break; \
    }

/* acc_h[e0 .. e0+16*NCH) += sum_j p_h[j] v_j over the cnt keys of one page
 * (j ascending), for NH heads; the running sums live in o between pages
 * (stored and reloaded exactly, so the sum is the same chain of FMAs), which
 * lets both 64-channel halves of a page be read while it is in cache. */
static inline __attribute__((always_inline)) void
wsum_page(int NH, int NCH, const float *p, size_t ldp, const float *vb, int cnt, int D, int e0,
          float *o, const float *next) {
    __m512 acc[4][4];
    __mmask16 m[4];
#pragma GCC unroll 4
    for (int c = 0; c < NCH; c++) m[c] = rl_tail16(D - e0 - 16 * c);
#pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NCH; c++)
            acc[h][c] = _mm512_maskz_loadu_ps(m[c], o + (size_t)h * (size_t)D + e0 + 16 * c);
    for (int jj = 0; jj < cnt; jj++) {
        const float *vj = vb + (size_t)jj * (size_t)D + (size_t)e0;
        if (next)
#pragma GCC unroll 4
            for (int c = 0; c < NCH; c++)
                _mm_prefetch((const char *)(next + (size_t)jj * (size_t)D + (size_t)e0 + 16 * c),
                             _MM_HINT_T1);
        __m512 v[4];
#pragma GCC unroll 4
        for (int c = 0; c < NCH; c++) v[c] = _mm512_maskz_loadu_ps(m[c], vj + 16 * c);
#pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            __m512 pj = _mm512_set1_ps(p[(size_t)h * ldp + (size_t)jj]);
#pragma GCC unroll 4
            for (int c = 0; c < NCH; c++) acc[h][c] = _mm512_fmadd_ps(pj, v[c], acc[h][c]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NCH; c++)
            _mm512_mask_storeu_ps(o + (size_t)h * (size_t)D + e0 + 16 * c, m[c], acc[h][c]);
}

#define WSUM_NCH(NH)                                                                        \
    switch (nch) {                                                                          \
    case 1: wsum_page(NH, 1, pp, ldp, vb, cnt, D, e0, oh, vbn); break;                           \
    case 2: wsum_page(NH, 2, pp, ldp, vb, cnt, D, e0, oh, vbn); break;                           \
    case 3: wsum_page(NH, 3, pp, ldp, vb, cnt, D, e0, oh, vbn); break;                           \
    default: wsum_page(NH, 4, pp, ldp, vb, cnt, D, e0, oh, vbn); break;                          \
    }

/* scratch: gq * n_keys floats (scores, then probabilities, head-major). */
void rl_gqa_attend_avx512(const float *q, int gq, const rl_kv_view *kv, int kvh, int n_keys,
                          int D, float scale, float *scratch, float *o) {
    float inv_all[64]; /* gq <= 64: checked by the config */
    int P = kv->page_size;
    size_t ldp = (size_t)n_keys;
    for (int h0 = 0; h0 < gq; h0 += 4) {
        int nh = gq - h0 < 4 ? gq - h0 : 4;
        const float *qh = q + (size_t)h0 * (size_t)D;
        float *sc = scratch + (size_t)h0 * ldp;
        for (int j0 = 0; j0 < n_keys; j0 += P) {
            const float *kt = kv->k_pages[j0 / P] + (size_t)kvh * (size_t)D * (size_t)P;
            const float *ktn = j0 + P < n_keys
                                   ? kv->k_pages[j0 / P + 1] + (size_t)kvh * (size_t)D * (size_t)P
                                   : NULL;
            int cnt = n_keys - j0 < P ? n_keys - j0 : P;
            for (int g = 0; 64 * g < cnt; g++) { /* 64 keys (4 vectors) per pass */
                int nc = (cnt - 64 * g + 15) / 16;
                switch (nh) {
                case 1: SCORES_NC(1) break;
                case 2: SCORES_NC(2) break;
                case 3: SCORES_NC(3) break;
                default: SCORES_NC(4) break;
                }
            }
        }
    }
    for (int h = 0; h < gq; h++) {
        float *sc = scratch + (size_t)h * ldp;
        __m512 mx16 = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < n_keys; j += 16) {
            __mmask16 m = rl_tail16(n_keys - j);
            mx16 = _mm512_mask_max_ps(mx16, m, mx16, _mm512_maskz_loadu_ps(m, sc + j));
        }
        float mx = _mm512_reduce_max_ps(mx16); /* max is exact in any order */
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
    for (size_t i = 0; i < (size_t)gq * (size_t)D; i++) o[i] = 0.0f;
    for (int h0 = 0; h0 < gq; h0 += 4) {
        int nh = gq - h0 < 4 ? gq - h0 : 4;
        float *oh = o + (size_t)h0 * (size_t)D;
        for (int j0 = 0; j0 < n_keys; j0 += P) {
            const float *vb = kv->v_pages[j0 / P] + (size_t)kvh * (size_t)P * (size_t)D;
            const float *vbn = j0 + P < n_keys
                                   ? kv->v_pages[j0 / P + 1] + (size_t)kvh * (size_t)P * (size_t)D
                                   : NULL;
            const float *pp = scratch + (size_t)h0 * ldp + (size_t)j0;
            int cnt = n_keys - j0 < P ? n_keys - j0 : P;
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
        for (int h = 0; h < nh; h++) {
            __m512 iv = _mm512_set1_ps(inv_all[h0 + h]);
            for (int e = 0; e < D; e += 16) {
                __mmask16 m = rl_tail16(D - e);
                float *oe = oh + (size_t)h * (size_t)D + e;
                _mm512_mask_storeu_ps(oe, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, oe), iv));
            }
        }
    }
}
