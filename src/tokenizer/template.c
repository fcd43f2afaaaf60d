/* Chat templates: loading from Hugging Face configs and rendering with the
 * variables transformers passes (see template.h). */
#include "tokenizer/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/jinja.h"

struct rl_chat_template {
    size_t n;
    char **names;
    rl_jinja_tmpl **tmpls;
    json_t *special; /* object: bos_token ... */
    char *bos, *eos;
};

static const char *const SPECIAL_KEYS[] = { "bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                                            "cls_token", "mask_token", NULL };

static const char *token_str(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content"))) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int add_template(rl_chat_template *t, const char *name, const char *src, size_t len, const char *where, rl_err *err) {
    char **nn = realloc(t->names, (t->n + 1) * sizeof *nn);
    if (!nn) return rl_errf(err, RL_E_NOMEM, "out of memory");
    t->names = nn;
    rl_jinja_tmpl **nt = realloc(t->tmpls, (t->n + 1) * sizeof *nt);
    if (!nt) return rl_errf(err, RL_E_NOMEM, "out of memory");
    t->tmpls = nt;
    rl_jinja_tmpl *j;
    int rc = rl_jinja_parse(src, len, &j, err);
    if (rc) return rl_err_prefix(err, "%s: chat template '%s'", where, name);
    t->names[t->n] = strdup(name);
    if (!t->names[t->n]) { rl_jinja_free(j); return rl_errf(err, RL_E_NOMEM, "out of memory"); }
    t->tmpls[t->n++] = j;
    return RL_OK;
}

static int load_specials(rl_chat_template *t, const json_t *cfg) {
    t->special = json_object();
    if (!t->special) return RL_E_NOMEM;
    if (!cfg) return RL_OK;
    for (int i = 0; SPECIAL_KEYS[i]; i++) {
        const char *s = token_str(json_object_get(cfg, SPECIAL_KEYS[i]));
        if (s) json_object_set_new(t->special, SPECIAL_KEYS[i], json_string(s));
    }
    const json_t *add = json_object_get(cfg, "additional_special_tokens");
    if (json_is_array(add)) {
        json_t *arr = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(add, i, v) {
            const char *s = token_str(v);
            if (s) json_array_append_new(arr, json_string(s));
        }
        json_object_set_new(t->special, "additional_special_tokens", arr);
    }
    const char *b = token_str(json_object_get(cfg, "bos_token")), *e = token_str(json_object_get(cfg, "eos_token"));
    if (b) t->bos = strdup(b);
    if (e) t->eos = strdup(e);
    return RL_OK;
}

int rl_chat_template_from_json(const json_t *cfg, const char *where, rl_chat_template **out, rl_err *err) {
    *out = NULL;
    if (!json_is_object(cfg)) return rl_errf(err, RL_E_FORMAT, "%s: not a JSON object", where);
    const json_t *ct = json_object_get(cfg, "chat_template");
    if (!ct || json_is_null(ct)) return rl_errf(err, RL_E_FORMAT, "%s: no \"chat_template\" field", where);
    rl_chat_template *t = calloc(1, sizeof *t);
    if (!t) return rl_errf(err, RL_E_NOMEM, "out of memory");
    int rc = RL_OK;
    if (json_is_string(ct)) {
        rc = add_template(t, "default", json_string_value(ct), json_string_length(ct), where, err);
    } else if (json_is_array(ct)) {
        size_t i;
        json_t *e;
        json_array_foreach(ct, i, e) {
            const json_t *nm = json_object_get(e, "name"), *tp = json_object_get(e, "template");
            if (!json_is_string(nm) || !json_is_string(tp)) {
                rc = rl_errf(err, RL_E_FORMAT, "%s: chat_template[%zu] must be {\"name\": str, \"template\": str}", where, i);
                break;
            }
            if ((rc = add_template(t, json_string_value(nm), json_string_value(tp), json_string_length(tp), where, err))) break;
        }
        if (!rc && t->n == 0) rc = rl_errf(err, RL_E_FORMAT, "%s: chat_template is an empty list", where);
    } else {
        rc = rl_errf(err, RL_E_FORMAT, "%s: chat_template must be a string or a list of {name, template}", where);
    }
    if (!rc && load_specials(t, cfg)) rc = rl_errf(err, RL_E_NOMEM, "out of memory");
    if (rc) { rl_chat_template_free(t); return rc; }
    *out = t;
    return RL_OK;
}

static char *read_file(const char *path, size_t *len, rl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { rl_errf(err, RL_E_IO, "%s: cannot open", path); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n + 1 < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf) { rl_errf(err, RL_E_NOMEM, "out of memory"); return NULL; }
    if (bad) { free(buf); rl_errf(err, RL_E_IO, "%s: read error", path); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int rl_chat_template_load(const char *path, rl_chat_template **out, rl_err *err) {
    *out = NULL;
    if (ends_with(path, ".jinja")) {
        size_t len;
        char *src = read_file(path, &len, err);
        if (!src) return err ? err->code : RL_E_IO;
        rl_chat_template *t = calloc(1, sizeof *t);
        int rc = t ? add_template(t, "default", src, len, path, err) : rl_errf(err, RL_E_NOMEM, "out of memory");
        free(src);
        if (!rc && load_specials(t, NULL)) rc = rl_errf(err, RL_E_NOMEM, "out of memory");
        if (rc) { rl_chat_template_free(t); return rc; }
        *out = t;
        return RL_OK;
    }
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &je);
    if (!cfg) return rl_errf(err, RL_E_FORMAT, "%s: line %d, column %d: %s", path, je.line, je.column, je.text);
    int rc = rl_chat_template_from_json(cfg, path, out, err);
    json_decref(cfg);
    return rc;
}

int rl_chat_template_load_dir(const char *dir, rl_chat_template **out, rl_err *err) {
    *out = NULL;
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/chat_template.jinja", dir);
    snprintf(p2, sizeof p2, "%s/tokenizer_config.json", dir);
    struct stat st;
    json_t *cfg = NULL;
    if (stat(p2, &st) == 0) {
        json_error_t je;
        cfg = json_load_file(p2, JSON_DECODE_INT_AS_REAL, &je);
        if (!cfg) return rl_errf(err, RL_E_FORMAT, "%s: line %d, column %d: %s", p2, je.line, je.column, je.text);
    }
    int rc;
    if (stat(p1, &st) == 0) {
        rc = rl_chat_template_load(p1, out, err);
        if (!rc && cfg) {
            json_decref((*out)->special);
            (*out)->special = NULL;
            free((*out)->bos); free((*out)->eos);
            (*out)->bos = (*out)->eos = NULL;
            if (load_specials(*out, cfg)) rc = rl_errf(err, RL_E_NOMEM, "out of memory");
        }
    } else if (cfg) {
        rc = rl_chat_template_from_json(cfg, p2, out, err);
    } else {
        rc = rl_errf(err, RL_E_IO, "%s: neither chat_template.jinja nor tokenizer_config.json", dir);
    }
    json_decref(cfg);
    if (rc && *out) { rl_chat_template_free(*out); *out = NULL; }
    return rc;
}

void rl_chat_template_free(rl_chat_template *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) { free(t->names[i]); rl_jinja_free(t->tmpls[i]); }
    free(t->names);
    free(t->tmpls);
    json_decref(t->special);
    free(t->bos);
    free(t->eos);
    free(t);
}

const char *rl_chat_template_bos(const rl_chat_template *t) { return t->bos; }
const char *rl_chat_template_eos(const rl_chat_template *t) { return t->eos; }

int rl_chat_template_apply(const rl_chat_template *t, const json_t *messages, const rl_chat_opts *o,
                           char **out, size_t *out_len, rl_err *err) {
    *out = NULL;
    rl_chat_opts dflt = { 0 };
    dflt.now = -1;
    if (!o) o = &dflt;
    if (!json_is_array(messages)) return rl_errf(err, RL_E_ARG, "messages must be a JSON array");
    /* pick the template as transformers does */
    const rl_jinja_tmpl *tm = NULL;
    const char *want = o->name;
    if (!want && t->n == 1 && strcmp(t->names[0], "default") == 0) want = "default";
    if (!want) {
        for (size_t i = 0; i < t->n && o->tools && !tm; i++) if (!strcmp(t->names[i], "tool_use")) tm = t->tmpls[i];
        want = "default";
    }
    for (size_t i = 0; i < t->n && !tm; i++) if (!strcmp(t->names[i], want)) tm = t->tmpls[i];
    if (!tm) {
        if (o->name) return rl_errf(err, RL_E_ARG, "no chat template named '%s'", o->name);
        return rl_errf(err, RL_E_ARG, "This model has multiple chat templates with no default specified");
    }
    json_t *vars = json_object();
    if (!vars) return rl_errf(err, RL_E_NOMEM, "out of memory");
    json_object_set(vars, "messages", (json_t *)messages);
    json_object_set_new(vars, "tools", o->tools ? json_incref((json_t *)o->tools) : json_null());
    json_object_set_new(vars, "documents", o->documents ? json_incref((json_t *)o->documents) : json_null());
    json_object_set_new(vars, "add_generation_prompt", json_boolean(o->add_generation_prompt));
    if (t->special) json_object_update(vars, t->special);
    if (o->extra && json_is_object(o->extra)) json_object_update(vars, (json_t *)o->extra);
    rl_jinja_opts jo = { o->max_steps, 0, 0, o->now };
    int rc = rl_jinja_render(tm, vars, &jo, out, out_len, err);
    json_decref(vars);
    return rc;
}
