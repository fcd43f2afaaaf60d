/* The device forward (CUDA): rl_step's semantics on one GPU (DESIGN.md §1,
 * §2.4). Weights are uploaded once (matrices as bf16, norms, router and
 * decay in fp32); each sequence has a device slot (per Lightning layer the
 * chunk-start state and the stash of the partial chunk, per softmax layer KV
 * pages in one device pool with the CPU page layout). One call runs a batched
 * forward over spans of many sequences, mixing prefill pieces and decode
 * tokens, exactly like rl_step, and copies the requested logits to the host.
 *
 * Two GEMM modes:
 * - default: dense weight GEMMs through cuBLAS with bf16 weights and the fp32
 *   activations split into bf16 hi + lo (two GEMMs into one fp32 output: ~16
 *   bits of the activations' mantissa, fp32 accumulation); MoE experts on
 *   tensor cores the same way once a step has about 2 rows per expert
 *   (RL_CUDA_MOE_MMA=0 keeps them on rl_cu_wgemm); cuBLAS may pick another
 *   algorithm for another batch size, so logits depend on the batch in the
 *   last bits; steps of few tokens (decode) use the small-batch kernels of
 *   decode_cuda.cu instead (fp32 activations): GEMVs for steps of at most
 *   RL_CU_GEMV_T rows, and for at most 16 tokens the MoE layer as router +
 *   routing + bucketing in one launch, the chosen and shared experts in two
 *   GEMV launches, the combine fused into the next RMSNorm. With bf16
 *   weights the router runs in rl_cu_wgemm's fixed order in both modes, so
 *   expert choices do not depend on the batch (fp32-weight checkpoints and
 *   RL_CUDA_DECODE=0 in the default mode: a cuBLAS fp32 router);
 * - deterministic: one fixed reduction order per output for any batch:
 *   bf16-weight GEMMs on tensor cores (rl_cu_moe_mma with fixed_order, its
 *   mma.sync kernel at every T, activations as bf16 hi + lo), fp32 weights
 *   and the router on rl_cu_wgemm (fp32 activations; RL_CUDA_DET_MMA=0:
 *   every GEMM there, the previous path): logits are bitwise independent of
 *   the other sequences of a step and of the prefill/decode split.
 * Otherwise the MoE expert GEMMs and the fp32 router use rl_cu_wgemm.
 *
 * Decode steps (every span one token) replay a CUDA graph of the device work
 * from the second step of the same shape on (step_cuda.c; RL_CUDA_GRAPHS=0
 * turns this off); results are those of the eager launches.
 *
 * Built only with RL_HAVE_CUDA (CMake option RL_CUDA). */
#ifndef RL_ENGINE_STEP_CUDA_H
#define RL_ENGINE_STEP_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "engine/step.h"
#include "model/model.h"

typedef struct rl_cuda_engine rl_cuda_engine;
typedef struct rl_cuda_seq rl_cuda_seq;

typedef struct rl_cuda_opts {
    int device;           /* CUDA device ordinal */
    bool deterministic;
    int max_kv_pages;     /* KV pages in the pool (0: enough for 2 full contexts, capped by
                           * half the free memory) */
    /* Matrices whose data is NULL (a model made by rl_model_skeleton) get
     * hashed random bf16 values of this seed instead of an upload. */
    uint64_t random_seed;
    /* Keep each MoE layer's expert choices of the last step (tests). */
    bool record_routing;
} rl_cuda_opts;

/* Whether a CUDA device is usable; e gets the reason when not. */
bool rl_cuda_available(rl_err *e);
/* "NVIDIA H100 80GB HBM3, 132 SMs, 79.1 GiB" of the device, or the reason
 * there is none. */
void rl_cuda_describe(int device, char *buf, size_t n);

int rl_cuda_engine_init(rl_cuda_engine **out, const rl_model *m, const rl_cuda_opts *o,
                        rl_err *e);
void rl_cuda_engine_free(rl_cuda_engine *eng);
/* Device bytes of the uploaded weights and of the KV pool. */
int64_t rl_cuda_weight_bytes(const rl_cuda_engine *eng);
int64_t rl_cuda_kv_pool_bytes(const rl_cuda_engine *eng);
/* Positions a sequence may reach (max_position_embeddings unless changed). */
void rl_cuda_set_max_ctx(rl_cuda_engine *eng, int max_ctx);

/* Sequences belong to their engine: free them before it. */
int rl_cuda_seq_new(rl_cuda_engine *eng, rl_cuda_seq **out, rl_err *e);
void rl_cuda_seq_free(rl_cuda_seq *s);
int rl_cuda_seq_pos(const rl_cuda_seq *s);
/* dst becomes a copy of src (state copied, KV pages shared copy-on-write). */
int rl_cuda_seq_fork(rl_cuda_seq *dst, const rl_cuda_seq *src, rl_err *e);
/* s gets its own copy of every KV page it shares with another sequence (a
 * fork that will not share memory traffic either; bench_gpu --distinct-kv).
 * RL_E_CAPACITY when the pool runs out: the pages copied so far stay s's. */
int rl_cuda_seq_unshare(rl_cuda_seq *s, rl_err *e);

typedef struct rl_cuda_span {
    rl_cuda_seq *seq;
    const int *tokens; /* host */
    int n;             /* >= 1 */
    int first_pos;     /* must equal the sequence's position */
    int want;          /* RL_LOGITS_* */
    float *logits;     /* host, [n or 1][vocab_size] when want != NONE (may be NULL with a
                        * sample request: the logits then stay on the device) */
    /* Optional (want == RL_LOGITS_LAST): draw the next token from the last
     * row on the device (src/ops/cuda/sample_cuda.h: the token rl_sampler_sample
     * would pick from the same logits; top-k off with a temperature falls back
     * to the host), filling sample->token and ->logprob; only the token and
     * its log-probability cross to the host. One request per sampler per step. */
    rl_sample_req *sample;
} rl_cuda_span;

/* rl_step on the device. Every check happens before any state changes. */
int rl_cuda_step(rl_cuda_engine *eng, const rl_cuda_span *spans, int n_spans, rl_err *e);

/* With RL_CUDA_PROFILE=1 in the environment at engine init: device seconds
 * per phase accumulated over the steps since the last call with reset; names
 * in rl_cuda_prof_names. */
enum { RL_CUDA_PROF_CATS = 8 };
extern const char *const rl_cuda_prof_names[RL_CUDA_PROF_CATS];
void rl_cuda_profile(rl_cuda_engine *eng, double out[RL_CUDA_PROF_CATS], bool reset);

/* With record_routing: the expert choices [T][K] of layer `layer` in the last
 * step (T = its tokens, spans in order), copied to sel (host). */
int rl_cuda_last_routing(rl_cuda_engine *eng, int layer, int *sel, rl_err *e);

/* Waits for the device and returns the seconds of the last rl_cuda_step's
 * device work between its first and last kernel (CUDA events). */
double rl_cuda_last_step_seconds(rl_cuda_engine *eng);

#endif
