/* The paged GQA decode kernel's launcher (gqa_dec_cuda.cu), called by
 * rl_cu_gqa (gqa_cuda.cu) for the default mode's decode steps. Internal to
 * src/ops/cuda. */
#ifndef RL_OPS_CUDA_GQA_DEC_CUH
#define RL_OPS_CUDA_GQA_DEC_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/cuda/attn_cuda.h"

/* rows (token, query head) of one span that gqa_dec takes: one m16 tile */
#define RL_GQA_DEC_ROWS 16

/* false when RL_CUDA_GQA_DEC=0: decode steps then go to gqa_fa / gqa_attend
 * (the benchmarks' A/B) */
bool rl_cu_gqa_dec_on(void);

/* rl_cu_gqa's arguments for a step of the default mode whose spans hold at
 * most RL_GQA_DEC_ROWS rows each (max_n * H / Hkv); sl2 = scale * log2(e).
 * D is 64 or 128. Returns a cudaError_t as int. */
int rl_cu_gqa_dec(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
                  int n_spans, int max_n, const int *const *page_tables, const uint16_t *pool,
                  size_t page_elems, int layer, int H, int Hkv, int D, float sl2, cudaStream_t st);

#endif
