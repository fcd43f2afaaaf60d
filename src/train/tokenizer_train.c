#include "train/tokenizer_train.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_write.h"

const char rl_ring_pretok_regex[] =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

/* The same regex for PCRE2: Oniguruma's \s is the White_Space property
 * (tokenizer_regex.c rewrites it the same way when it loads the file). */
#define WS "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char pcre_regex[] =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|"
    "[" WS "]*[\\r\\n]|[" WS "]+(?![^" WS "])|[" WS "]+";

/* ---- a byte-string -> int map (open addressing over an arena) ------------ */

typedef struct smap {
    char *arena;
    size_t arena_n, arena_cap;
    /* entries: offset into arena, length, value */
    uint64_t *off;
    uint32_t *len;
    int32_t *val;
    uint32_t *slot; /* entry index + 1, 0 = empty */
    size_t n, cap_slots;
} smap;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static bool smap_grow(smap *m) {
    size_t nc = m->cap_slots ? m->cap_slots * 2 : 1024;
    uint32_t *ns = calloc(nc, sizeof *ns);
    uint64_t *no = realloc(m->off, nc / 2 * sizeof *no);
    if (no) m->off = no;
    uint32_t *nl = realloc(m->len, nc / 2 * sizeof *nl);
    if (nl) m->len = nl;
    int32_t *nv = realloc(m->val, nc / 2 * sizeof *nv);
    if (nv) m->val = nv;
    if (!ns || !no || !nl || !nv) { free(ns); return false; }
    for (size_t i = 0; i < m->n; i++) {
        size_t h = fnv(m->arena + m->off[i], m->len[i]) & (nc - 1);
        while (ns[h]) h = (h + 1) & (nc - 1);
        ns[h] = (uint32_t)i + 1;
    }
    free(m->slot);
    m->slot = ns;
    m->cap_slots = nc;
    return true;
}

/* Index of s in the map; when absent, inserts it with value v (if insert)
 * and sets *added. Returns -1 when absent and not inserted, -2 on OOM. */
static long smap_find(smap *m, const char *s, size_t n, bool insert, int32_t v, bool *added) {
    if (added) *added = false;
    if (m->n + 1 > m->cap_slots / 2 && insert && !smap_grow(m)) return -2;
    if (!m->cap_slots) return -1;
    size_t h = fnv(s, n) & (m->cap_slots - 1);
    while (m->slot[h]) {
        uint32_t i = m->slot[h] - 1;
        if (m->len[i] == n && memcmp(m->arena + m->off[i], s, n) == 0) return i;
        h = (h + 1) & (m->cap_slots - 1);
    }
    if (!insert) return -1;
    if (m->arena_n + n > m->arena_cap) {
        size_t c = m->arena_cap ? m->arena_cap : 1 << 16;
        while (c < m->arena_n + n) c *= 2;
        char *a = realloc(m->arena, c);
        if (!a) return -2;
        m->arena = a;
        m->arena_cap = c;
    }
    memcpy(m->arena + m->arena_n, s, n);
    m->off[m->n] = m->arena_n;
    m->len[m->n] = (uint32_t)n;
    m->val[m->n] = v;
    m->arena_n += n;
    m->slot[h] = (uint32_t)m->n + 1;
    if (added) *added = true;
    return (long)m->n++;
}

static void smap_free(smap *m) {
    free(m->arena);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

/* ---- the trainer ------------------------------------------------------- */

struct rl_bpe_trainer {
    pcre2_code *re;
    pcre2_match_data *md;
    smap words; /* word bytes -> index; counts in wcount */
    int64_t *wcount;
    size_t wcount_cap;
    int64_t total;
    char **specials;
    size_t *special_len;
    int n_specials;
};

int rl_bpe_trainer_new(const char *const *specials, int n_specials, rl_bpe_trainer **out, rl_err *e) {
    rl_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t) return rl_errf(e, RL_E_NOMEM, "out of memory");
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)pcre_regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo,
                          NULL);
    if (!t->re) {
        rl_bpe_trainer_free(t);
        return rl_errf(e, RL_E_FORMAT, "pre-tokenizer regex does not compile (offset %zu)", (size_t)eo);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);
    t->md = pcre2_match_data_create(2, NULL);
    t->specials = calloc((size_t)(n_specials > 0 ? n_specials : 1), sizeof(char *));
    t->special_len = calloc((size_t)(n_specials > 0 ? n_specials : 1), sizeof(size_t));
    if (!t->md || !t->specials || !t->special_len) {
        rl_bpe_trainer_free(t);
        return rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n_specials; i++) {
        if (!specials[i][0]) {
            rl_bpe_trainer_free(t);
            return rl_errf(e, RL_E_ARG, "special token %d is empty", i);
        }
        t->specials[i] = strdup(specials[i]);
        t->special_len[i] = strlen(specials[i]);
        t->n_specials = i + 1;
        if (!t->specials[i]) {
            rl_bpe_trainer_free(t);
            return rl_errf(e, RL_E_NOMEM, "out of memory");
        }
    }
    *out = t;
    return RL_OK;
}

void rl_bpe_trainer_free(rl_bpe_trainer *t) {
    if (!t) return;
    if (t->md) pcre2_match_data_free(t->md);
    if (t->re) pcre2_code_free(t->re);
    smap_free(&t->words);
    free(t->wcount);
    for (int i = 0; i < t->n_specials; i++) free(t->specials[i]);
    free(t->specials);
    free(t->special_len);
    free(t);
}

void rl_bpe_trainer_counts(const rl_bpe_trainer *t, int64_t *distinct, int64_t *total) {
    *distinct = (int64_t)t->words.n;
    *total = t->total;
}

static int add_word(rl_bpe_trainer *t, const char *s, size_t n, rl_err *e) {
    if (!n) return RL_OK;
    if (n > 1u << 20) n = 1u << 20; /* a megabyte-long "word" (whitespace runs) adds nothing */
    bool added;
    long i = smap_find(&t->words, s, n, true, 0, &added);
    if (i == -2) return rl_errf(e, RL_E_NOMEM, "out of memory");
    if ((size_t)i >= t->wcount_cap) {
        size_t c = t->wcount_cap ? t->wcount_cap * 2 : 4096;
        int64_t *w = realloc(t->wcount, c * sizeof *w);
        if (!w) return rl_errf(e, RL_E_NOMEM, "out of memory");
        t->wcount = w;
        t->wcount_cap = c;
    }
    if (added) t->wcount[i] = 0;
    t->wcount[i]++;
    t->total++;
    return RL_OK;
}

static int feed_plain(rl_bpe_trainer *t, const char *s, size_t n, rl_err *e) {
    size_t pos = 0, prev = 0;
    while (pos < n) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, t->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return rl_errf(e, RL_E_ARG, "pre-tokenizer regex failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* no empty words: step over one character */
            pos = ms + 1;
            while (pos < n && ((uint8_t)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > prev && (rc = add_word(t, s + prev, ms - prev, e))) return rc; /* unmatched gap */
        if ((rc = add_word(t, s + ms, me - ms, e))) return rc;
        prev = pos = me;
    }
    if (prev < n) return add_word(t, s + prev, n - prev, e);
    return RL_OK;
}

int rl_bpe_trainer_feed(rl_bpe_trainer *t, const char *text, size_t n, const char *label, rl_err *e) {
    size_t ok = rl_utf8_valid_prefix(text, n);
    if (ok != n)
        return rl_errf(e, RL_E_FORMAT, "%s: invalid UTF-8 at byte offset %zu", label ? label : "text", ok);
    /* cut out special tokens: the earliest (then longest) occurrence first */
    size_t pos = 0;
    while (pos < n) {
        size_t best = n, blen = 0;
        for (int i = 0; i < t->n_specials; i++) {
            const char *p = memmem(text + pos, n - pos, t->specials[i], t->special_len[i]);
            if (!p) continue;
            size_t at = (size_t)(p - text);
            if (at < best || (at == best && t->special_len[i] > blen)) best = at, blen = t->special_len[i];
        }
        int rc = feed_plain(t, text + pos, best - pos, e);
        if (rc) return rl_err_prefix(e, "%s", label ? label : "text");
        pos = best + blen;
    }
    return RL_OK;
}

/* ---- merges -------------------------------------------------------------- */

typedef struct pair_info {
    int64_t count;
    int64_t before; /* count when the current merge began (valid when mark == merge) */
    int mark;
    uint32_t a, b;
    int32_t *words; /* words that contained the pair (may repeat, may be stale) */
    int n_words, cap_words;
} pair_info;

typedef struct heap_ent {
    int64_t count;
    uint32_t a, b;
} heap_ent;

/* max-heap: higher count first, then smaller (a, b) */
static bool hless(const heap_ent *x, const heap_ent *y) {
    if (x->count != y->count) return x->count < y->count;
    if (x->a != y->a) return x->a > y->a;
    return x->b > y->b;
}

typedef struct heap {
    heap_ent *v;
    size_t n, cap;
} heap;

static bool heap_push(heap *h, heap_ent x) {
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 4096;
        heap_ent *v = realloc(h->v, c * sizeof *v);
        if (!v) return false;
        h->v = v;
        h->cap = c;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&h->v[p], &x)) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
    return true;
}

static heap_ent heap_pop(heap *h) {
    heap_ent top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && hless(&h->v[c], &h->v[c + 1])) c++;
        if (!hless(&x, &h->v[c])) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = x;
    return top;
}

/* pair (a, b) -> index into pairs[], open addressing */
typedef struct pmap {
    uint64_t *key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t *idx;
    size_t cap, n;
    pair_info *pairs;
    size_t pcap;
} pmap;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static pair_info *pget(pmap *m, uint32_t a, uint32_t b, bool insert) {
    uint64_t k = ((uint64_t)a << 32 | b) + 1;
    if (insert && (m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1 << 16;
        uint64_t *nk = calloc(nc, sizeof *nk);
        int32_t *ni = malloc(nc * sizeof *ni);
        if (!nk || !ni) { free(nk); free(ni); return NULL; }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            size_t h = mix(m->key[i]) & (nc - 1);
            while (nk[h]) h = (h + 1) & (nc - 1);
            nk[h] = m->key[i];
            ni[h] = m->idx[i];
        }
        free(m->key);
        free(m->idx);
        m->key = nk;
        m->idx = ni;
        m->cap = nc;
    }
    if (!m->cap) return NULL;
    size_t h = mix(k) & (m->cap - 1);
    while (m->key[h]) {
        if (m->key[h] == k) return &m->pairs[m->idx[h]];
        h = (h + 1) & (m->cap - 1);
    }
    if (!insert) return NULL;
    if (m->n == m->pcap) {
        size_t c = m->pcap ? m->pcap * 2 : 1 << 15;
        pair_info *p = realloc(m->pairs, c * sizeof *p);
        if (!p) return NULL;
        m->pairs = p;
        m->pcap = c;
    }
    m->key[h] = k;
    m->idx[h] = (int32_t)m->n;
    pair_info *p = &m->pairs[m->n++];
    memset(p, 0, sizeof *p);
    p->mark = -1;
    p->a = a;
    p->b = b;
    return p;
}

static bool pair_add_word(pair_info *p, int32_t w) {
    if (p->n_words && p->words[p->n_words - 1] == w) return true;
    if (p->n_words == p->cap_words) {
        int c = p->cap_words ? p->cap_words * 2 : 4;
        int32_t *v = realloc(p->words, (size_t)c * sizeof *v);
        if (!v) return false;
        p->words = v;
        p->cap_words = c;
    }
    p->words[p->n_words++] = w;
    return true;
}

typedef struct tokvec { /* learned tokens: bytes in an smap (value = id) */
    smap map;
    int32_t *tok_entry; /* id -> smap entry */
    int n, cap;
} tokvec;

int rl_bpe_trainer_train(rl_bpe_trainer *t, const rl_bpe_train_opts *o, const char *path, int *n_merges_out,
                         int *n_vocab_out, rl_err *e) {
    int target = o->vocab_size - 256 - o->n_specials; /* tokens to learn */
    if (target < 0)
        return rl_errf(e, RL_E_ARG, "vocab size %d is smaller than 256 byte tokens + %d special tokens",
                       o->vocab_size, o->n_specials);
    int64_t minf = o->min_frequency > 0 ? o->min_frequency : 1;
    size_t W = t->words.n;
    int rc = RL_E_NOMEM;
    /* symbols of every word, in place; wlen shrinks as merges apply */
    uint32_t *sym = malloc((t->words.arena_n + 1) * sizeof *sym);
    uint32_t *wlen = malloc((W + 1) * sizeof *wlen);
    int *stamp = malloc((W + 1) * sizeof *stamp);
    pmap pm = {0};
    heap hp = {0};
    tokvec tv = {0};
    int32_t (*merges)[2] = NULL;
    int n_merges = 0, cap_merges = 0;
    int32_t *touched = NULL;
    size_t n_touched = 0, cap_touched = 0;
    char *buf = NULL;
    size_t buf_cap = 0;
    if (!sym || !wlen || !stamp) goto oom;
    for (size_t w = 0; w < W; w++) {
        const uint8_t *s = (const uint8_t *)t->words.arena + t->words.off[w];
        for (uint32_t i = 0; i < t->words.len[w]; i++) sym[t->words.off[w] + i] = s[i];
        wlen[w] = t->words.len[w];
        stamp[w] = -1;
    }
    /* byte tokens are ids 0..255: register their bytes so merges that spell a
     * single byte cannot occur (they cannot) and learned tokens get 256.. */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (smap_find(&tv.map, &c, 1, true, b, NULL) < 0) goto oom;
    }
    for (size_t w = 0; w < W; w++) {
        const uint32_t *s = sym + t->words.off[w];
        for (uint32_t i = 0; i + 1 < wlen[w]; i++) {
            pair_info *p = pget(&pm, s[i], s[i + 1], true);
            if (!p) goto oom;
            p->count += t->wcount[w];
            if (!pair_add_word(p, (int32_t)w)) goto oom;
        }
    }
    for (size_t i = 0; i < pm.cap; i++) {
        if (!pm.key[i]) continue;
        uint64_t k = pm.key[i] - 1;
        if (!heap_push(&hp, (heap_ent){pm.pairs[pm.idx[i]].count, (uint32_t)(k >> 32), (uint32_t)k}))
            goto oom;
    }
    /* token bytes: id -> smap entry of tv.map (0..255 are entries 0..255) */
    int n_tok = 256;
    tv.cap = 256 + target + 1;
    tv.tok_entry = malloc((size_t)tv.cap * sizeof *tv.tok_entry);
    if (!tv.tok_entry) goto oom;
    for (int b = 0; b < 256; b++) tv.tok_entry[b] = b;
    while (n_tok - 256 < target && hp.n) {
        heap_ent top = heap_pop(&hp);
        pair_info *p = pget(&pm, top.a, top.b, false);
        if (!p) continue;
        if (p->count != top.count) {
            if (p->count > 0 && p->count < top.count &&
                !heap_push(&hp, (heap_ent){p->count, top.a, top.b}))
                goto oom_buf;
            continue;
        }
        if (p->count < minf) break;
        /* the new token */
        size_t la = tv.map.len[tv.tok_entry[top.a]], lb = tv.map.len[tv.tok_entry[top.b]];
        if (la + lb > buf_cap) {
            buf_cap = (la + lb) * 2;
            char *nb = realloc(buf, buf_cap);
            if (!nb) goto oom_buf;
            buf = nb;
        }
        memcpy(buf, tv.map.arena + tv.map.off[tv.tok_entry[top.a]], la);
        memcpy(buf + la, tv.map.arena + tv.map.off[tv.tok_entry[top.b]], lb);
        bool added;
        long ent = smap_find(&tv.map, buf, la + lb, true, n_tok, &added);
        if (ent < 0) goto oom_buf;
        uint32_t c = (uint32_t)tv.map.val[ent];
        if (added) tv.tok_entry[n_tok++] = (int32_t)ent;
        if (n_merges == cap_merges) {
            cap_merges = cap_merges ? cap_merges * 2 : 1024;
            int32_t(*nm)[2] = realloc(merges, (size_t)cap_merges * sizeof *nm);
            if (!nm) goto oom_buf;
            merges = nm;
        }
        merges[n_merges][0] = (int32_t)top.a;
        merges[n_merges][1] = (int32_t)top.b;
        int mi = n_merges++;
        /* apply it to every word that holds the pair; the pair's word list is
         * taken over (the pair itself ends at count 0) */
        int32_t *wl = p->words;
        int nwl = p->n_words;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        uint32_t pa = top.a, pb = top.b;
        n_touched = 0;
        for (int k = 0; k < nwl; k++) {
            int32_t w = wl[k];
            if (stamp[w] == mi) continue;
            stamp[w] = mi;
            uint32_t *s = sym + t->words.off[w];
            uint32_t n = wlen[w];
            bool has = false;
            for (uint32_t i = 0; i + 1 < n; i++)
                if (s[i] == pa && s[i + 1] == pb) { has = true; break; }
            if (!has) continue;
            int64_t cw = t->wcount[w];
            /* remove the word's pairs, merge, add its pairs back */
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 1) {
                    uint32_t m = 0;
                    for (uint32_t i = 0; i < n;) {
                        if (i + 1 < n && s[i] == pa && s[i + 1] == pb) { s[m++] = c; i += 2; }
                        else s[m++] = s[i++];
                    }
                    wlen[w] = n = m;
                }
                for (uint32_t i = 0; i + 1 < n; i++) {
                    pair_info *q = pget(&pm, s[i], s[i + 1], pass == 1);
                    if (!q) { free(wl); goto oom_buf; }
                    if (q->mark != mi) {
                        q->mark = mi;
                        q->before = q->count;
                        if (n_touched == cap_touched) {
                            cap_touched = cap_touched ? cap_touched * 2 : 1024;
                            int32_t *nt = realloc(touched, cap_touched * sizeof *nt);
                            if (!nt) { free(wl); goto oom_buf; }
                            touched = nt;
                        }
                        touched[n_touched++] = (int32_t)(q - pm.pairs);
                    }
                    if (pass == 0) {
                        q->count -= cw;
                    } else {
                        q->count += cw;
                        if (!pair_add_word(q, w)) { free(wl); goto oom_buf; }
                    }
                }
            }
        }
        free(wl);
        /* lazy heap: a pair whose count grew needs a new entry; one that
         * shrank is re-pushed when its old entry surfaces */
        for (size_t k = 0; k < n_touched; k++) {
            pair_info *q = &pm.pairs[touched[k]];
            if (q->count > q->before && !heap_push(&hp, (heap_ent){q->count, q->a, q->b})) goto oom_buf;
        }
        if (o->progress) o->progress(o->progress_ctx, n_tok - 256, target);
    }
    rc = RL_OK;
    goto out_buf;
oom_buf:
    rc = rl_errf(e, RL_E_NOMEM, "out of memory");
out_buf:
    free(buf);
    if (rc) goto out;
    {
        int nt = n_tok - 256;
        const char **toks = calloc((size_t)nt + 1, sizeof *toks);
        size_t *lens = calloc((size_t)nt + 1, sizeof *lens);
        if (!toks || !lens) {
            free(toks);
            free(lens);
            goto oom;
        }
        for (int i = 0; i < nt; i++) {
            toks[i] = tv.map.arena + tv.map.off[tv.tok_entry[256 + i]];
            lens[i] = tv.map.len[tv.tok_entry[256 + i]];
        }
        rl_bpe_spec spec = {.tokens = toks, .token_lens = lens, .n_tokens = nt,
                            .merges = (const int32_t(*)[2])merges, .n_merges = n_merges,
                            .specials = o->specials, .n_specials = o->n_specials,
                            .split_regex = rl_ring_pretok_regex};
        rc = rl_write_bytelevel_tokenizer(path, &spec, e);
        free(toks);
        free(lens);
        if (n_merges_out) *n_merges_out = n_merges;
        if (n_vocab_out) *n_vocab_out = n_tok + o->n_specials;
    }
    goto out;
oom:
    rc = rl_errf(e, RL_E_NOMEM, "out of memory");
out:
    for (size_t i = 0; i < pm.n; i++) free(pm.pairs[i].words);
    free(pm.pairs);
    free(pm.key);
    free(pm.idx);
    free(hp.v);
    smap_free(&tv.map);
    free(tv.tok_entry);
    free(merges);
    free(touched);
    free(sym);
    free(wlen);
    free(stamp);
    return rc;
}
