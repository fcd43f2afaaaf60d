/* Internals of the device forward shared by its host files (step_cuda.c,
 * weights_cuda.c, seq_cuda.c). Not a public header. */
#ifndef RL_ENGINE_ENGINE_CUDA_H
#define RL_ENGINE_ENGINE_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/step_cuda.h"
#include "ops/cuda/attn_cuda.h"
#include "ops/cuda/fwd_cuda.h"
#include "ops/cuda/sample_cuda.h"

/* Returns from the calling function with e set when a CUDA runtime call or a
 * launcher of ops/cuda fails. */
#define CU_TRY(call)                                                        \
    do {                                                                    \
        int cu_rc_ = (int)(call);                                           \
        if (cu_rc_ != 0) return rl_cu_fail(e, cu_rc_, #call);               \
    } while (0)
#define CUBLAS_TRY(call)                                                    \
    do {                                                                    \
        cublasStatus_t cb_rc_ = (call);                                     \
        if (cb_rc_ != CUBLAS_STATUS_SUCCESS)                                \
            return rl_errf(e, RL_E_UNSUPPORTED, "cuBLAS error %d in %s", (int)cb_rc_, #call); \
    } while (0)

int rl_cu_fail(rl_err *e, int code, const char *what);

typedef struct cu_layer {
    /* matrices: bf16, or fp32 when the engine's wf32 is set */
    void *qkv, *dense, *g_proj, *gate, *up, *down, *s_gate, *s_up, *s_down;
    void *e_gate, *e_up, *e_down; /* [E][rows][cols] */
    float *router, *ebias, *in_norm, *post_norm, *q_norm, *k_norm, *g_norm, *decay_pw;
    int qkv_rows, shared_I;
} cu_layer;

/* Device buffers of a step, sized for cap_T tokens. */
typedef struct cu_work {
    int cap_T;
    float *X, *A, *QKV, *G, *O, *U, *M1, *M2, *R, *WT, *YK, *YS, *LOG, *RSCR;
    uint16_t *XB; /* bf16 GEMM input of the library GEMM */
    uint16_t *MB, *ML; /* SwiGLU of the sorted expert rows in bf16 hi + lo: the mma down
                        * projection's input */
    uint16_t *XL;      /* bf16(x - bf16(x)): low part of a GEMM input beside XB */
    float *Y2;         /* [2][RL_CU_STACK_T][y2_n]: a stacked hi/lo GEMM's two halves */
    size_t y2_n;
    int *sel, *rows, *counts, *offs, *toff;
    int *sync; /* zeroed counters of the kernels that end in their last block */
    float *LOGITS;
    size_t logits_cap; /* floats */
} cu_work;

/* The draws riding on a step (sample_step_cuda.c): host staging and device
 * copies, grown on demand (never inside a captured graph: sampling runs after
 * the step's forward, eagerly). */
typedef struct cu_sampling {
    int cap_rows, cap_pen;
    rl_cu_sample_args *h_args, *d_args;
    int *h_pen_tok, *h_pen_cnt, *d_pen_tok, *d_pen_cnt;
    int *h_tok, *d_tok;
    float *h_lp, *d_lp;
    float *d_scratch; /* draws * vocab floats of the largest penalized step so far */
    size_t scratch_floats;
    float *h_logits; /* host draws: their logits rows (cap_host * vocab) */
    int cap_host;
    rl_sampler_draw *draws; /* per request, in span order */
    int *kind;              /* per span: 0 none, 1 device, 2 host */
    int cap_spans;
} cu_sampling;

struct rl_cuda_engine {
    const rl_model *m;
    rl_cuda_opts opt;
    /* default mode: MoE experts on tensor cores where it pays (RL_CUDA_MOE_MMA=0: off) */
    int moe_mma;
    /* default mode, bf16 weights: the small-batch kernels of decode_cuda.cu (GEMVs for
     * steps of at most RL_CU_GEMV_T rows, the fused MoE path for at most small_T tokens)
     * and the fixed-order router for every step (RL_CUDA_DECODE=0: off, the previous
     * path: cuBLAS everywhere, cuBLAS fp32 router) */
    int small, small_T;
    /* deterministic mode, bf16 weights: GEMMs on tensor cores (rl_cu_moe_mma with
     * fixed_order); RL_CUDA_DET_MMA=0: rl_cu_wgemm everywhere, the previous path */
    int det_mma;
    cudaStream_t st;
    cublasHandle_t cb;
    cudaEvent_t ev0, ev1;
    /* weights; wf32: the checkpoint's matrices are not bf16 (f32, f16, F8):
     * they are kept in fp32 on the device (exact for all three) */
    int wf32;
    void *embed, *lm_head;
    float *final_norm;
    cu_layer *L;
    void **allocs;
    int n_allocs, cap_allocs;
    int64_t weight_bytes;
    /* KV pool: pages of page_elems bf16 elements (attn_cuda.h layout) */
    uint16_t *pool;
    size_t page_elems;
    int max_pages, n_free;
    int *refs, *free_list;
    /* per-step metadata: pinned host staging + its device copy */
    char *meta_h, *meta_d;
    size_t meta_cap;
    cu_work w;
    cu_sampling smp;
    int max_ctx;
    size_t lin_floats;
    /* Decode steps (every span one token) replay a CUDA graph of the device
     * work between the metadata upload and the logits copy (step_cuda.c).
     * gen counts reallocations of any buffer a graph bakes in (workspace,
     * logits, metadata, routing record); a graph is valid for its key
     * (spans, logit rows) under the gen and attention scratch gen it was
     * captured with. seen_*: the last eager decode step's key, captured when
     * the next step repeats it (its buffers then exist at their sizes). */
    int graphs;   /* RL_CUDA_GRAPHS unset or not 0, no profile; cleared by a failed capture */
    unsigned gen;
    cudaGraphExec_t gx;
    int gx_n, gx_nl, seen_n, seen_nl;
    unsigned gx_gen, gx_wsgen, seen_gen, seen_wsgen;
    void *cb_ws; /* cuBLAS workspace (fixed, so captured GEMMs keep using it) */
    int *rec_sel; /* record_routing: [layers][rec_cap] expert choices of the last step */
    size_t rec_cap;
    int last_T;
    /* profile (RL_CUDA_PROFILE=1): events at phase boundaries, per-category
     * device seconds accumulated since the last rl_cuda_profile reset */
    int prof, n_ev;
    cudaEvent_t ev[1024];
    int ev_cat[1024];
    double prof_s[RL_CUDA_PROF_CATS]; /* per sequence: n_linear * (H*D*D + 2*RL_CHUNK*H*D) */
};

struct rl_cuda_seq {
    rl_cuda_engine *eng;
    int pos;
    float *lin;
    int *pages;
    int n_pages, cap_pages;
};

/* sample_step_cuda.c: after the forward is queued, the draws of the spans
 * with a sample request (device kernel where rl_cu_sample_ok, else their
 * logits row copied for the host); after the stream synchronizes, their
 * tokens and log-probabilities. */
int rl_cu_samples_launch(rl_cuda_engine *eng, const rl_cuda_span *spans, int n, rl_err *e);
void rl_cu_samples_finish(rl_cuda_engine *eng, const rl_cuda_span *spans, int n);
void rl_cu_samples_free(cu_sampling *s);

/* weights_cuda.c */
int rl_cu_upload_weights(rl_cuda_engine *eng, rl_err *e);
void rl_cu_free_weights(rl_cuda_engine *eng);

/* seq_cuda.c: makes positions [pos, pos+n) of s writable (pages allocated,
 * shared pages copied first). */
int rl_cu_seq_reserve(rl_cuda_seq *s, int n, rl_err *e);

#endif
