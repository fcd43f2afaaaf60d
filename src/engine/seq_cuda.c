/* Device sequence slots and the device KV page pool (the CPU's rl_slot and
 * rl_kv_pool on the GPU): per sequence one buffer of Lightning state + stash
 * for every linear layer, and a list of page ids; pages are reference
 * counted so forks share them, and a shared page is copied before a write. */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_cuda.h"

static int page_alloc(rl_cuda_engine *eng, rl_err *e) {
    if (eng->n_free == 0) {
        rl_errf(e, RL_E_CAPACITY, "the device KV pool is full (%d pages of %d positions); "
                "fewer or shorter sequences, or a larger pool", eng->max_pages, RL_KV_PAGE);
        return -1;
    }
    int id = eng->free_list[--eng->n_free];
    eng->refs[id] = 1;
    return id;
}

static void page_unref(rl_cuda_engine *eng, int id) {
    if (--eng->refs[id] == 0) eng->free_list[eng->n_free++] = id;
}

int rl_cuda_seq_new(rl_cuda_engine *eng, rl_cuda_seq **out, rl_err *e) {
    rl_cuda_seq *s = calloc(1, sizeof *s);
    if (!s) return rl_errf(e, RL_E_NOMEM, "out of memory");
    s->eng = eng;
    size_t bytes = sizeof(float) * (eng->lin_floats ? eng->lin_floats : 1);
    cudaError_t rc = cudaMalloc((void **)&s->lin, bytes);
    if (rc == cudaSuccess) rc = cudaMemset(s->lin, 0, bytes);
    if (rc != cudaSuccess) {
        if (s->lin) cudaFree(s->lin);
        free(s);
        return rl_errf(e, RL_E_NOMEM, "cannot allocate %.1f MB of device memory for a sequence's "
                       "Lightning state: %s", (double)bytes / 1e6, cudaGetErrorString(rc));
    }
    *out = s;
    return RL_OK;
}

void rl_cuda_seq_free(rl_cuda_seq *s) {
    if (!s) return;
    for (int i = 0; i < s->n_pages; i++) page_unref(s->eng, s->pages[i]);
    free(s->pages);
    cudaFree(s->lin);
    free(s);
}

int rl_cuda_seq_pos(const rl_cuda_seq *s) { return s->pos; }

static int ensure_cap(rl_cuda_seq *s, int n, rl_err *e) {
    if (n <= s->cap_pages) return RL_OK;
    int cap = s->cap_pages ? s->cap_pages : 16;
    while (cap < n) cap *= 2;
    int *p = realloc(s->pages, sizeof(int) * (size_t)cap);
    if (!p) return rl_errf(e, RL_E_NOMEM, "out of memory");
    s->pages = p;
    s->cap_pages = cap;
    return RL_OK;
}

int rl_cuda_seq_fork(rl_cuda_seq *dst, const rl_cuda_seq *src, rl_err *e) {
    rl_cuda_engine *eng = src->eng;
    if (dst->eng != eng) return rl_errf(e, RL_E_ARG, "rl_cuda_seq_fork: sequences of two engines");
    int rc = ensure_cap(dst, src->n_pages, e);
    if (rc) return rc;
    CU_TRY(cudaMemcpyAsync(dst->lin, src->lin, sizeof(float) * eng->lin_floats,
                           cudaMemcpyDeviceToDevice, eng->st));
    CU_TRY(cudaStreamSynchronize(eng->st));
    for (int i = 0; i < dst->n_pages; i++) page_unref(eng, dst->pages[i]);
    for (int i = 0; i < src->n_pages; i++) {
        dst->pages[i] = src->pages[i];
        eng->refs[src->pages[i]]++;
    }
    dst->n_pages = src->n_pages;
    dst->pos = src->pos;
    return RL_OK;
}

/* Gives s its own copy of page slot pg when another sequence shares it. */
static int page_own(rl_cuda_seq *s, int pg, rl_err *e) {
    rl_cuda_engine *eng = s->eng;
    int id = s->pages[pg];
    if (eng->refs[id] <= 1) return RL_OK;
    int nid = page_alloc(eng, e);
    if (nid < 0) return e ? e->code : RL_E_CAPACITY;
    CU_TRY(cudaMemcpyAsync(eng->pool + (size_t)nid * eng->page_elems,
                           eng->pool + (size_t)id * eng->page_elems,
                           sizeof(uint16_t) * eng->page_elems, cudaMemcpyDeviceToDevice, eng->st));
    page_unref(eng, id);
    s->pages[pg] = nid;
    return RL_OK;
}

int rl_cuda_seq_unshare(rl_cuda_seq *s, rl_err *e) {
    for (int pg = 0; pg < s->n_pages; pg++) {
        int rc = page_own(s, pg, e);
        if (rc) return rc;
    }
    return RL_OK;
}

int rl_cu_seq_reserve(rl_cuda_seq *s, int n, rl_err *e) {
    rl_cuda_engine *eng = s->eng;
    if (n <= 0 || eng->page_elems == 0) return RL_OK;
    int first = s->pos / RL_KV_PAGE, last = (s->pos + n - 1) / RL_KV_PAGE;
    int rc = ensure_cap(s, last + 1, e);
    if (rc) return rc;
    for (int pg = first; pg <= last; pg++) {
        if (pg < s->n_pages) {
            rc = page_own(s, pg, e);
            if (rc) return rc;
        } else {
            int nid = page_alloc(eng, e);
            if (nid < 0) return e ? e->code : RL_E_CAPACITY;
            s->pages[s->n_pages++] = nid;
        }
    }
    return RL_OK;
}
