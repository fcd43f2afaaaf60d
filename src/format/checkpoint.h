/* A Hugging Face checkpoint directory: config.json plus either
 * model.safetensors or model.safetensors.index.json with its shards.
 * Tensors of all shards are reachable by name. */
#ifndef RL_FORMAT_CHECKPOINT_H
#define RL_FORMAT_CHECKPOINT_H

#include "format/safetensors.h"

typedef struct rl_checkpoint {
    char *dir;
    rl_st_file *shards;
    int n_shards;
    /* name index over all shards, sorted by name */
    const rl_tensor **by_name;
    int n_tensors;
    char *config_json; /* contents of config.json (NUL-terminated) */
} rl_checkpoint;

/* Opens dir: reads config.json, opens every shard named by the index (or
 * the single model.safetensors), checks that the index's weight_map agrees
 * with the shards' contents and that no tensor name appears twice. */
int rl_checkpoint_open(const char *dir, rl_checkpoint *c, rl_err *e);

const rl_tensor *rl_checkpoint_find(const rl_checkpoint *c, const char *name);

void rl_checkpoint_close(rl_checkpoint *c);

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
int rl_read_file(const char *path, char **out, size_t *len, rl_err *e);

/* Creates dir and its missing parents (an existing dir is fine), for the
 * checkpoint writers. */
int rl_mkdir_p(const char *dir, rl_err *e);

#endif
