/* generation_config.json: the end-of-generation ids a checkpoint lists
 * beside config.json (the Ring-2.0 family names both <|endoftext|> and
 * <|role_end|> there, while config.json has one). */
#ifndef RL_MODEL_GENERATION_CONFIG_H
#define RL_MODEL_GENERATION_CONFIG_H

#include <stdint.h>

/* Appends dir/generation_config.json's eos_token_id (an int or a list) to
 * ids[*n..cap), skipping ids already there and negative ones. A missing or
 * unreadable file adds nothing (the file is optional). */
void rl_generation_config_eos(const char *dir, int32_t *ids, int *n, int cap);

#endif
