/* Allocation of the activation tape that rl_step_train records (step.h),
 * whole or checkpointed.
 *
 * Checkpointed (recompute): the forward keeps only each layer's residual
 * input x_in (plus the RoPE table and the final residual); the backward
 * recomputes one layer's full tape at a time with rl_step_train_layer into
 * one work layer sized for the largest layer. Memory O(T x hidden x layers
 * + T x one layer's widths) instead of O(T x layers x all widths), for one
 * more forward of every layer. */
#ifndef RL_TRAIN_TAPE_H
#define RL_TRAIN_TAPE_H

#include <stdbool.h>

#include "engine/step.h"

typedef enum { RL_RECOMPUTE_AUTO = 0, RL_RECOMPUTE_ON, RL_RECOMPUTE_OFF } rl_recompute;

/* auto recomputes when the whole tape of one window would exceed this */
#define RL_RECOMPUTE_AUTO_BYTES ((size_t)1 << 30)

/* "auto", "on", "off" -> mode; -1 for anything else. */
int rl_recompute_parse(const char *s);
const char *rl_recompute_name(rl_recompute mode);
/* Whether a window of T tokens is trained with recomputation. */
bool rl_recompute_resolve(rl_recompute mode, const rl_model *m, int T);
/* Bytes of the tape for T tokens: whole (recompute false) or checkpointed
 * (the checkpoints plus the work layer). */
size_t rl_tape_bytes(const rl_model *m, int T, bool recompute);

/* Every buffer the backward reads, for T tokens (zeroed). */
int rl_tape_alloc(rl_tape *t, const rl_model *m, int T, rl_err *e);
/* The checkpoints only: cs, x_in of every layer, x_final. */
int rl_tape_alloc_checkpoints(rl_tape *t, const rl_model *m, int T, rl_err *e);
/* Only x_final (enough for the log-probs). */
int rl_tape_alloc_final(rl_tape *t, const rl_model *m, int T, rl_err *e);
void rl_tape_free(rl_tape *t, const rl_model *m);

/* One work layer for T tokens, every buffer (but x_in) sized for the largest
 * layer of the model: a layer records only the buffers of its kinds. */
int rl_tape_layer_alloc(rl_tape_layer *tl, const rl_model *m, int T, rl_err *e);
void rl_tape_layer_free(rl_tape_layer *tl);

#endif
