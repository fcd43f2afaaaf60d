#include "server/admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "server/kvbudget.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int rl_admission_init(rl_admission *a, rl_kv_pool *pool, rl_pcache *pc, rl_metrics *mx, int n_ctx, int n_slots,
                      rl_err *e) {
    *a = (rl_admission){.pool = pool, .pc = pc, .mx = mx, .n_ctx = n_ctx, .n_slots = n_slots};
    a->budget = rl_kv_budget_on(pool) ? pool->max_pages : 0;
    a->claims = calloc((size_t)n_slots, sizeof *a->claims);
    return a->claims ? 0 : rl_errf(e, RL_E_NOMEM, "out of memory");
}

void rl_admission_free(rl_admission *a) {
    free(a->claims);
    a->claims = NULL;
}

static int busy_slots(const rl_admission *a) {
    int busy = 0;
    for (int i = 0; i < a->n_slots; i++) busy += a->claims[i].s != NULL;
    return busy;
}

/* Pages the running requests may still allocate within their promises. */
static int promised(const rl_admission *a) {
    int p = 0;
    for (int i = 0; i < a->n_slots; i++) {
        const rl_kv_claim *c = &a->claims[i];
        int k = c->s ? rl_kv_pages_for(c->end) - c->s->n_pages : 0;
        p += k > 0 ? k : 0;
    }
    return p;
}

/* New pages writing positions [pos, pos + n) of the sequence takes. */
static int pages_to_write(const rl_admission *a, const rl_slot *s, int n) {
    int k = rl_kv_pages_for((long long)s->pos + n) - s->n_pages;
    if (k < 0) k = 0;
    /* a shared, partly filled page is copied before it is written; snapshots
     * are taken at page boundaries so this does not happen today, but the
     * count must stay true if it ever does */
    int pg = s->pos / RL_KV_PAGE;
    if (s->pos % RL_KV_PAGE && pg < s->n_pages && a->pool->refs[s->pages[pg]] > 1) k++;
    return k;
}

static void count(rl_admission *a, uint64_t *counter) {
    pthread_mutex_lock(&a->mx->mu);
    (*counter)++;
    pthread_mutex_unlock(&a->mx->mu);
}

int rl_admission_check(const rl_admission *a, int n_prompt, int max_tokens, char *msg, size_t len) {
    if (!a->budget) return 0;
    long long pos = rl_kv_positions(n_prompt, max_tokens, a->n_ctx);
    int need = rl_kv_pages_for(pos);
    if (need <= a->budget) return 0;
    if (max_tokens > 0)
        snprintf(msg, len,
                 "the request needs %d KV pages of %d positions (%d prompt tokens + max_tokens %d) but the server's "
                 "KV budget is %d pages (%lld positions, --kv-pages); lower max_tokens or shorten the prompt",
                 need, RL_KV_PAGE, n_prompt, max_tokens, a->budget, (long long)a->budget * RL_KV_PAGE);
    else
        snprintf(msg, len,
                 "the prompt needs %d KV pages of %d positions (%d tokens) but the server's KV budget is %d pages "
                 "(%lld positions, --kv-pages); shorten the prompt",
                 need, RL_KV_PAGE, n_prompt, a->budget, (long long)a->budget * RL_KV_PAGE);
    return 1;
}

static int admissible(rl_admission *a, const rl_req *r) {
    if (!a->budget) return 1;
    int total = rl_kv_pages_for(rl_kv_positions(r->n_prompt, r->gp.max_tokens, a->n_ctx));
    const rl_pcache_entry *x =
        r->gp.cache_prompt && a->pc->max_bytes ? rl_pcache_find(a->pc, r->prompt, r->n_prompt - 1) : NULL;
    int need = total - (x ? x->snap.n_pages : 0);
    int have = rl_kv_free_pages(a->pool) - promised(a);
    if (rl_kv_make_room(a->pc, have, need, x ? x->toks : NULL) >= need) return 1;
    if (busy_slots(a)) return 0;
    /* nothing runs, so nothing will free pages: the snapshot it would have
     * started from may go too */
    have = rl_kv_free_pages(a->pool) - promised(a);
    return rl_kv_make_room(a->pc, have, total, NULL) >= total ? 1 : -1;
}

int rl_admission_try(rl_admission *a, rl_req *r) {
    int fit = admissible(a, r);
    if (fit == 0) {
        if (!r->kv_waited) count(a, &a->mx->kv_deferred);
        r->kv_waited = true;
    }
    return fit;
}

void rl_admission_promise(rl_admission *a, int slot, const rl_slot *s, const rl_req *r) {
    a->claims[slot] = (rl_kv_claim){s, (int)rl_kv_positions(r->n_prompt, r->gp.max_tokens, a->n_ctx)};
}

void rl_admission_release(rl_admission *a, int slot) { a->claims[slot] = (rl_kv_claim){0}; }

static bool may_write(rl_admission *a, const rl_kv_claim *c, int n, rl_kv_plan *plan) {
    if (!a->budget) return true;
    int k = pages_to_write(a, c->s, n);
    if (k == 0) return true;
    int prom = rl_kv_pages_for(c->end) - c->s->n_pages;
    int extra = k - (prom > 0 ? (prom < k ? prom : k) : 0);
    for (int pass = 0; pass < 2; pass++) {
        int phys = rl_kv_free_pages(a->pool) - plan->planned;
        int unprom = rl_kv_free_pages(a->pool) - promised(a) - plan->planned_extra;
        int deficit = extra - unprom > k - phys ? extra - unprom : k - phys;
        if (deficit <= 0) {
            plan->planned += k;
            plan->planned_extra += extra;
            return true;
        }
        if (pass == 0 && rl_kv_make_room(a->pc, 0, deficit, NULL) < deficit) break;
    }
    return false;
}

bool rl_admission_may_write(rl_admission *a, int slot, int n, rl_kv_plan *plan) {
    if (may_write(a, &a->claims[slot], n, plan)) return true;
    count(a, &a->mx->kv_truncated);
    return false;
}

/* Counting snapshot-only pages walks every snapshot, hence the 50 ms while
 * requests run; when the server goes idle the figures are always brought up
 * to date. */
void rl_admission_gauges(rl_admission *a) {
    double t = now_s();
    if (busy_slots(a) && t - a->gauges_t < 0.05) return;
    a->gauges_t = t;
    const rl_kv_pool *p = a->pool;
    int used = p->n_pages - p->n_free;
    int only = rl_pcache_freeable_pages(a->pc, NULL);
    int prom = a->budget ? promised(a) : 0;
    pthread_mutex_lock(&a->mx->mu);
    a->mx->kv_total = a->budget;
    a->mx->kv_used = used;
    a->mx->kv_free = a->budget ? rl_kv_free_pages(p) : 0;
    a->mx->kv_promised = prom;
    a->mx->kv_cache_only = only;
    pthread_mutex_unlock(&a->mx->mu);
}
