/* AVX-512 matmul backward: both products are  Out[M][N] += A[M][K] B[K][N]
 * (dx: A = dy, B = W as stored, bf16/f16 converted in registers; dw: A = dy^T,
 * B = x), computed in 4 x 64 register tiles with fp32 FMAs. Each output
 * element accumulates over k ascending in one tile: the result does not
 * depend on the thread count. */
#include <immintrin.h>
#include <stdint.h>

#include "train/backward_ops.h"

enum { TM = 4, TV = 4, TN = TV * 16 };

static inline __m512 load_b(const rl_wmat *W, const float *B, int ldb, int k, int c,
                            __mmask16 m) {
    if (!W) return _mm512_maskz_loadu_ps(m, B + (size_t)k * ldb + c);
    size_t i = (size_t)k * (size_t)W->cols + (size_t)c;
    if (W->dtype == RL_F32) return _mm512_maskz_loadu_ps(m, (const float *)W->data + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)W->data + i);
    if (W->dtype == RL_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h); /* F16 */
}

static void gemm_acc(int M, int N, int K, const float *A, size_t a_sm, size_t a_sk,
                     const rl_wmat *W, const float *B, int ldb, float *Out, int ldo) {
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
            __m512 acc[TM][TV];
            for (int i = 0; i < TM; i++)
                for (int v = 0; v < TV; v++)
                    acc[i][v] = i < nm ? _mm512_maskz_loadu_ps(msk[v], Out + (size_t)(m0 + i) * ldo + c0 + 16 * v)
                                       : _mm512_setzero_ps();
            for (int k = 0; k < K; k++) {
                __m512 b[TV];
                for (int v = 0; v < TV; v++) b[v] = load_b(W, B, ldb, k, c0 + 16 * v, msk[v]);
                for (int i = 0; i < TM; i++) {
                    if (i >= nm) break;
                    __m512 a = _mm512_set1_ps(A[(size_t)(m0 + i) * a_sm + (size_t)k * a_sk]);
                    for (int v = 0; v < TV; v++) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
                }
            }
            for (int i = 0; i < nm; i++)
                for (int v = 0; v < TV; v++)
                    _mm512_mask_storeu_ps(Out + (size_t)(m0 + i) * ldo + c0 + 16 * v, msk[v], acc[i][v]);
        }
}

/* F32 / BF16 / F16 weights (others: the caller uses the generic version). */
void rl_bwd_matmul_avx512(const rl_wmat *W, const float *x, int ldx, int n, const float *dy,
                          int lddy, float *dx, int lddx, float *dw) {
    int O = W->rows, C = W->cols;
    if (dx) gemm_acc(n, C, O, dy, (size_t)lddy, 1, W, NULL, 0, dx, lddx);
    if (dw) gemm_acc(O, C, n, dy, 1, (size_t)lddy, NULL, x, ldx, dw, C);
}
