/* The optimizer: AdamW with fp32 master weights and moments, global-norm
 * gradient clipping, a linear-warmup + cosine learning-rate schedule, and
 * the aux-loss-free MoE load balancing of Ling 2.0 / DeepSeek-V3 (the
 * expert_bias update by the sign of each expert's load error).
 *
 * It works over an abstract list of parameters: whoever computes gradients
 * (train/grad.h) fills each parameter's grad, and the optimizer writes the
 * updated weights back where the model reads them, in the stored dtype.
 *
 * Determinism: every element's update is a fixed sequence of fp32
 * operations; the global norm is a double sum in parameter order (each
 * parameter summed sequentially), whatever the thread count. So a run
 * resumed from saved moments continues bitwise. */
#ifndef RL_TRAIN_OPTIM_H
#define RL_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"

typedef struct rl_opt_param {
    const char *name;   /* checkpoint tensor name (not owned) */
    int ndim;
    int64_t shape[2];
    int64_t numel;
    float *master;      /* [numel] fp32 master weights (not owned) */
    float *grad;        /* [numel] fp32 gradient, or NULL: no update this step */
    bool decay;         /* weight decay applies (rl_param_decays) */
    rl_dtype dtype;     /* F32, BF16 or F16: the stored dtype of dst */
    void *dst;          /* updated weights are written here in dtype, or NULL */
    /* An fp32 copy the model reads (norm weights): written as the stored
     * dtype's value widened back (f32(dtype(master))), so the model trained
     * is the model a reload of the saved checkpoint gives. Or NULL. */
    float *dst_f32;
} rl_opt_param;

/* The decay rule: matrices (embeddings and LM head included) decay;
 * vectors (RMSNorm weights, biases, expert_bias) do not. */
bool rl_param_decays(const char *name, int ndim);

/* ---- schedule -------------------------------------------------------- */

typedef struct rl_schedule {
    float lr;        /* peak */
    float lr_min;    /* floor of the cosine */
    int64_t warmup;  /* steps of linear warmup */
    int64_t total;   /* steps in all; the cosine reaches lr_min at step total */
} rl_schedule;

/* The rate of step s (0-based):
 *   s < warmup:          lr * (s + 1) / warmup
 *   warmup <= s < total: lr_min + (lr - lr_min) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2
 *   s >= total:          lr_min
 * computed in double, rounded to float. */
float rl_schedule_lr(const rl_schedule *s, int64_t step);

/* ---- AdamW ------------------------------------------------------------- */

typedef struct rl_adamw_cfg {
    float beta1, beta2, eps;  /* 0.9, 0.95, 1e-8 are typical */
    float weight_decay;       /* decoupled: p -= lr * wd * p, for decay params */
    float clip;               /* max global gradient norm; 0 = no clipping */
} rl_adamw_cfg;

typedef struct rl_adamw {
    rl_adamw_cfg c;
    rl_opt_param *p; /* not owned */
    int n;
    float **m, **v;  /* [n][numel] moments (owned) */
    int64_t t;       /* steps taken (bias correction uses t after increment) */
} rl_adamw;

/* Moments start at zero. Refuses dtypes other than F32/BF16/F16. */
int rl_adamw_init(rl_adamw *o, rl_opt_param *p, int n, const rl_adamw_cfg *c, rl_err *e);
void rl_adamw_free(rl_adamw *o);

/* sqrt of the sum of squares of all gradients (params with grad != NULL),
 * accumulated in double, parameter by parameter in order. */
double rl_grad_norm(const rl_opt_param *p, int n);

/* One step at rate lr, PyTorch's AdamW with clip_grad_norm_:
 *   g *= min(1, clip / (norm + 1e-6))            (when clip > 0)
 *   p -= lr * wd * p                             (decay params)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * then writes p to dst in its dtype (and dst_f32). Returns the norm before clipping. The
 * gradients are left scaled by the clip factor. */
double rl_adamw_step(rl_adamw *o, float lr);

/* ---- MoE load balancing (aux-loss-free) ------------------------------- */

typedef struct rl_expert_stats {
    int64_t tokens;      /* routed (token, expert) pairs */
    double max_over_mean; /* the busiest expert's load over the mean (1 = balanced) */
    double cv;           /* coefficient of variation of the loads */
    int idle;            /* experts that got no token */
} rl_expert_stats;

/* Statistics of one layer's loads (load[e]: tokens routed to expert e). */
void rl_expert_stats_of(const int *load, int E, rl_expert_stats *s);

/* bias[e] += rate * sign(mean_load - load[e]) (sign(0) = 0): under-loaded
 * experts become more attractive to the selection, over-loaded ones less. */
void rl_expert_bias_update(float *bias, const int *load, int E, float rate);

#endif
