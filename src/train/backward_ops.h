/* Backward of every forward op (src/ops/ops.h), fp32.
 *
 * Conventions: "dx +=" ops ADD the input gradient into dx (callers zero or
 * chain residuals); parameter gradients (dw) are always accumulated. Each
 * output element is produced by one thread in a fixed order: results do not
 * depend on the thread count. _ref versions are plain loops (the yardstick of
 * tests/unit/test_backward.c); the others are the fast CPU versions. */
#ifndef RL_TRAIN_BACKWARD_OPS_H
#define RL_TRAIN_BACKWARD_OPS_H

#include "ops/ops.h"

/* Row o of W dequantized to fp32 (the stored weights, not `packed`). */
void rl_bwd_wrow(const rl_wmat *W, int o, float *out);

/* y = x W^T (ops.h matmul):  dx[r][c] += sum_o dy[r][o] W[o][c];
 * dw[o][c] += sum_r dy[r][o] x[r][c]. dx or dw may be NULL. */
void rl_bwd_matmul_ref(const rl_wmat *W, const float *x, int ldx, int n, const float *dy,
                       int lddy, float *dx, int lddx, float *dw);
void rl_bwd_matmul(const rl_wmat *W, const float *x, int ldx, int n, const float *dy, int lddy,
                   float *dx, int lddx, float *dw);

/* y = rmsnorm(x; w) over n rows of dim: dx += ..., dw += ... (dw may be NULL). */
void rl_bwd_rmsnorm(const float *x, int n, int dim, const float *w, float eps, const float *dy,
                    float *dx, float *dw);

/* RoPE is a rotation: its backward rotates dy back, in place. */
void rl_bwd_rope(float *dy, int n_heads, int head_dim, int rot, const float *cos_sin);

/* y = group_norm_gate(o, gate): do += ..., dgate += ..., dw += ... (one token). */
void rl_bwd_group_norm_gate(const float *o, const float *gate, int dim, int groups, const float *w,
                            float eps, const float *dy, float *dout, float *dgate, float *dw);

/* h = silu(g) * u: dg += ..., du += ... */
void rl_bwd_swiglu(const float *g, const float *u, int n, const float *dh, float *dg, float *du);

/* silu(x) backward: dx += dy * silu'(x) */
void rl_bwd_silu(const float *x, int n, const float *dy, float *dx);

/* Lightning attention of one head over a whole sequence of T tokens starting
 * at position 0 (the forward: chunks of RL_CHUNK aligned at 0, intra-chunk sum
 * + λ^(i+1) q S from the chunk-start state, state folded per full chunk).
 * q, k, v rows are ld floats apart; do_ [T] rows lddo apart (gradient of the
 * output o). Adds dq, dk, dv (rows ld apart). State gradients are carried
 * backward across chunks in fp32. scratch: (T/RL_CHUNK + 2) * D * D floats.
 * The fast version vectorizes over the head dimension (rounding differs). */
void rl_bwd_lightning_ref(const float *q, const float *k, const float *v, int ld, int T, int D,
                          const float *pw, float scale, const float *do_, int lddo, float *dq,
                          float *dk, float *dv, float *scratch);
void rl_bwd_lightning(const float *q, const float *k, const float *v, int ld, int T, int D,
                      const float *pw, float scale, const float *do_, int lddo, float *dq,
                      float *dk, float *dv, float *scratch);

/* Causal softmax attention of one query head over keys 0..t for each t < T
 * (keys/values of one kv head). Adds dq, dk, dv. scratch: 2 T floats. */
void rl_bwd_gqa_head_ref(const float *q, const float *k, const float *v, int ld, int T, int D,
                         float scale, const float *do_, int lddo, float *dq, float *dk, float *dv,
                         float *scratch);
void rl_bwd_gqa_head(const float *q, const float *k, const float *v, int ld, int T, int D,
                     float scale, const float *do_, int lddo, float *dq, float *dk, float *dv,
                     float *scratch);

/* The per-row ops above over n rows (dim floats apart), threads over rows;
 * bitwise the serial result (backward_rows.c). dw may be NULL. */
void rl_bwd_rmsnorm_rows(const float *x, int n, int dim, const float *w, float eps, const float *dy,
                         float *dx, float *dw);
void rl_bwd_group_norm_gate_rows(const float *o, const float *gate, int n, int dim, int groups,
                                 const float *w, float eps, const float *dy, float *dout,
                                 float *dgate, float *dw);
/* rl_bwd_swiglu over n elements in blocks, threads over blocks. */
void rl_bwd_swiglu_par(const float *g, const float *u, size_t n, const float *dh, float *dg,
                       float *du);
/* dw[i] += rows[0][i] + rows[1][i] + ... (that order), threads over i. */
void rl_bwd_sum_rows(const float *rows, int n, int dim, float *dw);

#endif
