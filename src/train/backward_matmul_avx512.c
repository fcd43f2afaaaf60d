/* AVX-512 matmul backward: both products are  Out[M][N] += A[M][K] B[K][N]
 * (dx: A = dy, B = W as stored, bf16/f16 converted in registers; dw: A = dy^T,
 * B = x), computed in 4 x 64 register tiles with fp32 FMAs. Each output
 * element accumulates over k ascending in one tile: the result does not
 * depend on the thread count.
 *
 * The tile is written for one source type and one row count at a time
 * (always_inline + constant arguments + forced unrolling): with the type test
 * and a variable row count inside the k loop, GCC kept the accumulators in
 * memory and the kernel ran at a fifth of the FMA rate. */
#include <immintrin.h>
#include <stdint.h>

#include "train/backward_ops.h"

enum { TM = 4, TV = 4, TN = TV * 16 };
typedef enum { SRC_F32, SRC_BF16, SRC_F16 } src_t;

#define INLINE static inline __attribute__((always_inline))

INLINE __m512 load_b(src_t s, const void *B, size_t i, __mmask16 m) {
    if (s == SRC_F32) return _mm512_maskz_loadu_ps(m, (const float *)B + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)B + i);
    if (s == SRC_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* Rows m0..m0+NM-1, columns c0..c0+63 (masked past N). */
INLINE void tile(src_t s, int NM, int K, const float *A, size_t a_sm, size_t a_sk, const void *B,
                 size_t ldb, float *Out, int ldo, int m0, int c0, const __mmask16 msk[TV]) {
    __m512 acc[TM][TV];
#pragma GCC unroll 4
    for (int i = 0; i < NM; i++)
#pragma GCC unroll 4
        for (int v = 0; v < TV; v++)
            acc[i][v] = _mm512_maskz_loadu_ps(msk[v], Out + (size_t)(m0 + i) * ldo + c0 + 16 * v);
    const float *a = A + (size_t)m0 * a_sm;
    for (int k = 0; k < K; k++) {
        __m512 b[TV];
        size_t bi = (size_t)k * ldb + (size_t)c0;
#pragma GCC unroll 4
        for (int v = 0; v < TV; v++) b[v] = load_b(s, B, bi + 16 * (size_t)v, msk[v]);
#pragma GCC unroll 4
        for (int i = 0; i < NM; i++) {
            __m512 av = _mm512_set1_ps(a[(size_t)i * a_sm + (size_t)k * a_sk]);
#pragma GCC unroll 4
            for (int v = 0; v < TV; v++) acc[i][v] = _mm512_fmadd_ps(av, b[v], acc[i][v]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NM; i++)
#pragma GCC unroll 4
        for (int v = 0; v < TV; v++)
            _mm512_mask_storeu_ps(Out + (size_t)(m0 + i) * ldo + c0 + 16 * v, msk[v], acc[i][v]);
}

INLINE void gemm_src(src_t s, int M, int N, int K, const float *A, size_t a_sm, size_t a_sk,
                     const void *B, size_t ldb, float *Out, int ldo) {
    int mb = (M + TM - 1) / TM, nb = (N + TN - 1) / TN;
#pragma omp parallel for schedule(static) collapse(2)
    for (int bi = 0; bi < mb; bi++)
        for (int bj = 0; bj < nb; bj++) {
            int m0 = bi * TM, nm = M - m0 < TM ? M - m0 : TM, c0 = bj * TN;
            __mmask16 msk[TV];
            for (int v = 0; v < TV; v++) {
                int left = N - (c0 + 16 * v);
                msk[v] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
            }
            if (nm == TM) {
                tile(s, TM, K, A, a_sm, a_sk, B, ldb, Out, ldo, m0, c0, msk);
            } else {
                for (int i = 0; i < nm; i++) tile(s, 1, K, A, a_sm, a_sk, B, ldb, Out, ldo, m0 + i, c0, msk);
            }
        }
}

static void gemm_acc(int M, int N, int K, const float *A, size_t a_sm, size_t a_sk,
                     const rl_wmat *W, const float *B, int ldb, float *Out, int ldo) {
    if (M <= 0 || N <= 0) return;
    if (!W || W->dtype == RL_F32)
        gemm_src(SRC_F32, M, N, K, A, a_sm, a_sk, W ? W->data : B, W ? (size_t)W->cols : (size_t)ldb,
                 Out, ldo);
    else if (W->dtype == RL_BF16)
        gemm_src(SRC_BF16, M, N, K, A, a_sm, a_sk, W->data, (size_t)W->cols, Out, ldo);
    else
        gemm_src(SRC_F16, M, N, K, A, a_sm, a_sk, W->data, (size_t)W->cols, Out, ldo);
}

/* F32 / BF16 / F16 weights (others: the caller uses the generic version). */
void rl_bwd_matmul_avx512(const rl_wmat *W, const float *x, int ldx, int n, const float *dy,
                          int lddy, float *dx, int lddx, float *dw) {
    int O = W->rows, C = W->cols;
    if (dx) gemm_acc(n, C, O, dy, (size_t)lddy, 1, W, NULL, 0, dx, lddx);
    if (dw) gemm_acc(O, C, n, dy, 1, (size_t)lddy, NULL, x, ldx, dw, C);
}
