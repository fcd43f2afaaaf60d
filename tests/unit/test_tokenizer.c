/* Tokenizer pieces: UTF-8 helpers, a small tokenizer.json built here (BPE
 * merges, added tokens, refusals with JSON paths), and the streaming decode
 * property on random ids: the chunks are always whole UTF-8 and their
 * concatenation equals the full decode. Real tokenizers from
 * ../shared/data/tokenizers are used when present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/tokenizer.h"

static const char *TINY =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":9,\"content\":\"<|role_end|>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+|\\\\p{L}+|\\\\p{N}\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
    "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"\\u0120\":5,\"1\":6,\"\\u0120\\u0120\":7,\"bc\":8},"
    "\"merges\":[\"a b\",[\"ab\",\"c\"],\"\\u0120 \\u0120\",\"b c\"]}}";

static rl_tok *load_str(const char *j, rl_err *e) {
    rl_tok *t = NULL;
    if (rl_tok_load_string(j, strlen(j), "tiny.json", &t, e)) return NULL;
    return t;
}

static void expect_refused(const char *json, const char *needle) {
    rl_err e = {0};
    rl_tok *t = load_str(json, &e);
    CHECK(!t && strstr(e.msg, needle), "refusal mentioning '%s', got: %s", needle, t ? "(loaded)" : e.msg);
    rl_tok_free(t);
}

static char *replace(const char *s, const char *a, const char *b) {
    const char *p = strstr(s, a);
    if (!p) return strdup(s);
    size_t n = strlen(s) - strlen(a) + strlen(b);
    char *o = malloc(n + 1);
    memcpy(o, s, (size_t)(p - s));
    strcpy(o + (p - s), b);
    strcat(o, p + strlen(a));
    return o;
}

static void test_utf8(void) {
    char buf[4];
    int bad = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp += (cp < 0x1000 ? 1 : 97)) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        int l = rl_utf8_put(cp, buf);
        size_t i = 0;
        if (rl_utf8_next(buf, (size_t)l, &i) != (int32_t)cp || i != (size_t)l) bad++;
        if (rl_utf8_valid_prefix(buf, (size_t)l) != (size_t)l) bad++;
        if (l > 1 && rl_utf8_valid_prefix(buf, (size_t)l - 1) != 0) bad++;
    }
    CHECK(bad == 0, "UTF-8 encode/decode round trip (%d bad)", bad);
    const char *inval[] = {"\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80", "\xE2\x82", "\xFF"};
    for (size_t k = 0; k < sizeof inval / sizeof *inval; k++) {
        size_t i = 0;
        CHECK(rl_utf8_next(inval[k], strlen(inval[k]), &i) == -1 && i == 1, "invalid sequence %zu refused", k);
        CHECK(rl_utf8_valid_prefix(inval[k], strlen(inval[k])) == 0, "valid prefix of invalid %zu", k);
    }
    CHECK(rl_utf8_valid_prefix("ab\xE2\x82\xAC" "c\xE2\x82", 8) == 6, "valid prefix stops before a cut sequence");
}

static void test_tiny(void) {
    rl_err e = {0};
    rl_tok *t = load_str(TINY, &e);
    CHECK(t != NULL, "tiny loads: %s", e.msg);
    if (!t) return;
    int32_t *ids;
    size_t n;
    CHECK(rl_tok_encode(t, "abc  ab<|role_end|>1", 20, true, &ids, &n, &e) == RL_OK, "encode: %s", e.msg);
    int32_t want[] = {4, 7, 3, 9, 6};
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0, "merges by rank, added token, n=%zu", n);
    char *txt;
    size_t len;
    CHECK(rl_tok_decode(t, ids, n, false, &txt, &len, &e) == RL_OK && strcmp(txt, "abc  ab<|role_end|>1") == 0,
          "decode round trip");
    free(txt);
    CHECK(rl_tok_decode(t, ids, n, true, &txt, &len, &e) == RL_OK && strcmp(txt, "abc  ab1") == 0, "skip special");
    free(txt);
    free(ids);
    CHECK(rl_tok_encode(t, "ab\xE2\x82", 4, true, &ids, &n, &e) == RL_E_ARG && strstr(e.msg, "byte offset 2"),
          "invalid UTF-8 refused at its offset: %s", e.msg);
    CHECK(rl_tok_encode(t, "", 0, true, &ids, &n, &e) == RL_OK && n == 0, "empty text");
    free(ids);
    CHECK(rl_tok_vocab_size(t) == 10, "vocab size %d", rl_tok_vocab_size(t));
    CHECK(rl_tok_added_id(t, "<|role_end|>") == 9 && rl_tok_is_special(t, 9) && !rl_tok_is_special(t, 4),
          "special queries");
    CHECK(rl_tok_token_to_id(t, "abc", 3) == 4 && strcmp(rl_tok_id_to_token(t, 4), "abc") == 0 &&
          rl_tok_id_to_token(t, 99) == NULL, "lookups");
    rl_tok_free(t);

    char *j = replace(TINY, "{\"type\":\"ByteLevel\",\"add_prefix_space\"", "{\"type\":\"Foo\",\"add_prefix_space\"");
    expect_refused(j, "tiny.json: pre_tokenizer.pretokenizers[1].type: unsupported \"Foo\"");
    free(j);
    j = replace(TINY, "\"a b\"", "\"a zz\"");
    expect_refused(j, "model.merges[0]");
    free(j);
    j = replace(TINY, "\"type\":\"BPE\"", "\"type\":\"Unigram\"");
    expect_refused(j, "model.type: unsupported \"Unigram\"");
    free(j);
    j = replace(TINY, "\"decoder\":{\"type\":\"ByteLevel\"}", "\"decoder\":{\"type\":\"WordPiece\"}");
    expect_refused(j, "decoder.type: unsupported \"WordPiece\"");
    free(j);
    j = replace(TINY, "\"behavior\":\"Isolated\"", "\"behavior\":\"Sideways\"");
    expect_refused(j, "pre_tokenizer.pretokenizers[0].behavior: unsupported \"Sideways\"");
    free(j);
    j = replace(TINY, "\\\\s+|", "[[:alpha:][a]]|");
    expect_refused(j, "pre_tokenizer.pretokenizers[0].pattern.Regex");
    free(j);
    j = replace(TINY, "\"normalizer\":null", "\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}");
    expect_refused(j, "normalizer.type: unsupported \"Precompiled\"");
    free(j);
    expect_refused("{\"model\": [", "invalid JSON");
}

static size_t valid_all(const char *s, size_t n) { return rl_utf8_valid_prefix(s, n) == n; }

/* random ids: the streamed chunks are whole UTF-8 and concatenate to the full decode */
static void stream_property(const char *name, rl_tok *t, int rounds, uint64_t seed) {
    int bad = 0, broken = 0;
    int32_t vs = rl_tok_vocab_size(t);
    uint64_t rs = seed;
    for (int r = 0; r < rounds; r++) {
        int n = (int)(rl_t_rand(&rs) % 40);
        int32_t ids[40];
        for (int i = 0; i < n; i++) {
            uint64_t x = rl_t_rand(&rs);
            /* favor low ids (bytes, byte tokens) so that multi-byte sequences get split */
            ids[i] = (int32_t)((x & 3) ? (x >> 8) % 300 : (x >> 8) % (uint64_t)(vs + 5));
        }
        for (int skip = 0; skip < 2; skip++) {
            rl_err e = {0};
            char *full;
            size_t fl;
            if (rl_tok_decode(t, ids, (size_t)n, skip, &full, &fl, &e)) { bad++; continue; }
            rl_tok_stream *s = rl_tok_stream_new(t, skip);
            char *cat = malloc(fl * 2 + 64);
            size_t cl = 0, cap = fl * 2 + 64;
            int ok = 1;
            for (int i = 0; i <= n && ok; i++) {
                const char *o;
                size_t ol;
                int rc = i < n ? rl_tok_stream_feed(s, ids[i], &o, &ol, &e) : rl_tok_stream_finish(s, &o, &ol, &e);
                if (rc) { ok = 0; break; }
                if (!valid_all(o, ol)) broken++;
                if (cl + ol > cap) { ok = 0; break; }
                memcpy(cat + cl, o, ol);
                cl += ol;
            }
            if (!ok || cl != fl || memcmp(cat, full, fl) != 0) {
                if (bad < 3) {
                    fprintf(stderr, "%s: stream != decode (%s), skip=%d, ids:", name, e.msg, skip);
                    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
                    fputc('\n', stderr);
                }
                bad++;
            }
            rl_tok_stream_free(s);
            free(cat);
            free(full);
        }
    }
    CHECK(bad == 0, "%s: stream concatenation == full decode (%d bad of %d)", name, bad, rounds * 2);
    CHECK(broken == 0, "%s: every streamed chunk is whole UTF-8 (%d broken)", name, broken);
}

int main(void) {
    test_utf8();
    test_tiny();
    rl_err e = {0};
    rl_tok *t = load_str(TINY, &e);
    if (t) stream_property("tiny", t, 300, 1);
    rl_tok_free(t);

    /* real tokenizers, when the shared data is there */
    char dir[1024];
    const char *env = getenv("RL_TOKENIZER_DATA");
    if (env) snprintf(dir, sizeof dir, "%s", env);
    else {
        snprintf(dir, sizeof dir, "%s", __FILE__);
        char *p = strstr(dir, "/tests/unit/");
        if (p) strcpy(p, "/../shared/data/tokenizers");
    }
    const char *names[] = {"gpt2", "mistral-7b-v0.3", "smollm2", "gpt-neox-20b"};
    for (int k = 0; k < 4; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", dir, names[k]);
        FILE *f = fopen(path, "rb");
        if (!f) { fprintf(stderr, "skipping %s (no %s)\n", names[k], path); continue; }
        fclose(f);
        CHECK(rl_tok_load_file(path, &t, &e) == RL_OK, "load %s: %s", names[k], e.msg);
        if (!t) continue;
        stream_property(names[k], t, 150, 10 + (uint64_t)k);
        rl_tok_free(t);
        t = NULL;
    }
    return rl_test_done();
}
