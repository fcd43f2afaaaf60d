/* Text around a model directory: its tokenizer.json, chat template and stop
 * tokens, for generate -p, chat (and later serve). */
#ifndef RL_APPS_APP_TEXT_H
#define RL_APPS_APP_TEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "model/config.h"
#include "tokenizer/template.h"
#include "tokenizer/tokenizer.h"

typedef struct app_text {
    rl_tok *tok;
    rl_chat_template *tpl; /* NULL when not asked for */
    int32_t stop[32];      /* end-of-sequence ids: config, generation_config, eos_token */
    int n_stop;
} app_text;

/* Loads DIR/tokenizer.json (and the chat template when want_template).
 * Prints the error and returns 1 on failure. */
int app_text_load(const char *dir, const rl_config *cfg, bool want_template, app_text *t);
void app_text_free(app_text *t);
bool app_text_is_stop(const app_text *t, int32_t id);

#endif
