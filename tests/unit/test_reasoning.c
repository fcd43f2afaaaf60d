/* Unit tests of the reasoning / tool-call output parser
 * (src/tokenizer/reasoning.c): fixed cases, and the streaming property:
 * for random chunkings the concatenated deltas equal the one-shot result,
 * and no delta ever carries part of a tag. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/reasoning.h"

typedef struct call { const char *name, *args; } call;

static void expect(const char *text, bool in_reason, const char *reasoning, const char *content, int ncalls, const call *calls) {
    rl_output_opts o = {0};
    o.start_in_reasoning = in_reason;
    rl_output out;
    rl_err err = {0};
    int rc = rl_output_parse(text, strlen(text), &o, &out, &err);
    CHECK(rc == 0, "parse failed: %s", err.msg);
    if (rc) return;
    CHECK(strcmp(out.reasoning, reasoning) == 0, "[%s]: reasoning [%s], want [%s]", text, out.reasoning, reasoning);
    CHECK(strcmp(out.content, content) == 0, "[%s]: content [%s], want [%s]", text, out.content, content);
    CHECK((int)out.n_calls == ncalls, "[%s]: %zu calls, want %d", text, out.n_calls, ncalls);
    for (int i = 0; i < ncalls && i < (int)out.n_calls; i++) {
        char id[32];
        snprintf(id, sizeof id, "call_%d", i);
        CHECK(strcmp(out.calls[i].name, calls[i].name) == 0 && strcmp(out.calls[i].arguments, calls[i].args) == 0 &&
              strcmp(out.calls[i].id, id) == 0,
              "[%s]: call %d = %s(%s) id %s, want %s(%s)", text, i, out.calls[i].name, out.calls[i].arguments,
              out.calls[i].id, calls[i].name, calls[i].args);
    }
    rl_output_free(&out);
}

static void test_fixed(void) {
    expect("plain answer", false, "", "plain answer", 0, NULL);
    expect("<think>\nstep 1\nstep 2\n</think>\n\nThe answer is 4.", false, "step 1\nstep 2", "The answer is 4.", 0, NULL);
    expect("\n <think>x</think>y", false, "x", "y", 0, NULL);
    expect("<think>unfinished thought\n", false, "unfinished thought", "", 0, NULL);
    expect("<think></think>\n\nempty", false, "", "empty", 0, NULL);
    expect("already thinking\n</think>\n\nanswer", true, "already thinking", "answer", 0, NULL);
    expect("still thinking", true, "still thinking", "", 0, NULL);
    expect("no <think> here", false, "", "no <think> here", 0, NULL);
    expect("a < b and <thin ice>", false, "", "a < b and <thin ice>", 0, NULL);
    expect("  leading and trailing  ", false, "", "  leading and trailing  ", 0, NULL);
    expect("<thinking>not a tag", false, "", "<thinking>not a tag", 0, NULL);
    expect("<<think>>", false, "", "<<think>>", 0, NULL);
    expect("x </think> y", false, "", "x </think> y", 0, NULL);

    call c1[] = { { "get_weather", "{\"city\": \"Z\xc3\xbcrich\", \"days\": [1, 2.5]}" } };
    expect("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\xc3\xbcrich\", \"days\": [1, 2.5]}}\n</tool_call>",
           false, "", "Let me check.", 1, c1);
    call c2[] = { { "a", "{}" }, { "b", "{\"x\":1}" } };
    expect("<tool_call>{\"name\": \"a\"}</tool_call>\n<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"x\\\":1}\"}</tool_call>\n",
           false, "", "", 2, c2);
    call c3[] = { { "f", "{\"k\": null}" } };
    expect("<think>\nneed a tool\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"parameters\": {\"k\": null}}\n</tool_call>",
           false, "need a tool", "", 1, c3);
    expect("before <tool_call>not json</tool_call> after", false, "", "before<tool_call>not json</tool_call>after", 0, NULL);
    call c4[] = { { "g", "{\"a\": 1}" } };
    expect("<tool_call>{\"name\": \"g\", \"arguments\": {\"a\": 1}}", false, "", "", 1, c4);
    expect("<tool_call>{\"name\": \"g\"", false, "", "<tool_call>{\"name\": \"g\"", 0, NULL);
    expect("text <tool_call", false, "", "text <tool_call", 0, NULL);
    call c5[] = { { "h", "{}" } };
    expect("x\n<tool_call>{\"name\":\"h\"}</tool_call>\n\ny", false, "", "xy", 1, c5);
}

/* concatenated deltas of a chunked run */
typedef struct acc { char *r, *c; size_t rn, cn; rl_tool_call *calls; size_t ncalls; bool partial_tag; } acc;

static void add(acc *a, const rl_output_delta *d, size_t *expect_index) {
    a->r = realloc(a->r, a->rn + d->reasoning_len + 1);
    memcpy(a->r + a->rn, d->reasoning, d->reasoning_len);
    a->rn += d->reasoning_len;
    a->r[a->rn] = 0;
    a->c = realloc(a->c, a->cn + d->content_len + 1);
    memcpy(a->c + a->cn, d->content, d->content_len);
    a->cn += d->content_len;
    a->c[a->cn] = 0;
    CHECK(d->n_calls == 0 || d->first_call_index == *expect_index, "call index %zu, want %zu", d->first_call_index, *expect_index);
    for (size_t i = 0; i < d->n_calls; i++) {
        a->calls = realloc(a->calls, (a->ncalls + 1) * sizeof *a->calls);
        a->calls[a->ncalls].id = strdup(d->calls[i].id);
        a->calls[a->ncalls].name = strdup(d->calls[i].name);
        a->calls[a->ncalls].arguments = strdup(d->calls[i].arguments);
        a->ncalls++;
    }
    *expect_index += d->n_calls;
}

static const char *const PIECES[] = {
    "<think>", "</think>", "<tool_call>", "</tool_call>", "\n", "\n\n", " ", "  ", "<", "</", "<thi", "</tool",
    "{\"name\": \"f\", \"arguments\": {\"x\": [1, 2.5, \"s\"]}}", "{\"name\": \"g\"}", "not json", "hello", "wörld 🎉",
    "a < b", "think", ">", "tool_call", "\t", "x",
};

static void test_streaming(void) {
    uint64_t seed = 12345;
    int mismatches = 0;
    for (int iter = 0; iter < 3000; iter++) {
        /* a random text made of pieces */
        char text[2048];
        size_t n = 0;
        int np = (int)(rl_t_rand(&seed) % 14);
        for (int i = 0; i < np; i++) {
            const char *p = PIECES[rl_t_rand(&seed) % (sizeof PIECES / sizeof PIECES[0])];
            size_t l = strlen(p);
            if (n + l >= sizeof text) break;
            memcpy(text + n, p, l);
            n += l;
        }
        text[n] = 0;
        rl_output_opts o = {0};
        o.start_in_reasoning = rl_t_rand(&seed) % 4 == 0;
        rl_output one;
        rl_err err = {0};
        if (rl_output_parse(text, n, &o, &one, &err)) { CHECK(0, "parse: %s", err.msg); continue; }
        for (int chunking = 0; chunking < 4; chunking++) {
            rl_output_parser *p = rl_output_parser_new(&o);
            acc a = {0};
            size_t idx = 0, pos = 0;
            rl_output_delta d;
            while (pos < n) {
                size_t k = chunking == 0 ? 1 : 1 + rl_t_rand(&seed) % (chunking == 1 ? 3 : 17);
                if (k > n - pos) k = n - pos;
                if (rl_output_parser_feed(p, text + pos, k, &d, &err)) break;
                add(&a, &d, &idx);
                pos += k;
            }
            rl_output_parser_finish(p, &d, &err);
            add(&a, &d, &idx);
            bool same = strcmp(a.r ? a.r : "", one.reasoning) == 0 && strcmp(a.c ? a.c : "", one.content) == 0 && a.ncalls == one.n_calls;
            for (size_t i = 0; same && i < a.ncalls; i++)
                same = !strcmp(a.calls[i].name, one.calls[i].name) && !strcmp(a.calls[i].arguments, one.calls[i].arguments) &&
                       !strcmp(a.calls[i].id, one.calls[i].id);
            if (!same && mismatches++ < 5)
                CHECK(0, "streaming != one-shot for [%s] (chunking %d): r[%s] vs [%s], c[%s] vs [%s]", text, chunking,
                      a.r ? a.r : "", one.reasoning, a.c ? a.c : "", one.content);
            else
                CHECK(same, "streaming mismatch");
            free(a.r);
            free(a.c);
            for (size_t i = 0; i < a.ncalls; i++) { free(a.calls[i].id); free(a.calls[i].name); free(a.calls[i].arguments); }
            free(a.calls);
            rl_output_parser_free(p);
        }
        rl_output_free(&one);
    }
}

/* Feeding a tag one byte at a time emits nothing until it is decided. */
static void test_no_partial_tags(void) {
    rl_output_parser *p = rl_output_parser_new(NULL);
    rl_output_delta d;
    rl_err err;
    const char *s = "ok <tool_call>{\"name\": \"t\"}</tool_call><tool_ca";
    size_t emitted_content = 0;
    for (size_t i = 0; s[i]; i++) {
        rl_output_parser_feed(p, s + i, 1, &d, &err);
        emitted_content += d.content_len;
        if (i >= 2) CHECK(d.content_len == 0, "byte %zu emitted content [%.*s]", i, (int)d.content_len, d.content);
        CHECK(d.n_calls == (i == 38 ? 1u : 0u), "byte %zu: %zu calls", i, d.n_calls);
    }
    CHECK(emitted_content == 2, "content before the call: %zu bytes", emitted_content);
    rl_output_parser_finish(p, &d, &err);
    CHECK(d.content_len == 8 && memcmp(d.content, "<tool_ca", 8) == 0, "finish flushes the held text: [%.*s]", (int)d.content_len, d.content);
    rl_output_parser_free(p);
}

int main(void) {
    test_fixed();
    test_streaming();
    test_no_partial_tags();
    return rl_test_done();
}
