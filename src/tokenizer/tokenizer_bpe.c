/* The BPE model as the HF crate runs it: a word starts as its characters
 * (with continuing_subword_prefix / end_of_word_suffix, byte fallback to
 * "<0xNN>" tokens, unknown characters to unk_token, fused or not), then the
 * adjacent pair of lowest merge rank is merged, leftmost first, until none
 * is left. Results are cached per pre-token string. */
#include <stdio.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

uint64_t tk_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

void tk_strmap_init(tk_strmap *m) { memset(m, 0, sizeof *m); }

void tk_strmap_free(tk_strmap *m) {
    free(m->tab);
    free(m->ent);
    tk_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static bool sm_grow(tk_strmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *tab = calloc(cap, sizeof *tab);
    if (!tab) return false;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = m->ent[i].hash & (cap - 1);
        while (tab[j]) j = (j + 1) & (cap - 1);
        tab[j] = (uint32_t)i + 1;
    }
    free(m->tab);
    m->tab = tab;
    m->cap = cap;
    return true;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n) {
    if (!m->cap) return -1;
    uint64_t h = tk_hash(k, n);
    size_t j = h & (m->cap - 1);
    while (m->tab[j]) {
        const tk_sment *en = &m->ent[m->tab[j] - 1];
        if (en->hash == h && en->len == n && memcmp(m->keys.p + en->off, k, n) == 0) return en->val;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

bool tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v) {
    if (n > UINT32_MAX) return false;
    if ((m->n + 1) * 2 > m->cap && !sm_grow(m)) return false;
    uint64_t h = tk_hash(k, n);
    size_t j = h & (m->cap - 1);
    while (m->tab[j]) {
        tk_sment *en = &m->ent[m->tab[j] - 1];
        if (en->hash == h && en->len == n && memcmp(m->keys.p + en->off, k, n) == 0) {
            en->val = v;
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (m->n == m->ecap) {
        size_t c = m->ecap ? m->ecap * 2 : 1024;
        tk_sment *ne = realloc(m->ent, c * sizeof *ne);
        if (!ne) return false;
        m->ent = ne;
        m->ecap = c;
    }
    size_t off = m->keys.n;
    if (!tk_buf_put(&m->keys, k, n) || !tk_buf_putc(&m->keys, 0)) return false;
    m->ent[m->n] = (tk_sment){h, off, (uint32_t)n, v};
    m->tab[j] = (uint32_t)++m->n;
    return true;
}

/* ---- merges ------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static bool merge_put(tk_bpe *b, uint32_t a, uint32_t c, uint32_t rank, uint32_t id) {
    if (b->mcap == 0 || b->mn * 2 + 2 > b->mcap) {
        size_t cap = b->mcap ? b->mcap * 2 : 4096;
        uint64_t *k = calloc(cap, sizeof *k), *v = calloc(cap, sizeof *v);
        if (!k || !v) { free(k); free(v); return false; }
        for (size_t i = 0; i < b->mcap; i++) {
            if (!b->mkeys[i]) continue;
            size_t j = mix64(b->mkeys[i]) & (cap - 1);
            while (k[j]) j = (j + 1) & (cap - 1);
            k[j] = b->mkeys[i];
            v[j] = b->mvals[i];
        }
        free(b->mkeys);
        free(b->mvals);
        b->mkeys = k;
        b->mvals = v;
        b->mcap = cap;
    }
    uint64_t key = (((uint64_t)a << 32) | c) + 1;
    size_t j = mix64(key) & (b->mcap - 1);
    while (b->mkeys[j] && b->mkeys[j] != key) j = (j + 1) & (b->mcap - 1);
    if (!b->mkeys[j]) b->mn++;
    b->mkeys[j] = key;
    b->mvals[j] = ((uint64_t)rank << 32) | id; /* a later duplicate replaces, as HF's map does */
    return true;
}

static inline bool merge_get(const tk_bpe *b, uint32_t a, uint32_t c, uint32_t *rank, uint32_t *id) {
    if (!b->mcap) return false;
    uint64_t key = (((uint64_t)a << 32) | c) + 1;
    size_t j = mix64(key) & (b->mcap - 1);
    while (b->mkeys[j]) {
        if (b->mkeys[j] == key) {
            *rank = (uint32_t)(b->mvals[j] >> 32);
            *id = (uint32_t)b->mvals[j];
            return true;
        }
        j = (j + 1) & (b->mcap - 1);
    }
    return false;
}

int tk_bpe_add_merge(tk_bpe *b, const char *a, size_t an, const char *c, size_t cn, uint32_t rank,
                     const char *path, rl_err *e) {
    int32_t ia = tk_strmap_get(&b->vocab, a, an);
    if (ia < 0) return rl_errf(e, RL_E_FORMAT, "%s: token \"%.*s\" is not in the vocabulary", path, (int)(an > 200 ? 200 : an), a);
    int32_t ic = tk_strmap_get(&b->vocab, c, cn);
    if (ic < 0) return rl_errf(e, RL_E_FORMAT, "%s: token \"%.*s\" is not in the vocabulary", path, (int)(cn > 200 ? 200 : cn), c);
    size_t pl = b->prefix ? strlen(b->prefix) : 0;
    if (pl > cn || (pl < cn && (c[pl] & 0xC0) == 0x80))
        return rl_errf(e, RL_E_FORMAT, "%s: \"%.*s\" is shorter than continuing_subword_prefix", path, (int)(cn > 200 ? 200 : cn), c);
    char stackbuf[256];
    size_t mn = an + cn - pl;
    char *m = mn <= sizeof stackbuf ? stackbuf : malloc(mn);
    if (!m) return rl_errf(e, RL_E_NOMEM, "out of memory");
    memcpy(m, a, an);
    memcpy(m + an, c + pl, cn - pl);
    int32_t id = tk_strmap_get(&b->vocab, m, mn);
    if (id < 0) {
        rl_errf(e, RL_E_FORMAT, "%s: merged token \"%.*s\" is not in the vocabulary", path, (int)(mn > 200 ? 200 : mn), m);
        if (m != stackbuf) free(m);
        return RL_E_FORMAT;
    }
    if (m != stackbuf) free(m);
    if (!merge_put(b, (uint32_t)ia, (uint32_t)ic, rank, (uint32_t)id)) return rl_errf(e, RL_E_NOMEM, "out of memory");
    return RL_OK;
}

int tk_bpe_build(tk_bpe *b, rl_err *e) {
    int32_t maxid = -1;
    for (size_t i = 0; i < b->vocab.n; i++)
        if (b->vocab.ent[i].val > maxid) maxid = b->vocab.ent[i].val;
    b->vocab_r_n = maxid + 1;
    b->vocab_len = b->vocab.n;
    b->vocab_r = calloc((size_t)b->vocab_r_n + 1, sizeof *b->vocab_r);
    if (!b->vocab_r) return rl_errf(e, RL_E_NOMEM, "out of memory");
    for (size_t i = 0; i < b->vocab.n; i++) /* a later entry with the same id wins, as HF's reverse map */
        b->vocab_r[b->vocab.ent[i].val] = b->vocab.keys.p + b->vocab.ent[i].off;
    for (int i = 0; i < 256; i++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", i);
        b->byte_id[i] = tk_strmap_get(&b->vocab, code, 6);
    }
    b->cache_cap = 1 << 15;
    b->cache = calloc(b->cache_cap, sizeof *b->cache);
    if (!b->cache) return rl_errf(e, RL_E_NOMEM, "out of memory");
    pthread_mutex_init(&b->lock, NULL);
    b->lock_init = true;
    return RL_OK;
}

struct tk_cache_ent {
    uint64_t hash;
    uint32_t len, nids;
    int32_t *ids;
    char key[];
};

static void cache_clear(tk_bpe *b) {
    for (size_t i = 0; i < b->cache_cap; i++) {
        if (b->cache[i]) { free(b->cache[i]->ids); free(b->cache[i]); b->cache[i] = NULL; }
    }
    b->cache_n = 0;
}

void tk_bpe_free(tk_bpe *b) {
    if (b->cache) cache_clear(b);
    free(b->cache);
    if (b->lock_init) pthread_mutex_destroy(&b->lock);
    tk_strmap_free(&b->vocab);
    free(b->vocab_r);
    free(b->mkeys);
    free(b->mvals);
    free(b->unk);
    free(b->prefix);
    free(b->suffix);
    memset(b, 0, sizeof *b);
}

/* ---- the merge loop ------------------------------------------------------------ */

typedef struct { uint32_t rank, pos; int32_t id; } hent;

static inline bool hless(hent a, hent b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

/* A 4-ary min-heap: half the depth of a binary one, and the four children
 * share a cache line or two; words of millions of symbols (a Metaspace
 * pre-tokenizer without split gives the whole text as one word) are bound
 * by the heap's cache misses. */
static void hpush(hent *h, size_t *n, hent x) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 4;
        if (!hless(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static hent hpop(hent *h, size_t *n) {
    hent top = h[0], x = h[--*n];
    size_t i = 0, cnt = *n;
    if (!cnt) return top;
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= cnt) break;
        size_t m = c, end = c + 4 < cnt ? c + 4 : cnt;
        for (size_t k = c + 1; k < end; k++)
            if (hless(h[k], h[m])) m = k;
        if (!hless(h[m], x)) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = x;
    return top;
}

typedef struct { int32_t c, prev, next; bool gone; } sym;

static int merge_word(tk_bpe *b, const char *s, size_t n, tk_ids *out, rl_err *e) {
    sym stack_syms[64];
    hent stack_heap[128];
    sym *sy = stack_syms;
    hent *hp = stack_heap;
    size_t cap = n + 2; /* symbols <= bytes (+ fused unks) */
    if (cap > 64) {
        sy = malloc(cap * sizeof *sy);
        hp = malloc(cap * 2 * sizeof *hp + 16);
        if (!sy || !hp) { free(sy); free(hp); return rl_errf(e, RL_E_NOMEM, "out of memory"); }
    }
    size_t ns = 0;
    int32_t unk_id = -1;
    bool have_unk = false;
    int rc = RL_OK;
    size_t pl = b->prefix ? strlen(b->prefix) : 0, sl = b->suffix ? strlen(b->suffix) : 0;
    char tmp[64];
    for (size_t i = 0; i < n;) {
        size_t cl = (size_t)tk_utf8_len((unsigned char)s[i]);
        bool first = i == 0, last = i + cl >= n;
        const char *tok = s + i;
        size_t tl = cl;
        char *heap_tok = NULL;
        if ((!first && pl) || (last && sl)) {
            size_t need = cl + (first ? 0 : pl) + (last ? sl : 0);
            char *t = need <= sizeof tmp ? tmp : (heap_tok = malloc(need));
            if (!t) { rc = rl_errf(e, RL_E_NOMEM, "out of memory"); goto done; }
            size_t k = 0;
            if (!first && pl) { memcpy(t, b->prefix, pl); k = pl; }
            memcpy(t + k, s + i, cl);
            k += cl;
            if (last && sl) { memcpy(t + k, b->suffix, sl); k += sl; }
            tok = t;
            tl = k;
        }
        int32_t id = tk_strmap_get(&b->vocab, tok, tl);
        if (id >= 0) {
            if (have_unk) { sy[ns++] = (sym){unk_id, 0, 0, false}; have_unk = false; }
            sy[ns++] = (sym){id, 0, 0, false};
        } else {
            bool done_bf = false;
            if (b->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < tl; k++)
                    if (b->byte_id[(unsigned char)tok[k]] < 0) { all = false; break; }
                if (all) {
                    if (ns + tl + 2 > cap) { /* prefix/suffix may add bytes */
                        size_t nc = (ns + tl + 2) * 2;
                        sym *ny = sy == stack_syms ? malloc(nc * sizeof *ny) : realloc(sy, nc * sizeof *ny);
                        hent *nh = hp == stack_heap ? malloc(nc * 2 * sizeof *nh + 16) : realloc(hp, nc * 2 * sizeof *nh + 16);
                        if (!ny || !nh) { free(heap_tok); rc = rl_errf(e, RL_E_NOMEM, "out of memory"); goto done; }
                        if (sy == stack_syms) memcpy(ny, stack_syms, ns * sizeof *ny);
                        sy = ny;
                        hp = nh;
                        cap = nc;
                    }
                    for (size_t k = 0; k < tl; k++) sy[ns++] = (sym){b->byte_id[(unsigned char)tok[k]], 0, 0, false};
                    done_bf = true;
                }
            }
            if (!done_bf && b->unk) {
                int32_t u = tk_strmap_get(&b->vocab, b->unk, strlen(b->unk));
                if (u < 0) {
                    free(heap_tok);
                    rc = rl_errf(e, RL_E_CONFIG, "unk_token \"%s\" is not in the vocabulary", b->unk);
                    goto done;
                }
                if (have_unk && !b->fuse_unk) sy[ns++] = (sym){unk_id, 0, 0, false};
                if (!(have_unk && b->fuse_unk)) unk_id = u;
                have_unk = true;
            }
        }
        free(heap_tok);
        i += cl;
    }
    if (have_unk) sy[ns++] = (sym){unk_id, 0, 0, false};
    for (size_t i = 0; i < ns; i++) {
        sy[i].prev = (int32_t)i - 1;
        sy[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        uint32_t r, id;
        if (merge_get(b, (uint32_t)sy[i].c, (uint32_t)sy[i + 1].c, &r, &id))
            hpush(hp, &nh, (hent){r, (uint32_t)i, (int32_t)id});
    }
    while (nh) {
        hent top = hpop(hp, &nh);
        sym *cur = &sy[top.pos];
        if (cur->gone || cur->next < 0) continue;
        sym *right = &sy[cur->next];
        uint32_t r, id;
        if (!merge_get(b, (uint32_t)cur->c, (uint32_t)right->c, &r, &id) || (int32_t)id != top.id) continue;
        cur->c = top.id;
        right->gone = true;
        cur->next = right->next;
        if (cur->next >= 0) sy[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            sym *pv = &sy[cur->prev];
            if (merge_get(b, (uint32_t)pv->c, (uint32_t)cur->c, &r, &id))
                hpush(hp, &nh, (hent){r, (uint32_t)cur->prev, (int32_t)id});
        }
        if (cur->next >= 0) {
            if (merge_get(b, (uint32_t)cur->c, (uint32_t)sy[cur->next].c, &r, &id))
                hpush(hp, &nh, (hent){r, top.pos, (int32_t)id});
        }
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = sy[i].next)
        if (!tk_ids_push(out, sy[i].c)) { rc = rl_errf(e, RL_E_NOMEM, "out of memory"); goto done; }
done:
    if (sy != stack_syms) free(sy);
    if (hp != stack_heap) free(hp);
    return rc;
}

#define CACHE_MAX_KEY 256

int tk_bpe_tokenize(tk_bpe *b, const char *s, size_t n, tk_ids *out, rl_err *e) {
    if (n == 0) return RL_OK;
    if (b->ignore_merges) {
        int32_t id = tk_strmap_get(&b->vocab, s, n);
        if (id >= 0) return tk_ids_push(out, id) ? RL_OK : rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    uint64_t h = 0;
    size_t slot = 0;
    bool cacheable = n <= CACHE_MAX_KEY;
    if (cacheable) {
        h = tk_hash(s, n);
        pthread_mutex_lock(&b->lock);
        slot = h & (b->cache_cap - 1);
        for (;;) {
            tk_cache_ent *c = b->cache[slot];
            if (!c) break;
            if (c->hash == h && c->len == n && memcmp(c->key, s, n) == 0) {
                int rc = RL_OK;
                for (uint32_t k = 0; k < c->nids; k++)
                    if (!tk_ids_push(out, c->ids[k])) { rc = rl_errf(e, RL_E_NOMEM, "out of memory"); break; }
                pthread_mutex_unlock(&b->lock);
                return rc;
            }
            slot = (slot + 1) & (b->cache_cap - 1);
        }
        pthread_mutex_unlock(&b->lock);
    }
    size_t start = out->n;
    int rc = merge_word(b, s, n, out, e);
    if (rc || !cacheable) return rc;
    size_t k = out->n - start;
    tk_cache_ent *c = malloc(sizeof *c + n);
    int32_t *ids = malloc((k ? k : 1) * sizeof *ids);
    if (!c || !ids) { free(c); free(ids); return RL_OK; }
    c->hash = h;
    c->len = (uint32_t)n;
    c->nids = (uint32_t)k;
    c->ids = ids;
    if (k) memcpy(ids, out->v + start, k * sizeof *ids);
    memcpy(c->key, s, n);
    pthread_mutex_lock(&b->lock);
    if ((b->cache_n + 1) * 2 > b->cache_cap) cache_clear(b);
    slot = h & (b->cache_cap - 1);
    while (b->cache[slot]) {
        tk_cache_ent *o = b->cache[slot];
        if (o->hash == h && o->len == n && memcmp(o->key, s, n) == 0) break;
        slot = (slot + 1) & (b->cache_cap - 1);
    }
    if (b->cache[slot]) { free(c->ids); free(c); }
    else { b->cache[slot] = c; b->cache_n++; }
    pthread_mutex_unlock(&b->lock);
    return RL_OK;
}
