/* The log-probability of a token under the model's raw distribution
 * (softmax of the logits at temperature 1, no sampler transforms). One
 * function, used by generation and by scoring, so both compute bitwise the
 * same value (DESIGN.md §2.4). */
#ifndef RL_ENGINE_LOGPROB_H
#define RL_ENGINE_LOGPROB_H

/* log softmax(logits)[id] over n logits: max in fp32, the sum of exp(l - max)
 * accumulated in double in index order, result rounded to float. */
float rl_logprob(const float *logits, int n, int id);

#endif
