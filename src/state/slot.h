/* A sequence slot (DESIGN.md §2.2): per Lightning layer, the fp32 state at
 * the start of the current chunk plus the keys/values of the tokens of the
 * partial chunk; per softmax layer, KV rows in pages of a shared pool.
 * Memory per slot is constant in context length except for the KV pages. */
#ifndef RL_STATE_SLOT_H
#define RL_STATE_SLOT_H

#include "model/model.h"
#include "state/kv_pages.h"

typedef struct rl_slot {
    int pos;            /* tokens consumed so far = next token's position */
    int n_linear, HD, D, H;
    float *lin_S;       /* [n_linear][H][D][D] state at the start of pos's chunk */
    float *lin_k, *lin_v; /* [n_linear][RL_CHUNK][H*D] keys/values of the partial chunk */
    int *pages;         /* page ids, position p lives in pages[p / RL_KV_PAGE] */
    int n_pages, cap_pages;
} rl_slot;

int rl_slot_init(rl_slot *s, const rl_model *m, rl_err *e);
/* Back to an empty sequence (state zeroed, pages released). */
void rl_slot_reset(rl_slot *s, rl_kv_pool *pool);
void rl_slot_free(rl_slot *s, rl_kv_pool *pool);
/* dst becomes a copy of src at the same position, sharing src's KV pages
 * (copy on write). dst must be initialized for the same model. */
int rl_slot_fork(rl_slot *dst, const rl_slot *src, rl_kv_pool *pool, rl_err *e);
/* Makes positions [pos, pos + n) writable: allocates pages, copies shared
 * ones before they are written. */
int rl_slot_reserve(rl_slot *s, rl_kv_pool *pool, int n, rl_err *e);

static inline float *rl_slot_S(const rl_slot *s, int li) {
    return s->lin_S + (size_t)li * s->H * s->D * s->D;
}
static inline float *rl_slot_k(const rl_slot *s, int li) {
    return s->lin_k + (size_t)li * RL_CHUNK * s->HD;
}
static inline float *rl_slot_v(const rl_slot *s, int li) {
    return s->lin_v + (size_t)li * RL_CHUNK * s->HD;
}

#endif
