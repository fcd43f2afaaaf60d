#include "server/api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char **param, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    if (param) *param = field;
    return 1;
}

/* 1: present and valid, 0: absent or null, -1: wrong type/range (err set). */
static int get_num(const json_t *o, const char *k, double lo, double hi, double *v, char *err, size_t en,
                   const char **param) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_number(x)) return -fail(err, en, param, k, "'%s' must be a number", k);
    double d = json_number_value(x);
    if (!isfinite(d) || d < lo || d > hi)
        return -fail(err, en, param, k, "'%s' must be between %g and %g", k, lo, hi);
    *v = d;
    return 1;
}

static int get_int(const json_t *o, const char *k, long long lo, long long hi, long long *v, char *err,
                   size_t en, const char **param) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_integer(x)) return -fail(err, en, param, k, "'%s' must be an integer", k);
    long long d = json_integer_value(x);
    if (d < lo || d > hi) return -fail(err, en, param, k, "'%s' must be between %lld and %lld", k, lo, hi);
    *v = d;
    return 1;
}

static int get_bool(const json_t *o, const char *k, bool *v, char *err, size_t en, const char **param) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_boolean(x)) return -fail(err, en, param, k, "'%s' must be a boolean", k);
    *v = json_is_true(x);
    return 1;
}

void rl_api_req_free(rl_api_req *r) {
    rl_gen_params_free(&r->gp);
    if (r->messages) json_decref(r->messages);
    free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}

static int add_stop(rl_api_req *r, const char *s) {
    if (!*s) return 0;
    char **p = realloc(r->gp.stop, sizeof(char *) * (size_t)(r->gp.n_stop + 1));
    if (!p) return -1;
    r->gp.stop = p;
    if (!(p[r->gp.n_stop] = strdup(s))) return -1;
    r->gp.n_stop++;
    return 0;
}

/* The text of a message's content: a string, null, or a list of parts
 * {"type": "text", "text": ...} joined. */
static int norm_messages(const json_t *msgs, json_t **out, char *err, size_t en, const char **param) {
    if (!json_is_array(msgs)) return fail(err, en, param, "messages", "'messages' must be an array");
    if (json_array_size(msgs) == 0) return fail(err, en, param, "messages", "'messages' must not be empty");
    json_t *a = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m)) {
            json_decref(a);
            return fail(err, en, param, "messages", "messages[%zu] must be an object", i);
        }
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            json_decref(a);
            return fail(err, en, param, "messages", "messages[%zu].role must be a string", i);
        }
        json_t *c = json_deep_copy(m);
        json_t *content = json_object_get(m, "content");
        if (json_is_array(content)) {
            size_t cap = 64, n = 0, j;
            char *s = malloc(cap);
            json_t *part;
            json_array_foreach(content, j, part) {
                json_t *t = json_object_get(part, "text");
                const char *ty = json_string_value(json_object_get(part, "type"));
                if (!json_is_object(part) || !ty || strcmp(ty, "text") || !json_is_string(t)) {
                    free(s);
                    json_decref(c);
                    json_decref(a);
                    return fail(err, en, param, "messages",
                                "messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported",
                                i, j);
                }
                size_t L = json_string_length(t);
                if (n + L + 1 > cap) {
                    cap = (n + L + 1) * 2;
                    char *q = realloc(s, cap);
                    if (!q) { free(s); s = NULL; break; }
                    s = q;
                }
                if (!s) break;
                memcpy(s + n, json_string_value(t), L);
                n += L;
            }
            json_object_set_new(c, "content", s ? json_stringn(s, n) : json_string(""));
            free(s);
        } else if (content && !json_is_null(content) && !json_is_string(content)) {
            json_decref(c);
            json_decref(a);
            return fail(err, en, param, "messages", "messages[%zu].content must be a string, an array of parts or null", i);
        }
        json_array_append_new(a, c);
    }
    *out = a;
    return 0;
}

int rl_api_parse(const json_t *b, int kind, const rl_sampler_params *defaults, rl_api_req *r, char *err, size_t en,
                 const char **param) {
    memset(r, 0, sizeof *r);
    if (param) *param = NULL;
    r->kind = kind;
    if (defaults) r->gp.sp = *defaults;
    else rl_sampler_defaults(&r->gp.sp);
    r->gp.max_tokens = -1;
    r->gp.cache_prompt = true;
    if (!json_is_object(b)) return fail(err, en, param, NULL, "the request body must be a JSON object");
    double d;
    long long ll;
    int k;
#define NUM(key, lo, hi, dst)                                                        \
    if ((k = get_num(b, key, lo, hi, &d, err, en, param)) < 0) goto bad;             \
    if (k) dst = (float)d;
#define INT(key, lo, hi, dst)                                                        \
    if ((k = get_int(b, key, lo, hi, &ll, err, en, param)) < 0) goto bad;            \
    if (k) dst = (int)ll;
    if (get_bool(b, "stream", &r->stream, err, en, param) < 0) goto bad;
    json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) { fail(err, en, param, "stream_options", "'stream_options' must be an object"); goto bad; }
        if (get_bool(so, "include_usage", &r->include_usage, err, en, param) < 0) goto bad;
    }
    json_t *model = json_object_get(b, "model");
    if (model && !json_is_null(model) && !json_is_string(model)) {
        fail(err, en, param, "model", "'model' must be a string");
        goto bad;
    }
    INT("max_tokens", 1, 1 << 30, r->gp.max_tokens);
    INT("max_completion_tokens", 1, 1 << 30, r->gp.max_tokens);
    INT("n_predict", -1, 1 << 30, r->gp.max_tokens);
    if (r->gp.max_tokens == 0) {
        fail(err, en, param, "n_predict", "'n_predict' must be -1 (no limit) or at least 1");
        goto bad;
    }
    NUM("temperature", 0, 1e6, r->gp.sp.temperature);
    NUM("top_p", 0, 1, r->gp.sp.top_p);
    INT("top_k", 0, 1 << 30, r->gp.sp.top_k);
    NUM("min_p", 0, 1, r->gp.sp.min_p);
    NUM("presence_penalty", -2, 2, r->gp.sp.presence_penalty);
    NUM("frequency_penalty", -2, 2, r->gp.sp.frequency_penalty);
    NUM("repetition_penalty", 0, 1e6, r->gp.sp.repeat_penalty);
    NUM("repeat_penalty", 0, 1e6, r->gp.sp.repeat_penalty);
    INT("repeat_last_n", -1, 1 << 30, r->gp.sp.repeat_last_n);
    if ((k = get_int(b, "seed", -1, (long long)0x7fffffffffffffffll, &ll, err, en, param)) < 0) goto bad;
    if (k && ll >= 0) r->gp.sp.seed = (uint64_t)ll;
    if ((k = get_int(b, "n", 1, 1, &ll, err, en, param)) < 0) {
        fail(err, en, param, "n", "'n' must be 1 (one choice per request is supported)");
        goto bad;
    }
    if (get_bool(b, "cache_prompt", &r->gp.cache_prompt, err, en, param) < 0) goto bad;
    if (get_bool(b, "ignore_eos", &r->gp.ignore_eos, err, en, param) < 0) goto bad;
    json_t *stop = json_object_get(b, "stop");
    if (json_is_string(stop)) {
        if (add_stop(r, json_string_value(stop))) goto oom;
    } else if (json_is_array(stop)) {
        size_t i;
        json_t *x;
        if (json_array_size(stop) > 16) { fail(err, en, param, "stop", "'stop' may hold at most 16 strings"); goto bad; }
        json_array_foreach(stop, i, x) {
            if (!json_is_string(x)) { fail(err, en, param, "stop", "'stop' must be a string or an array of strings"); goto bad; }
            if (add_stop(r, json_string_value(x))) goto oom;
        }
    } else if (stop && !json_is_null(stop)) {
        fail(err, en, param, "stop", "'stop' must be a string or an array of strings");
        goto bad;
    }
    json_t *lp = json_object_get(b, "logprobs");
    if (kind == RL_API_CHAT) {
        if (get_bool(b, "logprobs", &r->gp.logprobs, err, en, param) < 0) goto bad;
        INT("top_logprobs", 0, RL_MAX_TOP_LOGPROBS, r->gp.top_logprobs);
        if (r->gp.top_logprobs && !r->gp.logprobs) {
            fail(err, en, param, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            goto bad;
        }
        if (norm_messages(json_object_get(b, "messages"), &r->messages, err, en, param)) goto bad;
        json_t *tools = json_object_get(b, "tools");
        if (tools && !json_is_null(tools)) {
            if (!json_is_array(tools)) { fail(err, en, param, "tools", "'tools' must be an array"); goto bad; }
            if (json_array_size(tools)) r->tools = tools;
        }
        json_t *kw = json_object_get(b, "chat_template_kwargs");
        if (kw && !json_is_null(kw)) {
            if (!json_is_object(kw)) { fail(err, en, param, "chat_template_kwargs", "'chat_template_kwargs' must be an object"); goto bad; }
            r->template_kwargs = kw;
        }
    } else {
        if (json_is_boolean(lp)) {
            r->gp.logprobs = json_is_true(lp);
        } else if ((k = get_int(b, "logprobs", 0, RL_MAX_TOP_LOGPROBS, &ll, err, en, param)) < 0) {
            goto bad;
        } else if (k) {
            r->gp.logprobs = true;
            r->gp.top_logprobs = (int)ll;
            r->legacy_logprobs = (int)ll;
        }
        json_t *p = json_object_get(b, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
            p = json_array_get(p, 0); /* a batch of one */
        if (json_is_string(p)) {
            r->prompt_text = json_string_value(p);
            r->prompt_len = json_string_length(p);
        } else if (json_is_array(p) && json_array_size(p) > 0) {
            size_t i, n = json_array_size(p);
            json_t *x;
            r->prompt_ids = malloc(sizeof(int32_t) * n);
            if (!r->prompt_ids) goto oom;
            json_array_foreach(p, i, x) {
                if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX) {
                    fail(err, en, param, "prompt", "'prompt' must be a string or an array of token ids (prompt[%zu])", i);
                    goto bad;
                }
                r->prompt_ids[i] = (int32_t)json_integer_value(x);
            }
            r->n_prompt_ids = (int)n;
        } else {
            fail(err, en, param, "prompt", p ? "'prompt' must be a string or a non-empty array of token ids (one prompt per request)"
                                           : "'prompt' is required");
            goto bad;
        }
    }
#undef NUM
#undef INT
    return 0;
oom:
    fail(err, en, param, NULL, "out of memory");
bad:
    rl_api_req_free(r);
    return 1;
}

char *rl_api_error(int status, const char *message, const char *param) {
    const char *type = status == 404   ? "not_found_error"
                       : status == 429 ? "rate_limit_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    json_t *o = json_pack("{s:{s:s, s:s, s:o, s:i}}", "error", "message", message, "type", type, "param",
                          param ? json_string(param) : json_null(), "code", status);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}
