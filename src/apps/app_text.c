#include "apps/app_text.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "apps/app.h"
#include "model/generation_config.h"

static void add_stop(app_text *t, json_int_t id) {
    if (id < 0 || id > INT32_MAX || t->n_stop == 32) return;
    for (int i = 0; i < t->n_stop; i++)
        if (t->stop[i] == (int32_t)id) return;
    t->stop[t->n_stop++] = (int32_t)id;
}

int app_text_load(const char *dir, const rl_config *cfg, bool want_template, app_text *t) {
    memset(t, 0, sizeof *t);
    char path[4096];
    rl_err e = {0};
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (rl_tok_load_file(path, &t->tok, &e)) return app_fail("%s", e.msg);
    if (rl_tok_vocab_size(t->tok) > cfg->vocab_size)
        fprintf(stderr, "warning: %s defines ids up to %d but the model has %d logits\n", path,
                rl_tok_vocab_size(t->tok) - 1, cfg->vocab_size);
    for (int i = 0; i < cfg->n_eos; i++) add_stop(t, cfg->eos_token_ids[i]);
    rl_generation_config_eos(dir, t->stop, &t->n_stop, 32);
    if (want_template) {
        if (rl_chat_template_load_dir(dir, &t->tpl, &e)) {
            app_text_free(t);
            return app_fail("%s", e.msg);
        }
        const char *eos = rl_chat_template_eos(t->tpl);
        if (eos) add_stop(t, rl_tok_token_to_id(t->tok, eos, strlen(eos)));
    }
    return 0;
}

void app_text_free(app_text *t) {
    if (t->tpl) rl_chat_template_free(t->tpl);
    if (t->tok) rl_tok_free(t->tok);
    memset(t, 0, sizeof *t);
}

bool app_text_is_stop(const app_text *t, int32_t id) {
    for (int i = 0; i < t->n_stop; i++)
        if (t->stop[i] == id) return true;
    return false;
}
