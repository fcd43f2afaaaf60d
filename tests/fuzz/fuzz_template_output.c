/* libFuzzer harness: the reasoning / tool-call output parser. The input is
 * parsed in one shot and streamed in chunks whose sizes come from the input
 * itself; the concatenated deltas must equal the one-shot result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/reasoning.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct sb { char *p; size_t n; } sb;
static void app(sb *b, const char *s, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    if (!b->p) abort();
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    rl_output_opts o = {0};
    o.start_in_reasoning = data[0] & 1;
    o.no_tools = data[0] & 2;
    unsigned seed = data[1];
    const char *text = (const char *)data + 2;
    size_t n = size - 2;
    rl_output one;
    rl_err err;
    if (rl_output_parse(text, n, &o, &one, &err)) return 0;
    rl_output_parser *p = rl_output_parser_new(&o);
    sb r = {0}, c = {0};
    app(&r, "", 0);
    app(&c, "", 0);
    size_t calls = 0, pos = 0;
    rl_output_delta d;
    while (pos < n) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 9;
        if (k > n - pos) k = n - pos;
        if (rl_output_parser_feed(p, text + pos, k, &d, &err)) abort();
        app(&r, d.reasoning, d.reasoning_len);
        app(&c, d.content, d.content_len);
        for (size_t i = 0; i < d.n_calls; i++)
            if (calls + i >= one.n_calls || strcmp(d.calls[i].arguments, one.calls[calls + i].arguments) ||
                strcmp(d.calls[i].name, one.calls[calls + i].name)) abort();
        calls += d.n_calls;
        pos += k;
    }
    if (rl_output_parser_finish(p, &d, &err)) abort();
    app(&r, d.reasoning, d.reasoning_len);
    app(&c, d.content, d.content_len);
    calls += d.n_calls;
    if (r.n != one.reasoning_len || memcmp(r.p, one.reasoning, r.n) || c.n != one.content_len ||
        memcmp(c.p, one.content, c.n) || calls != one.n_calls) abort();
    free(r.p);
    free(c.p);
    rl_output_parser_free(p);
    rl_output_free(&one);
    return 0;
}
