#include "state/slot.h"

#include <stdlib.h>
#include <string.h>

int rl_slot_init(rl_slot *s, const rl_model *m, rl_err *e) {
    memset(s, 0, sizeof *s);
    const rl_config *c = &m->cfg;
    s->n_linear = m->n_linear;
    s->H = c->num_attention_heads;
    s->D = c->head_dim;
    s->HD = s->H * s->D;
    size_t nl = (size_t)(m->n_linear > 0 ? m->n_linear : 1);
    s->lin_S = calloc(nl * s->H * s->D * s->D, sizeof(float));
    s->lin_k = calloc(nl * RL_CHUNK * s->HD, sizeof(float));
    s->lin_v = calloc(nl * RL_CHUNK * s->HD, sizeof(float));
    if (!s->lin_S || !s->lin_k || !s->lin_v) {
        free(s->lin_S); free(s->lin_k); free(s->lin_v);
        memset(s, 0, sizeof *s);
        return rl_errf(e, RL_E_NOMEM, "out of memory allocating a sequence slot");
    }
    return RL_OK;
}

static void release_pages(rl_slot *s, rl_kv_pool *pool) {
    for (int i = 0; i < s->n_pages; i++) rl_kv_page_unref(pool, s->pages[i]);
    s->n_pages = 0;
}

void rl_slot_reset(rl_slot *s, rl_kv_pool *pool) {
    release_pages(s, pool);
    /* the state must be zero at a sequence start; the stash is overwritten
     * before it is read, but clear it so no stale value can ever leak */
    memset(s->lin_S, 0, sizeof(float) * (size_t)(s->n_linear ? s->n_linear : 1) * s->H * s->D * s->D);
    memset(s->lin_k, 0, sizeof(float) * (size_t)(s->n_linear ? s->n_linear : 1) * RL_CHUNK * s->HD);
    memset(s->lin_v, 0, sizeof(float) * (size_t)(s->n_linear ? s->n_linear : 1) * RL_CHUNK * s->HD);
    s->pos = 0;
}

void rl_slot_free(rl_slot *s, rl_kv_pool *pool) {
    if (pool) release_pages(s, pool);
    free(s->lin_S); free(s->lin_k); free(s->lin_v); free(s->pages);
    memset(s, 0, sizeof *s);
}

static int ensure_cap(rl_slot *s, int n, rl_err *e) {
    if (n <= s->cap_pages) return RL_OK;
    int cap = s->cap_pages ? s->cap_pages : 8;
    while (cap < n) cap *= 2;
    int *p = realloc(s->pages, sizeof(int) * (size_t)cap);
    if (!p) return rl_errf(e, RL_E_NOMEM, "out of memory growing a page table");
    s->pages = p;
    s->cap_pages = cap;
    return RL_OK;
}

int rl_slot_fork(rl_slot *dst, const rl_slot *src, rl_kv_pool *pool, rl_err *e) {
    if (dst->HD != src->HD || dst->n_linear != src->n_linear || dst->D != src->D)
        return rl_errf(e, RL_E_ARG, "rl_slot_fork: slots of different models");
    release_pages(dst, pool);
    int rc = ensure_cap(dst, src->n_pages, e);
    if (rc) return rc;
    size_t nl = (size_t)(src->n_linear ? src->n_linear : 1);
    memcpy(dst->lin_S, src->lin_S, sizeof(float) * nl * src->H * src->D * src->D);
    memcpy(dst->lin_k, src->lin_k, sizeof(float) * nl * RL_CHUNK * src->HD);
    memcpy(dst->lin_v, src->lin_v, sizeof(float) * nl * RL_CHUNK * src->HD);
    for (int i = 0; i < src->n_pages; i++) {
        dst->pages[i] = src->pages[i];
        rl_kv_page_ref(pool, src->pages[i]);
    }
    dst->n_pages = src->n_pages;
    dst->pos = src->pos;
    return RL_OK;
}

int rl_slot_reserve(rl_slot *s, rl_kv_pool *pool, int n, rl_err *e) {
    if (n <= 0 || pool->n_layers == 0) return RL_OK;
    int first = s->pos / RL_KV_PAGE, last = (s->pos + n - 1) / RL_KV_PAGE;
    int rc = ensure_cap(s, last + 1, e);
    if (rc) return rc;
    for (int pg = first; pg <= last; pg++) {
        if (pg < s->n_pages) {
            int id = s->pages[pg];
            if (pool->refs[id] > 1) { /* shared: copy before writing */
                int nid = rl_kv_page_alloc(pool, e);
                if (nid < 0) return e ? e->code : RL_E_CAPACITY;
                memcpy(pool->pages[nid], pool->pages[id], sizeof(float) * pool->page_floats);
                rl_kv_page_unref(pool, id);
                s->pages[pg] = nid;
            }
        } else {
            int nid = rl_kv_page_alloc(pool, e);
            if (nid < 0) return e ? e->code : RL_E_CAPACITY;
            s->pages[s->n_pages++] = nid;
        }
    }
    return RL_OK;
}
