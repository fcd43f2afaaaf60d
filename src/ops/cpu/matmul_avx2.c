/* y = x W^T with AVX2 + FMA: weights converted to fp32 in registers (bf16:
 * shift; f16: vcvtph2ps; f32; f8 rows dequantized first), fp32 FMAs.
 * Per output element one 8-lane accumulator over c = l, l+8, ... (the last
 * partial vector read from a zero-padded copy), then one fixed tree; block and
 * remainder kernels do the same per element (see matmul_avx512.c). */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_ops.h"

enum { WK_F32, WK_BF16, WK_F16 };

#define MR 4
#define NR 2
#define MB 64

static inline __attribute__((always_inline)) __m256 wload(int t, const void *p, size_t i) {
    if (t == WK_F32) return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (t == WK_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

static inline float hsum8(__m256 v) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}

static inline __attribute__((always_inline)) void
mk(int t, int R, int N, const void *w, size_t ldw, const float *x, size_t ldx, int K, float *y,
   size_t ldy) {
    __m256 acc[MR][NR];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc[r][j] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= K; c += 8) {
        __m256 wv[MR];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = wload(t, w, (size_t)r * ldw + (size_t)c);
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)j * ldx + (size_t)c);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][j] = _mm256_fmadd_ps(wv[r], xv, acc[r][j]);
        }
    }
    if (c < K) { /* zero-padded copies of the last partial vector */
        int rem = K - c;
        size_t esz = t == WK_F32 ? 4 : 2;
        __m256 wv[MR];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            _Alignas(32) unsigned char tmp[32] = {0};
            memcpy(tmp, (const char *)w + ((size_t)r * ldw + (size_t)c) * esz, (size_t)rem * esz);
            wv[r] = wload(t, tmp, 0);
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            _Alignas(32) float tx[8] = {0};
            memcpy(tx, x + (size_t)j * ldx + (size_t)c, (size_t)rem * 4);
            __m256 xv = _mm256_load_ps(tx);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][j] = _mm256_fmadd_ps(wv[r], xv, acc[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < N; j++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) y[(size_t)j * ldy + (size_t)r] = hsum8(acc[r][j]);
}

#define MK_FN(T, R, N)                                                                        \
    static void mk_##T##_##R##_##N(const void *w, size_t ldw, const float *x, size_t ldx,    \
                                   int K, float *y, size_t ldy) {                             \
        mk(T, R, N, w, ldw, x, ldx, K, y, ldy);                                               \
    }
#define MK_ROW(T) MK_FN(T, 4, 1) MK_FN(T, 4, 2) MK_FN(T, 1, 1) MK_FN(T, 1, 2)
MK_ROW(WK_F32)
MK_ROW(WK_BF16)
MK_ROW(WK_F16)

typedef void (*mk_fn)(const void *, size_t, const float *, size_t, int, float *, size_t);
#define MK_TAB(T) {{mk_##T##_1_1, mk_##T##_1_2}, {mk_##T##_4_1, mk_##T##_4_2}}
static const mk_fn mk_tab[3][2][NR] = {MK_TAB(WK_F32), MK_TAB(WK_BF16), MK_TAB(WK_F16)};

static void block(int t, const void *w, size_t esz, size_t ldw, int o0, int o1, const float *x,
                  int ldx, int n, int K, float *y, int ldy) {
    for (int r0 = 0; r0 < n; r0 += NR) {
        int nn = n - r0 < NR ? n - r0 : NR;
        const float *xr = x + (size_t)r0 * (size_t)ldx;
        float *yr = y + (size_t)r0 * (size_t)ldy;
        int o = o0;
        for (; o + MR <= o1; o += MR)
            mk_tab[t][1][nn - 1]((const char *)w + (size_t)(o - o0) * ldw * esz, ldw, xr,
                                 (size_t)ldx, K, yr + o, (size_t)ldy);
        for (; o < o1; o++)
            mk_tab[t][0][nn - 1]((const char *)w + (size_t)(o - o0) * ldw * esz, ldw, xr,
                                 (size_t)ldx, K, yr + o, (size_t)ldy);
    }
}

void rl_matmul_avx2(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy) {
    int rows = W->rows, K = W->cols;
    int nb = (rows + MB - 1) / MB;
    if (n <= 0 || rows <= 0) return;
    if (W->dtype == RL_F8_E4M3) {
#pragma omp parallel num_threads(rl_get_threads())
        {
            float *buf = malloc((size_t)MB * (size_t)(K > 0 ? K : 1) * sizeof(float));
#pragma omp for schedule(static)
            for (int b = 0; b < nb; b++) {
                int o0 = b * MB, o1 = o0 + MB < rows ? o0 + MB : rows;
                if (!buf) { /* out of memory: no status to return; make it visible */
                    for (int r = 0; r < n; r++)
                        for (int o = o0; o < o1; o++)
                            y[(size_t)r * (size_t)ldy + (size_t)o] = __builtin_nanf("");
                    continue;
                }
                rl_f8_dequant_rows(W, o0, o1 - o0, buf);
                block(WK_F32, buf, 4, (size_t)K, o0, o1, x, ldx, n, K, y, ldy);
            }
            free(buf);
        }
        return;
    }
    int t = W->dtype == RL_F32 ? WK_F32 : W->dtype == RL_BF16 ? WK_BF16 : WK_F16;
    size_t esz = rl_dtype_size(W->dtype);
#pragma omp parallel for num_threads(rl_get_threads()) schedule(static)
    for (int b = 0; b < nb; b++) {
        int o0 = b * MB, o1 = o0 + MB < rows ? o0 + MB : rows;
        block(t, (const char *)W->data + (size_t)o0 * (size_t)K * esz, esz, (size_t)K, o0, o1,
              x, ldx, n, K, y, ldy);
    }
}
