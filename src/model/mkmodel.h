/* Random-weight checkpoints of any config, in the real Hugging Face layout
 * (tensor names of SPEC §2, config.json, sharded with an index). Used for
 * tests, benchmarks and as the default model until a trained one exists. */
#ifndef RL_MODEL_MKMODEL_H
#define RL_MODEL_MKMODEL_H

#include <stdint.h>

#include "base/dtype.h"
#include "model/config.h"

typedef struct rl_mkmodel_opts {
    uint64_t seed;
    int shards;            /* >= 1 */
    rl_dtype dtype;        /* matrices: BF16 (default), F16, F32, F8_E4M3 (with block scales) */
    rl_dtype router_dtype; /* F32 (default) or BF16 */
    /* Also write a byte-level tokenizer.json (256 byte tokens + the Ring
     * special tokens), a tokenizer_config.json with a chat template in the
     * Ring format and generation_config.json; eos/bos ids follow it. */
    bool byte_tokenizer;
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
} rl_mkmodel_opts;

/* Known presets: ring-mini-linear-2.0, ring-flash-linear-2.0 (full shapes),
 * ring-mini-linear-2.0-e64 (mini with 64 experts: fits 24 GB of RAM),
 * ring-mini-linear-2.0-softmax-e64 (its all-softmax twin), tiny, test. */
int rl_config_preset(const char *name, rl_config *c, rl_err *e);
/* Comma-separated preset names, for help texts. */
const char *rl_config_preset_names(void);

int rl_mkmodel(const rl_config *c, const char *dir, const rl_mkmodel_opts *o, rl_err *e);

#endif
