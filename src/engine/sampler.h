/* Token sampler with llama.cpp's parameters, defaults and order:
 * penalties (repeat, presence, frequency over the last repeat_last_n tokens)
 * -> top-k -> top-p -> min-p -> temperature -> draw. temperature <= 0 is
 * greedy (argmax after penalties; exact ties: lower id). Ids at or above
 * n_vocab_valid (padding rows of the LM head) are never sampled. */
#ifndef RL_ENGINE_SAMPLER_H
#define RL_ENGINE_SAMPLER_H

#include <stdint.h>

typedef struct rl_sampler_params {
    float temperature;      /* 0.8 */
    int top_k;              /* 40; <= 0: off */
    float top_p;            /* 0.95; 1: off */
    float min_p;            /* 0.05; 0: off */
    float repeat_penalty;   /* 1.0: off */
    int repeat_last_n;      /* 64; -1: whole history */
    float presence_penalty; /* 0 */
    float frequency_penalty;/* 0 */
    uint64_t seed;          /* RL_SEED_RANDOM: from the clock */
} rl_sampler_params;

#define RL_SEED_RANDOM 0xFFFFFFFFull

void rl_sampler_defaults(rl_sampler_params *p);

typedef struct rl_sampler {
    rl_sampler_params p;
    uint64_t rng[4];
    int *hist; /* ring of the last tokens, for penalties */
    int hist_cap, hist_len, hist_head;
    /* scratch */
    int *idx;
    float *val;
    int *pen_tok, *pen_cnt; /* the window's distinct tokens and their counts */
    int pen_cap;
    int n_vocab;
} rl_sampler;

/* One draw, split in two so that the second half can run elsewhere (the GPU,
 * src/ops/cuda/sample_cuda.cu) on the same numbers:
 * rl_sampler_prepare takes everything a draw needs from the sampler's state
 * (parameters, the penalty window's distinct tokens in ascending order with
 * their counts, the uniform variate, advancing the RNG only when the draw
 * is random, as rl_sampler_sample does); rl_sampler_pick applies them to the
 * logits. rl_sampler_sample(s, l, n) == rl_sampler_pick(s, d, l, n) after
 * rl_sampler_prepare(s, &d). */
typedef struct rl_sampler_draw {
    float temperature, top_p, min_p;
    float repeat_penalty, presence_penalty, frequency_penalty;
    int top_k;
    int penalize;                 /* penalties apply (a window and a penalty set) */
    int n_pen;                    /* distinct tokens of the window */
    const int *pen_tok, *pen_cnt; /* ascending tokens, counts; valid until the next call */
    double u01;                   /* uniform in [0, 1) (temperature > 0 only) */
} rl_sampler_draw;
void rl_sampler_prepare(rl_sampler *s, rl_sampler_draw *d);
int rl_sampler_pick(rl_sampler *s, const rl_sampler_draw *d, const float *logits, int n_valid);

/* "Sample the next token" riding on a forward step (rl_cuda_step samples on
 * the device where it can, app_step on the host otherwise): the sampler is
 * advanced exactly as rl_sampler_sample would advance it; the caller still
 * calls rl_sampler_accept with the token. */
typedef struct rl_sample_req {
    rl_sampler *smp;
    int n_valid;   /* ids >= n_valid are never sampled */
    int token;     /* out */
    float logprob; /* out: rl_logprob of the token over all vocab_size logits */
} rl_sample_req;

int rl_sampler_init(rl_sampler *s, const rl_sampler_params *p, int n_vocab);
void rl_sampler_free(rl_sampler *s);
/* Records a token (prompt or generated) for the penalties. */
void rl_sampler_accept(rl_sampler *s, int token);
/* Picks the next token from logits[n_vocab]; ids >= n_valid are excluded.
 * logits is not modified. */
int rl_sampler_sample(rl_sampler *s, const float *logits, int n_valid);
/* The seed actually used (resolved when RL_SEED_RANDOM was asked). */
uint64_t rl_sampler_seed(const rl_sampler *s);

#endif
