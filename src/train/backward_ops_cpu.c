/* Fast CPU matmul backward: the AVX-512 register-tiled kernel
 * (backward_matmul_avx512.c) where the CPU has it, else blocked loops that the
 * compiler vectorizes. Threads split output rows (dx by blocks of input rows,
 * dw by weight rows), so each element has one fixed accumulation order
 * whatever the thread count. */
#include <string.h>

#include "train/backward_ops.h"

enum { RB = 8 };

void rl_bwd_matmul_avx512(const rl_wmat *W, const float *x, int ldx, int n, const float *dy,
                          int lddy, float *dx, int lddx, float *dw);
void rl_bwd_lightning_avx512(const float *q, const float *k, const float *v, int ld, int T, int D,
                             const float *pw, float scale, const float *do_, int lddo, float *dq,
                             float *dk, float *dv, float *scratch);
void rl_bwd_gqa_head_avx512(const float *q, const float *k, const float *v, int ld, int T, int D,
                            float scale, const float *do_, int lddo, float *dq, float *dk, float *dv,
                            float *scratch);

static int have_avx512(void) { return strcmp(rl_ops_cpu_isa(), "avx512") == 0; }

static void bwd_matmul_generic(const rl_wmat *W, const float *x, int ldx, int n, const float *dy, int lddy,
                   float *dx, int lddx, float *dw) {
    int O = W->rows, C = W->cols;
    if (n <= 0 || O <= 0 || C <= 0) return;
    if (dx) {
        int nb = (n + RB - 1) / RB;
#pragma omp parallel
        {
            float rowbuf[C];
            float *row = W->dtype == RL_F32 ? NULL : rowbuf;
#pragma omp for schedule(static)
            for (int bi = 0; bi < nb; bi++) {
                int r0 = bi * RB, r1 = r0 + RB < n ? r0 + RB : n;
                for (int o = 0; o < O; o++) {
                    int any = 0;
                    for (int r = r0; r < r1; r++) any |= dy[(size_t)r * lddy + o] != 0.0f;
                    if (!any) continue;
                    const float *w;
                    if (row) {
                        rl_bwd_wrow(W, o, row);
                        w = row;
                    } else {
                        w = (const float *)W->data + (size_t)o * C;
                    }
                    for (int r = r0; r < r1; r++) {
                        float a = dy[(size_t)r * lddy + o];
                        if (a == 0.0f) continue;
                        float *restrict d = dx + (size_t)r * lddx;
                        for (int c = 0; c < C; c++) d[c] += a * w[c];
                    }
                }
            }
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < O; o++) {
            float *restrict g = dw + (size_t)o * C;
            for (int r = 0; r < n; r++) {
                float a = dy[(size_t)r * lddy + o];
                if (a == 0.0f) continue;
                const float *restrict xr = x + (size_t)r * ldx;
                for (int c = 0; c < C; c++) g[c] += a * xr[c];
            }
        }
    }
}

void rl_bwd_matmul(const rl_wmat *W, const float *x, int ldx, int n, const float *dy, int lddy,
                   float *dx, int lddx, float *dw) {
    if (have_avx512() && (W->dtype == RL_F32 || W->dtype == RL_BF16 || W->dtype == RL_F16))
        rl_bwd_matmul_avx512(W, x, ldx, n, dy, lddy, dx, lddx, dw);
    else
        bwd_matmul_generic(W, x, ldx, n, dy, lddy, dx, lddx, dw);
}

void rl_bwd_lightning(const float *q, const float *k, const float *v, int ld, int T, int D,
                      const float *pw, float scale, const float *do_, int lddo, float *dq,
                      float *dk, float *dv, float *scratch) {
    (have_avx512() ? rl_bwd_lightning_avx512 : rl_bwd_lightning_ref)(q, k, v, ld, T, D, pw, scale, do_,
                                                                      lddo, dq, dk, dv, scratch);
}

void rl_bwd_gqa_head(const float *q, const float *k, const float *v, int ld, int T, int D,
                     float scale, const float *do_, int lddo, float *dq, float *dk, float *dv,
                     float *scratch) {
    (have_avx512() ? rl_bwd_gqa_head_avx512 : rl_bwd_gqa_head_ref)(q, k, v, ld, T, D, scale, do_, lddo,
                                                                   dq, dk, dv, scratch);
}
