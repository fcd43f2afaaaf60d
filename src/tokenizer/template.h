/* Chat templates as Hugging Face transformers applies them.
 *
 * A template comes from a tokenizer_config.json ("chat_template": a string,
 * or a list of {name, template}), any JSON file with such a field, a
 * chat_template.jinja file, or a checkpoint directory. Rendering passes the
 * variables transformers passes: messages, tools (None when absent),
 * documents (None), add_generation_prompt, the special-token map
 * (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token,
 * mask_token, additional_special_tokens; only those set) and extra
 * variables, which override the rest. */
#ifndef RL_TOKENIZER_TEMPLATE_H
#define RL_TOKENIZER_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"

typedef struct rl_chat_template rl_chat_template;

/* From a parsed config object; where names the source in messages. */
int rl_chat_template_from_json(const json_t *cfg, const char *where, rl_chat_template **out, rl_err *err);
/* From a JSON file (tokenizer_config.json or similar) or, when path ends in
 * ".jinja", a raw template file (no special tokens then). */
int rl_chat_template_load(const char *path, rl_chat_template **out, rl_err *err);
/* From a checkpoint directory: chat_template.jinja if present, else
 * tokenizer_config.json (special tokens always from tokenizer_config.json). */
int rl_chat_template_load_dir(const char *dir, rl_chat_template **out, rl_err *err);
void rl_chat_template_free(rl_chat_template *t);

/* The special token strings (NULL when the config has none). */
const char *rl_chat_template_bos(const rl_chat_template *t);
const char *rl_chat_template_eos(const rl_chat_template *t);

typedef struct rl_chat_opts {
    bool add_generation_prompt;
    const json_t *tools;     /* JSON array or NULL */
    const json_t *documents; /* JSON array or NULL */
    const json_t *extra;     /* object of extra variables (enable_thinking ...) or NULL */
    const char *name;        /* named template to use; NULL: "tool_use" when tools, else "default" */
    int64_t now;             /* strftime_now clock (Unix seconds, UTC); <0: local time now */
    uint64_t max_steps;      /* 0: default budget */
} rl_chat_opts;

/* Renders messages (a JSON array). *out is malloc'd and NUL-terminated. */
int rl_chat_template_apply(const rl_chat_template *t, const json_t *messages, const rl_chat_opts *o,
                           char **out, size_t *out_len, rl_err *err);

#endif
