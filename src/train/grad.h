/* Gradients of the mean next-token cross-entropy w.r.t. every parameter
 * (DESIGN.md §2.3), computed on the engine's own forward (rl_step_train):
 * the trainer and the server compute the same function, bitwise.
 *
 * Gradients are fp32 whatever the stored dtype, w.r.t. the weights as stored
 * (dequantized), never the backend's packed copy. expert_bias gets no
 * gradient (it only steers the selection, which is not differentiated). */
#ifndef RL_TRAIN_GRAD_H
#define RL_TRAIN_GRAD_H

#include <stdint.h>

#include "engine/step.h"
#include "train/tape.h"

typedef struct rl_grad_param {
    char name[160];    /* the checkpoint tensor name */
    int ndim;          /* 1 (vectors) or 2 (matrices) */
    int64_t shape[2];
    int64_t numel;
    float *g;          /* [numel] fp32 gradient */
    const rl_wmat *w;  /* the matrix it belongs to (NULL for vectors) */
    float *vec;        /* the model's fp32 vector (norm weights), or NULL */
} rl_grad_param;

/* Per-layer gradient buffers (pointers into rl_grads.p[*].g; NULL when the
 * layer has no such parameter). Same shapes as the rl_layer fields. */
typedef struct rl_layer_grads {
    float *in_norm, *post_norm, *qkv, *dense, *q_norm, *k_norm, *g_proj, *g_norm;
    float *gate, *up, *down;
    float *router, **e_gate, **e_up, **e_down; /* [E] each */
    float *s_gate, *s_up, *s_down;
} rl_layer_grads;

typedef struct rl_grads {
    int n;                 /* parameters, in checkpoint-name order of the model */
    rl_grad_param *p;
    float *embed, *lm_head; /* lm_head == embed when the embeddings are tied */
    float *final_norm;
    rl_layer_grads *layers; /* [n_layers] */
    int n_layers;
    /* tokens routed to each expert, [L][E], accumulated by rl_train_grad
     * like the gradients (rl_grads_zero clears it; rows of dense layers stay
     * 0): the load statistics of the expert-bias update */
    int *expert_load;
    int n_experts;
} rl_grads;

int rl_grads_init(rl_grads *g, const rl_model *m, rl_err *e);
void rl_grads_zero(rl_grads *g);
void rl_grads_free(rl_grads *g);
/* Sum of squares of every gradient (double accumulation, parameter order). */
double rl_grads_sqnorm(const rl_grads *g);

/* Runs the forward over ids[0..n) (a fresh sequence, positions 0..n-1) and
 * ADDS to g the gradient of  loss = mean_{i<n-1} -log p(ids[i+1] | ids[..i])
 * (call rl_grads_zero first, or accumulate micro-batches). *loss (may be
 * NULL) gets the loss, from the same log-probs as rl_train_logprobs.
 * n >= 2. The engine's slots are not touched (a private slot is used).
 * recompute (tape.h): checkpoint each layer's input and recompute its tape
 * in the backward; the gradients are bitwise the same either way. */
int rl_train_grad(rl_engine *eng, const int *ids, int n, rl_recompute recompute, rl_grads *g,
                  float *loss, rl_err *e);

/* The trainer forward's log-probs: out[i] = log p(ids[i+1] | ids[0..i]) for
 * i < n-1, each = rl_logprob of that row's logits (bitwise what generation
 * reports for the same tokens). */
int rl_train_logprobs(rl_engine *eng, const int *ids, int n, float *out, rl_err *e);

#endif
