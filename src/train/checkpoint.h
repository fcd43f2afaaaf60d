/* Training checkpoints: the model in the Hugging Face layout (config.json,
 * model.safetensors, tokenizer files) that `generate` loads, plus the state
 * that makes a resumed run continue bitwise as if never stopped:
 *
 *   optimizer.safetensors   per parameter "<name>.master" (fp32 master
 *                           weights), "<name>.exp_avg", "<name>.exp_avg_sq";
 *                           per MoE layer its expert_bias in fp32
 *   trainer_state.json      steps done, AdamW's step count, the loader
 *                           position (seed, epoch, index), the run's config
 *
 * Every file is written to a temporary name and renamed, the state files
 * last. A crash between two renames can leave a new model.safetensors with
 * the previous state files; model.safetensors records its step in its
 * metadata ("ringlm_train_step") but resume does not check it yet. */
#ifndef RL_TRAIN_CHECKPOINT_H
#define RL_TRAIN_CHECKPOINT_H

#include "model/model.h"
#include "train/data.h"
#include "train/optim.h"

typedef struct rl_train_state {
    int64_t step; /* optimizer steps done */
    rl_loader_state loader;
} rl_train_state;

/* Writes the checkpoint into dir (created if needed). src: the checkpoint the
 * model was loaded from (tensors that are neither parameters nor expert
 * biases are copied from it unchanged; its config.json is copied). The
 * model's expert biases are read from m. copy_files: NULL-terminated list of
 * files copied into dir under their base names (tokenizer.json, ...); a file
 * that is already dir's own is skipped. config_json: the run's settings,
 * stored in trainer_state.json (may be NULL). */
int rl_train_save(const char *dir, const rl_model *m, const rl_adamw *opt, const rl_train_state *st,
                  const char *const *copy_files, const char *config_json, rl_err *e);

/* Copies the file src to dst (atomically); nothing when both are the same file. */
int rl_train_copy_file(const char *src, const char *dst, rl_err *e);

/* Restores masters, moments and AdamW's step from dir's optimizer file
 * (parameters matched by name and size; m must have been loaded from dir's
 * model.safetensors, which holds the masters rounded to the stored dtypes),
 * the expert biases into m, and the state. */
int rl_train_load(const char *dir, rl_model *m, rl_adamw *opt, rl_train_state *st, rl_err *e);

#endif
