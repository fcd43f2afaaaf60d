/* Internal to the CPU backend: per-ISA kernels and tables.
 *
 * Every kernel keeps the determinism contract of ops.h: an output element is
 * one fixed chain of vector FMAs followed by one fixed horizontal reduction,
 * whatever kernel variant (block or remainder) or thread computes it. */
#ifndef RL_OPS_CPU_CPU_OPS_H
#define RL_OPS_CPU_CPU_OPS_H

#include "ops/ops.h"

typedef enum rl_isa {
    RL_ISA_PORTABLE = 0,
    RL_ISA_AVX2 = 1,
    RL_ISA_AVX512 = 2,
    RL_ISA_COUNT
} rl_isa;

/* Whether this processor (and OS) can run the level. */
int rl_cpu_isa_supported(rl_isa isa);
const char *rl_cpu_isa_name(rl_isa isa);
/* The op table of one level (NULL when not supported here), for tests and
 * benches; rl_ops_cpu() is what the model uses. */
const rl_ops *rl_ops_cpu_level(rl_isa isa);

/* Per-level kernels (signatures as in rl_ops). */
void rl_matmul_portable(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy);
void rl_matmul_avx2(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy);
void rl_matmul_avx512(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy);
/* The AVX-512 layout: tiles of 4 rows, each tile [K/16][4][16] (K padded to
 * 16, rows to 4, with zeros) so that decode streams one sequential range. */
size_t rl_matmul_pack_size_avx512(const rl_wmat *W);
void rl_matmul_pack_avx512(const rl_wmat *W, void *dst);
/* The AVX512_BF16 candidate (x split into bf16 hi + lo, vdpbf16ps), BF16
 * weights only; kept for bench/matmul_bench.c, not in any table. */
void rl_matmul_bf16dp_avx512(const rl_wmat *W, const float *x, int ldx, int n, float *y,
                             int ldy);

void rl_rmsnorm_avx512(const float *x, int n, int dim, const float *w, float eps, float *y);
void rl_group_norm_gate_avx512(const float *o, const float *gate, int dim, int groups,
                               const float *w, float eps, float *y);
void rl_rope_avx512(float *x, int n_heads, int head_dim, int rot, const float *cos_sin);
void rl_swiglu_avx512(const float *g, const float *u, int n, float *h);
void rl_lightning_attend_avx512(const float *q, const float *k, int ldk, const float *v,
                                int ldv, int i, const float *S, const float *pw, int D,
                                float scale, float *o);
void rl_lightning_fold_avx512(float *S, const float *k, int ldk, const float *v, int ldv,
                              int b, const float *pw, int D);
void rl_gqa_attend_avx512(const float *q, int gq, const rl_kv_view *kv, int kvh, int n_keys,
                          int D, float scale, float *scratch, float *o);
void rl_embed_cpu(const rl_wmat *E, int id, float *y);

/* Measured peak GFLOP/s of all threads: fp32 FMA (bf16 = 0) or AVX512_BF16
 * dot products (bf16 = 1). For benchmark reports. */
double rl_cpu_peak_gflops_avx512(int bf16);

/* Dequantizes rows [r0, r0+nr) of an F8_E4M3 matrix (scales applied, same
 * products as the reference: q * scale) into dst, nr rows of cols floats. */
void rl_f8_dequant_rows(const rl_wmat *W, int r0, int nr, float *dst);

#endif
