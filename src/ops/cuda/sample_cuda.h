/* Token sampling on the device (sample_cuda.cu): rl_sampler_pick
 * (src/engine/sampler.c) on rows of logits that never leave the GPU, plus the
 * chosen token's log-probability (rl_logprob). Plain C: callable from the
 * host compiler.
 *
 * Same numbers as the host: the penalties with the same float operations,
 * greedy = the first maximum, top-k = the k largest under (value desc, id
 * asc) found by a radix select on (value, id), the candidates sorted the same
 * way, then one thread runs the host's double-precision softmax / top-p /
 * min-p / temperature / draw loop over them in the same order. So the token
 * equals rl_sampler_pick's on the same logits and draw, except where the
 * device's double exp differs from the C library's in the last ulp right at
 * a cut (not seen in the tests). The log-probability's double sum runs in
 * another order than rl_logprob's: equal after rounding to float except in
 * ties of the last double bits.
 *
 * Supported draws (rl_cu_sample_ok): greedy (temperature <= 0), or
 * 1 <= top_k <= RL_CU_SAMPLE_MAX_K with top_k < the valid ids; others (top-k
 * off with a temperature: a sort of the whole vocabulary) stay on the host. */
#ifndef RL_OPS_CUDA_SAMPLE_CUDA_H
#define RL_OPS_CUDA_SAMPLE_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

enum { RL_CU_SAMPLE_MAX_K = 1024 };

/* One row's draw (rl_sampler_draw's fields, flattened for the device). */
typedef struct rl_cu_sample_args {
    float temperature, top_p, min_p;
    float repeat_penalty, presence_penalty, frequency_penalty;
    int top_k, n_valid;           /* n_valid <= V */
    int penalize, n_pen, pen_off; /* penalties: pen_tok/pen_cnt[pen_off .. + n_pen) */
    int row;                      /* the row of logits this draw reads */
    double u01;
} rl_cu_sample_args;

int rl_cu_sample_ok(const rl_cu_sample_args *a);

/* For each draw r < rows: token[r] and logprob[r] from logits[args[r].row][V]
 * with args[r]. args, pen_tok, pen_cnt, token, logprob: device arrays. scratch:
 * rows * V floats (device), used for rows with penalties. Returns 0 or a
 * CUDA error code. */
int rl_cu_sample(const float *logits, int V, int rows, const rl_cu_sample_args *args,
                 const int *pen_tok, const int *pen_cnt, float *scratch, int *token,
                 float *logprob, void *stream);

#ifdef __cplusplus
}
#endif

#endif
