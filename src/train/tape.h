/* Allocation of the activation tape that rl_step_train records (step.h). */
#ifndef RL_TRAIN_TAPE_H
#define RL_TRAIN_TAPE_H

#include "engine/step.h"

/* Every buffer the backward reads, for T tokens (zeroed). */
int rl_tape_alloc(rl_tape *t, const rl_model *m, int T, rl_err *e);
/* Only x_final (enough for the log-probs). */
int rl_tape_alloc_final(rl_tape *t, const rl_model *m, int T, rl_err *e);
void rl_tape_free(rl_tape *t, const rl_model *m);

#endif
