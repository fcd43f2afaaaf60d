/* ringlm chat: an interactive conversation with the checkpoint's own chat
 * template and stop tokens. Each turn re-renders the whole conversation and
 * feeds only the tokens that extend what the sequence already holds (the
 * Lightning state cannot be rewound, so a render that does not extend it
 * restarts the sequence). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/app.h"
#include "apps/app_text.h"
#include "engine/sampler.h"
#include "tokenizer/reasoning.h"

static const char *const help =
    "usage: ringlm chat -m DIR [options]\n"
    "Reads user turns from standard input, one line each, and answers with the model.\n"
    "Commands: /reset (forget the conversation), /system TEXT (set the system prompt and\n"
    "reset), /exit or /quit, /help.\n"
    "  -sys, --system TEXT      system prompt\n"
    "  -n, --n-predict N        most tokens per answer (default 1024)\n"
    "  --hide-thinking          do not print the reasoning (<think>...</think>)\n"
    "  --enable-thinking B      the template variable enable_thinking (true/false)\n"

    "  --verbose-prompt         print each rendered prompt to stderr\n";

typedef struct chat {
    rl_model m;
    rl_engine eng;
    rl_slot slot;
    app_text tx;
    rl_sampler smp;
    float *logits;
    int *fed; /* tokens the slot holds */
    int n_fed, cap_fed;
} chat;

static int feed(chat *c, const int *ids, int n, rl_err *e) {
    if (n <= 0) return 0;
    if (c->n_fed + n > c->cap_fed) {
        int cap = (c->n_fed + n) * 2;
        int *p = realloc(c->fed, sizeof(int) * (size_t)cap);
        if (!p) return rl_errf(e, RL_E_NOMEM, "out of memory");
        c->fed = p;
        c->cap_fed = cap;
    }
    rl_span s = {&c->slot, ids, n, c->slot.pos, RL_LOGITS_LAST, c->logits};
    int rc = rl_step(&c->eng, &s, 1, e);
    if (rc) return rc;
    memcpy(c->fed + c->n_fed, ids, sizeof(int) * (size_t)n);
    c->n_fed += n;
    return 0;
}

/* Renders the conversation, feeds what extends the slot, generates one
 * answer and appends it to messages. */
static int turn(chat *c, json_t *messages, const json_t *extra, int n_predict, bool show_think,
                bool verbose) {
    rl_err e = {0};
    rl_chat_opts co = {.add_generation_prompt = true, .extra = extra, .now = -1};
    char *prompt;
    size_t plen;
    if (rl_chat_template_apply(c->tx.tpl, messages, &co, &prompt, &plen, &e)) return app_fail("%s", e.msg);
    if (verbose) fprintf(stderr, "[prompt]\n%s[/prompt]\n", prompt);
    int32_t *ids32;
    size_t n;
    int rc = rl_tok_encode(c->tx.tok, prompt, plen, false, &ids32, &n, &e);
    /* the generation prompt opened <think>: the answer starts inside it */
    size_t k = plen;
    while (k > 0 && (prompt[k - 1] == '\n' || prompt[k - 1] == ' ')) k--;
    bool in_think = k >= 7 && memcmp(prompt + k - 7, "<think>", 7) == 0;
    free(prompt);
    if (rc) return app_fail("%s", e.msg);
    int *ids = malloc(sizeof(int) * (n ? n : 1));
    if (!ids) { free(ids32); return app_fail("out of memory"); }
    for (size_t i = 0; i < n; i++) ids[i] = ids32[i];
    free(ids32);
    int keep = (int)n >= c->n_fed && memcmp(ids, c->fed, sizeof(int) * (size_t)c->n_fed) == 0;
    if (!keep || c->n_fed == (int)n) { /* restart (a full match leaves no logits to sample) */
        rl_slot_reset(&c->slot, &c->eng.pool);
        c->n_fed = 0;
    }
    rc = feed(c, ids + c->n_fed, (int)n - c->n_fed, &e);
    free(ids);
    if (rc) return app_fail("%s", e.msg);
    rl_output_opts oo = {.start_in_reasoning = in_think};
    rl_output_parser *op = rl_output_parser_new(&oo);
    rl_tok_stream *ts = rl_tok_stream_new(c->tx.tok, true);
    char *text = NULL;
    size_t tlen = 0, tcap = 0;
    if (!op || !ts) { rc = app_fail("out of memory"); goto done; }
    int V = c->m.cfg.vocab_size, nv = rl_tok_vocab_size(c->tx.tok) < V ? rl_tok_vocab_size(c->tx.tok) : V;
    bool in_reasoning_shown = false;
    for (int g = 0; g < n_predict; g++) {
        int tok = rl_sampler_sample(&c->smp, c->logits, nv);
        rl_sampler_accept(&c->smp, tok);
        bool stop = app_text_is_stop(&c->tx, tok);
        const char *piece = "";
        size_t len = 0;
        if (!stop && rl_tok_stream_feed(ts, tok, &piece, &len, &e)) { rc = app_fail("%s", e.msg); goto done; }
        if (stop && rl_tok_stream_finish(ts, &piece, &len, &e)) { rc = app_fail("%s", e.msg); goto done; }
        if (tlen + len + 1 > tcap) {
            tcap = (tlen + len + 1) * 2;
            char *t2 = realloc(text, tcap);
            if (!t2) { rc = app_fail("out of memory"); goto done; }
            text = t2;
        }
        memcpy(text + tlen, piece, len);
        tlen += len;
        rl_output_delta d;
        if ((stop ? rl_output_parser_finish(op, &d, &e) : rl_output_parser_feed(op, piece, len, &d, &e))) {
            rc = app_fail("%s", e.msg);
            goto done;
        }
        if (d.reasoning_len && show_think) {
            if (!in_reasoning_shown) fputs("[thinking] ", stdout);
            in_reasoning_shown = true;
            fwrite(d.reasoning, 1, d.reasoning_len, stdout);
        }
        if (d.content_len) {
            if (in_reasoning_shown) fputs("\n[/thinking]\n", stdout);
            in_reasoning_shown = false;
            fwrite(d.content, 1, d.content_len, stdout);
        }
        for (size_t i = 0; i < d.n_calls; i++)
            printf("\n[tool call] %s(%s)\n", d.calls[i].name, d.calls[i].arguments);
        fflush(stdout);
        if (stop) break;
        if (feed(c, &tok, 1, &e)) { rc = app_fail("%s", e.msg); goto done; }
    }
    fputc('\n', stdout);
    /* the answer joins the history as the template expects it */
    rl_output out;
    if (rl_output_parse(text ? text : "", tlen, &oo, &out, &e)) { rc = app_fail("%s", e.msg); goto done; }
    json_t *msg = json_pack("{s:s, s:s%}", "role", "assistant", "content", out.content ? out.content : "",
                            out.content_len);
    if (msg && out.has_reasoning)
        json_object_set_new(msg, "reasoning_content", json_stringn(out.reasoning, out.reasoning_len));
    if (msg) json_array_append_new(messages, msg);
    rl_output_free(&out);
    rc = msg ? 0 : app_fail("out of memory");
done:
    free(text);
    if (ts) rl_tok_stream_free(ts);
    if (op) rl_output_parser_free(op);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1};
    rl_sampler_params sp;
    rl_sampler_defaults(&sp);
    const char *system = NULL;
    int n_predict = 1024;
    bool show_think = true, verbose = false;
    json_t *extra = json_object();
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r == 0) r = app_sampler_opt(&sp, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s%s", help, app_sampler_opts_help, app_model_opts_help);
            return 0;
        } else if (!strcmp(a, "--hide-thinking")) { show_think = false; continue; }
        else if (!strcmp(a, "--verbose-prompt")) { verbose = true; continue; }
        else if (!v) return app_fail("chat: unknown option or missing value: '%s'", a);
        else if (!strcmp(a, "-sys") || !strcmp(a, "--system")) system = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) ok = app_int(a, v, 1, 1 << 24, &n_predict);
        else if (!strcmp(a, "--enable-thinking")) {
            if (strcmp(v, "true") && strcmp(v, "false")) return app_fail("--enable-thinking takes true or false");
            json_object_set_new(extra, "enable_thinking", json_boolean(!strcmp(v, "true")));
        } else return app_fail("chat: unknown option '%s' (see ringlm chat --help)", a);
        if (!ok) return 1;
        i++;
    }
    chat c;
    memset(&c, 0, sizeof c);
    int rc = 1;
    if (app_load(&mo, &c.m)) { json_decref(extra); return 1; }
    rl_err e = {0};
    json_t *messages = json_array();
    char *line = NULL;
    size_t lcap = 0;
    if (app_text_load(mo.dir, &c.m.cfg, true, &c.tx)) goto out;
    c.logits = malloc(sizeof(float) * (size_t)c.m.cfg.vocab_size);
    if (!c.logits || rl_engine_init(&c.eng, &c.m, 0, &e) || rl_slot_init(&c.slot, &c.m, &e) ||
        rl_sampler_init(&c.smp, &sp, c.m.cfg.vocab_size)) {
        app_fail("%s", e.msg[0] ? e.msg : "out of memory");
        goto out;
    }
    bool tty = isatty(0);
    if (tty) fprintf(stderr, "chat with %s: /help for commands, /exit to leave\n", mo.dir);
    if (system) json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "system", "content", system));
    for (;;) {
        if (tty) fputs("> ", stdout), fflush(stdout);
        ssize_t got = getline(&line, &lcap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/help")) {
            puts("/reset  forget the conversation\n/system TEXT  set the system prompt (and reset)\n"
                 "/exit   leave");
            continue;
        }
        if (!strcmp(line, "/reset") || !strncmp(line, "/system ", 8)) {
            if (line[1] == 's') system = NULL; /* the new one is taken from line below */
            json_array_clear(messages);
            const char *sys = line[1] == 's' ? line + 8 : system;
            if (sys) json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "system", "content", sys));
            rl_slot_reset(&c.slot, &c.eng.pool);
            c.n_fed = 0;
            puts("(conversation reset)");
            continue;
        }
        if (line[0] == '/') {
            printf("unknown command %s (/help lists them)\n", line);
            continue;
        }
        json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "user", "content", line));
        if (turn(&c, messages, extra, n_predict, show_think, verbose)) goto out;
    }
    rc = 0;
out:
    free(line);
    json_decref(messages);
    json_decref(extra);
    rl_sampler_free(&c.smp);
    rl_slot_free(&c.slot, &c.eng.pool);
    rl_engine_free(&c.eng);
    free(c.logits);
    free(c.fed);
    app_text_free(&c.tx);
    rl_model_free(&c.m);
    return rc;
}
