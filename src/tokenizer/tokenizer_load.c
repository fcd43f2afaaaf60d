/* tokenizer.json -> rl_tok. Every construct is checked against what the
 * encoder implements; anything else is refused with its JSON path. Keys the
 * HF crate itself ignores are ignored; truncation and padding (batch
 * options that transformers resets per call) are not applied. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define OOM rl_errf(e, RL_E_NOMEM, "out of memory")
#define PATHLEN 256

static int bad(rl_err *e, const char *path, const char *what) {
    return rl_errf(e, RL_E_FORMAT, "%s: %s", path, what);
}

static int unsupported(rl_err *e, const char *path, const char *val) {
    return rl_errf(e, RL_E_UNSUPPORTED, "%s: unsupported \"%s\"", path, val);
}

/* out = path + tail, cut to PATHLEN - 1 bytes */
static void join(char *out, const char *path, const char *tail) {
    size_t a = strlen(path), b = strlen(tail);
    if (a > PATHLEN - 1) a = PATHLEN - 1;
    if (b > PATHLEN - 1 - a) b = PATHLEN - 1 - a;
    memmove(out, path, a);
    memcpy(out + a, tail, b);
    out[a + b] = 0;
}
static void sub(char *out, const char *path, const char *key) {
    char t[PATHLEN];
    t[0] = '.';
    size_t k = strlen(key);
    if (k > PATHLEN - 2) k = PATHLEN - 2;
    memcpy(t + 1, key, k);
    t[k + 1] = 0;
    join(out, path, t);
}
static void idx(char *out, const char *path, size_t i) {
    char t[32];
    snprintf(t, sizeof t, "[%zu]", i);
    join(out, path, t);
}

/* optional bool: absent or null -> def */
static int get_bool(json_t *o, const char *path, const char *key, bool def, bool *out, rl_err *e) {
    json_t *v = json_object_get(o, key);
    *out = def;
    if (!v || json_is_null(v)) return RL_OK;
    if (!json_is_boolean(v)) { char p[PATHLEN]; sub(p, path, key); return bad(e, p, "expected true or false"); }
    *out = json_is_true(v);
    return RL_OK;
}

/* optional string (NULL if absent/null), malloc'd copy */
static int get_str(json_t *o, const char *path, const char *key, char **out, size_t *len, rl_err *e) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (len) *len = 0;
    if (!v || json_is_null(v)) return RL_OK;
    if (!json_is_string(v)) { char p[PATHLEN]; sub(p, path, key); return bad(e, p, "expected a string"); }
    size_t n = json_string_length(v);
    char *s = malloc(n + 1);
    if (!s) return OOM;
    memcpy(s, json_string_value(v), n);
    s[n] = 0;
    *out = s;
    if (len) *len = n;
    return RL_OK;
}

/* a string holding exactly one char */
static int get_char(json_t *o, const char *path, const char *key, bool required, uint32_t def, uint32_t *out, rl_err *e) {
    json_t *v = json_object_get(o, key);
    char p[PATHLEN];
    sub(p, path, key);
    *out = def;
    if (!v || json_is_null(v)) return required ? bad(e, p, "missing") : RL_OK;
    if (!json_is_string(v)) return bad(e, p, "expected a one-character string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), i = 0;
    int32_t c = n ? rl_utf8_next(s, n, &i) : -1;
    if (c < 0 || i != n) return bad(e, p, "expected a one-character string");
    *out = (uint32_t)c;
    return RL_OK;
}

static int get_uint(json_t *o, const char *path, const char *key, long def, long max, long *out, rl_err *e) {
    json_t *v = json_object_get(o, key);
    *out = def;
    if (!v || json_is_null(v)) return RL_OK;
    char p[PATHLEN];
    sub(p, path, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return bad(e, p, "expected a non-negative integer");
    *out = (long)json_integer_value(v);
    return RL_OK;
}

static const char *type_of(json_t *o, const char *path, char *tp, rl_err *e, int *rc) {
    *rc = RL_OK;
    if (!json_is_object(o)) { *rc = bad(e, path, "expected an object"); return NULL; }
    json_t *t = json_object_get(o, "type");
    sub(tp, path, "type");
    if (!t || !json_is_string(t)) { *rc = bad(e, tp, "missing or not a string"); return NULL; }
    return json_string_value(t);
}

/* {"String": s} or {"Regex": r} */
static int get_pattern(json_t *o, const char *path, tk_pattern *pat, rl_err *e) {
    json_t *v = json_object_get(o, "pattern");
    char p[PATHLEN];
    sub(p, path, "pattern");
    if (!v || !json_is_object(v)) return bad(e, p, "expected {\"String\": ...} or {\"Regex\": ...}");
    json_t *s = json_object_get(v, "String"), *r = json_object_get(v, "Regex");
    if ((s && r) || (!s && !r) || json_object_size(v) != 1)
        return bad(e, p, "expected {\"String\": ...} or {\"Regex\": ...}");
    json_t *x = s ? s : r;
    char q[PATHLEN];
    sub(q, p, s ? "String" : "Regex");
    if (!json_is_string(x)) return bad(e, q, "expected a string");
    pat->kind = TK_PAT_REGEX;
    int rc = tk_regex_compile(&pat->re, json_string_value(x), json_string_length(x), s != NULL, e);
    if (rc) return rl_err_prefix(e, "%s", q);
    return RL_OK;
}

static int get_behavior(json_t *o, const char *path, int def, int *out, rl_err *e) {
    json_t *v = json_object_get(o, "behavior");
    *out = def;
    if (!v || json_is_null(v)) return RL_OK;
    char p[PATHLEN];
    sub(p, path, "behavior");
    if (!json_is_string(v)) return bad(e, p, "expected a string");
    const char *s = json_string_value(v);
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) { *out = i; return RL_OK; }
    return unsupported(e, p, s);
}

static int get_prepend_scheme(json_t *o, const char *path, int *out, rl_err *e) {
    json_t *v = json_object_get(o, "prepend_scheme");
    char p[PATHLEN];
    sub(p, path, "prepend_scheme");
    *out = TS_ALWAYS;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return bad(e, p, "expected a string");
        const char *s = json_string_value(v);
        if (strcmp(s, "always") == 0) *out = TS_ALWAYS;
        else if (strcmp(s, "first") == 0) *out = TS_FIRST;
        else if (strcmp(s, "never") == 0) *out = TS_NEVER;
        else return unsupported(e, p, s);
    }
    json_t *a = json_object_get(o, "add_prefix_space");
    if (a && json_is_false(a)) {
        if (*out != TS_NEVER) {
            char q[PATHLEN];
            sub(q, path, "add_prefix_space");
            return bad(e, q, "add_prefix_space does not match declared prepend_scheme");
        }
    }
    return RL_OK;
}

static json_t *get_list(json_t *o, const char *path, const char *key, char *lp, rl_err *e, int *rc) {
    json_t *v = json_object_get(o, key);
    sub(lp, path, key);
    *rc = RL_OK;
    if (!v || !json_is_array(v)) { *rc = bad(e, lp, "expected an array"); return NULL; }
    if (json_array_size(v) > 1000) { *rc = bad(e, lp, "too many items"); return NULL; }
    return v;
}

/* ---- normalizer ------------------------------------------------------------------ */
static int parse_norm(json_t *o, const char *path, tk_norm *nm, int depth, rl_err *e) {
    char tp[PATHLEN];
    int rc;
    memset(nm, 0, sizeof *nm);
    if (depth > 16) return bad(e, path, "nested too deeply");
    const char *t = type_of(o, path, tp, e, &rc);
    if (!t) return rc;
    if (strcmp(t, "Sequence") == 0) {
        char lp[PATHLEN];
        json_t *l = get_list(o, path, "normalizers", lp, e, &rc);
        if (!l) return rc;
        nm->type = TN_SEQ;
        nm->items = calloc(json_array_size(l) + 1, sizeof *nm->items);
        if (!nm->items) return OOM;
        for (size_t i = 0; i < json_array_size(l); i++) {
            char ip[PATHLEN];
            idx(ip, lp, i);
            nm->n_items++;
            rc = parse_norm(json_array_get(l, i), ip, &nm->items[i], depth + 1, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    if (strcmp(t, "NFC") == 0) { nm->type = TN_NFC; return RL_OK; }
    if (strcmp(t, "NFD") == 0) { nm->type = TN_NFD; return RL_OK; }
    if (strcmp(t, "NFKC") == 0) { nm->type = TN_NFKC; return RL_OK; }
    if (strcmp(t, "NFKD") == 0) { nm->type = TN_NFKD; return RL_OK; }
    if (strcmp(t, "Lowercase") == 0) { nm->type = TN_LOWER; return RL_OK; }
    if (strcmp(t, "StripAccents") == 0) { nm->type = TN_STRIP_ACCENTS; return RL_OK; }
    if (strcmp(t, "ByteLevel") == 0) { nm->type = TN_BYTELEVEL; return RL_OK; }
    if (strcmp(t, "Replace") == 0) {
        nm->type = TN_REPLACE;
        if ((rc = get_pattern(o, path, &nm->pat, e))) return rc;
        if ((rc = get_str(o, path, "content", &nm->str, &nm->str_len, e))) return rc;
        if (!nm->str) { char p[PATHLEN]; sub(p, path, "content"); return bad(e, p, "missing"); }
        return RL_OK;
    }
    if (strcmp(t, "Prepend") == 0) {
        nm->type = TN_PREPEND;
        if ((rc = get_str(o, path, "prepend", &nm->str, &nm->str_len, e))) return rc;
        if (!nm->str) { char p[PATHLEN]; sub(p, path, "prepend"); return bad(e, p, "missing"); }
        return RL_OK;
    }
    if (strcmp(t, "Strip") == 0) {
        nm->type = TN_STRIP;
        if ((rc = get_bool(o, path, "strip_left", false, &nm->left, e))) return rc;
        return get_bool(o, path, "strip_right", false, &nm->right, e);
    }
    return unsupported(e, tp, t);
}

/* ---- pre-tokenizer ------------------------------------------------------------------ */
static int parse_pre(json_t *o, const char *path, tk_pretok *pt, int depth, rl_err *e) {
    char tp[PATHLEN];
    int rc;
    memset(pt, 0, sizeof *pt);
    if (depth > 16) return bad(e, path, "nested too deeply");
    const char *t = type_of(o, path, tp, e, &rc);
    if (!t) return rc;
    if (strcmp(t, "Sequence") == 0) {
        char lp[PATHLEN];
        json_t *l = get_list(o, path, "pretokenizers", lp, e, &rc);
        if (!l) return rc;
        pt->type = TP_SEQ;
        pt->items = calloc(json_array_size(l) + 1, sizeof *pt->items);
        if (!pt->items) return OOM;
        for (size_t i = 0; i < json_array_size(l); i++) {
            char ip[PATHLEN];
            idx(ip, lp, i);
            pt->n_items++;
            rc = parse_pre(json_array_get(l, i), ip, &pt->items[i], depth + 1, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    if (strcmp(t, "ByteLevel") == 0) {
        pt->type = TP_BYTELEVEL;
        if ((rc = get_bool(o, path, "add_prefix_space", true, &pt->add_prefix_space, e))) return rc;
        return get_bool(o, path, "use_regex", true, &pt->use_regex, e);
    }
    if (strcmp(t, "Split") == 0) {
        pt->type = TP_SPLIT;
        if ((rc = get_pattern(o, path, &pt->pat, e))) return rc;
        json_t *b = json_object_get(o, "behavior");
        if (!b) { char p[PATHLEN]; sub(p, path, "behavior"); return bad(e, p, "missing"); }
        if ((rc = get_behavior(o, path, TB_ISOLATED, &pt->behavior, e))) return rc;
        return get_bool(o, path, "invert", false, &pt->pat.invert, e);
    }
    if (strcmp(t, "Digits") == 0) {
        bool ind;
        pt->type = TP_DIGITS;
        if ((rc = get_bool(o, path, "individual_digits", false, &ind, e))) return rc;
        pt->pat.kind = TK_PAT_PRED;
        pt->pat.pred = tk_is_numeric;
        pt->behavior = ind ? TB_ISOLATED : TB_CONTIGUOUS;
        return RL_OK;
    }
    if (strcmp(t, "Metaspace") == 0) {
        pt->type = TP_METASPACE;
        if ((rc = get_char(o, path, "replacement", true, 0x2581, &pt->replacement, e))) return rc;
        if ((rc = get_prepend_scheme(o, path, &pt->prepend_scheme, e))) return rc;
        if ((rc = get_bool(o, path, "split", true, &pt->split, e))) return rc;
        pt->pat.kind = TK_PAT_CHAR;
        pt->pat.ch = pt->replacement;
        return RL_OK;
    }
    if (strcmp(t, "Whitespace") == 0) {
        static const char re[] = "\\w+|[^\\w\\s]+";
        pt->type = TP_WHITESPACE;
        pt->pat.kind = TK_PAT_REGEX;
        pt->pat.invert = true;
        pt->behavior = TB_REMOVED;
        rc = tk_regex_compile_rust(&pt->pat.re, re, strlen(re), e); /* HF: regex crate, not onig */
        if (rc) pt->pat.kind = TK_PAT_PRED;
        return rc;
    }
    if (strcmp(t, "WhitespaceSplit") == 0) {
        pt->type = TP_WSSPLIT;
        pt->pat.kind = TK_PAT_PRED;
        pt->pat.pred = tk_is_whitespace;
        pt->behavior = TB_REMOVED;
        return RL_OK;
    }
    if (strcmp(t, "Punctuation") == 0) {
        pt->type = TP_PUNCT;
        pt->pat.kind = TK_PAT_PRED;
        pt->pat.pred = tk_is_punct;
        return get_behavior(o, path, TB_ISOLATED, &pt->behavior, e);
    }
    if (strcmp(t, "BertPreTokenizer") == 0) {
        /* whitespace split (removed), then punctuation (isolated) */
        pt->type = TP_SEQ;
        pt->items = calloc(2, sizeof *pt->items);
        if (!pt->items) return OOM;
        pt->n_items = 2;
        pt->items[0] = (tk_pretok){.type = TP_WSSPLIT, .pat = {.kind = TK_PAT_PRED, .pred = tk_is_whitespace}, .behavior = TB_REMOVED};
        pt->items[1] = (tk_pretok){.type = TP_PUNCT, .pat = {.kind = TK_PAT_PRED, .pred = tk_is_punct}, .behavior = TB_ISOLATED};
        return RL_OK;
    }
    if (strcmp(t, "CharDelimiterSplit") == 0) {
        pt->type = TP_SPLIT;
        pt->pat.kind = TK_PAT_CHAR;
        pt->behavior = TB_REMOVED;
        return get_char(o, path, "delimiter", true, 0, &pt->pat.ch, e);
    }
    return unsupported(e, tp, t);
}

/* ---- decoder ------------------------------------------------------------------ */
static int parse_dec(json_t *o, const char *path, tk_dec *d, int depth, rl_err *e) {
    char tp[PATHLEN];
    int rc;
    memset(d, 0, sizeof *d);
    if (depth > 16) return bad(e, path, "nested too deeply");
    const char *t = type_of(o, path, tp, e, &rc);
    if (!t) return rc;
    if (strcmp(t, "Sequence") == 0) {
        char lp[PATHLEN];
        json_t *l = get_list(o, path, "decoders", lp, e, &rc);
        if (!l) return rc;
        d->type = TD_SEQ;
        d->items = calloc(json_array_size(l) + 1, sizeof *d->items);
        if (!d->items) return OOM;
        for (size_t i = 0; i < json_array_size(l); i++) {
            char ip[PATHLEN];
            idx(ip, lp, i);
            d->n_items++;
            rc = parse_dec(json_array_get(l, i), ip, &d->items[i], depth + 1, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    if (strcmp(t, "ByteLevel") == 0) { d->type = TD_BYTELEVEL; return RL_OK; }
    if (strcmp(t, "ByteFallback") == 0) { d->type = TD_BYTEFALLBACK; return RL_OK; }
    if (strcmp(t, "Fuse") == 0) { d->type = TD_FUSE; return RL_OK; }
    if (strcmp(t, "Metaspace") == 0) {
        d->type = TD_METASPACE;
        if ((rc = get_char(o, path, "replacement", true, 0x2581, &d->ch, e))) return rc;
        return get_prepend_scheme(o, path, &d->prepend_scheme, e);
    }
    if (strcmp(t, "Strip") == 0) {
        d->type = TD_STRIP;
        if ((rc = get_char(o, path, "content", true, ' ', &d->ch, e))) return rc;
        if ((rc = get_uint(o, path, "start", 0, 1L << 30, &d->start, e))) return rc;
        return get_uint(o, path, "stop", 0, 1L << 30, &d->stop, e);
    }
    if (strcmp(t, "Replace") == 0) {
        d->type = TD_REPLACE;
        if ((rc = get_pattern(o, path, &d->pat, e))) return rc;
        if ((rc = get_str(o, path, "content", &d->content, &d->content_len, e))) return rc;
        if (!d->content) { char p[PATHLEN]; sub(p, path, "content"); return bad(e, p, "missing"); }
        return RL_OK;
    }
    return unsupported(e, tp, t);
}

/* ---- post-processor ------------------------------------------------------------------ */
static bool tpush(tk_post *p, int32_t v) {
    int32_t *n = realloc(p->tmpl, (p->n_tmpl + 1) * sizeof *n);
    if (!n) return false;
    p->tmpl = n;
    p->tmpl[p->n_tmpl++] = v;
    return true;
}

static int special_ids(json_t *st, const char *stp, const char *name, tk_post *pp, rl_err *e) {
    json_t *s = st ? json_object_get(st, name) : NULL;
    char p[PATHLEN];
    sub(p, stp, name);
    if (!s || !json_is_object(s)) return bad(e, p, "special token used by the template is missing");
    json_t *ids = json_object_get(s, "ids");
    char q[PATHLEN];
    sub(q, p, "ids");
    if (!ids || !json_is_array(ids)) return bad(e, q, "expected an array of ids");
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX - 1) {
            char r[PATHLEN];
            idx(r, q, i);
            return bad(e, r, "expected a non-negative id");
        }
        if (!tpush(pp, (int32_t)json_integer_value(v))) return OOM;
    }
    return RL_OK;
}

static int parse_post(json_t *o, const char *path, tk_post *pp, int depth, rl_err *e) {
    char tp[PATHLEN];
    int rc;
    memset(pp, 0, sizeof *pp);
    if (depth > 16) return bad(e, path, "nested too deeply");
    const char *t = type_of(o, path, tp, e, &rc);
    if (!t) return rc;
    if (strcmp(t, "Sequence") == 0) {
        char lp[PATHLEN];
        json_t *l = get_list(o, path, "processors", lp, e, &rc);
        if (!l) return rc;
        pp->type = TQ_SEQ;
        pp->items = calloc(json_array_size(l) + 1, sizeof *pp->items);
        if (!pp->items) return OOM;
        for (size_t i = 0; i < json_array_size(l); i++) {
            char ip[PATHLEN];
            idx(ip, lp, i);
            pp->n_items++;
            rc = parse_post(json_array_get(l, i), ip, &pp->items[i], depth + 1, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    if (strcmp(t, "ByteLevel") == 0) { pp->type = TQ_BYTELEVEL; return RL_OK; }
    if (strcmp(t, "BertProcessing") == 0 || strcmp(t, "RobertaProcessing") == 0) {
        pp->type = TQ_BERT;
        const char *keys[2] = {"cls", "sep"};
        int32_t v[2];
        for (int k = 0; k < 2; k++) {
            json_t *a = json_object_get(o, keys[k]);
            char p[PATHLEN];
            sub(p, path, keys[k]);
            if (!a || !json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(json_array_get(a, 1)) ||
                json_integer_value(json_array_get(a, 1)) < 0 || json_integer_value(json_array_get(a, 1)) > INT32_MAX - 1)
                return bad(e, p, "expected [token, id]");
            v[k] = (int32_t)json_integer_value(json_array_get(a, 1));
        }
        if (!tpush(pp, v[0]) || !tpush(pp, INT32_MIN) || !tpush(pp, v[1])) return OOM;
        return RL_OK;
    }
    if (strcmp(t, "TemplateProcessing") == 0) {
        pp->type = TQ_TEMPLATE;
        json_t *single = json_object_get(o, "single"), *st = json_object_get(o, "special_tokens");
        char sp[PATHLEN], stp[PATHLEN];
        sub(sp, path, "single");
        sub(stp, path, "special_tokens");
        if (st && !json_is_object(st)) return bad(e, stp, "expected an object");
        if (!single || !json_is_array(single)) return bad(e, sp, "expected an array");
        bool seen_seq = false;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *piece = json_array_get(single, i);
            char ip[PATHLEN];
            idx(ip, sp, i);
            json_t *seq = json_is_object(piece) ? json_object_get(piece, "Sequence") : NULL;
            json_t *spc = json_is_object(piece) ? json_object_get(piece, "SpecialToken") : NULL;
            if (json_is_string(piece)) {
                /* "$A", "$0", "[CLS]", with an optional ":type_id" */
                const char *s = json_string_value(piece);
                char name[PATHLEN];
                snprintf(name, sizeof name, "%s", s);
                char *colon = strchr(name, ':');
                if (colon) *colon = 0;
                if (name[0] == '$') {
                    if (seen_seq) return bad(e, ip, "the single template has two sequences");
                    seen_seq = true;
                    if (!tpush(pp, INT32_MIN)) return OOM;
                } else if ((rc = special_ids(st, stp, name, pp, e))) return rc;
            } else if (seq && json_object_size(piece) == 1) {
                json_t *id = json_object_get(seq, "id");
                if (!json_is_string(id) || strcmp(json_string_value(id), "A") != 0) {
                    char q[PATHLEN];
                    sub(q, ip, "Sequence.id");
                    return bad(e, q, "the single template may only use sequence A");
                }
                if (seen_seq) return bad(e, ip, "the single template has two sequences");
                seen_seq = true;
                if (!tpush(pp, INT32_MIN)) return OOM;
            } else if (spc && json_object_size(piece) == 1) {
                json_t *id = json_object_get(spc, "id");
                if (!json_is_string(id)) {
                    char q[PATHLEN];
                    sub(q, ip, "SpecialToken.id");
                    return bad(e, q, "expected a string");
                }
                if ((rc = special_ids(st, stp, json_string_value(id), pp, e))) return rc;
            } else {
                return bad(e, ip, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
            }
        }
        return RL_OK;
    }
    return unsupported(e, tp, t);
}

/* ---- the model ------------------------------------------------------------------ */
static int parse_model(json_t *m, const char *label, tk_bpe *b, rl_err *e) {
    int rc;
    if (!json_is_object(m)) return bad(e, "model", "expected an object");
    json_t *t = json_object_get(m, "type");
    if (t && !json_is_null(t)) {
        if (!json_is_string(t)) return bad(e, "model.type", "expected a string");
        if (strcmp(json_string_value(t), "BPE") != 0) return unsupported(e, "model.type", json_string_value(t));
    }
    (void)label;
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!vocab || !json_is_object(vocab)) return bad(e, "model.vocab", "expected an object (a BPE vocabulary)");
    if (!merges || !json_is_array(merges)) return bad(e, "model.merges", "expected an array");
    json_t *dr = json_object_get(m, "dropout");
    if (dr && !json_is_null(dr) && !json_is_number(dr)) return bad(e, "model.dropout", "expected a number or null");
    if ((rc = get_str(m, "model", "unk_token", &b->unk, NULL, e))) return rc;
    if ((rc = get_str(m, "model", "continuing_subword_prefix", &b->prefix, NULL, e))) return rc;
    if ((rc = get_str(m, "model", "end_of_word_suffix", &b->suffix, NULL, e))) return rc;
    if (b->prefix && !*b->prefix) { free(b->prefix); b->prefix = NULL; }
    if (b->suffix && !*b->suffix) { free(b->suffix); b->suffix = NULL; }
    if ((rc = get_bool(m, "model", "fuse_unk", false, &b->fuse_unk, e))) return rc;
    if ((rc = get_bool(m, "model", "byte_fallback", false, &b->byte_fallback, e))) return rc;
    if ((rc = get_bool(m, "model", "ignore_merges", false, &b->ignore_merges, e))) return rc;
    tk_strmap_init(&b->vocab);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= (1 << 30)) {
            char p[PATHLEN];
            snprintf(p, sizeof p, "model.vocab[\"%.100s\"]", key);
            return bad(e, p, "expected an id in [0, 2^30)");
        }
        if (!tk_strmap_put(&b->vocab, key, strlen(key), (int32_t)json_integer_value(val))) return OOM;
    }
    if ((rc = tk_bpe_build(b, e))) return rc;
    uint32_t rank = 0;
    for (size_t i = 0; i < json_array_size(merges); i++) {
        json_t *x = json_array_get(merges, i);
        char p[PATHLEN];
        idx(p, "model.merges", i);
        const char *a, *c;
        size_t an, cn;
        if (json_is_string(x)) {
            const char *s = json_string_value(x);
            size_t n = json_string_length(x);
            if (n >= 8 && memcmp(s, "#version", 8) == 0) continue;
            const char *sp = memchr(s, ' ', n);
            if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1)) return bad(e, p, "expected \"a b\" (two tokens, one space)");
            a = s;
            an = (size_t)(sp - s);
            c = sp + 1;
            cn = n - an - 1;
        } else if (json_is_array(x) && json_array_size(x) == 2 && json_is_string(json_array_get(x, 0)) &&
                   json_is_string(json_array_get(x, 1))) {
            a = json_string_value(json_array_get(x, 0));
            an = json_string_length(json_array_get(x, 0));
            c = json_string_value(json_array_get(x, 1));
            cn = json_string_length(json_array_get(x, 1));
        } else {
            return bad(e, p, "expected \"a b\" or [\"a\", \"b\"]");
        }
        if ((rc = tk_bpe_add_merge(b, a, an, c, cn, rank++, p, e))) return rc;
    }
    return RL_OK;
}

/* ---- added tokens (HF AddedVocabulary::add_tokens + refresh) ---------------------- */
static int parse_added(json_t *root, rl_tok *t, rl_err *e) {
    json_t *l = json_object_get(root, "added_tokens");
    if (!l || json_is_null(l)) l = NULL;
    else if (!json_is_array(l)) return bad(e, "added_tokens", "expected an array");
    size_t n = l ? json_array_size(l) : 0;
    tk_added *in = calloc(n + 1, sizeof *in);
    if (!in) return OOM;
    int rc = RL_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *o = json_array_get(l, i);
        char p[PATHLEN];
        idx(p, "added_tokens", i);
        if (!json_is_object(o)) { rc = bad(e, p, "expected an object"); break; }
        json_t *c = json_object_get(o, "content");
        if (!c || !json_is_string(c)) { char q[PATHLEN]; sub(q, p, "content"); rc = bad(e, q, "expected a string"); break; }
        json_t *id = json_object_get(o, "id");
        if (id && !json_is_integer(id)) { char q[PATHLEN]; sub(q, p, "id"); rc = bad(e, q, "expected an integer"); break; }
        size_t cl = json_string_length(c);
        in[i].content = malloc(cl + 1);
        if (!in[i].content) { rc = OOM; break; }
        memcpy(in[i].content, json_string_value(c), cl);
        in[i].content[cl] = 0;
        in[i].len = (uint32_t)cl;
        if ((rc = get_bool(o, p, "special", false, &in[i].special, e))) break;
        if ((rc = get_bool(o, p, "single_word", false, &in[i].single_word, e))) break;
        if ((rc = get_bool(o, p, "lstrip", false, &in[i].lstrip, e))) break;
        if ((rc = get_bool(o, p, "rstrip", false, &in[i].rstrip, e))) break;
        if ((rc = get_bool(o, p, "normalized", !in[i].special, &in[i].normalized, e))) break;
    }
    /* special tokens list (first occurrence of each content) */
    tk_strmap_init(&t->added_map);
    tk_strmap_init(&t->special_set);
    size_t nsp = 0;
    int32_t *sp_idx = calloc(n + 1, sizeof *sp_idx), *ad_idx = calloc(n + 1, sizeof *ad_idx);
    size_t nad = 0;
    t->added = calloc(n + 1, sizeof *t->added);
    if (!sp_idx || !ad_idx || !t->added) rc = rc ? rc : OOM;
    for (size_t i = 0; i < n && !rc; i++) {
        if (in[i].special && in[i].len && tk_strmap_get(&t->special_set, in[i].content, in[i].len) < 0) {
            if (!tk_strmap_put(&t->special_set, in[i].content, in[i].len, (int32_t)i)) rc = OOM;
            sp_idx[nsp++] = (int32_t)i;
        }
    }
    int32_t vs = (int32_t)t->bpe.vocab_len;
    int32_t next_id = vs; /* no added tokens yet: model vocab size */
    for (size_t i = 0; i < n && !rc; i++) {
        if (!in[i].len) continue;
        bool dup = false; /* an identical token (all fields) is ignored */
        for (size_t k = 0; k < t->n_added && !dup; k++) {
            tk_added *a = &t->added[k];
            dup = a->len == in[i].len && memcmp(a->content, in[i].content, a->len) == 0 && a->special == in[i].special &&
                  a->lstrip == in[i].lstrip && a->rstrip == in[i].rstrip && a->single_word == in[i].single_word &&
                  a->normalized == in[i].normalized;
        }
        if (dup) continue;
        int32_t id = tk_strmap_get(&t->added_map, in[i].content, in[i].len);
        if (id < 0) id = tk_strmap_get(&t->bpe.vocab, in[i].content, in[i].len);
        if (id < 0) {
            if (next_id >= (1 << 30)) { rc = bad(e, "added_tokens", "too many tokens"); break; }
            id = next_id++;
        }
        if (!tk_strmap_put(&t->added_map, in[i].content, in[i].len, id)) { rc = OOM; break; }
        tk_added a = in[i];
        a.id = id;
        a.content = malloc(a.len + 1);
        if (!a.content) { rc = OOM; break; }
        memcpy(a.content, in[i].content, a.len + 1);
        t->added[t->n_added] = a;
        if (tk_strmap_get(&t->special_set, a.content, a.len) < 0) ad_idx[nad++] = (int32_t)t->n_added;
        t->n_added++;
    }
    /* id -> token (the last one stored for an id) */
    int32_t maxid = -1;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id > maxid) maxid = t->added[k].id;
    t->added_r_n = maxid + 1;
    t->added_r = calloc((size_t)t->added_r_n + 1, sizeof *t->added_r);
    t->added_r_idx = calloc((size_t)t->added_r_n + 1, sizeof *t->added_r_idx);
    if (!rc && (!t->added_r || !t->added_r_idx)) rc = OOM;
    for (size_t k = 0; !rc && k < t->n_added; k++) {
        t->added_r[t->added[k].id] = t->added[k].content;
        t->added_r_idx[t->added[k].id] = (int32_t)k;
    }
    /* tries: special tokens (as first given), then the other added tokens;
     * normalized ones are matched after normalization, with their content normalized */
    tk_trie_init(&t->trie_raw);
    tk_trie_init(&t->trie_norm);
    size_t np = nsp + nad;
    t->trie_raw_id = calloc(np + 1, sizeof(int32_t));
    t->trie_norm_id = calloc(np + 1, sizeof(int32_t));
    t->trie_raw_tok = calloc(np + 1, sizeof(int32_t));
    t->trie_norm_tok = calloc(np + 1, sizeof(int32_t));
    if (!rc && (!t->trie_raw_id || !t->trie_norm_id || !t->trie_raw_tok || !t->trie_norm_tok)) rc = OOM;
    int nraw = 0, nnorm = 0;
    tk_buf nb = {0};
    tk_scratch sc;
    if (!rc) rc = tk_scratch_init(&sc, e);
    else memset(&sc, 0, sizeof sc);
    for (size_t q = 0; q < np && !rc; q++) {
        const tk_added *a;
        if (q < nsp) a = &in[sp_idx[q]];
        else a = &t->added[ad_idx[q - nsp]];
        int32_t id = tk_strmap_get(&t->added_map, a->content, a->len);
        if (id < 0) continue; /* cannot happen: every kept token has an id */
        int32_t tok = t->added_r_idx[id];
        if (!a->normalized) {
            if (!tk_trie_add(&t->trie_raw, a->content, a->len, nraw)) { rc = OOM; break; }
            t->trie_raw_id[nraw] = id;
            t->trie_raw_tok[nraw++] = tok;
        } else {
            const char *s = a->content;
            size_t sl = a->len;
            if (t->norm) {
                size_t zl = 0;
                rc = tk_norm_apply(t->norm, a->content, a->len, &nb, &zl, &sc, e);
                if (rc) { char p[PATHLEN]; snprintf(p, sizeof p, "added_tokens (\"%.80s\")", a->content); rl_err_prefix(e, "%s", p); break; }
                s = nb.p ? nb.p : "";
                sl = nb.n;
            }
            if (!tk_trie_add(&t->trie_norm, s, sl, nnorm)) { rc = OOM; break; }
            t->trie_norm_id[nnorm] = id;
            t->trie_norm_tok[nnorm++] = tok;
        }
    }
    tk_scratch_free(&sc);
    tk_buf_free(&nb);
    for (size_t i = 0; i < n; i++) free(in[i].content);
    free(in);
    free(sp_idx);
    free(ad_idx);
    return rc;
}

static int build(json_t *root, rl_tok *t, rl_err *e) {
    int rc;
    if (!json_is_object(root)) return bad(e, "(root)", "expected an object");
    json_t *v = json_object_get(root, "version");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "1.0") != 0))
        return bad(e, "version", "unknown tokenizer version (expected \"1.0\")");
    json_t *m = json_object_get(root, "model");
    if (!m) return bad(e, "model", "missing");
    if ((rc = parse_model(m, t->label, &t->bpe, e))) return rc;
    json_t *x = json_object_get(root, "normalizer");
    if (x && !json_is_null(x)) {
        if (!(t->norm = calloc(1, sizeof *t->norm))) return OOM;
        if ((rc = parse_norm(x, "normalizer", t->norm, 0, e))) return rc;
    }
    x = json_object_get(root, "pre_tokenizer");
    if (x && !json_is_null(x)) {
        if (!(t->pre = calloc(1, sizeof *t->pre))) return OOM;
        if ((rc = parse_pre(x, "pre_tokenizer", t->pre, 0, e))) return rc;
    }
    x = json_object_get(root, "post_processor");
    if (x && !json_is_null(x)) {
        if (!(t->post = calloc(1, sizeof *t->post))) return OOM;
        if ((rc = parse_post(x, "post_processor", t->post, 0, e))) return rc;
    }
    x = json_object_get(root, "decoder");
    if (x && !json_is_null(x)) {
        if (!(t->dec = calloc(1, sizeof *t->dec))) return OOM;
        if ((rc = parse_dec(x, "decoder", t->dec, 0, e))) return rc;
    }
    if ((rc = parse_added(root, t, e))) return rc;
    int32_t vs = t->bpe.vocab_r_n > t->added_r_n ? t->bpe.vocab_r_n : t->added_r_n;
    t->vocab_size = vs;
    t->special_id = calloc((size_t)vs + 1, 1);
    if (!t->special_id) return OOM;
    for (int32_t id = 0; id < vs; id++) {
        size_t l;
        const char *s = tk_id_str(t, id, &l);
        t->special_id[id] = s && tk_strmap_get(&t->special_set, s, l) >= 0;
    }
    return RL_OK;
}

int rl_tok_load_string(const char *json, size_t len, const char *label, rl_tok **out, rl_err *e) {
    *out = NULL;
    if (!label) label = "tokenizer.json";
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    if (!root)
        return rl_errf(e, RL_E_FORMAT, "%s: invalid JSON at line %d column %d: %s", label, je.line, je.column, je.text);
    rl_tok *t = calloc(1, sizeof *t);
    if (!t || !(t->label = strdup(label))) {
        free(t);
        json_decref(root);
        return rl_errf(e, RL_E_NOMEM, "%s: out of memory", label);
    }
    int rc = build(root, t, e);
    json_decref(root);
    if (rc) {
        rl_err_prefix(e, "%s", label);
        rl_tok_free(t);
        return rc;
    }
    *out = t;
    return RL_OK;
}

int rl_tok_load_file(const char *path, rl_tok **out, rl_err *e) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rl_errf(e, RL_E_IO, "%s: cannot open: %m", path);
    tk_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!tk_buf_put(&b, chunk, got)) {
            fclose(f);
            tk_buf_free(&b);
            return rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (err) { tk_buf_free(&b); return rl_errf(e, RL_E_IO, "%s: read error", path); }
    int rc = rl_tok_load_string(b.p ? b.p : "", b.n, path, out, e);
    tk_buf_free(&b);
    return rc;
}
