/* Reasoning / content / tool-call splitting (reasoning.h). One byte-driven
 * state machine serves both the streaming and the one-shot API, so the two
 * agree for every chunking by construction; tags split across chunks are
 * held back in `pend` until they match or fail. */
#include "tokenizer/reasoning.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja.h"

enum { M_START, M_REASON, M_CONTENT, M_TOOL };
enum { TAG_THINK_OPEN, TAG_THINK_CLOSE, TAG_TOOL_OPEN, TAG_TOOL_CLOSE, NTAGS };

typedef struct sbuf { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }

struct rl_output_parser {
    const char *tag[NTAGS];
    size_t tlen[NTAGS];
    bool no_tools;
    int mode;
    sbuf pend, held, body;
    bool reason_started, after_think, skip_ws, has_reasoning;
    sbuf out_r, out_c;
    rl_tool_call *calls;
    size_t n_calls, cap_calls, delta_first;
    bool oom;
};

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

rl_output_parser *rl_output_parser_new(const rl_output_opts *o) {
    rl_output_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    rl_output_opts d = {0};
    if (!o) o = &d;
    p->tag[TAG_THINK_OPEN] = o->think_open ? o->think_open : "<think>";
    p->tag[TAG_THINK_CLOSE] = o->think_close ? o->think_close : "</think>";
    p->tag[TAG_TOOL_OPEN] = o->tool_open ? o->tool_open : "<tool_call>";
    p->tag[TAG_TOOL_CLOSE] = o->tool_close ? o->tool_close : "</tool_call>";
    for (int i = 0; i < NTAGS; i++) p->tlen[i] = strlen(p->tag[i]);
    p->no_tools = o->no_tools;
    p->mode = o->start_in_reasoning ? M_REASON : o->no_reasoning ? M_CONTENT : M_START;
    p->has_reasoning = o->start_in_reasoning;
    return p;
}

void rl_output_parser_free(rl_output_parser *p) {
    if (!p) return;
    free(p->pend.p); free(p->held.p); free(p->body.p); free(p->out_r.p); free(p->out_c.p);
    for (size_t i = 0; i < p->n_calls; i++) { free(p->calls[i].id); free(p->calls[i].name); free(p->calls[i].arguments); }
    free(p->calls);
    free(p);
}

/* tags searched in the current mode */
static int mode_tags(const rl_output_parser *p, int *t) {
    int n = 0;
    switch (p->mode) {
    case M_START: t[n++] = TAG_THINK_OPEN; if (!p->no_tools) t[n++] = TAG_TOOL_OPEN; break;
    case M_REASON: t[n++] = TAG_THINK_CLOSE; break;
    case M_CONTENT: if (!p->no_tools) t[n++] = TAG_TOOL_OPEN; break;
    case M_TOOL: t[n++] = TAG_TOOL_CLOSE; break;
    }
    return n;
}

static void content_char(rl_output_parser *p, char c) {
    if (p->after_think) {
        if (c == '\n') return;
        p->after_think = false;
    }
    if (p->skip_ws) {
        if (is_ws(c)) return;
        p->skip_ws = false;
    }
    if (is_ws(c)) { sb_putc(&p->held, c); return; }
    if (p->held.n) { sb_put(&p->out_c, p->held.p, p->held.n); p->held.n = 0; }
    sb_putc(&p->out_c, c);
}

static void plain(rl_output_parser *p, char c) {
    switch (p->mode) {
    case M_START:
        if (is_ws(c)) { sb_putc(&p->held, c); return; }
        p->mode = M_CONTENT;
        {
            /* the held whitespace is ordinary content */
            size_t n = p->held.n;
            char tmp[256], *h = n <= sizeof tmp ? tmp : malloc(n);
            if (!h) { p->oom = true; return; }
            if (n) memcpy(h, p->held.p, n);
            p->held.n = 0;
            for (size_t i = 0; i < n; i++) content_char(p, h[i]);
            if (h != tmp) free(h);
        }
        content_char(p, c);
        return;
    case M_REASON:
        if (c == '\n') {
            if (p->reason_started) sb_putc(&p->held, c);
            return;
        }
        if (p->held.n) { sb_put(&p->out_r, p->held.p, p->held.n); p->held.n = 0; }
        sb_putc(&p->out_r, c);
        p->reason_started = true;
        return;
    case M_CONTENT: content_char(p, c); return;
    case M_TOOL: sb_putc(&p->body, c); return;
    }
}

/* Parses a tool-call body; returns true and appends a call when it is
 * {"name": str, "arguments"|"parameters": ...}. */
static bool add_call(rl_output_parser *p, const char *body, size_t n) {
    json_t *j = json_loadb(body, n, JSON_DECODE_ANY, NULL);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "name"))) { json_decref(j); return false; }
    json_t *args = json_object_get(j, "arguments");
    if (!args) args = json_object_get(j, "parameters");
    char *a = NULL;
    if (!args) a = strdup("{}");
    else if (json_is_string(args)) a = strdup(json_string_value(args));
    else a = rl_jinja_json_dumps(args, NULL);
    char *name = strdup(json_string_value(json_object_get(j, "name")));
    json_decref(j);
    char id[32];
    snprintf(id, sizeof id, "call_%zu", p->n_calls);
    char *ids = strdup(id);
    if (p->n_calls == p->cap_calls) {
        size_t nc = p->cap_calls ? p->cap_calls * 2 : 4;
        rl_tool_call *c = realloc(p->calls, nc * sizeof *c);
        if (!c) { free(a); free(name); free(ids); p->oom = true; return true; }
        p->calls = c;
        p->cap_calls = nc;
    }
    if (!a || !name || !ids) { free(a); free(name); free(ids); p->oom = true; return true; }
    p->calls[p->n_calls++] = (rl_tool_call){ ids, name, a };
    return true;
}

static void trimmed(const char *s, size_t n, const char **b, size_t *len) {
    size_t i = 0;
    while (i < n && is_ws(s[i])) i++;
    while (n > i && is_ws(s[n - 1])) n--;
    *b = s + i;
    *len = n - i;
}

static void on_tag(rl_output_parser *p, int tag) {
    switch (tag) {
    case TAG_THINK_OPEN:
        p->held.n = 0;
        p->mode = M_REASON;
        p->has_reasoning = true;
        return;
    case TAG_THINK_CLOSE:
        p->held.n = 0;
        p->mode = M_CONTENT;
        p->after_think = true;
        return;
    case TAG_TOOL_OPEN:
        p->held.n = 0;
        p->after_think = false;
        p->mode = M_TOOL;
        p->body.n = 0;
        return;
    case TAG_TOOL_CLOSE: {
        const char *b;
        size_t len;
        trimmed(p->body.p ? p->body.p : "", p->body.n, &b, &len);
        if (!add_call(p, b, len)) {
            sb_put(&p->out_c, p->tag[TAG_TOOL_OPEN], p->tlen[TAG_TOOL_OPEN]);
            sb_put(&p->out_c, p->body.p ? p->body.p : "", p->body.n);
            sb_put(&p->out_c, p->tag[TAG_TOOL_CLOSE], p->tlen[TAG_TOOL_CLOSE]);
        }
        p->body.n = 0;
        p->mode = M_CONTENT;
        p->skip_ws = true;
        return;
    }
    }
}

static void put(rl_output_parser *p, char c) {
    int tags[2], nt = mode_tags(p, tags);
    if (nt == 0) { plain(p, c); return; }
    if (p->pend.n == 0) {
        bool starts = false;
        for (int i = 0; i < nt; i++) if (p->tag[tags[i]][0] == c) starts = true;
        if (!starts) { plain(p, c); return; }
    }
    sb_putc(&p->pend, c);
    if (p->pend.oom) { p->oom = true; return; }
    bool prefix = false;
    for (int i = 0; i < nt; i++) {
        int t = tags[i];
        if (p->pend.n <= p->tlen[t] && memcmp(p->tag[t], p->pend.p, p->pend.n) == 0) {
            if (p->pend.n == p->tlen[t]) { p->pend.n = 0; on_tag(p, t); return; }
            prefix = true;
        }
    }
    if (prefix) return;
    /* mismatch: the first byte is plain text, the rest is looked at again */
    size_t n = p->pend.n;
    char tmp[64];
    if (n > sizeof tmp) { p->oom = true; return; } /* tags are short */
    memcpy(tmp, p->pend.p, n);
    p->pend.n = 0;
    plain(p, tmp[0]);
    for (size_t i = 1; i < n; i++) put(p, tmp[i]);
}

static void begin_delta(rl_output_parser *p) {
    p->out_r.n = 0;
    p->out_c.n = 0;
    p->delta_first = p->n_calls;
}

static int end_delta(rl_output_parser *p, rl_output_delta *d, rl_err *err) {
    if (p->oom || p->out_r.oom || p->out_c.oom || p->held.oom || p->body.oom || p->pend.oom)
        return rl_errf(err, RL_E_NOMEM, "output parser: out of memory");
    if (d) {
        d->reasoning = p->out_r.p ? p->out_r.p : "";
        d->reasoning_len = p->out_r.n;
        d->content = p->out_c.p ? p->out_c.p : "";
        d->content_len = p->out_c.n;
        d->calls = p->calls ? p->calls + p->delta_first : NULL;
        d->n_calls = p->n_calls - p->delta_first;
        d->first_call_index = p->delta_first;
    }
    return RL_OK;
}

int rl_output_parser_feed(rl_output_parser *p, const char *text, size_t n, rl_output_delta *d, rl_err *err) {
    begin_delta(p);
    for (size_t i = 0; i < n && !p->oom; i++) put(p, text[i]);
    return end_delta(p, d, err);
}

int rl_output_parser_finish(rl_output_parser *p, rl_output_delta *d, rl_err *err) {
    begin_delta(p);
    if (p->pend.n) {
        size_t n = p->pend.n;
        char tmp[64];
        memcpy(tmp, p->pend.p, n < sizeof tmp ? n : sizeof tmp);
        p->pend.n = 0;
        for (size_t i = 0; i < n && i < sizeof tmp; i++) plain(p, tmp[i]);
    }
    switch (p->mode) {
    case M_START:
        if (p->held.n) { sb_put(&p->out_c, p->held.p, p->held.n); p->held.n = 0; }
        break;
    case M_REASON: p->held.n = 0; break;
    case M_CONTENT:
        if (p->held.n && !p->skip_ws) sb_put(&p->out_c, p->held.p, p->held.n);
        p->held.n = 0;
        break;
    case M_TOOL: {
        const char *b;
        size_t len;
        trimmed(p->body.p ? p->body.p : "", p->body.n, &b, &len);
        if (!add_call(p, b, len)) {
            sb_put(&p->out_c, p->tag[TAG_TOOL_OPEN], p->tlen[TAG_TOOL_OPEN]);
            sb_put(&p->out_c, p->body.p ? p->body.p : "", p->body.n);
        }
        p->body.n = 0;
        p->mode = M_CONTENT;
        break;
    }
    }
    return end_delta(p, d, err);
}

int rl_output_parse(const char *text, size_t n, const rl_output_opts *o, rl_output *out, rl_err *err) {
    memset(out, 0, sizeof *out);
    rl_output_parser *p = rl_output_parser_new(o);
    if (!p) return rl_errf(err, RL_E_NOMEM, "out of memory");
    sbuf r = {0}, c = {0};
    rl_output_delta d;
    int rc = rl_output_parser_feed(p, text, n, &d, err);
    if (!rc) { sb_put(&r, d.reasoning, d.reasoning_len); sb_put(&c, d.content, d.content_len); rc = rl_output_parser_finish(p, &d, err); }
    if (!rc) { sb_put(&r, d.reasoning, d.reasoning_len); sb_put(&c, d.content, d.content_len); }
    sb_put(&r, "", 0);
    sb_put(&c, "", 0);
    if (!rc && (r.oom || c.oom)) rc = rl_errf(err, RL_E_NOMEM, "out of memory");
    if (rc) { free(r.p); free(c.p); rl_output_parser_free(p); return rc; }
    out->reasoning = r.p;
    out->reasoning_len = r.n;
    out->content = c.p;
    out->content_len = c.n;
    out->has_reasoning = p->has_reasoning;
    out->calls = p->calls;
    out->n_calls = p->n_calls;
    p->calls = NULL;
    p->n_calls = 0;
    rl_output_parser_free(p);
    return RL_OK;
}

void rl_output_free(rl_output *out) {
    if (!out) return;
    free(out->reasoning);
    free(out->content);
    for (size_t i = 0; i < out->n_calls; i++) { free(out->calls[i].id); free(out->calls[i].name); free(out->calls[i].arguments); }
    free(out->calls);
    memset(out, 0, sizeof *out);
}
