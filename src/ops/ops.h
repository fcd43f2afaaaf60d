/* Every kernel the model needs, as a table of function pointers.
 *
 * Each op has a plain reference implementation (src/ops/ref/, obvious loops,
 * the yardstick of the unit tests) and fast versions per backend
 * (src/ops/cpu/: SIMD with runtime dispatch, threads). The model is written
 * once against this table.
 *
 * Determinism contract (DESIGN.md §2.4), which every implementation keeps:
 * an output element is computed by the same sequence of floating-point
 * operations whatever the number of rows in the call, the row's index, the
 * thread count or the other rows' contents. No split-K that depends on
 * shape; threads divide outputs, never a reduction.
 *
 * Activations are fp32 everywhere (SPEC §0.2); weights keep their stored
 * dtype. All ops write every element of their outputs. */
#ifndef RL_OPS_OPS_H
#define RL_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"

/* A weight matrix [rows = out_features][cols = in_features], row-major. */
typedef struct rl_wmat {
    rl_dtype dtype;
    int rows, cols;
    const void *data;
    /* F8_E4M3 only: dequantized w = q * scale[r / sbr][c / sbc], with
     * scale of shape [ceil(rows/sbr)][ceil(cols/sbc)] (fp32). A per-tensor
     * scale is sbr = rows, sbc = cols. NULL for other dtypes. */
    const float *scale;
    int sbr, sbc;
    /* Optional copy of the same weights in the backend's preferred layout
     * (made once at load by rl_ops.pack; owned by the model), or NULL. A
     * kernel computes bitwise the same result from either. */
    const void *packed;
} rl_wmat;

/* Lightning attention: decay powers of one head, pw[n] = λ^n = expf(g*n),
 * n = 0..RL_CHUNK. Chunk size is fixed: chunks are aligned to absolute
 * positions (multiples of RL_CHUNK), which is what makes prefill and decode
 * compute bitwise the same outputs. */
#define RL_CHUNK 64

/* Keys and values of one softmax layer for one sequence, in pages of
 * page_size positions. Per page, keys are stored transposed per kv head and
 * values row-major per kv head, so that one head's scan over the keys reads
 * contiguous memory:
 *   key   (pos j, kv head h, channel d) = k_pages[j / P][(h * D + d) * P + j % P]
 *   value (pos j, kv head h, channel d) = v_pages[j / P][(h * P + j % P) * D + d]
 * with P = page_size and D = head_dim. */
typedef struct rl_kv_view {
    const float *const *k_pages;
    const float *const *v_pages;
    int page_size;
} rl_kv_view;

typedef struct rl_ops {
    const char *name;

    /* y[r][o] = sum_c x[r][c] * W[o][c], for r < n, o < W->rows.
     * x rows are ldx floats apart, y rows ldy floats apart. */
    void (*matmul)(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy);

    /* y[r] = w ⊙ x[r] * 1/sqrt(mean(x[r]^2) + eps), n rows of dim (dense,
     * contiguous). In place allowed (y == x). */
    void (*rmsnorm)(const float *x, int n, int dim, const float *w, float eps, float *y);

    /* Partial NeoX RoPE in place on n_heads heads of head_dim floats at x
     * (contiguous): for j < rot/2, with a = pos * inv_freq[j]:
     *   x'[j] = x[j] cos a - x[j+rot/2] sin a;  x'[j+rot/2] = x[j+rot/2] cos a + x[j] sin a.
     * cos_sin holds cos a_j then sin a_j for j < rot/2 (the caller computes
     * them once per position, so every op sees identical angles). */
    void (*rope)(float *x, int n_heads, int head_dim, int rot, const float *cos_sin);

    /* Group RMSNorm and sigmoid gate of the Lightning output, one token:
     * for each of G groups of dim/G channels, y[c] = o[c] * rsqrt(mean_group(o^2)
     * + eps) * w[c] * sigmoid(gate[c]). */
    void (*group_norm_gate)(const float *o, const float *gate, int dim, int groups,
                            const float *w, float eps, float *y);

    /* h[i] = silu(g[i]) * u[i], n elements. */
    void (*swiglu)(const float *g, const float *u, int n, float *h);

    /* Lightning output of the token at local index i (0 <= i < RL_CHUNK) of
     * its chunk, one head of dimension D:
     *   o = scale * ( sum_{j<=i} pw[i-j] (q . k_j) v_j  +  pw[i+1] (q S) )
     * k_j = k + j*ldk, v_j = v + j*ldv (the chunk's keys/values so far, the
     * token's own included), S = state at the chunk start, [D][D] row = key
     * channel. Order: intra over j ascending, then inter. */
    void (*lightning_attend)(const float *q, const float *k, int ldk, const float *v,
                             int ldv, int i, const float *S, const float *pw, int D,
                             float scale, float *o);

    /* Folds a completed chunk of b tokens into the state, one head:
     *   S <- pw[b] S + sum_{j<b} pw[b-1-j] k_j^T v_j   (j ascending). */
    void (*lightning_fold)(float *S, const float *k, int ldk, const float *v, int ldv,
                           int b, const float *pw, int D);

    /* Causal softmax attention of gq query heads (q: gq*D contiguous) that
     * share kv head `kvh`, over keys 0..n_keys-1 of kv:
     *   o_h = sum_j softmax_j(scale * q_h . k_j) v_j
     * dot products summed over channels in ascending order, keys visited in
     * ascending order; scratch holds gq * n_keys floats. */
    void (*gqa_attend)(const float *q, int gq, const rl_kv_view *kv, int kvh, int n_keys,
                       int D, float scale, float *scratch, float *o);

    /* y[i] = float(row `id` of the embedding table E) */
    void (*embed)(const rl_wmat *E, int id, float *y);

    /* Optional (NULL when the backend reads weights as stored): bytes of W
     * in the backend's matmul layout (0 = W is used as stored), and the
     * packing itself into dst (pack_size bytes, 64-byte aligned). */
    size_t (*pack_size)(const rl_wmat *W);
    void (*pack)(const rl_wmat *W, void *dst);
} rl_ops;

extern const rl_ops rl_ops_ref;

/* The fastest CPU ops this processor supports (chosen once, at first call).
 * RINGLM_ISA=portable|avx2|avx512 forces a level (for tests and benches). */
const rl_ops *rl_ops_cpu(void);
/* Name of the ISA level rl_ops_cpu() chose. */
const char *rl_ops_cpu_isa(void);

/* Threads used by ops and the model (OpenMP). 0 = all cores. */
void rl_set_threads(int n);
int rl_get_threads(void);

#endif
