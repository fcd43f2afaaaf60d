/* A pool of fixed-size KV pages shared by all sequences. A page holds, for
 * every softmax layer, the keys and values of RL_KV_PAGE consecutive
 * positions (fp32): per layer a key block [Hkv][D][RL_KV_PAGE] (transposed,
 * see rl_kv_view in ops.h) then a value block [Hkv][RL_KV_PAGE][D]. Pages are
 * reference counted so that forks and prefix snapshots can share them (copy
 * on write). */
#ifndef RL_STATE_KV_PAGES_H
#define RL_STATE_KV_PAGES_H

#include <stddef.h>

#include "base/status.h"

#define RL_KV_PAGE 64

typedef struct rl_kv_pool {
    int n_layers;  /* softmax layers */
    int row;       /* floats per position per k or v: Hkv * D */
    size_t page_floats;
    float **pages; /* page memory, allocated on first use */
    int *refs;
    int *free_list;
    int n_free, n_pages, cap;
    int max_pages; /* 0: unbounded */
} rl_kv_pool;

int rl_kv_pool_init(rl_kv_pool *p, int n_layers, int row, int max_pages, rl_err *e);
void rl_kv_pool_free(rl_kv_pool *p);
/* Returns a page id with refcount 1, or -1 with e set. */
int rl_kv_page_alloc(rl_kv_pool *p, rl_err *e);
void rl_kv_page_ref(rl_kv_pool *p, int id);
void rl_kv_page_unref(rl_kv_pool *p, int id);

static inline float *rl_kv_k(const rl_kv_pool *p, int page, int layer) {
    return p->pages[page] + (size_t)layer * 2 * RL_KV_PAGE * p->row;
}
static inline float *rl_kv_v(const rl_kv_pool *p, int page, int layer) {
    return p->pages[page] + ((size_t)layer * 2 + 1) * RL_KV_PAGE * p->row;
}

#endif
