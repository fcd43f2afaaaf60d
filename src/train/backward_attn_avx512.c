/* AVX-512 versions of the two attention backwards (backward_ops.h): the same
 * loops as the plain ones in backward_ops_ref.c, with the head-dimension
 * loops (dot products, axpys, the D x D state products) in 16-lane vectors,
 * masked past D. A dot product sums its lanes by _mm512_reduce_add_ps (a
 * fixed tree), so results are deterministic and, since callers split work
 * by heads, independent of the thread count; they differ from the plain
 * loops by rounding only (tests/unit/test_backward.c). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "train/backward_ops.h"

static inline __mmask16 tail(int D, int d) {
    int left = D - d;
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

static inline float dot(const float *x, const float *y, int D) {
    __m512 acc = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
        __mmask16 m = tail(D, d);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + d), _mm512_maskz_loadu_ps(m, y + d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* y += a x */
static inline void axpy(float *y, float a, const float *x, int D) {
    __m512 av = _mm512_set1_ps(a);
    for (int d = 0; d < D; d += 16) {
        __mmask16 m = tail(D, d);
        __m512 r = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + d), _mm512_maskz_loadu_ps(m, y + d));
        _mm512_mask_storeu_ps(y + d, m, r);
    }
}

/* y = a y */
static inline void scal(float *y, float a, int n) {
    __m512 av = _mm512_set1_ps(a);
    for (int d = 0; d < n; d += 16) {
        __mmask16 m = tail(n, d);
        _mm512_mask_storeu_ps(y + d, m, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, y + d)));
    }
}

void rl_bwd_lightning_avx512(const float *q, const float *k, const float *v, int ld, int T, int D,
                             const float *pw, float scale, const float *do_, int lddo, float *dq,
                             float *dk, float *dv, float *scratch) {
    int nC = (T + RL_CHUNK - 1) / RL_CHUNK;
    size_t DD = (size_t)D * D;
    float *S = scratch;                    /* [nC][D][D]: state at each chunk start */
    float *dS = scratch + (size_t)nC * DD; /* [D][D]: gradient of the next chunk's start state */
    float g[D], tmp[D];
    memset(S, 0, sizeof(float) * DD);
    for (int c = 0; c + 1 < nC; c++) { /* every chunk but the last is full and folded */
        const float *Sc = S + (size_t)c * DD;
        float *Sn = S + (size_t)(c + 1) * DD;
        int b = RL_CHUNK, base = c * RL_CHUNK;
        for (int d = 0; d < D; d++) {
            float *row = Sn + (size_t)d * D;
            for (int e = 0; e < D; e++) row[e] = pw[b] * Sc[(size_t)d * D + e];
            for (int j = 0; j < b; j++)
                axpy(row, pw[b - 1 - j] * k[(size_t)(base + j) * ld + d], v + (size_t)(base + j) * ld, D);
        }
    }
    memset(dS, 0, sizeof(float) * DD);
    for (int c = nC - 1; c >= 0; c--) {
        int base = c * RL_CHUNK, b = T - base < RL_CHUNK ? T - base : RL_CHUNK;
        const float *Sc = S + (size_t)c * DD;
        /* through the fold into the next chunk's state (dS is 0 after the last chunk) */
        if (c + 1 < nC)
            for (int j = 0; j < b; j++) {
                const float *kj = k + (size_t)(base + j) * ld, *vj = v + (size_t)(base + j) * ld;
                float *dkj = dk + (size_t)(base + j) * ld, *dvj = dv + (size_t)(base + j) * ld;
                float p = pw[b - 1 - j];
                for (int d = 0; d < D; d++) dkj[d] += p * dot(dS + (size_t)d * D, vj, D);
                memset(tmp, 0, sizeof(float) * D); /* tmp = kj^T dS */
                for (int d = 0; d < D; d++) axpy(tmp, kj[d], dS + (size_t)d * D, D);
                axpy(dvj, p, tmp, D);
            }
        /* intra-chunk and inter (chunk-start state) terms */
        for (int i = 0; i < b; i++) {
            const float *qi = q + (size_t)(base + i) * ld;
            float *dqi = dq + (size_t)(base + i) * ld;
            for (int e = 0; e < D; e++) g[e] = scale * do_[(size_t)(base + i) * lddo + e];
            for (int j = 0; j <= i; j++) {
                const float *kj = k + (size_t)(base + j) * ld, *vj = v + (size_t)(base + j) * ld;
                float *dkj = dk + (size_t)(base + j) * ld, *dvj = dv + (size_t)(base + j) * ld;
                float a = dot(g, vj, D), s = dot(qi, kj, D), w = pw[i - j];
                axpy(dqi, w * a, kj, D);
                axpy(dkj, w * a, qi, D);
                axpy(dvj, w * s, g, D);
            }
            float p = pw[i + 1];
            if (c > 0)
                for (int d = 0; d < D; d++) dqi[d] += p * dot(Sc + (size_t)d * D, g, D);
        }
        /* gradient of this chunk's start state: decay of the next one's + the inter terms */
        if (c > 0) {
            scal(dS, pw[b], (int)DD);
            for (int i = 0; i < b; i++) {
                const float *qi = q + (size_t)(base + i) * ld, *doi = do_ + (size_t)(base + i) * lddo;
                float p = pw[i + 1];
                for (int d = 0; d < D; d++) axpy(dS + (size_t)d * D, p * qi[d] * scale, doi, D);
            }
        }
    }
}

void rl_bwd_gqa_head_avx512(const float *q, const float *k, const float *v, int ld, int T, int D,
                            float scale, const float *do_, int lddo, float *dq, float *dk, float *dv,
                            float *scratch) {
    float *p = scratch, *ga = scratch + T; /* probabilities; g . v_j */
    for (int t = 0; t < T; t++) {
        const float *qt = q + (size_t)t * ld, *g = do_ + (size_t)t * lddo;
        float mx = -INFINITY;
        for (int j = 0; j <= t; j++) {
            p[j] = dot(qt, k + (size_t)j * ld, D) * scale;
            if (p[j] > mx) mx = p[j];
        }
        float sum = 0.0f;
        for (int j = 0; j <= t; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float inv = 1.0f / sum, delta = 0.0f;
        for (int j = 0; j <= t; j++) {
            p[j] *= inv;
            ga[j] = dot(g, v + (size_t)j * ld, D);
            delta += p[j] * ga[j];
        }
        float *dqt = dq + (size_t)t * ld;
        for (int j = 0; j <= t; j++) {
            float ds = p[j] * (ga[j] - delta) * scale;
            axpy(dqt, ds, k + (size_t)j * ld, D);
            axpy(dk + (size_t)j * ld, ds, qt, D);
            axpy(dv + (size_t)j * ld, p[j], g, D);
        }
    }
}
