/* y = x W^T with AVX-512, fp32 activations, weights converted to fp32 in
 * registers (bf16: a 16-bit shift; f16: vcvtph2ps; f32 as is; f8: rows
 * dequantized to an fp32 scratch first) and multiplied with fp32 FMAs.
 *
 * Each output element y[r][o] is one accumulator: lane l sums
 * x[r][c] * W[o][c] for c = l, l+16, l+32, ... (ascending, a masked load for
 * the last partial vector), then hsum16 folds the 16 lanes in a fixed tree.
 * The register-blocked kernel (4 weight rows x 6 x rows) and the remainder
 * kernels perform exactly this sequence per element, so the result of an
 * element is independent of n, its row index and the thread count. */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vmath_avx512.h"

enum { WK_F32, WK_BF16, WK_F16 };

#define MR 4  /* weight rows per micro-tile */
#define NR 6  /* x rows per micro-tile */
#define MB 64 /* weight rows per thread work item (stays in L2 across x tiles) */


static inline __attribute__((always_inline)) __m512 wload(int t, const void *p, size_t i) {
    if (t == WK_F32) return _mm512_loadu_ps((const float *)p + i);
    if (t == WK_BF16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
}

static inline __attribute__((always_inline)) __m512 wload_mask(int t, const void *p, size_t i,
                                                                __mmask16 m) {
    if (t == WK_F32) return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    if (t == WK_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}


/* R weight rows x N x rows; R, N and t are constants after inlining. */
/* Element index of (row r, column c) of a tile: row-major with stride ldw, or
 * packed ([c/16][MR][16]: c a multiple of 16 here). */
static inline __attribute__((always_inline)) size_t at(int P, int r, size_t ldw, int c) {
    return P ? (size_t)c * MR + (size_t)r * 16 : (size_t)r * ldw + (size_t)c;
}

static inline __attribute__((always_inline)) void
mk(int t, int P, int R, int N, const void *w, size_t ldw, const float *x, size_t ldx, int K,
   float *y, size_t ldy, int Rv) {
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc[r][j] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= K; c += 16) {
        __m512 wv[MR];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = wload(t, w, at(P, r, ldw, c));
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)j * ldx + (size_t)c);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][j] = _mm512_fmadd_ps(wv[r], xv, acc[r][j]);
        }
    }
    if (c < K) {
        __mmask16 m = (__mmask16)((1u << (K - c)) - 1u);
        __m512 wv[MR];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = wload_mask(t, w, at(P, r, ldw, c), m);
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)j * ldx + (size_t)c);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][j] = _mm512_fmadd_ps(wv[r], xv, acc[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < N; j++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            if (r < Rv) y[(size_t)j * ldy + (size_t)r] = rl_hsum16(acc[r][j]);
}

/* Instantiations: full-R tiles for every N (1..NR), and single rows. */
#define MK_FN(T, R, N)                                                                        \
    static __attribute__((unused)) void mk_##T##_##R##_##N(const void *w, size_t ldw, const float *x, size_t ldx,    \
                                   int K, float *y, size_t ldy, int rv) {                     \
        mk(T, 0, R, N, w, ldw, x, ldx, K, y, ldy, R);                                         \
        (void)rv;                                                                             \
    }                                                                                         \
    static __attribute__((unused)) void mkp_##T##_##R##_##N(const void *w, size_t ldw, const float *x, size_t ldx,   \
                                    int K, float *y, size_t ldy, int rv) {                    \
        mk(T, 1, R, N, w, ldw, x, ldx, K, y, ldy, rv);                                        \
    }
#define MK_ROW(T)                                                                             \
    MK_FN(T, 4, 1) MK_FN(T, 4, 2) MK_FN(T, 4, 3) MK_FN(T, 4, 4) MK_FN(T, 4, 5) MK_FN(T, 4, 6) \
    MK_FN(T, 1, 1) MK_FN(T, 1, 2) MK_FN(T, 1, 3) MK_FN(T, 1, 4) MK_FN(T, 1, 5) MK_FN(T, 1, 6)
MK_ROW(WK_F32)
MK_ROW(WK_BF16)
MK_ROW(WK_F16)

typedef void (*mk_fn)(const void *, size_t, const float *, size_t, int, float *, size_t, int);
#define MK_TAB(T)                                                                             \
    {{mk_##T##_1_1, mk_##T##_1_2, mk_##T##_1_3, mk_##T##_1_4, mk_##T##_1_5, mk_##T##_1_6},    \
     {mk_##T##_4_1, mk_##T##_4_2, mk_##T##_4_3, mk_##T##_4_4, mk_##T##_4_5, mk_##T##_4_6},    \
     {mkp_##T##_4_1, mkp_##T##_4_2, mkp_##T##_4_3, mkp_##T##_4_4, mkp_##T##_4_5,             \
      mkp_##T##_4_6}}
static const mk_fn mk_tab[3][3][NR] = {MK_TAB(WK_F32), MK_TAB(WK_BF16), MK_TAB(WK_F16)};

/* Rows [o0, o1) of W (element type t, row stride ldw elements, base w
 * pointing at row o0) against rows [r0, r1) of x. */
static void block(int t, const void *w, size_t esz, size_t ldw, int o0, int o1, const float *x,
                  int ldx, int r0, int r1, int K, float *y, int ldy) {
    for (; r0 < r1; r0 += NR) {
        int nn = r1 - r0 < NR ? r1 - r0 : NR;
        const float *xr = x + (size_t)r0 * (size_t)ldx;
        float *yr = y + (size_t)r0 * (size_t)ldy;
        int o = o0;
        for (; o + MR <= o1; o += MR)
            mk_tab[t][1][nn - 1]((const char *)w + (size_t)(o - o0) * ldw * esz, ldw, xr,
                                 (size_t)ldx, K, yr + o, (size_t)ldy, MR);
        for (; o < o1; o++)
            mk_tab[t][0][nn - 1]((const char *)w + (size_t)(o - o0) * ldw * esz, ldw, xr,
                                 (size_t)ldx, K, yr + o, (size_t)ldy, 1);
    }
}

/* Packed tiles: w points at the tile of row o0 (o0 a multiple of MR); each
 * tile holds MR rows of Kp (K rounded up to 16) elements. */
static void block_packed(int t, const void *w, size_t esz, size_t Kp, int o0, int o1,
                         const float *x, int ldx, int r0, int r1, int K, float *y, int ldy) {
    for (; r0 < r1; r0 += NR) {
        int nn = r1 - r0 < NR ? r1 - r0 : NR;
        const float *xr = x + (size_t)r0 * (size_t)ldx;
        float *yr = y + (size_t)r0 * (size_t)ldy;
        for (int o = o0; o < o1; o += MR)
            mk_tab[t][2][nn - 1]((const char *)w + (size_t)(o - o0) * Kp * esz, Kp, xr,
                                 (size_t)ldx, K, yr + o, (size_t)ldy, o1 - o < MR ? o1 - o : MR);
    }
}

static int elem_kind(rl_dtype d) {
    return d == RL_F32 ? WK_F32 : d == RL_BF16 ? WK_BF16 : d == RL_F16 ? WK_F16 : -1;
}

size_t rl_matmul_pack_size_avx512(const rl_wmat *W) {
    if (elem_kind(W->dtype) < 0 || W->rows <= 0 || W->cols <= 0) return 0;
    size_t Kp = ((size_t)W->cols + 15) & ~(size_t)15, R4 = ((size_t)W->rows + MR - 1) / MR * MR;
    return R4 * Kp * rl_dtype_size(W->dtype);
}

void rl_matmul_pack_avx512(const rl_wmat *W, void *dst) {
    size_t esz = rl_dtype_size(W->dtype), K = (size_t)W->cols;
    size_t Kp = (K + 15) & ~(size_t)15;
    char *d = dst;
    const char *s = W->data;
    for (int o = 0; o < W->rows; o += MR)
        for (size_t c = 0; c < Kp; c += 16)
            for (int r = 0; r < MR; r++) {
                size_t n = o + r < W->rows && c < K ? (K - c < 16 ? K - c : 16) : 0;
                if (n) memcpy(d, s + ((size_t)(o + r) * K + c) * esz, n * esz);
                memset(d + n * esz, 0, (16 - n) * esz);
                d += 16 * esz;
            }
}

/* x rows per panel: a panel (<= ~512 KB of x) stays in L2 while the thread
 * sweeps its weight blocks, so x is not re-streamed from L3 per block. */
static int panel_rows(int K) {
    int p = (512 * 1024 / 4) / (K > 0 ? K : 1);
    p = p / NR * NR;
    return p < NR ? NR : p;
}

void rl_matmul_avx512(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy) {
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
                        for (int o = o0; o < o1; o++) y[(size_t)r * (size_t)ldy + (size_t)o] = __builtin_nanf("");
                    continue;
                }
                rl_f8_dequant_rows(W, o0, o1 - o0, buf);
                block(WK_F32, buf, 4, (size_t)K, o0, o1, x, ldx, 0, n, K, y, ldy);
            }
            free(buf);
        }
        return;
    }
    int t = elem_kind(W->dtype);
    size_t esz = rl_dtype_size(W->dtype), Kp = ((size_t)K + 15) & ~(size_t)15;
    int P = panel_rows(K);
#pragma omp parallel num_threads(rl_get_threads())
    {
        /* static, contiguous split of the weight blocks over the threads */
        int nt = omp_get_num_threads(), me = omp_get_thread_num();
        int b0 = (int)((long long)nb * me / nt), b1 = (int)((long long)nb * (me + 1) / nt);
        for (int p0 = 0; p0 < n; p0 += P) {
            int p1 = p0 + P < n ? p0 + P : n;
            for (int b = b0; b < b1; b++) {
                int o0 = b * MB, o1 = o0 + MB < rows ? o0 + MB : rows;
                if (W->packed)
                    block_packed(t, (const char *)W->packed + (size_t)o0 * Kp * esz, esz, Kp, o0,
                                 o1, x, ldx, p0, p1, K, y, ldy);
                else
                    block(t, (const char *)W->data + (size_t)o0 * (size_t)K * esz, esz, (size_t)K,
                          o0, o1, x, ldx, p0, p1, K, y, ldy);
            }
        }
    }
}
