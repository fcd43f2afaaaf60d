#include "server/kvbudget.h"

bool rl_kv_budget_on(const rl_kv_pool *p) { return p->n_layers > 0 && p->max_pages > 0; }

int rl_kv_free_pages(const rl_kv_pool *p) { return p->max_pages - (p->n_pages - p->n_free); }

int rl_kv_make_room(rl_pcache *pc, int have, int need, const int32_t *keep_toks) {
    if (have >= need || have + rl_pcache_freeable_pages(pc, keep_toks) < need) return have;
    const rl_kv_pool *pool = &pc->eng->pool;
    int used0 = pool->n_pages - pool->n_free;
    /* dropping a snapshot frees only the pages no one else holds, so count
     * what actually came back after each eviction */
    while (have + (used0 - (pool->n_pages - pool->n_free)) < need && rl_pcache_evict_lru(pc, keep_toks)) {}
    return have + (used0 - (pool->n_pages - pool->n_free));
}
