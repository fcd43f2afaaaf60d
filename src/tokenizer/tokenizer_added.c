/* Added tokens: HF's AddedVocabulary. Tokens are matched leftmost-longest
 * (as its Aho-Corasick automaton with MatchKind::LeftmostLongest does), with
 * single_word, lstrip and rstrip applied per match, first on the raw text
 * (tokens with normalized=false), then on the normalized pieces (tokens
 * with normalized=true, whose contents were normalized too). */
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

void tk_trie_init(tk_trie *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++) t->root[i] = -1;
}

void tk_trie_free(tk_trie *t) {
    free(t->first);
    free(t->next);
    free(t->term);
    free(t->byte);
    memset(t, 0, sizeof *t);
}

static int32_t new_node(tk_trie *t, uint8_t b) {
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 256;
        int32_t *f = realloc(t->first, c * sizeof *f);
        if (!f) return -1;
        t->first = f;
        int32_t *nx = realloc(t->next, c * sizeof *nx);
        if (!nx) return -1;
        t->next = nx;
        int32_t *tm = realloc(t->term, c * sizeof *tm);
        if (!tm) return -1;
        t->term = tm;
        uint8_t *by = realloc(t->byte, c);
        if (!by) return -1;
        t->byte = by;
        t->cap = c;
    }
    t->first[t->n] = -1;
    t->next[t->n] = -1;
    t->term[t->n] = -1;
    t->byte[t->n] = b;
    return (int32_t)t->n++;
}

static int32_t child(const tk_trie *t, int32_t node, uint8_t b) {
    for (int32_t c = t->first[node]; c >= 0; c = t->next[c])
        if (t->byte[c] == b) return c;
    return -1;
}

bool tk_trie_add(tk_trie *t, const char *s, size_t n, int pattern) {
    if (n == 0) return true;
    uint8_t b0 = (uint8_t)s[0];
    int32_t node = t->root[b0];
    if (node < 0) {
        node = new_node(t, b0);
        if (node < 0) return false;
        t->root[b0] = node;
    }
    for (size_t i = 1; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = child(t, node, b);
        if (c < 0) {
            c = new_node(t, b);
            if (c < 0) return false;
            t->next[c] = t->first[node];
            t->first[node] = c;
        }
        node = c;
    }
    if (t->term[node] < 0) t->term[node] = pattern; /* same content twice: the first pattern */
    t->n_patterns++;
    return true;
}

int tk_trie_find(const tk_trie *t, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                 int *pat) {
    if (!t->n) return 0;
    for (size_t i = from; i < n; i++) {
        int32_t node = t->root[(uint8_t)s[i]];
        if (node < 0) continue;
        int best = -1;
        size_t best_end = 0, j = i + 1;
        for (;;) {
            if (t->term[node] >= 0) { best = t->term[node]; best_end = j; }
            if (j >= n) break;
            node = child(t, node, (uint8_t)s[j]);
            if (node < 0) break;
            j++;
        }
        if (best >= 0) {
            *ms = i;
            *me = best_end;
            *pat = best;
            return 1;
        }
    }
    return 0;
}
