/* The scheduler: one thread that runs continuous batching on rl_step. Each
 * step takes the next token of every decoding request plus prefill pieces of
 * new ones, up to a token budget; requests wait in a bounded queue for one
 * of the --parallel slots. A request's tokens and log-probs do not depend on
 * what else runs (DESIGN.md §2.4) nor on prefix-cache hits.
 *
 * HTTP threads create a request, submit it and then read its output (text
 * emitted so far, per-token records) under its mutex, waking on its condvar.
 * Both sides hold a reference; the last release frees it. */
#ifndef RL_SERVER_SCHED_H
#define RL_SERVER_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "engine/step.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

#define RL_MAX_TOP_LOGPROBS 20

typedef struct rl_tokrec {
    int32_t id;
    float lp;
    int n_top;
    int32_t top_id[RL_MAX_TOP_LOGPROBS];
    float top_lp[RL_MAX_TOP_LOGPROBS];
} rl_tokrec;

typedef struct rl_gen_params {
    rl_sampler_params sp;
    int max_tokens;  /* < 0: until the context ends */
    char **stop;     /* stop strings (owned by the request) */
    int n_stop;
    bool logprobs;   /* record per-token log-probs */
    int top_logprobs;
    bool cache_prompt; /* may use / fill the prefix cache */
    bool ignore_eos;
} rl_gen_params;

enum { RL_FIN_NONE, RL_FIN_STOP, RL_FIN_LENGTH, RL_FIN_CANCELLED, RL_FIN_ERROR };

typedef struct rl_req {
    /* set before submit, then read-only */
    int32_t *prompt;
    int n_prompt;
    int n_sys; /* prompt[0..n_sys) is the rendered system part of a chat (0: none
                * known); its last chunk boundary gets a snapshot for other
                * conversations that share it */
    rl_gen_params gp;
    double t_arrival;
    /* output, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text; /* emitted text (stop strings and stop tokens never in it) */
    size_t text_len, text_cap;
    rl_tokrec *toks; /* with gp.logprobs: one per sampled token that is not a stop id */
    int n_toks, cap_toks;
    int n_gen;    /* sampled tokens (completion_tokens) */
    int n_cached; /* prompt tokens from the prefix cache */
    int finish;   /* RL_FIN_* */
    char err[512];
    uint64_t seed; /* the seed used */
    atomic_bool cancel;
    bool kv_waited; /* scheduler only: waited in the queue for KV pages */
    int refs;      /* guarded by mu */
} rl_req;

/* A new request owning prompt (malloc'd) and gp's stop strings; refs = 1. */
rl_req *rl_req_new(int32_t *prompt, int n_prompt, const rl_gen_params *gp);
void rl_req_release(rl_req *r);
void rl_gen_params_free(rl_gen_params *gp);

typedef struct rl_sched_opts {
    int n_slots;      /* --parallel */
    int batch_tokens; /* tokens per step */
    int queue_cap;    /* waiting requests before 429 */
    int n_ctx;        /* positions per sequence */
    size_t cache_bytes; /* prefix cache budget; 0: off */
    int kv_pages;     /* KV page budget (rl_kv_pool.max_pages; kvbudget.h); 0: unbounded */
} rl_sched_opts;

typedef struct rl_sched rl_sched;

int rl_sched_start(rl_engine *eng, const rl_tok *tok, const int32_t *stop_ids, int n_stop_ids,
                   const rl_sched_opts *o, rl_metrics *mx, rl_sched **out, rl_err *e);
/* Queues r (taking a reference). RL_E_CAPACITY: queue full; RL_E_ARG:
 * shutting down. */
int rl_sched_submit(rl_sched *s, rl_req *r, rl_err *e);
/* Whether a request of n_prompt tokens and max_tokens (< 0: unbounded)
 * can ever get its KV pages under the budget; when not, writes an error
 * message for the client and returns non-zero. Any thread. */
int rl_sched_kv_check(const rl_sched *s, int n_prompt, int max_tokens, char *msg, size_t len);
/* Stops taking requests; lets running and queued ones finish for up to
 * grace_s seconds, then cancels the rest; joins the thread and frees. */
/* Whether the prefix cache has a budget (otherwise snapshot boundaries are
 * worth nothing and requests need not find them). */
bool rl_sched_prefix_cache_on(const rl_sched *s);
void rl_sched_stop(rl_sched *s, double grace_s);

#endif
