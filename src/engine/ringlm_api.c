/* The public C API (include/ringlm.h): thin handles over the model, the
 * engine's step, the tokenizer and the chat template. No arithmetic of its
 * own: a ringlm_step is an rl_step, so API users get bitwise the results of
 * the ringlm command. */
#include "ringlm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/logprob.h"
#include "engine/step.h"
#include "model/generation_config.h"
#include "ops/ops.h"
#include "tokenizer/template.h"
#include "tokenizer/tokenizer.h"

_Static_assert(sizeof(int) == sizeof(int32_t), "rl_span tokens are int, the API's are int32_t");
_Static_assert((int)RINGLM_LOGITS_LAST == (int)RL_LOGITS_LAST && (int)RINGLM_LOGITS_ALL == (int)RL_LOGITS_ALL,
               "logits modes");
_Static_assert((int)RINGLM_E_CAPACITY == (int)RL_E_CAPACITY && (int)RINGLM_E_SHAPE == (int)RL_E_SHAPE,
               "status codes are rl's");

struct ringlm_model {
    rl_model m;
    rl_engine eng;
    rl_tok *tok;            /* NULL when the checkpoint has no tokenizer.json */
    rl_chat_template *tpl;  /* NULL when it has no chat template */
    int32_t eog[16];
    int n_eog;
};

struct ringlm_seq {
    ringlm_model *owner;
    rl_slot slot;
};

static int fail(ringlm_error *err, const rl_err *e) {
    if (err) {
        err->code = e->code;
        snprintf(err->message, sizeof err->message, "%s", e->msg);
    }
    return e->code;
}

static int failf(ringlm_error *err, int code, const char *msg) {
    rl_err e;
    rl_errf(&e, code, "%s", msg);
    return fail(err, &e);
}

static void ok(ringlm_error *err) {
    if (err) {
        err->code = RINGLM_OK;
        err->message[0] = 0;
    }
}

ringlm_load_params ringlm_load_params_default(void) {
    ringlm_load_params p = {0, 0, 0, -1};
    return p;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

int ringlm_model_load(const char *dir, const ringlm_load_params *params, ringlm_model **out,
                      ringlm_error *err) {
    if (!dir || !out) return failf(err, RINGLM_E_ARG, "ringlm_model_load: dir and out are required");
    *out = NULL;
    ringlm_load_params p = params ? *params : ringlm_load_params_default();
    if (p.threads < 0 || p.max_kv_pages < 0 || p.max_context < 0 || p.decay_convention < -1 ||
        p.decay_convention > 1)
        return failf(err, RINGLM_E_ARG, "ringlm_model_load: a load parameter is out of range");
    ringlm_model *h = calloc(1, sizeof *h);
    if (!h) return failf(err, RINGLM_E_NOMEM, "ringlm_model_load: out of memory");
    if (p.threads > 0) rl_set_threads(p.threads);
    rl_err e = {0};
    rl_load_opts lo = {.ops = NULL, .decay_conv = p.decay_convention};
    if (rl_model_load(dir, &lo, &h->m, &e)) {
        free(h);
        return fail(err, &e);
    }
    if (rl_engine_init(&h->eng, &h->m, p.max_kv_pages, &e)) {
        rl_model_free(&h->m);
        free(h);
        return fail(err, &e);
    }
    if (p.max_context > 0 && p.max_context < h->eng.max_ctx) h->eng.max_ctx = p.max_context;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (file_exists(path)) {
        if (rl_tok_load_file(path, &h->tok, &e)) goto fail_text;
        /* a missing template is not an error for an API user who only scores */
        rl_err te = {0};
        if (rl_chat_template_load_dir(dir, &h->tpl, &te)) h->tpl = NULL;
    }
    for (int i = 0; i < h->m.cfg.n_eos; i++) h->eog[h->n_eog++] = h->m.cfg.eos_token_ids[i];
    rl_generation_config_eos(dir, h->eog, &h->n_eog, 15);
    if (h->tok && h->tpl) {
        const char *eos = rl_chat_template_eos(h->tpl);
        int32_t id = eos ? rl_tok_token_to_id(h->tok, eos, strlen(eos)) : -1;
        if (id >= 0) h->eog[h->n_eog++] = id;
    }
    *out = h;
    ok(err);
    return RINGLM_OK;
fail_text:
    rl_engine_free(&h->eng);
    rl_model_free(&h->m);
    free(h);
    return fail(err, &e);
}

void ringlm_model_free(ringlm_model *m) {
    if (!m) return;
    if (m->tpl) rl_chat_template_free(m->tpl);
    if (m->tok) rl_tok_free(m->tok);
    rl_engine_free(&m->eng);
    rl_model_free(&m->m);
    free(m);
}

int ringlm_n_vocab(const ringlm_model *m) { return m->m.cfg.vocab_size; }
int ringlm_n_ctx(const ringlm_model *m) { return m->eng.max_ctx; }
int ringlm_n_embd(const ringlm_model *m) { return m->m.cfg.hidden_size; }
int ringlm_n_layer(const ringlm_model *m) { return m->m.cfg.num_hidden_layers; }
int ringlm_n_layer_linear(const ringlm_model *m) { return m->m.n_linear; }
int ringlm_has_tokenizer(const ringlm_model *m) { return m->tok != NULL; }
int ringlm_has_chat_template(const ringlm_model *m) { return m->tpl != NULL; }

int ringlm_is_eog(const ringlm_model *m, int32_t id) {
    for (int i = 0; i < m->n_eog; i++)
        if (m->eog[i] == id) return 1;
    return 0;
}

static int need_tok(const ringlm_model *m, ringlm_error *err) {
    if (m->tok) return 0;
    return failf(err, RINGLM_E_UNSUPPORTED, "the checkpoint has no tokenizer.json");
}

int ringlm_tokenize(const ringlm_model *m, const char *text, size_t len, int add_special,
                    int32_t **ids, size_t *n_ids, ringlm_error *err) {
    if (!m || (!text && len) || !ids || !n_ids)
        return failf(err, RINGLM_E_ARG, "ringlm_tokenize: NULL argument");
    if (need_tok(m, err)) return RINGLM_E_UNSUPPORTED;
    rl_err e = {0};
    if (rl_tok_encode(m->tok, text ? text : "", len, add_special != 0, ids, n_ids, &e)) return fail(err, &e);
    ok(err);
    return RINGLM_OK;
}

int ringlm_detokenize(const ringlm_model *m, const int32_t *ids, size_t n_ids, int skip_special,
                      char **text, size_t *len, ringlm_error *err) {
    if (!m || (!ids && n_ids) || !text)
        return failf(err, RINGLM_E_ARG, "ringlm_detokenize: NULL argument");
    if (need_tok(m, err)) return RINGLM_E_UNSUPPORTED;
    rl_err e = {0};
    size_t n = 0;
    if (rl_tok_decode(m->tok, ids, n_ids, skip_special != 0, text, &n, &e)) return fail(err, &e);
    if (len) *len = n;
    ok(err);
    return RINGLM_OK;
}

int ringlm_chat_apply(const ringlm_model *m, const char *messages_json, int add_generation_prompt,
                      char **out, ringlm_error *err) {
    if (!m || !messages_json || !out) return failf(err, RINGLM_E_ARG, "ringlm_chat_apply: NULL argument");
    if (!m->tpl) return failf(err, RINGLM_E_UNSUPPORTED, "the checkpoint has no chat template");
    json_error_t je;
    json_t *msgs = json_loads(messages_json, 0, &je);
    rl_err e = {0};
    if (!msgs || !json_is_array(msgs)) {
        if (msgs) json_decref(msgs);
        rl_errf(&e, RINGLM_E_ARG, "messages: %s (line %d, column %d)",
                msgs ? "not a JSON array" : je.text, je.line, je.column);
        return fail(err, &e);
    }
    rl_chat_opts o = {.add_generation_prompt = add_generation_prompt != 0, .now = -1};
    size_t n = 0;
    int rc = rl_chat_template_apply(m->tpl, msgs, &o, out, &n, &e);
    json_decref(msgs);
    if (rc) return fail(err, &e);
    ok(err);
    return RINGLM_OK;
}

void ringlm_free(void *p) { free(p); }

int ringlm_seq_new(ringlm_model *m, ringlm_seq **out, ringlm_error *err) {
    if (!m || !out) return failf(err, RINGLM_E_ARG, "ringlm_seq_new: NULL argument");
    ringlm_seq *s = calloc(1, sizeof *s);
    if (!s) return failf(err, RINGLM_E_NOMEM, "ringlm_seq_new: out of memory");
    rl_err e = {0};
    if (rl_slot_init(&s->slot, &m->m, &e)) {
        free(s);
        return fail(err, &e);
    }
    s->owner = m;
    *out = s;
    ok(err);
    return RINGLM_OK;
}

void ringlm_seq_free(ringlm_seq *s) {
    if (!s) return;
    rl_slot_free(&s->slot, &s->owner->eng.pool);
    free(s);
}

int ringlm_seq_pos(const ringlm_seq *s) { return s->slot.pos; }

void ringlm_seq_reset(ringlm_seq *s) { rl_slot_reset(&s->slot, &s->owner->eng.pool); }

int ringlm_seq_fork(const ringlm_seq *src, ringlm_seq **out, ringlm_error *err) {
    if (!src || !out) return failf(err, RINGLM_E_ARG, "ringlm_seq_fork: NULL argument");
    ringlm_seq *s;
    int rc = ringlm_seq_new(src->owner, &s, err);
    if (rc) return rc;
    rl_err e = {0};
    if (rl_slot_fork(&s->slot, &src->slot, &src->owner->eng.pool, &e)) {
        ringlm_seq_free(s);
        return fail(err, &e);
    }
    *out = s;
    return RINGLM_OK;
}

int ringlm_step(ringlm_model *m, const ringlm_span *spans, int n_spans, ringlm_error *err) {
    if (!m || (!spans && n_spans) || n_spans < 0)
        return failf(err, RINGLM_E_ARG, "ringlm_step: NULL argument");
    if (n_spans == 0) {
        ok(err);
        return RINGLM_OK;
    }
    rl_span small[16];
    rl_span *sp = n_spans <= 16 ? small : malloc(sizeof *sp * (size_t)n_spans);
    if (!sp) return failf(err, RINGLM_E_NOMEM, "ringlm_step: out of memory");
    rl_err e = {0};
    int rc = RINGLM_OK;
    for (int i = 0; i < n_spans; i++) {
        const ringlm_span *a = &spans[i];
        if (!a->seq || a->seq->owner != m || !a->tokens || a->n < 1 || a->logits < 0 ||
            a->logits > RINGLM_LOGITS_ALL || (a->logits && !a->out)) {
            rc = rl_errf(&e, RINGLM_E_ARG,
                         "span %d: needs a sequence of this model, n >= 1 tokens, and an output "
                         "buffer when logits are asked",
                         i);
            break;
        }
        sp[i] = (rl_span){&a->seq->slot, (const int *)a->tokens, a->n, a->seq->slot.pos, a->logits,
                          a->out};
    }
    if (!rc) rc = rl_step(&m->eng, sp, n_spans, &e);
    if (sp != small) free(sp);
    if (rc) return fail(err, &e);
    ok(err);
    return RINGLM_OK;
}

float ringlm_logprob(const float *logits, int n, int id) { return rl_logprob(logits, n, id); }
