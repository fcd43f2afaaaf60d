#include "state/kv_pages.h"

#include <stdlib.h>
#include <string.h>

int rl_kv_pool_init(rl_kv_pool *p, int n_layers, int row, int max_pages, rl_err *e) {
    (void)e;
    memset(p, 0, sizeof *p);
    p->n_layers = n_layers;
    p->row = row;
    p->page_floats = (size_t)n_layers * 2 * RL_KV_PAGE * (size_t)row;
    p->max_pages = max_pages;
    return RL_OK;
}

void rl_kv_pool_free(rl_kv_pool *p) {
    for (int i = 0; i < p->n_pages; i++) free(p->pages[i]);
    free(p->pages);
    free(p->refs);
    free(p->free_list);
    memset(p, 0, sizeof *p);
}

int rl_kv_page_alloc(rl_kv_pool *p, rl_err *e) {
    if (p->n_free > 0) {
        int id = p->free_list[--p->n_free];
        p->refs[id] = 1;
        return id;
    }
    if (p->max_pages > 0 && p->n_pages >= p->max_pages) {
        rl_errf(e, RL_E_CAPACITY, "KV cache full: all %d pages of %d positions are in use",
                p->max_pages, RL_KV_PAGE);
        return -1;
    }
    if (p->n_pages == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        float **pg = realloc(p->pages, sizeof(float *) * (size_t)cap);
        if (pg) p->pages = pg;
        int *rf = realloc(p->refs, sizeof(int) * (size_t)cap);
        if (rf) p->refs = rf;
        int *fl = realloc(p->free_list, sizeof(int) * (size_t)cap);
        if (fl) p->free_list = fl;
        if (!pg || !rf || !fl) {
            rl_errf(e, RL_E_NOMEM, "out of memory growing the KV page table");
            return -1;
        }
        p->cap = cap;
    }
    float *mem = malloc(sizeof(float) * (p->page_floats ? p->page_floats : 1));
    if (!mem) {
        rl_errf(e, RL_E_NOMEM, "out of memory allocating a KV page (%zu bytes)",
                p->page_floats * sizeof(float));
        return -1;
    }
    p->pages[p->n_pages] = mem;
    p->refs[p->n_pages] = 1;
    return p->n_pages++;
}

void rl_kv_page_ref(rl_kv_pool *p, int id) { p->refs[id]++; }

void rl_kv_page_unref(rl_kv_pool *p, int id) {
    if (--p->refs[id] == 0) p->free_list[p->n_free++] = id;
}
