/* The server's KV memory budget: how many pages of the softmax layers' KV
 * cache (rl_kv_pool.max_pages, RL_KV_PAGE positions each) the scheduler may
 * use for running requests and prefix-cache snapshots together.
 *
 * The scheduler promises each running request the pages it may still need
 * (its prompt plus max_tokens - 1 fed tokens; the prompt alone when
 * max_tokens is unbounded) and admits a request only when the pages that
 * are free and not promised cover its promise. Snapshot-only pages are the
 * first to go: they are evicted (LRU) whenever a request needs them. A
 * request without max_tokens grows beyond its promise from pages nobody was
 * promised, and is finished with finish_reason "length" when none is left.
 * Used by the scheduler thread only. */
#ifndef RL_SERVER_KVBUDGET_H
#define RL_SERVER_KVBUDGET_H

#include <stdbool.h>

#include "server/pcache.h"
#include "state/kv_pages.h"

/* Pages holding positions [0, positions). */
static inline int rl_kv_pages_for(long long positions) {
    return positions <= 0 ? 0 : (int)((positions + RL_KV_PAGE - 1) / RL_KV_PAGE);
}

/* Positions a request may write into the KV cache: the prompt, plus the
 * max_tokens - 1 sampled tokens that are fed back (the last one never is);
 * the prompt alone when max_tokens is unbounded (< 0). At most n_ctx. */
static inline long long rl_kv_positions(int n_prompt, int max_tokens, int n_ctx) {
    long long e = max_tokens > 0 ? (long long)n_prompt + max_tokens - 1 : n_prompt;
    return e < n_ctx ? e : n_ctx;
}

/* Whether the pool is bounded and has softmax layers at all (a model of
 * Lightning layers only keeps no KV pages: nothing to budget). */
bool rl_kv_budget_on(const rl_kv_pool *p);
/* Pages of the budget that no sequence or snapshot holds. */
int rl_kv_free_pages(const rl_kv_pool *p);
/* Evicts least recently used snapshots (never keep_toks's) until `have`
 * pages plus those freed reach `need`, but only when evicting can get
 * there: a cache is not emptied for nothing. Returns the new `have`
 * (>= need on success, unchanged when it cannot). */
int rl_kv_make_room(rl_pcache *pc, int have, int need, const int32_t *keep_toks);

#endif
