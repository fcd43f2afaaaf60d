/* Attention kernels of the CUDA backend: Lightning (linear) attention and
 * paged GQA softmax attention, over the tokens of one step.
 *
 * This header is the contract between the attention kernels
 * (lightning_cuda.cu, gqa_cuda.cu) and the device forward (step_cuda.c).
 * Plain C: callable from .c files compiled by the host compiler.
 *
 * Conventions, shared with the CPU engine (src/engine/step.c, SPEC §3.5-3.6):
 * - every pointer is a device pointer unless its name ends in _h;
 * - activations are fp32; a step's rows are its tokens, spans back to back;
 * - the fused projection row holds q at column 0, then k, then v (Lightning:
 *   H*D each; GQA: q H*D, k Hkv*D, v Hkv*D), already through SiLU (Lightning
 *   only), QK-norm and partial RoPE;
 * - Lightning chunks are aligned to absolute positions (multiples of
 *   RL_CHUNK = 64, src/ops/ops.h): a sequence's state S is the state at the
 *   start of the chunk holding its next position, and the keys/values of the
 *   tokens of that partial chunk wait in a stash. A chunk's state is folded
 *   exactly once, when its last token arrives, whatever the step split:
 *     o_i = scale * ( sum_{j<=i in chunk} pw[i-j] (q_i . k_j) v_j + pw[i+1] (q_i S) )
 *     S  <- pw[64] S + sum_{j<64} pw[63-j] k_j^T v_j
 *   with pw[n] = exp(g_h * n) of the head (decay_pw, [H][RL_CHUNK + 1]);
 * - KV pages: a pool of pages of RL_KV_PAGE = 64 positions; a page holds, for
 *   each softmax layer l, a key block [Hkv][D][64] (transposed) and then a
 *   value block [Hkv][64][D]: key (pos j, head h, d) of layer l is at
 *     pool + page * page_elems + l * 2 * 64 * Hkv * D + (h * D + d) * 64 + j % 64
 *   and the value block follows its key block (+ 64 * Hkv * D). The CPU
 *   pool's layout (src/state/kv_pages.h), with bf16 elements instead of fp32:
 *   every GQA kernel multiplies keys and values on bf16 tensor cores, so it
 *   rounded them to bf16 (round to nearest even) when it read fp32 pages;
 *   rl_cu_kv_append now rounds them once when it writes, the same values, so
 *   every result is unchanged and a page moves half the bytes. A device page
 *   equals the bf16 rounding of the CPU page.
 *
 * Determinism: an output element's arithmetic depends only on its own
 * sequence's data and position, never on the other spans of the step, the
 * step split, or the launch shape (fixed tile order, no data-dependent
 * split-K). In `deterministic` mode this holds bitwise; the default mode
 * splits GQA decode over keys by the step's number of (span, kv head) pairs
 * and says so here.
 *
 * What the kernels do (lightning_cuda.cu, gqa_cuda.cu, gqa_dec_cuda.cu):
 * - rl_cu_lightning (tf32 tensor cores, fp32 state): with `deterministic`
 *   bitwise split-invariant (one formula per token and per chunk fold
 *   whatever the step split, decode included). Without it, a step whose
 *   spans are all one token (decode) takes an fp32 SIMT kernel at memory
 *   speed instead: its tokens and folds agree with the tensor-core path to
 *   rounding, not bitwise; prefill steps are the same in both modes.
 *   qkv and o rows must be 16-byte aligned (strides multiples of 4 floats).
 * - rl_cu_gqa (bf16 tensor cores, fp32 softmax): without `deterministic`, a
 *   step whose spans each hold at most 16 rows (n * H/Hkv <= 16: decode)
 *   splits each span's pages over enough blocks to fill the card and merges
 *   the partial softmaxes; so does a step whose spans fit one 128-row tile
 *   when it has few (span, kv head) pairs. Their bits depend on the batch
 *   size. With `deterministic` a row is computed by the same instructions in
 *   prefill and decode.
 * - Scratch memory (Lightning: n_spans * ((max_n + 62) / 64 + 1) * H * D * D
 *   floats; GQA split partials: gqa_attend's grow with the step, gqa_dec
 *   asks for one fixed size, 4 * SMs * 16 * (D + 2) floats, whatever the
 *   batch) is allocated on first use and grown when a larger step comes;
 *   growing synchronizes the device, so run the largest step once before
 *   capturing a graph. One host thread at a time.
 * - S, kst, vst and the pool must be 16-byte aligned (cudaMalloc is). */
#ifndef RL_OPS_CUDA_ATTN_CUDA_H
#define RL_OPS_CUDA_ATTN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One span of a step, as the attention kernels see it. */
typedef struct rl_cu_span {
    int row0;  /* first row of the span in the step's activations */
    int n;     /* tokens, >= 1 */
    int pos0;  /* absolute position of the first token */
    int seq;   /* index into the per-sequence arrays below */
} rl_cu_span;

/* Per-sequence Lightning state of one layer (device pointers). */
typedef struct rl_cu_lin_state {
    float *S;   /* [H][D][D] fp32, row = key channel, column = value channel */
    float *kst; /* [RL_CHUNK][H*D] keys of the partial chunk */
    float *vst; /* [RL_CHUNK][H*D] values of the partial chunk */
} rl_cu_lin_state;

/* Lightning attention of one layer over the step: reads q/k/v from qkv (row
 * stride ldqkv floats), writes o [rows][H*D] (stride ldo), and advances each
 * sequence's state and stash. spans and states are device arrays of n_spans
 * and (indexed by span.seq) entries; max_n is the largest span.n. Returns 0,
 * or a CUDA error code (launch errors are checked). */
int rl_cu_lightning(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
                    int n_spans, int max_n, const rl_cu_lin_state *states, int H, int D,
                    const float *decay_pw, float scale, int deterministic, void *stream);

/* Writes the k and v of the step's tokens of softmax layer `layer` into the
 * pages. page_table[seq] is a device pointer to the sequence's page ids
 * (page_tables is a device array of such pointers). */
int rl_cu_kv_append(const float *qkv, int ldqkv, const rl_cu_span *spans, int n_spans,
                    int max_n, const int *const *page_tables, uint16_t *pool, size_t page_elems,
                    int layer, int H, int Hkv, int D, void *stream);

/* Causal GQA attention of softmax layer `layer` over the pages (after
 * rl_cu_kv_append of the same step): query row t at position p sees keys
 * 0..p of its sequence. o [rows][H*D], stride ldo. */
int rl_cu_gqa(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
              int n_spans, int max_n, const int *const *page_tables, const uint16_t *pool,
              size_t page_elems, int layer, int H, int Hkv, int D, float scale,
              int deterministic, void *stream);

/* Frees the kernels' scratch memory (after synchronizing the device). */
void rl_cu_attn_release(void);

/* Changes whenever a scratch buffer is (re)allocated or released: a CUDA
 * graph captured under another value holds freed addresses. */
unsigned rl_cu_attn_ws_gen(void);

#ifdef __cplusplus
}
#endif

#endif
