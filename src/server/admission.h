/* Admission control under the KV page budget (kvbudget.h): which waiting
 * request may start, and whether a running one may write more positions.
 *
 * Each running request is promised the pages it may still write (its prompt
 * plus max_tokens - 1 fed tokens; the prompt alone when max_tokens is
 * unbounded), and the scheduler keeps free >= sum of the promises: the head
 * of the queue starts only when the free, unpromised pages cover its promise
 * (prefix-cache snapshots are evicted first to make room); a request beyond
 * its promise grows only from pages nobody was promised and is cut with
 * finish_reason "length" when none is left; a request whose promise exceeds
 * the whole budget is refused before any work (the HTTP layer's 400).
 *
 * The scheduler tells it which slot holds which promise (rl_admission_promise,
 * rl_admission_release); the slots themselves stay the scheduler's. Also keeps
 * the KV gauges and counters of /metrics. Used by the scheduler thread only,
 * except rl_admission_check (any thread). */
#ifndef RL_SERVER_ADMISSION_H
#define RL_SERVER_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/step.h"
#include "server/metrics.h"
#include "server/pcache.h"
#include "server/sched.h"

/* A slot's claim on the budget. */
typedef struct rl_kv_claim {
    const rl_slot *s; /* NULL: the slot runs no request */
    int end;          /* positions promised */
} rl_kv_claim;

typedef struct rl_admission {
    rl_kv_pool *pool;
    rl_pcache *pc;
    rl_metrics *mx;
    int n_ctx;
    int budget; /* pages; 0: no budget (unbounded, or no softmax layers) */
    int n_slots;
    rl_kv_claim *claims; /* one per scheduler slot */
    double gauges_t;     /* last rl_admission_gauges update */
} rl_admission;

/* Pages that the step being planned will take: all of them, and those
 * beyond their slots' promises. Zero it before planning each step. */
typedef struct rl_kv_plan {
    int planned, planned_extra;
} rl_kv_plan;

/* The budget is the pool's max_pages (set before this); non-zero on
 * allocation failure. */
int rl_admission_init(rl_admission *a, rl_kv_pool *pool, rl_pcache *pc, rl_metrics *mx, int n_ctx, int n_slots,
                      rl_err *e);
void rl_admission_free(rl_admission *a);

/* Whether a request of n_prompt tokens and max_tokens (< 0: unbounded) can
 * ever get its KV pages under the budget; when not, writes an error message
 * for the client and returns non-zero. */
int rl_admission_check(const rl_admission *a, int n_prompt, int max_tokens, char *msg, size_t len);

/* Whether the request at the head of the queue can start now: 1 (room made,
 * evicting snapshots if needed), 0 (wait: running requests hold the pages;
 * counted once per request in kv_deferred), -1 (it never fits;
 * rl_admission_check refuses those first). */
int rl_admission_try(rl_admission *a, rl_req *r);

/* Slot `slot` (whose sequence is s) now runs r: promise it its pages. */
void rl_admission_promise(rl_admission *a, int slot, const rl_slot *s, const rl_req *r);
/* Slot `slot` runs no request any more. */
void rl_admission_release(rl_admission *a, int slot);

/* Before a step: may the slot write n more positions? Within its promise it
 * always may; beyond it (max_tokens unbounded) only from pages nobody was
 * promised, evicting snapshots first. Adds what it grants to plan. When it
 * may not, counts the cut in kv_truncated: the caller finishes the request
 * with finish_reason "length". */
bool rl_admission_may_write(rl_admission *a, int slot, int n, rl_kv_plan *plan);

/* Brings the KV gauges of /metrics up to date (at most every 50 ms while
 * requests run). */
void rl_admission_gauges(rl_admission *a);

#endif
