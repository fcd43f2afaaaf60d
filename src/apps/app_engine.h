/* The commands' view of "where the model runs": the CPU engine (rl_step on
 * rl_slot) or the CUDA device forward (rl_cuda_step on device sequences),
 * chosen by --device. Same spans, same semantics. */
#ifndef RL_APPS_APP_ENGINE_H
#define RL_APPS_APP_ENGINE_H

#include "apps/app.h"

typedef struct app_engine {
    rl_model *m;
    int device;
    rl_engine cpu;
    struct rl_cuda_engine *gpu;
} app_engine;

typedef struct app_seq {
    rl_slot cpu;
    struct rl_cuda_seq *gpu;
} app_seq;

typedef struct app_span {
    app_seq *seq;
    const int *tokens;
    int n, first_pos, want;
    float *logits;
    /* optional, with want == RL_LOGITS_LAST: the next token drawn in the step
     * (on the GPU without copying the logits where it can; on the CPU from
     * `logits`, which must then be given) */
    rl_sample_req *sample;
} app_span;

/* Fails (printing why) for --device cuda when ringlm was built without CUDA,
 * the command does not run on the GPU, or no GPU is present. */
int app_device_check(const app_model_opts *o);
/* One line naming the device ("cpu (avx512, 16 threads)" or the GPU). */
void app_device_describe(const app_model_opts *o, char *buf, size_t n);

int app_engine_init(app_engine *g, rl_model *m, const app_model_opts *o, rl_err *e);
void app_engine_free(app_engine *g);
/* Raises the context limit (bench). */
void app_engine_set_max_ctx(app_engine *g, int max_ctx);
int app_seq_init(app_engine *g, app_seq *s, rl_err *e);
void app_seq_free(app_engine *g, app_seq *s);
int app_seq_pos(const app_engine *g, const app_seq *s);
int app_seq_fork(app_engine *g, app_seq *dst, const app_seq *src, rl_err *e);
int app_step(app_engine *g, const app_span *spans, int n, rl_err *e);

#endif
