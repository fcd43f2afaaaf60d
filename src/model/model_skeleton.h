/* A model without a checkpoint: the config's layer schedule, decay powers,
 * RoPE frequencies and unit norms, with matrix views of the right shape and
 * dtype bf16 but no data. The CUDA backend fills such matrices with hashed
 * random values on the device (rl_cuda_opts.random_seed): benchmarks of full
 * model shapes without writing and reading tens of GB of random files. */
#ifndef RL_MODEL_MODEL_SKELETON_H
#define RL_MODEL_MODEL_SKELETON_H

#include "model/model.h"

int rl_model_skeleton(const rl_config *c, rl_model *m, rl_err *e);

#endif
