/* Candidate matmul design (b) for BF16 weights: AVX512_BF16 vdpbf16ps with
 * x split into hi = bf16(x) and lo = bf16(x - hi), so x*w = hi*w + lo*w to
 * ~2^-17 relative (each bf16 product is exact in fp32). Measured against the
 * fp32-FMA design in bench/matmul_bench.c; not used by the op tables (see the
 * numbers there). Per output element: one accumulator, for each 32-column
 * step dp(hi) then dp(lo), then the fixed 16-lane tree. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

#define MR 4
#define NR 6
#define MB 64


/* xs: per x row, Kp bf16 of hi then Kp of lo (zero padded to Kp % 32 == 0). */
static inline __attribute__((always_inline)) void
mk(int R, int N, const uint16_t *w, size_t ldw, const uint16_t *xs, size_t Kp, int K, float *y,
   size_t ldy) {
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc[r][j] = _mm512_setzero_ps();
    for (int c = 0; c < K; c += 32) {
        __m512i wv[MR];
        __mmask32 m = K - c >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << (K - c)) - 1u);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_epi16(m, w + (size_t)r * ldw + c);
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            __m512bh hi = (__m512bh)_mm512_loadu_si512(xs + (size_t)j * 2 * Kp + c);
            __m512bh lo = (__m512bh)_mm512_loadu_si512(xs + (size_t)j * 2 * Kp + Kp + c);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                acc[r][j] = _mm512_dpbf16_ps(acc[r][j], hi, (__m512bh)wv[r]);
                acc[r][j] = _mm512_dpbf16_ps(acc[r][j], lo, (__m512bh)wv[r]);
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < N; j++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) y[(size_t)j * ldy + (size_t)r] = rl_hsum16(acc[r][j]);
}

#define MK_FN(R, N)                                                                           \
    static void mk_##R##_##N(const uint16_t *w, size_t ldw, const uint16_t *xs, size_t Kp,   \
                             int K, float *y, size_t ldy) {                                   \
        mk(R, N, w, ldw, xs, Kp, K, y, ldy);                                                  \
    }
MK_FN(4, 1) MK_FN(4, 2) MK_FN(4, 3) MK_FN(4, 4) MK_FN(4, 5) MK_FN(4, 6)
MK_FN(1, 1) MK_FN(1, 2) MK_FN(1, 3) MK_FN(1, 4) MK_FN(1, 5) MK_FN(1, 6)
typedef void (*mk_fn)(const uint16_t *, size_t, const uint16_t *, size_t, int, float *, size_t);
static const mk_fn mk_tab[2][NR] = {{mk_1_1, mk_1_2, mk_1_3, mk_1_4, mk_1_5, mk_1_6},
                                    {mk_4_1, mk_4_2, mk_4_3, mk_4_4, mk_4_5, mk_4_6}};

void rl_matmul_bf16dp_avx512(const rl_wmat *W, const float *x, int ldx, int n, float *y,
                             int ldy) {
    int rows = W->rows, K = W->cols;
    if (n <= 0 || rows <= 0 || W->dtype != RL_BF16) return;
    size_t Kp = (size_t)(K + 31) / 32 * 32;
    uint16_t *xs = aligned_alloc(64, (size_t)n * 2 * Kp * 2 + 64);
    if (!xs) return;
    for (int r = 0; r < n; r++) {
        uint16_t *hi = xs + (size_t)r * 2 * Kp, *lo = hi + Kp;
        const float *xr = x + (size_t)r * (size_t)ldx;
        memset(hi, 0, Kp * 4);
        for (int c = 0; c < K; c++) {
            hi[c] = rl_f32_to_bf16(xr[c]);
            lo[c] = rl_f32_to_bf16(xr[c] - rl_bf16_to_f32(hi[c]));
        }
    }
    int nb = (rows + MB - 1) / MB;
    const uint16_t *w = W->data;
#pragma omp parallel for num_threads(rl_get_threads()) schedule(static)
    for (int b = 0; b < nb; b++) {
        int o0 = b * MB, o1 = o0 + MB < rows ? o0 + MB : rows;
        for (int r0 = 0; r0 < n; r0 += NR) {
            int nn = n - r0 < NR ? n - r0 : NR;
            const uint16_t *xr = xs + (size_t)r0 * 2 * Kp;
            float *yr = y + (size_t)r0 * (size_t)ldy;
            int o = o0;
            for (; o + MR <= o1; o += MR)
                mk_tab[1][nn - 1](w + (size_t)o * (size_t)K, (size_t)K, xr, Kp, K, yr + o,
                                  (size_t)ldy);
            for (; o < o1; o++)
                mk_tab[0][nn - 1](w + (size_t)o * (size_t)K, (size_t)K, xr, Kp, K, yr + o,
                                  (size_t)ldy);
        }
    }
    free(xs);
}
