/* A loaded model: config, layer schedule and weights bound once into typed
 * views (no string lookups in the hot path). */
#ifndef RL_MODEL_MODEL_H
#define RL_MODEL_MODEL_H

#include "format/checkpoint.h"
#include "model/config.h"
#include "ops/ops.h"

typedef struct rl_layer {
    bool softmax; /* GQA softmax attention (else Lightning) */
    bool moe;     /* MoE MLP (else dense SwiGLU) */
    int kind_index; /* index among layers of the same attention kind */
    float *in_norm, *post_norm; /* [hidden] fp32 */
    rl_wmat qkv, dense;
    float *q_norm, *k_norm; /* [head_dim], NULL when use_qk_norm is false */
    /* Lightning only */
    rl_wmat g_proj;
    float *g_norm;  /* [H*D] */
    float *decay_pw; /* [H][RL_CHUNK+1]: pw[n] = expf(g_h * n) */
    /* dense MLP */
    rl_wmat gate, up, down;
    /* MoE */
    rl_wmat router;       /* [E][hidden] */
    float *expert_bias;   /* [E], zeros when absent or disabled */
    rl_wmat *e_gate, *e_up, *e_down; /* [E] each */
    bool has_shared;
    rl_wmat s_gate, s_up, s_down;
} rl_layer;

typedef struct rl_model {
    rl_config cfg;
    rl_checkpoint ckpt;
    const rl_ops *ops;
    rl_wmat embed, lm_head;
    float *final_norm;
    rl_layer *layers;
    int n_linear, n_softmax;
    float *inv_freq; /* [rotary_dim/2] */
    /* bookkeeping for `info` */
    int64_t n_params, n_params_active, weight_bytes;
    void *packed; /* weights in the backend's matmul layout (see rl_ops.pack), or NULL */
    size_t packed_size;
} rl_model;

typedef struct rl_load_opts {
    const rl_ops *ops;          /* NULL: rl_ops_cpu() */
    int decay_conv;             /* -1: from config.json; else rl_decay_conv override */
    bool no_pack;               /* read weights from the mmap as stored */
    /* layers bound (done > 0), then matrices laid out for the backend (-done) */
    void (*progress)(void *ctx, int done, int total);
    void *progress_ctx;
} rl_load_opts;

int rl_model_load(const char *dir, const rl_load_opts *opts, rl_model *m, rl_err *e);
void rl_model_free(rl_model *m);

/* Bytes of Lightning state per sequence (all linear layers, fp32) and of
 * KV cache per token (all softmax layers, fp32). */
int64_t rl_model_linear_state_bytes(const rl_model *m);
int64_t rl_model_kv_bytes_per_token(const rl_model *m);

#endif
