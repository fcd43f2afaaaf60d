/* Prefix cache for hybrid models: snapshots of a sequence slot at chunk
 * boundaries (positions that are multiples of RL_CHUNK = RL_KV_PAGE), keyed
 * by the tokens before that position. A snapshot holds the Lightning state
 * (copied) and shares the KV pages (copy on write), so a request whose prompt
 * extends a cached prefix forks the snapshot and prefills only the rest.
 * Outputs are bitwise the same with or without a hit (DESIGN.md §2.4: the
 * state at a chunk boundary does not depend on how it was reached).
 * Memory is bounded (LRU eviction). Used by the scheduler thread only. */
#ifndef RL_SERVER_PCACHE_H
#define RL_SERVER_PCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/step.h"

typedef struct rl_pcache_entry {
    int32_t *toks;
    int n; /* == snap.pos */
    uint64_t hash, last_use;
    size_t bytes;
    rl_slot snap;
} rl_pcache_entry;

typedef struct rl_pcache {
    rl_engine *eng;
    rl_pcache_entry *e;
    int n, cap;
    size_t bytes, max_bytes;
    uint64_t clock;
    uint64_t hits, misses, evictions, tokens_saved;
} rl_pcache;

void rl_pcache_init(rl_pcache *c, rl_engine *eng, size_t max_bytes);
void rl_pcache_free(rl_pcache *c);
/* The entry with the longest prefix of toks[0..n_max) (n_max counts tokens
 * that may be skipped), or NULL. Counts a hit or a miss. */
const rl_pcache_entry *rl_pcache_lookup(rl_pcache *c, const int32_t *toks, int n_max);
/* The entry rl_pcache_lookup would return, without counting or touching it
 * (the scheduler peeks before it knows whether the request fits). */
const rl_pcache_entry *rl_pcache_find(const rl_pcache *c, const int32_t *toks, int n_max);
/* Evicts the least recently used entry whose tokens are not keep_toks (an
 * entry's toks pointer is stable; entries move in the array). Returns 0 when
 * there is none. */
int rl_pcache_evict_lru(rl_pcache *c, const int32_t *keep_toks);
/* KV pages that evicting every entry but keep_toks's would return to the
 * pool: pages no sequence slot (nor keep) also references. */
int rl_pcache_freeable_pages(const rl_pcache *c, const int32_t *keep_toks);
/* Snapshots src (at src->pos, a multiple of RL_CHUNK, holding toks[0..pos))
 * unless that prefix is cached; evicts least recently used entries to stay
 * within max_bytes. Returns non-zero only on allocation failure. */
int rl_pcache_insert(rl_pcache *c, const int32_t *toks, const rl_slot *src, rl_err *e);
/* Bytes a snapshot of s costs (state + stash + its pages, counted whole). */
size_t rl_pcache_snapshot_bytes(const rl_pcache *c, const rl_slot *s);

#endif
