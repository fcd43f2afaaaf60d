/* libFuzzer harness for the tokenizer. The first byte picks the mode:
 *   even: the rest is a tokenizer.json; if it loads, encode and decode with it
 *         (fixed texts, random ids, the streaming decoder);
 *   odd:  the rest is text encoded with fixed tokenizers (one built here with
 *         the Ring Split regex, normalizers and flagged added tokens, and the
 *         real gpt2 / mistral files of ../shared/data when present), then
 *         decoded whole and streamed; the streamed text must equal the decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *FIXED =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":12,\"content\":\"<|role_end|>\",\"special\":true,\"normalized\":false,\"lstrip\":true,\"rstrip\":true,\"single_word\":false},"
    "{\"id\":13,\"content\":\"word\",\"special\":false,\"normalized\":true,\"lstrip\":false,\"rstrip\":false,\"single_word\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"},{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s{3,}\"},\"content\":\"  \"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"'(?i:[sdmt]|ll|ve|re)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"Digits\",\"individual_digits\":false},"
    "{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"first\",\"split\":true},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|role_end|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
    "\"pair\":[],\"special_tokens\":{\"<|role_end|>\":{\"id\":\"<|role_end|>\",\"ids\":[12],\"tokens\":[\"<|role_end|>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteLevel\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\"_\"},\"content\":\" \"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":2}]},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"\\u0120\":5,\"1\":6,\"\\u0120\\u0120\":7,\"bc\":8,\"_\":9,\"w\":10,\"o\":11},"
    "\"merges\":[\"a b\",[\"ab\",\"c\"],\"\\u0120 \\u0120\",\"b c\"]}}";

static rl_tok *fixed[3];
static int n_fixed;

static void init(void) {
    rl_err e;
    if (rl_tok_load_string(FIXED, strlen(FIXED), "fixed.json", &fixed[0], &e) != RL_OK) {
        fprintf(stderr, "fixed tokenizer: %s\n", e.msg);
        abort();
    }
    n_fixed = 1;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *p = strstr(dir, "/tests/fuzz/");
    if (!p) return;
    const char *names[] = {"gpt2", "mistral-7b-v0.3"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof dir - (size_t)(p - dir), "/../shared/data/tokenizers/%s/tokenizer.json", names[k]);
        if (rl_tok_load_file(dir, &fixed[n_fixed], &e) == RL_OK) n_fixed++;
    }
}

static void exercise(rl_tok *t, const char *text, size_t n, const int32_t *extra, size_t nextra) {
    rl_err e;
    int32_t *ids = NULL;
    size_t k = 0;
    for (int sp = 0; sp < 2; sp++) {
        if (rl_tok_encode(t, text, n, sp, &ids, &k, &e) != RL_OK) return;
        int32_t vs = rl_tok_vocab_size(t);
        for (size_t i = 0; i < k; i++)
            if (ids[i] < 0 || ids[i] >= vs) abort(); /* ids come from the vocabulary */
        if (!sp) free(ids);
    }
    int32_t *all = malloc((k + nextra + 1) * sizeof *all);
    memcpy(all, ids, k * sizeof *all);
    if (nextra) memcpy(all + k, extra, nextra * sizeof *all);
    free(ids);
    size_t m = k + nextra;
    for (int skip = 0; skip < 2; skip++) {
        char *full;
        size_t fl;
        if (rl_tok_decode(t, all, m, skip, &full, &fl, &e) != RL_OK) continue;
        if (rl_utf8_valid_prefix(full, fl) != fl) abort();
        rl_tok_stream *s = rl_tok_stream_new(t, skip);
        char *cat = malloc(fl + 1);
        size_t cl = 0;
        int ok = 1;
        for (size_t i = 0; i <= m && ok; i++) {
            const char *o;
            size_t ol;
            int rc = i < m ? rl_tok_stream_feed(s, all[i], &o, &ol, &e) : rl_tok_stream_finish(s, &o, &ol, &e);
            if (rc) { fprintf(stderr, "stream: %s\n", e.msg); abort(); }
            if (rl_utf8_valid_prefix(o, ol) != ol || cl + ol > fl) abort();
            memcpy(cat + cl, o, ol);
            cl += ol;
        }
        if (cl != fl || memcmp(cat, full, fl) != 0) abort(); /* stream == full decode */
        rl_tok_stream_free(s);
        free(cat);
        free(full);
    }
    free(all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!n_fixed) init();
    if (size < 1) return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        rl_tok *t;
        rl_err e;
        if (rl_tok_load_string(rest, n, "fuzz.json", &t, &e) != RL_OK) return 0;
        static const char *texts[] = {"", "Hello world 123", "ab  abc\n\n<|role_end|> x", "日本語 😀 e\xCC\x81"};
        int32_t extra[8];
        for (int i = 0; i < 8; i++) extra[i] = (int32_t)(data[(i * 7) % size] * 3 + i) % (rl_tok_vocab_size(t) + 2);
        for (int i = 0; i < 4; i++) exercise(t, texts[i], strlen(texts[i]), i == 3 ? extra : NULL, i == 3 ? 8 : 0);
        rl_tok_free(t);
        return 0;
    }
    rl_tok *t = fixed[(data[0] >> 1) % n_fixed];
    int32_t extra[4];
    for (int i = 0; i < 4; i++) extra[i] = (int32_t)((n ? (uint8_t)rest[i % n] : 0) * 131 + i * 977) % rl_tok_vocab_size(t);
    exercise(t, rest, n, extra, (data[0] >> 3) & 1 ? 4 : 0);
    return 0;
}
