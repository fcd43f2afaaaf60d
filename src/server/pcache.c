#include "server/pcache.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_toks(const int32_t *t, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)t[i];
        h *= 1099511628211ull;
    }
    return h;
}

void rl_pcache_init(rl_pcache *c, rl_engine *eng, size_t max_bytes) {
    memset(c, 0, sizeof *c);
    c->eng = eng;
    c->max_bytes = max_bytes;
}

static void drop(rl_pcache *c, int i) {
    rl_pcache_entry *x = &c->e[i];
    c->bytes -= x->bytes;
    rl_slot_free(&x->snap, &c->eng->pool);
    free(x->toks);
    c->e[i] = c->e[--c->n];
}

void rl_pcache_free(rl_pcache *c) {
    while (c->n) drop(c, c->n - 1);
    free(c->e);
    memset(c, 0, sizeof *c);
}

size_t rl_pcache_snapshot_bytes(const rl_pcache *c, const rl_slot *s) {
    size_t nl = (size_t)(s->n_linear ? s->n_linear : 1);
    size_t lin = sizeof(float) * nl * ((size_t)s->H * s->D * s->D + 2 * (size_t)RL_CHUNK * s->HD);
    return lin + (size_t)s->n_pages * c->eng->pool.page_floats * sizeof(float) +
           sizeof(int32_t) * (size_t)s->pos;
}

static int find(const rl_pcache *c, const int32_t *toks, int n_max) {
    int best = -1;
    for (int i = 0; i < c->n; i++) {
        const rl_pcache_entry *x = &c->e[i];
        if (x->n > n_max || (best >= 0 && x->n <= c->e[best].n)) continue;
        if (!memcmp(x->toks, toks, sizeof(int32_t) * (size_t)x->n)) best = i;
    }
    return best;
}

const rl_pcache_entry *rl_pcache_find(const rl_pcache *c, const int32_t *toks, int n_max) {
    int i = find(c, toks, n_max);
    return i < 0 ? NULL : &c->e[i];
}

int rl_pcache_evict_lru(rl_pcache *c, const int32_t *keep_toks) {
    int lru = -1;
    for (int i = 0; i < c->n; i++)
        if (c->e[i].toks != keep_toks && (lru < 0 || c->e[i].last_use < c->e[lru].last_use)) lru = i;
    if (lru < 0) return 0;
    drop(c, lru);
    c->evictions++;
    return 1;
}

int rl_pcache_freeable_pages(const rl_pcache *c, const int32_t *keep_toks) {
    const rl_kv_pool *pool = &c->eng->pool;
    if (!c->n || !pool->n_pages) return 0;
    int *cnt = calloc((size_t)pool->n_pages, sizeof *cnt);
    if (!cnt) return 0; /* out of memory: claim nothing can be freed */
    for (int i = 0; i < c->n; i++)
        if (c->e[i].toks != keep_toks)
            for (int k = 0; k < c->e[i].snap.n_pages; k++) cnt[c->e[i].snap.pages[k]]++;
    /* a page goes back to the pool only when every reference to it is a
     * snapshot we may drop */
    int n = 0;
    for (int id = 0; id < pool->n_pages; id++) n += cnt[id] && cnt[id] == pool->refs[id];
    free(cnt);
    return n;
}

const rl_pcache_entry *rl_pcache_lookup(rl_pcache *c, const int32_t *toks, int n_max) {
    int best = find(c, toks, n_max);
    if (best < 0) {
        c->misses++;
        return NULL;
    }
    c->hits++;
    c->tokens_saved += (uint64_t)c->e[best].n;
    c->e[best].last_use = ++c->clock;
    return &c->e[best];
}

int rl_pcache_insert(rl_pcache *c, const int32_t *toks, const rl_slot *src, rl_err *e) {
    int n = src->pos;
    if (n <= 0 || n % RL_CHUNK || c->max_bytes == 0) return 0;
    uint64_t h = hash_toks(toks, n);
    for (int i = 0; i < c->n; i++)
        if (c->e[i].n == n && c->e[i].hash == h && !memcmp(c->e[i].toks, toks, sizeof(int32_t) * (size_t)n)) {
            c->e[i].last_use = ++c->clock;
            return 0;
        }
    size_t bytes = rl_pcache_snapshot_bytes(c, src);
    if (bytes > c->max_bytes) return 0;
    while (c->n && c->bytes + bytes > c->max_bytes) { /* least recently used first */
        int lru = 0;
        for (int i = 1; i < c->n; i++)
            if (c->e[i].last_use < c->e[lru].last_use) lru = i;
        drop(c, lru);
        c->evictions++;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        rl_pcache_entry *p = realloc(c->e, sizeof *p * (size_t)cap);
        if (!p) return rl_errf(e, RL_E_NOMEM, "out of memory (prefix cache)");
        c->e = p;
        c->cap = cap;
    }
    rl_pcache_entry *x = &c->e[c->n];
    memset(x, 0, sizeof *x);
    x->toks = malloc(sizeof(int32_t) * (size_t)n);
    if (!x->toks) return rl_errf(e, RL_E_NOMEM, "out of memory (prefix cache)");
    memcpy(x->toks, toks, sizeof(int32_t) * (size_t)n);
    if (rl_slot_init(&x->snap, c->eng->m, e) || rl_slot_fork(&x->snap, src, &c->eng->pool, e)) {
        rl_slot_free(&x->snap, &c->eng->pool);
        free(x->toks);
        return e ? e->code : RL_E_NOMEM;
    }
    x->n = n;
    x->hash = h;
    x->bytes = bytes;
    x->last_use = ++c->clock;
    c->bytes += bytes;
    c->n++;
    return 0;
}
