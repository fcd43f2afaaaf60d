#include "tokenizer/tokenizer_write.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t rl_bytelevel_char(uint8_t b) {
    /* printable Latin-1 bytes stand for themselves; the other 68 bytes map,
     * in order, to U+0100.. */
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) n++;
    return 256 + n;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

/* A token's bytes spelled in the byte-level alphabet. */
static char *spell(const char *bytes, size_t n) {
    char *s = malloc(n * 3 + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += put_utf8(rl_bytelevel_char((uint8_t)bytes[i]), s + k);
    s[k] = 0;
    return s;
}

static json_t *bytelevel(const char *type, bool add_prefix_space, bool use_regex) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", type, "add_prefix_space", add_prefix_space,
                     "trim_offsets", 1, "use_regex", use_regex);
}

int rl_write_bytelevel_tokenizer(const char *path, const rl_bpe_spec *s, rl_err *e) {
    int rc = RL_E_NOMEM;
    int V = 256 + s->n_tokens;
    char **spelled = calloc((size_t)V, sizeof(char *));
    json_t *root = json_object(), *vocab = json_object(), *merges = json_array(),
           *added = json_array();
    if (!spelled || !root || !vocab || !merges || !added) goto out;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        spelled[b] = spell(&c, 1);
    }
    for (int i = 0; i < s->n_tokens; i++) spelled[256 + i] = spell(s->tokens[i], s->token_lens[i]);
    for (int i = 0; i < V; i++) {
        if (!spelled[i]) goto out;
        json_object_set_new(vocab, spelled[i], json_integer(i));
    }
    for (int i = 0; i < s->n_merges; i++) {
        int a = s->merges[i][0], b = s->merges[i][1];
        if (a < 0 || a >= V || b < 0 || b >= V) {
            rc = rl_errf(e, RL_E_ARG, "merge %d names token ids outside the vocabulary", i);
            goto out;
        }
        json_array_append_new(merges, json_pack("[s,s]", spelled[a], spelled[b]));
    }
    for (int i = 0; i < s->n_specials; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", V + i,
                                               "content", s->specials[i], "single_word", 0, "lstrip", 0,
                                               "rstrip", 0, "normalized", 0, "special", 1));
    json_t *pre;
    if (s->split_regex)
        pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers",
                        "type", "Split", "pattern", "Regex", s->split_regex, "behavior", "Isolated",
                        "invert", 0, bytelevel("ByteLevel", false, false));
    else
        pre = bytelevel("ByteLevel", false, true);
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:O, s:O}", "type", "BPE",
                              "dropout", "unk_token", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_object_set(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", pre);
    json_object_set_new(root, "post_processor", bytelevel("ByteLevel", true, true));
    json_object_set_new(root, "decoder", bytelevel("ByteLevel", true, true));
    json_object_set_new(root, "model", model);
    if (!pre || !model) goto out;
    if (json_dump_file(root, path, JSON_INDENT(1)) != 0) {
        rc = rl_errf(e, RL_E_IO, "%s: cannot write: %s", path, strerror(errno));
        goto out;
    }
    rc = RL_OK;
out:
    if (rc == RL_E_NOMEM) rl_errf(e, rc, "out of memory writing %s", path);
    if (spelled)
        for (int i = 0; i < V; i++) free(spelled[i]);
    free(spelled);
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    json_decref(root);
    return rc;
}
