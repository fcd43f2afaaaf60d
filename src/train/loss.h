/* The LM head with the next-token cross-entropy, in blocks of token rows:
 * the [T][vocab] logits are never held at once. Each block's logits come
 * from the forward's own ops (final RMSNorm, LM-head matmul: row-invariant),
 * and each log-prob is rl_logprob of its row, so the loss, `score` and
 * generation agree bitwise on every log-prob. */
#ifndef RL_TRAIN_LOSS_H
#define RL_TRAIN_LOSS_H

#include "train/grad.h"

/* x_final: [n][hidden] residual before the final norm. Rows 0..n-2 predict
 * ids[1..n-1]. lp_out (may be NULL): the n-1 log-probs. With g: adds the
 * gradients of the mean loss to g->lm_head, g->final_norm and dx ([n][hidden],
 * accumulated). *loss (may be NULL): mean of -log-probs. */
int rl_loss_head(const rl_model *m, const float *x_final, const int *ids, int n, float *lp_out,
                 rl_grads *g, float *dx, float *loss, rl_err *e);

#endif
