#include "server/http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/api.h"
#include "tokenizer/reasoning.h"

struct rl_server {
    struct MHD_Daemon *d;
    rl_http_opts o;
    rl_metrics *mx;
    atomic_int ready;
    const rl_tok *tok;
    const rl_chat_template *tpl;
    char model[256];
    int n_ctx, n_valid;
    long created;
    pthread_mutex_t sub_mu; /* guards sched and draining */
    rl_sched *sched;
    int draining;
    pthread_mutex_t tpl_mu;
    atomic_ulong next_id;
    int port;
};

typedef struct conn {
    char *body;
    size_t n, cap, discarded;
    int too_big;
} conn;

/* ---- small helpers ------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* A JSON string from text that should be UTF-8 (invalid bytes become U+FFFD). */
static json_t *jstr(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    sbuf b = {0};
    size_t i = 0;
    while (i < n) {
        size_t at = i;
        if (rl_utf8_next(s, n, &i) < 0) sb_add(&b, "\xEF\xBF\xBD", 3);
        else sb_add(&b, s + at, i - at);
    }
    j = json_stringn(b.p ? b.p : "", b.n);
    free(b.p);
    return j ? j : json_string("");
}

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, char *s, const char *ctype) {
    if (!s) {
        status = 500;
        s = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":500}}");
        if (!s) return MHD_NO;
        ctype = "application/json";
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return send_text(c, status, s, "application/json");
}

static enum MHD_Result send_error(rl_server *S, struct MHD_Connection *c, int status, int outcome,
                                  const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (outcome >= 0) rl_metrics_outcome(S->mx, outcome);
    char *s = rl_api_error(status, msg, param);
    if (!s) s = rl_api_error(status, "invalid request (the message is not valid UTF-8)", param);
    return send_text(c, status, s, "application/json");
}

/* ---- simple endpoints ----------------------------------------------------- */

static enum MHD_Result ep_models(rl_server *S, struct MHD_Connection *c) {
    json_t *j = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:{s:i}}]}", "object", "list", "data", "id", S->model,
                          "object", "model", "created", (json_int_t)S->created, "owned_by", "ringlm", "meta",
                          "n_ctx", S->n_ctx);
    return send_json(c, 200, j);
}

static json_t *parse_body(rl_server *S, struct MHD_Connection *c, conn *k, enum MHD_Result *ret) {
    json_error_t je;
    json_t *b = json_loadb(k->body ? k->body : "", k->n, 0, &je);
    if (!b) *ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, NULL, "invalid JSON body: %s (at byte %d)", je.text, je.position);
    else if (!json_is_object(b)) {
        json_decref(b);
        b = NULL;
        *ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, NULL, "the request body must be a JSON object");
    }
    return b;
}

static enum MHD_Result ep_tokenize(rl_server *S, struct MHD_Connection *c, conn *k) {
    enum MHD_Result ret;
    json_t *b = parse_body(S, c, k, &ret);
    if (!b) return ret;
    json_t *content = json_object_get(b, "content");
    json_t *as = json_object_get(b, "add_special"), *wp = json_object_get(b, "with_pieces");
    if (!json_is_string(content) || (as && !json_is_boolean(as)) || (wp && !json_is_boolean(wp))) {
        json_decref(b);
        return send_error(S, c, 400, -1, "content", "'content' must be a string (add_special, with_pieces: booleans)");
    }
    int32_t *ids;
    size_t n;
    rl_err e = {0};
    if (rl_tok_encode(S->tok, json_string_value(content), json_string_length(content), json_is_true(as), &ids, &n, &e)) {
        json_decref(b);
        return send_error(S, c, 400, -1, "content", "%s", e.msg);
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        if (json_is_true(wp)) {
            char *t = NULL;
            size_t tl = 0;
            rl_tok_decode(S->tok, ids + i, 1, false, &t, &tl, &e);
            json_array_append_new(a, json_pack("{s:i, s:o}", "id", ids[i], "piece", jstr(t ? t : "", tl)));
            free(t);
        } else {
            json_array_append_new(a, json_integer(ids[i]));
        }
    }
    free(ids);
    json_decref(b);
    return send_json(c, 200, json_pack("{s:o}", "tokens", a));
}

static enum MHD_Result ep_detokenize(rl_server *S, struct MHD_Connection *c, conn *k) {
    enum MHD_Result ret;
    json_t *b = parse_body(S, c, k, &ret);
    if (!b) return ret;
    json_t *t = json_object_get(b, "tokens");
    if (!json_is_array(t)) {
        json_decref(b);
        return send_error(S, c, 400, -1, "tokens", "'tokens' must be an array of token ids");
    }
    size_t n = json_array_size(t), i;
    int32_t *ids = malloc(sizeof(int32_t) * (n ? n : 1));
    json_t *x;
    json_array_foreach(t, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX) {
            free(ids);
            json_decref(b);
            return send_error(S, c, 400, -1, "tokens", "tokens[%zu] is not a token id", i);
        }
        ids[i] = (int32_t)json_integer_value(x);
    }
    char *s = NULL;
    size_t sl = 0;
    rl_err e = {0};
    int rc = rl_tok_decode(S->tok, ids, n, false, &s, &sl, &e);
    free(ids);
    json_decref(b);
    if (rc) return send_error(S, c, 400, -1, "tokens", "%s", e.msg);
    json_t *j = json_pack("{s:o}", "content", jstr(s, sl));
    free(s);
    return send_json(c, 200, j);
}

/* ---- completions ----------------------------------------------------------- */

typedef struct gen {
    rl_server *S;
    rl_req *r;
    int kind;
    bool stream, include_usage, tools;
    rl_output_opts oo;
    char id[64];
    long created;
    int fd;
    /* streaming */
    rl_output_parser *op;
    size_t text_off;
    int tok_off, stage, n_calls;
    sbuf out;
    size_t out_pos;
} gen;

static json_t *token_str(rl_server *S, int32_t id) {
    char *t = NULL;
    size_t n = 0;
    rl_err e = {0};
    rl_tok_decode(S->tok, &id, 1, false, &t, &n, &e);
    json_t *j = jstr(t ? t : "", t ? n : 0);
    free(t);
    return j;
}

static json_t *bytes_of(json_t *s) {
    json_t *a = json_array();
    const unsigned char *p = (const unsigned char *)json_string_value(s);
    for (size_t i = 0; i < json_string_length(s); i++) json_array_append_new(a, json_integer(p[i]));
    return a;
}

/* logprobs of tokens [from, to): chat {"content": [...]} or legacy completions. */
static json_t *logprobs_json(gen *g, const rl_tokrec *t, int n, size_t text_off) {
    rl_server *S = g->S;
    if (g->kind == RL_API_CHAT) {
        json_t *a = json_array();
        for (int i = 0; i < n; i++) {
            json_t *ts = token_str(S, t[i].id), *top = json_array();
            for (int k = 0; k < t[i].n_top; k++) {
                json_t *s2 = token_str(S, t[i].top_id[k]);
                json_array_append_new(top, json_pack("{s:O, s:f, s:o}", "token", s2, "logprob", (double)t[i].top_lp[k],
                                                     "bytes", bytes_of(s2)));
                json_decref(s2);
            }
            json_array_append_new(a, json_pack("{s:O, s:f, s:o, s:o}", "token", ts, "logprob", (double)t[i].lp,
                                               "bytes", bytes_of(ts), "top_logprobs", top));
            json_decref(ts);
        }
        return json_pack("{s:o}", "content", a);
    }
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = text_off;
    for (int i = 0; i < n; i++) {
        json_t *ts = token_str(S, t[i].id);
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += json_string_length(ts);
        json_array_append_new(toks, ts);
        json_array_append_new(lps, json_real(t[i].lp));
        json_t *m = json_object();
        for (int k = 0; k < t[i].n_top; k++) {
            json_t *s2 = token_str(S, t[i].top_id[k]);
            json_object_set_new(m, json_string_value(s2), json_real(t[i].top_lp[k]));
            json_decref(s2);
        }
        json_array_append_new(tops, m);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

static json_t *usage_json(const rl_req *r) {
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", r->n_prompt, "completion_tokens", r->n_gen,
                     "total_tokens", r->n_prompt + r->n_gen, "prompt_tokens_details", "cached_tokens", r->n_cached);
}

static const char *finish_name(int fin, bool calls) {
    if (fin == RL_FIN_LENGTH) return "length";
    return calls ? "tool_calls" : "stop";
}

static json_t *calls_json(const rl_tool_call *c, size_t n, size_t first, bool with_index) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", c[i].id, "type", "function", "function", "name",
                              c[i].name, "arguments", c[i].arguments);
        if (!x) x = json_pack("{s:s, s:s, s:{s:o, s:o}}", "id", "call", "type", "function", "function", "name",
                              jstr(c[i].name, strlen(c[i].name)), "arguments", jstr(c[i].arguments, strlen(c[i].arguments)));
        if (with_index) json_object_set_new(x, "index", json_integer((json_int_t)(first + i)));
        json_array_append_new(a, x);
    }
    return a;
}

/* The whole answer of a finished request (r->mu held). */
static json_t *final_json(gen *g) {
    rl_req *r = g->r;
    json_t *choice;
    rl_server *S = g->S;
    if (g->kind == RL_API_CHAT) {
        rl_output out;
        rl_err e = {0};
        if (rl_output_parse(r->text ? r->text : "", r->text_len, &g->oo, &out, &e)) return NULL;
        json_t *msg = json_pack("{s:s}", "role", "assistant");
        json_object_set_new(msg, "content",
                            out.n_calls && !out.content_len ? json_null() : jstr(out.content ? out.content : "", out.content_len));
        if (out.has_reasoning) json_object_set_new(msg, "reasoning_content", jstr(out.reasoning, out.reasoning_len));
        if (out.n_calls) json_object_set_new(msg, "tool_calls", calls_json(out.calls, out.n_calls, 0, false));
        choice = json_pack("{s:i, s:o, s:s}", "index", 0, "message", msg, "finish_reason",
                           finish_name(r->finish, out.n_calls > 0));
        rl_output_free(&out);
    } else {
        choice = json_pack("{s:i, s:o, s:s}", "index", 0, "text", jstr(r->text ? r->text : "", r->text_len),
                           "finish_reason", finish_name(r->finish, false));
    }
    json_object_set_new(choice, "logprobs", r->gp.logprobs ? logprobs_json(g, r->toks, r->n_toks, 0) : json_null());
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", g->id, "object",
                     g->kind == RL_API_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                     "model", S->model, "system_fingerprint", "ringlm", "choices", choice, "usage", usage_json(r));
}

static void gen_free(gen *g) {
    if (!g) return;
    if (g->r) {
        atomic_store(&g->r->cancel, true); /* no-op when it finished */
        rl_req_release(g->r);
    }
    if (g->op) rl_output_parser_free(g->op);
    free(g->out.p);
    free(g);
}

/* Waits until r has output beyond (text_off, tok_off) or finished; false
 * when the client went away (the request is then cancelled). r->mu held. */
static bool wait_more(gen *g, size_t text_off, int tok_off) {
    rl_req *r = g->r;
    while (!r->finish && r->text_len == text_off && r->n_toks == tok_off) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (!r->finish && client_gone(g->fd)) {
            atomic_store(&r->cancel, true);
            return false;
        }
    }
    return true;
}

static void sse(gen *g, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) return;
    sb_add(&g->out, "data: ", 6);
    sb_add(&g->out, s, strlen(s));
    sb_add(&g->out, "\n\n", 2);
    free(s);
}

static json_t *chunk(gen *g, json_t *delta_or_text, json_t *logprobs, const char *finish) {
    json_t *choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, g->kind == RL_API_CHAT ? "delta" : "text",
                               delta_or_text, "logprobs", logprobs ? logprobs : json_null(), "finish_reason",
                               finish ? json_string(finish) : json_null());
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", g->id, "object",
                     g->kind == RL_API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)g->created, "model", g->S->model, "system_fingerprint", "ringlm", "choices", choice);
}

/* Formats the new output (text, tokens) as SSE events into g->out. */
static void stream_emit(gen *g, const char *text, size_t n, const rl_tokrec *t, int nt, bool fin, int reason,
                        const char *err) {
    json_t *lp = nt ? logprobs_json(g, t, nt, g->text_off - n) : NULL;
    if (g->kind == RL_API_CHAT) {
        rl_output_delta d;
        rl_err e = {0};
        memset(&d, 0, sizeof d);
        json_t *delta = json_object();
        if (n && rl_output_parser_feed(g->op, text, n, &d, &e) == 0) {
            if (d.reasoning_len) json_object_set_new(delta, "reasoning_content", jstr(d.reasoning, d.reasoning_len));
            if (d.content_len) json_object_set_new(delta, "content", jstr(d.content, d.content_len));
            if (d.n_calls) json_object_set_new(delta, "tool_calls", calls_json(d.calls, d.n_calls, d.first_call_index, true));
            g->n_calls += (int)d.n_calls;
        }
        if (fin) {
            memset(&d, 0, sizeof d);
            if (rl_output_parser_finish(g->op, &d, &e) == 0) {
                /* merge into the same delta (keys may repeat: emit separately) */
                if (d.reasoning_len || d.content_len || d.n_calls) {
                    if (json_object_size(delta) || lp) sse(g, chunk(g, delta, lp, NULL)), delta = json_object(), lp = NULL;
                    if (d.reasoning_len) json_object_set_new(delta, "reasoning_content", jstr(d.reasoning, d.reasoning_len));
                    if (d.content_len) json_object_set_new(delta, "content", jstr(d.content, d.content_len));
                    if (d.n_calls) json_object_set_new(delta, "tool_calls", calls_json(d.calls, d.n_calls, d.first_call_index, true));
                    g->n_calls += (int)d.n_calls;
                }
            }
        }
        if (json_object_size(delta) || lp) sse(g, chunk(g, delta, lp, NULL));
        else json_decref(delta);
    } else if (n || lp) {
        sse(g, chunk(g, jstr(text, n), lp, NULL));
    }
    if (!fin) return;
    if (reason == RL_FIN_STOP || reason == RL_FIN_LENGTH) {
        sse(g, chunk(g, g->kind == RL_API_CHAT ? json_object() : json_string(""), NULL,
                     finish_name(reason, g->n_calls > 0)));
        if (g->include_usage) {
            json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", g->id, "object",
                                  g->kind == RL_API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)g->created, "model", g->S->model, "system_fingerprint", "ringlm",
                                  "choices", "usage", usage_json(g->r));
            sse(g, u);
        }
    } else {
        char *s = rl_api_error(reason == RL_FIN_CANCELLED ? 503 : 500, err[0] ? err : "generation failed", NULL);
        if (s) {
            sb_add(&g->out, "data: ", 6);
            sb_add(&g->out, s, strlen(s));
            sb_add(&g->out, "\n\n", 2);
            free(s);
        }
    }
    sb_add(&g->out, "data: [DONE]\n\n", 14);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen *g = cls;
    for (;;) {
        if (g->out_pos < g->out.n) {
            size_t n = g->out.n - g->out_pos < max ? g->out.n - g->out_pos : max;
            memcpy(buf, g->out.p + g->out_pos, n);
            g->out_pos += n;
            return (ssize_t)n;
        }
        g->out.n = g->out_pos = 0;
        if (g->stage == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (g->stage == 0) {
            g->stage = 1;
            if (g->kind == RL_API_CHAT) sse(g, chunk(g, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL));
            continue;
        }
        rl_req *r = g->r;
        pthread_mutex_lock(&r->mu);
        if (!wait_more(g, g->text_off, g->tok_off)) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = r->text_len - g->text_off;
        int nt = r->n_toks - g->tok_off;
        char *text = n ? malloc(n) : NULL;
        rl_tokrec *t = nt ? malloc(sizeof *t * (size_t)nt) : NULL;
        if (text) memcpy(text, r->text + g->text_off, n);
        if (t) memcpy(t, r->toks + g->tok_off, sizeof *t * (size_t)nt);
        g->text_off = r->text_len;
        g->tok_off = r->n_toks;
        int fin = r->finish;
        char err[sizeof r->err];
        memcpy(err, r->err, sizeof err);
        pthread_mutex_unlock(&r->mu);
        stream_emit(g, text ? text : "", text ? n : 0, t, t ? nt : 0, fin != RL_FIN_NONE, fin, err);
        free(text);
        free(t);
        if (fin) g->stage = 2;
    }
}

static void sse_free(void *cls) { gen_free(cls); }

static bool is_system_role(const json_t *m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    return role && (!strcmp(role, "system") || !strcmp(role, "developer"));
}

/* Tokens of the chat prompt ids[0..n) that belong to its leading system and
 * developer messages: the common prefix of ids and the same template
 * rendering those messages alone. Comparing token ids rather than trusting
 * the second rendering keeps this right whatever the template does (text
 * added only after a user turn, a date, merges across the boundary): the
 * result is always a prefix of this prompt, and two conversations with the
 * same system part get the same prefix. 0 when there is none or it cannot
 * be rendered; it only decides where the scheduler pauses prefill for a
 * prefix-cache snapshot, never what is computed. */
static int system_prefix_tokens(rl_server *S, const json_t *messages, const rl_chat_opts *co, const int32_t *ids,
                                size_t n) {
    size_t k = 0;
    while (k < json_array_size(messages) && is_system_role(json_array_get(messages, k))) k++;
    if (k == 0) return 0;
    json_t *sys = json_array();
    for (size_t i = 0; sys && i < k; i++) json_array_append(sys, json_array_get(messages, i));
    rl_chat_opts o = *co;
    o.add_generation_prompt = false;
    char *text = NULL;
    size_t len = 0;
    int32_t *sids = NULL;
    size_t ns = 0, common = 0;
    rl_err e = {0};
    pthread_mutex_lock(&S->tpl_mu);
    int rc = sys ? rl_chat_template_apply(S->tpl, sys, &o, &text, &len, &e) : 1;
    pthread_mutex_unlock(&S->tpl_mu);
    json_decref(sys);
    if (!rc && !rl_tok_encode(S->tok, text, len, false, &sids, &ns, &e))
        while (common < ns && common < n && sids[common] == ids[common]) common++;
    free(text);
    free(sids);
    return (int)common;
}

static enum MHD_Result ep_generate(rl_server *S, struct MHD_Connection *c, conn *k, int kind) {
    enum MHD_Result ret;
    json_t *b = parse_body(S, c, k, &ret);
    if (!b) return ret;
    rl_api_req ar;
    char err[1024];
    const char *param = NULL;
    if (rl_api_parse(b, kind, &S->o.sampling, &ar, err, sizeof err, &param)) {
        ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, param, "%s", err);
        json_decref(b);
        return ret;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    rl_err e = {0};
    bool in_think = false;
    int n_sys = 0;
    if (kind == RL_API_CHAT) {
        if (!S->tpl) {
            ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, "messages", "the model has no chat template; use /v1/completions");
            goto out;
        }
        rl_chat_opts co = {.add_generation_prompt = true, .tools = ar.tools, .extra = ar.template_kwargs, .now = -1};
        char *prompt = NULL;
        size_t plen = 0;
        pthread_mutex_lock(&S->tpl_mu);
        int rc = rl_chat_template_apply(S->tpl, ar.messages, &co, &prompt, &plen, &e);
        pthread_mutex_unlock(&S->tpl_mu);
        if (rc) {
            ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, "messages", "chat template: %s", e.msg);
            goto out;
        }
        size_t q = plen;
        while (q > 0 && (prompt[q - 1] == '\n' || prompt[q - 1] == ' ')) q--;
        in_think = q >= 7 && !memcmp(prompt + q - 7, "<think>", 7);
        rc = rl_tok_encode(S->tok, prompt, plen, false, &ids, &n, &e);
        free(prompt);
        if (rc) {
            ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, "messages", "%s", e.msg);
            goto out;
        }
        /* one more template render + encode: only where a snapshot can be kept */
        if (ar.gp.cache_prompt && rl_sched_prefix_cache_on(S->sched))
            n_sys = system_prefix_tokens(S, ar.messages, &co, ids, n);
    } else if (ar.prompt_text) {
        if (rl_tok_encode(S->tok, ar.prompt_text, ar.prompt_len, true, &ids, &n, &e)) {
            ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, "prompt", "%s", e.msg);
            goto out;
        }
    } else {
        for (int i = 0; i < ar.n_prompt_ids; i++)
            if (ar.prompt_ids[i] >= S->n_valid) {
                ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, "prompt", "prompt[%d] = %d is not a token id (vocabulary of %d)", i,
                                 ar.prompt_ids[i], S->n_valid);
                goto out;
            }
        ids = ar.prompt_ids;
        n = (size_t)ar.n_prompt_ids;
        ar.prompt_ids = NULL;
    }
    if (n == 0) {
        ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, kind == RL_API_CHAT ? "messages" : "prompt", "the prompt is empty (no tokens)");
        goto out;
    }
    if ((long long)n >= S->n_ctx) {
        ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST, kind == RL_API_CHAT ? "messages" : "prompt",
                         "the prompt has %zu tokens but the context holds %d (at most %d prompt tokens)", n, S->n_ctx,
                         S->n_ctx - 1);
        goto out;
    }
    char kvmsg[512];
    if (rl_sched_kv_check(S->sched, (int)n, ar.gp.max_tokens, kvmsg, sizeof kvmsg)) {
        ret = send_error(S, c, 400, RL_OUT_BAD_REQUEST,
                         ar.gp.max_tokens > 0 ? "max_tokens" : kind == RL_API_CHAT ? "messages" : "prompt", "%s", kvmsg);
        goto out;
    }
    gen *g = calloc(1, sizeof *g);
    rl_req *r = g ? rl_req_new(ids, (int)n, &ar.gp) : NULL;
    if (!r) {
        free(g);
        ret = send_error(S, c, 500, RL_OUT_ERROR, NULL, "out of memory");
        goto out;
    }
    ids = NULL;
    r->n_sys = n_sys;
    memset(&ar.gp, 0, sizeof ar.gp); /* the request owns the stop strings now */
    g->S = S;
    g->r = r;
    g->kind = kind;
    g->stream = ar.stream;
    g->include_usage = ar.include_usage;
    g->tools = ar.tools != NULL;
    g->oo = (rl_output_opts){.start_in_reasoning = in_think, .no_tools = ar.tools == NULL};
    g->created = (long)time(NULL);
    g->fd = conn_fd(c);
    snprintf(g->id, sizeof g->id, "%s-%lu", kind == RL_API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)atomic_fetch_add(&S->next_id, 1));
    pthread_mutex_lock(&S->sub_mu);
    int rc = S->draining ? rl_errf(&e, RL_E_ARG, "the server is shutting down") : rl_sched_submit(S->sched, r, &e);
    pthread_mutex_unlock(&S->sub_mu);
    if (rc) {
        gen_free(g);
        if (rc == RL_E_CAPACITY) ret = send_error(S, c, 429, RL_OUT_QUEUE_FULL, NULL, "%s", e.msg);
        else ret = send_error(S, c, 503, RL_OUT_UNAVAILABLE, NULL, "%s", e.msg);
        goto out;
    }
    if (g->stream) {
        if (kind == RL_API_CHAT) g->op = rl_output_parser_new(&g->oo);
        struct MHD_Response *resp = (kind != RL_API_CHAT || g->op)
            ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, g, sse_free) : NULL;
        if (!resp) {
            gen_free(g);
            ret = MHD_NO;
            goto out;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
        ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        goto out;
    }
    pthread_mutex_lock(&r->mu);
    bool here = true;
    while (!r->finish && (here = wait_more(g, r->text_len, r->n_toks))) {}
    if (!here) {
        pthread_mutex_unlock(&r->mu);
        gen_free(g);
        ret = MHD_NO; /* the client is gone */
        goto out;
    }
    if (r->finish == RL_FIN_STOP || r->finish == RL_FIN_LENGTH) {
        json_t *j = final_json(g);
        pthread_mutex_unlock(&r->mu);
        ret = send_json(c, 200, j);
    } else {
        char msg[sizeof r->err];
        memcpy(msg, r->err, sizeof msg);
        int st = r->finish == RL_FIN_CANCELLED ? 503 : 500;
        pthread_mutex_unlock(&r->mu);
        ret = send_error(S, c, st, -1, NULL, "%s", msg[0] ? msg : "generation failed");
    }
    gen_free(g);
out:
    free(ids);
    rl_api_req_free(&ar);
    json_decref(b);
    return ret;
}

/* ---- routing -------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *up, size_t *up_n, void **cc) {
    (void)version;
    rl_server *S = cls;
    conn *k = *cc;
    if (!k) {
        k = calloc(1, sizeof *k);
        if (!k) return MHD_NO;
        *cc = k;
        pthread_mutex_lock(&S->mx->mu);
        S->mx->http_requests++;
        pthread_mutex_unlock(&S->mx->mu);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > S->o.max_body) k->too_big = 1;
        return MHD_YES;
    }
    if (*up_n) {
        if (!k->too_big && k->n + *up_n <= S->o.max_body) {
            if (k->n + *up_n + 1 > k->cap) {
                size_t cap = (k->n + *up_n + 1) * 2;
                if (cap > S->o.max_body + 1) cap = S->o.max_body + 1;
                char *p = realloc(k->body, cap);
                if (!p) return MHD_NO;
                k->body = p;
                k->cap = cap;
            }
            memcpy(k->body + k->n, up, *up_n);
            k->n += *up_n;
        } else {
            k->too_big = 1;
            k->discarded += *up_n;
        }
        *up_n = 0;
        if (k->discarded > ((size_t)64 << 20)) /* stop reading: answer now, the connection closes */
            return send_error(S, c, 413, RL_OUT_BAD_REQUEST, NULL, "request body larger than %zu bytes", S->o.max_body);
        return MHD_YES;
    }
    if (k->too_big)
        return send_error(S, c, 413, RL_OUT_BAD_REQUEST, NULL, "request body larger than %zu bytes", S->o.max_body);
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    bool ready = atomic_load(&S->ready);
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health")) {
        if (!get) return send_error(S, c, 405, -1, NULL, "use GET");
        if (!ready) return send_error(S, c, 503, -1, NULL, "Loading model");
        return send_text(c, 200, strdup("{\"status\":\"ok\"}"), "application/json");
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) return send_error(S, c, 405, -1, NULL, "use GET");
        return send_text(c, 200, rl_metrics_render(S->mx), "text/plain; version=0.0.4");
    }
    int ep = !strcmp(url, "/v1/models") || !strcmp(url, "/models")                          ? 1
             : !strcmp(url, "/tokenize")                                                   ? 2
             : !strcmp(url, "/detokenize")                                                 ? 3
             : !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions") ? 4
             : !strcmp(url, "/v1/completions") || !strcmp(url, "/completions")            ? 5
                                                                                           : 0;
    if (!ep) return send_error(S, c, 404, -1, NULL, "no such endpoint: %s %s", method, url);
    if (ep == 1 ? !get : !post) return send_error(S, c, 405, -1, NULL, "use %s for %s", ep == 1 ? "GET" : "POST", url);
    if (S->o.api_key && strncmp(url, "/v1/", 4) == 0) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncmp(h, "Bearer ", 7) || strcmp(h + 7, S->o.api_key))
            return send_error(S, c, 401, -1, NULL, "invalid API key");
    }
    if (!ready) return send_error(S, c, 503, ep >= 4 ? RL_OUT_UNAVAILABLE : -1, NULL, "Loading model");
    switch (ep) {
    case 1: return ep_models(S, c);
    case 2: return ep_tokenize(S, c, k);
    case 3: return ep_detokenize(S, c, k);
    case 4: return ep_generate(S, c, k, RL_API_CHAT);
    default: return ep_generate(S, c, k, RL_API_COMPLETION);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **cc, enum MHD_RequestTerminationCode t) {
    (void)cls, (void)c, (void)t;
    conn *k = *cc;
    if (k) {
        free(k->body);
        free(k);
    }
    *cc = NULL;
}

int rl_server_start(const rl_http_opts *o, rl_metrics *mx, rl_server **out, rl_err *e) {
    rl_server *S = calloc(1, sizeof *S);
    if (!S) return rl_errf(e, RL_E_NOMEM, "out of memory");
    S->o = *o;
    S->mx = mx;
    pthread_mutex_init(&S->sub_mu, NULL);
    pthread_mutex_init(&S->tpl_mu, NULL);
    atomic_init(&S->next_id, 1);
    atomic_init(&S->ready, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai) {
        free(S);
        return rl_errf(e, RL_E_ARG, "--host %s: %s", o->host, gai_strerror(gai));
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    S->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, S, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)o->timeout_s, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20),
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, S, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!S->d) {
        free(S);
        return rl_errf(e, RL_E_IO, "cannot listen on %s:%d (address in use or not available)", o->host, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_BIND_PORT);
    S->port = di ? di->port : o->port;
    *out = S;
    return 0;
}

int rl_server_port(const rl_server *s) { return s->port; }

void rl_server_ready(rl_server *S, const rl_tok *tok, const rl_chat_template *tpl, rl_sched *sched,
                     const char *model_name, int n_ctx, int n_vocab) {
    S->tok = tok;
    S->tpl = tpl;
    S->sched = sched;
    snprintf(S->model, sizeof S->model, "%s", model_name);
    S->n_ctx = n_ctx;
    S->n_valid = rl_tok_vocab_size(tok) < n_vocab ? rl_tok_vocab_size(tok) : n_vocab;
    S->created = (long)time(NULL);
    atomic_store(&S->ready, 1);
}

void rl_server_drain(rl_server *S) {
    pthread_mutex_lock(&S->sub_mu);
    S->draining = 1;
    pthread_mutex_unlock(&S->sub_mu);
}

void rl_server_stop(rl_server *S) {
    MHD_stop_daemon(S->d);
    pthread_mutex_destroy(&S->sub_mu);
    pthread_mutex_destroy(&S->tpl_mu);
    free(S);
}
