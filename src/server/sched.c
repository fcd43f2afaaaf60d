#include "server/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "engine/logprob.h"
#include "ops/ops.h"
#include "server/admission.h"
#include "server/pcache.h"
#include "server/stopstr.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- requests ----------------------------------------------------------- */

void rl_gen_params_free(rl_gen_params *gp) {
    for (int i = 0; i < gp->n_stop; i++) free(gp->stop[i]);
    free(gp->stop);
    gp->stop = NULL;
    gp->n_stop = 0;
}

rl_req *rl_req_new(int32_t *prompt, int n_prompt, const rl_gen_params *gp) {
    rl_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->prompt = prompt;
    r->n_prompt = n_prompt;
    r->gp = *gp;
    r->t_arrival = now_s();
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&r->cancel, false);
    r->refs = 1;
    return r;
}

void rl_req_release(rl_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left) return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->prompt);
    free(r->text);
    free(r->toks);
    rl_gen_params_free(&r->gp);
    free(r);
}

/* Appends emitted text and (optionally) a token record; wakes the reader. */
static void publish(rl_req *r, const char *text, size_t n, const rl_tokrec *rec, bool count_gen) {
    pthread_mutex_lock(&r->mu);
    if (n && r->text_len + n + 1 > r->text_cap) {
        size_t cap = (r->text_len + n + 1) * 2;
        char *p = realloc(r->text, cap);
        if (p) {
            r->text = p;
            r->text_cap = cap;
        } else {
            n = 0; /* out of memory: the text is lost, the request goes on */
        }
    }
    if (n) {
        memcpy(r->text + r->text_len, text, n);
        r->text_len += n;
        r->text[r->text_len] = 0;
    }
    if (rec) {
        if (r->n_toks == r->cap_toks) {
            int cap = r->cap_toks ? r->cap_toks * 2 : 16;
            rl_tokrec *p = realloc(r->toks, sizeof *p * (size_t)cap);
            if (p) {
                r->toks = p;
                r->cap_toks = cap;
            }
        }
        if (r->n_toks < r->cap_toks) r->toks[r->n_toks++] = *rec;
    }
    if (count_gen) r->n_gen++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- scheduler ---------------------------------------------------------- */

typedef struct sslot {
    rl_slot s;
    rl_req *r;   /* NULL: free */
    int decoding; /* 0: prefilling the prompt */
    int32_t *held; /* tokens the slot holds (s.pos of them) */
    int last_tok;
    rl_sampler smp;
    bool smp_ok;
    float *logits;
    rl_tok_stream *ts;
    rl_stopstr ss;
    double t_last;
    uint64_t order;
} sslot;

struct rl_sched {
    rl_engine *eng;
    const rl_tok *tok;
    int32_t stop_ids[32];
    int n_stop_ids;
    rl_sched_opts o;
    rl_metrics *mx;
    int V, n_valid;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rl_req **q;
    int q_head, q_n;
    bool stopping;
    double deadline;
    sslot *sl;
    rl_pcache pc;
    rl_span *spans;
    int *span_slot;
    uint64_t admitted;
    rl_admission adm; /* the KV page budget's promises (admission.h) */
};

static bool is_stop_id(const rl_sched *S, int id) {
    for (int i = 0; i < S->n_stop_ids; i++)
        if (S->stop_ids[i] == id) return true;
    return false;
}

static void pc_metrics(rl_sched *S) {
    pthread_mutex_lock(&S->mx->mu);
    S->mx->pc_hits = S->pc.hits;
    S->mx->pc_misses = S->pc.misses;
    S->mx->pc_evictions = S->pc.evictions;
    S->mx->pc_entries = S->pc.n;
    S->mx->pc_bytes = S->pc.bytes;
    pthread_mutex_unlock(&S->mx->mu);
}

/* Ends a request; reason RL_FIN_*. flush: emit what the decoder and the
 * stop-string matcher still hold. */
static void finish_req(rl_sched *S, rl_req *r, int reason, const char *msg) {
    pthread_mutex_lock(&r->mu);
    r->finish = reason;
    if (msg) snprintf(r->err, sizeof r->err, "%s", msg);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    static const int outcome[] = {RL_OUT_ERROR, RL_OUT_STOP, RL_OUT_LENGTH, RL_OUT_CANCELLED, RL_OUT_ERROR};
    rl_metrics_outcome(S->mx, outcome[reason]);
    rl_req_release(r);
}

static void finish_slot(rl_sched *S, sslot *sl, int reason, const char *msg, bool flush) {
    rl_req *r = sl->r;
    if (flush && sl->ts) {
        const char *p;
        size_t n;
        rl_err e = {0};
        if (rl_tok_stream_finish(sl->ts, &p, &n, &e) == 0 && n) {
            const char *o;
            size_t on;
            int hit = rl_stopstr_feed(&sl->ss, p, n, &o, &on);
            if (on) publish(r, o, on, NULL, false);
            if (hit == 1) reason = RL_FIN_STOP;
        }
        const char *o;
        size_t on;
        rl_stopstr_finish(&sl->ss, &o, &on);
        if (on) publish(r, o, on, NULL, false);
    }
    if (sl->smp_ok) rl_sampler_free(&sl->smp);
    sl->smp_ok = false;
    if (sl->ts) rl_tok_stream_free(sl->ts);
    sl->ts = NULL;
    rl_stopstr_free(&sl->ss);
    rl_slot_reset(&sl->s, &S->eng->pool);
    sl->r = NULL;
    rl_admission_release(&S->adm, (int)(sl - S->sl));
    finish_req(S, r, reason, msg);
}

static void admit(rl_sched *S, sslot *sl, rl_req *r) {
    rl_err e = {0};
    sl->r = r;
    sl->decoding = 0;
    sl->order = ++S->admitted;
    sl->t_last = 0;
    rl_admission_promise(&S->adm, (int)(sl - S->sl), &sl->s, r);
    rl_slot_reset(&sl->s, &S->eng->pool);
    int cached = 0;
    if (r->gp.cache_prompt && S->pc.max_bytes) {
        const rl_pcache_entry *x = rl_pcache_lookup(&S->pc, r->prompt, r->n_prompt - 1);
        if (x && rl_slot_fork(&sl->s, &x->snap, &S->eng->pool, &e) == 0) {
            memcpy(sl->held, x->toks, sizeof(int32_t) * (size_t)x->n);
            cached = x->n;
        } else if (x) {
            rl_slot_reset(&sl->s, &S->eng->pool);
        }
        pc_metrics(S);
    }
    sl->smp_ok = rl_sampler_init(&sl->smp, &r->gp.sp, S->V) == 0;
    sl->ts = rl_tok_stream_new(S->tok, true);
    int ss = rl_stopstr_init(&sl->ss, r->gp.stop, r->gp.n_stop);
    pthread_mutex_lock(&S->mx->mu);
    S->mx->prompt_tokens += (uint64_t)r->n_prompt;
    S->mx->cached_tokens += (uint64_t)cached;
    pthread_mutex_unlock(&S->mx->mu);
    if (!sl->smp_ok || !sl->ts || ss) {
        finish_slot(S, sl, RL_FIN_ERROR, "out of memory", false);
        return;
    }
    for (int i = 0; i < r->n_prompt; i++) rl_sampler_accept(&sl->smp, r->prompt[i]);
    pthread_mutex_lock(&r->mu);
    r->n_cached = cached;
    r->seed = rl_sampler_seed(&sl->smp);
    pthread_mutex_unlock(&r->mu);
}

/* The n largest logits among ids < n_valid (ties: lower id first). */
static int top_ids(const float *l, int n_valid, int n, int32_t *ids) {
    int k = 0;
    if (n <= 0) return 0;
    for (int i = 0; i < n_valid; i++) {
        if (k == n && !(l[i] > l[ids[k - 1]])) continue;
        int j = k < n ? k++ : k - 1;
        while (j > 0 && l[i] > l[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    return k;
}

/* The slot's logits are ready: sample, publish, decide whether it goes on. */
static void on_logits(rl_sched *S, sslot *sl) {
    rl_req *r = sl->r;
    int tok = rl_sampler_sample(&sl->smp, sl->logits, S->n_valid);
    rl_sampler_accept(&sl->smp, tok);
    double t = now_s();
    pthread_mutex_lock(&S->mx->mu);
    S->mx->generated_tokens++;
    if (sl->t_last == 0) rl_hist_add(&S->mx->ttft, t - r->t_arrival);
    else rl_hist_add(&S->mx->itl, t - sl->t_last);
    pthread_mutex_unlock(&S->mx->mu);
    sl->t_last = t;
    bool stop = !r->gp.ignore_eos && is_stop_id(S, tok);
    if (stop) {
        publish(r, NULL, 0, NULL, true);
        finish_slot(S, sl, RL_FIN_STOP, NULL, true);
        return;
    }
    rl_tokrec rec, *prec = NULL;
    if (r->gp.logprobs) {
        rec.id = tok;
        rec.lp = rl_logprob(sl->logits, S->V, tok);
        rec.n_top = top_ids(sl->logits, S->n_valid, r->gp.top_logprobs, rec.top_id);
        for (int i = 0; i < rec.n_top; i++) rec.top_lp[i] = rl_logprob(sl->logits, S->V, rec.top_id[i]);
        prec = &rec;
    }
    const char *piece = "", *o = "";
    size_t n = 0, on = 0;
    rl_err e = {0};
    int hit = 0;
    if (rl_tok_stream_feed(sl->ts, tok, &piece, &n, &e) == 0) hit = rl_stopstr_feed(&sl->ss, piece, n, &o, &on);
    publish(r, o, on, prec, true);
    if (hit == 1) {
        finish_slot(S, sl, RL_FIN_STOP, NULL, false);
        return;
    }
    if ((r->gp.max_tokens >= 0 && r->n_gen >= r->gp.max_tokens) || sl->s.pos >= S->o.n_ctx) {
        finish_slot(S, sl, RL_FIN_LENGTH, NULL, true);
        return;
    }
    sl->last_tok = tok;
    sl->decoding = 1;
}

static rl_req *q_pop(rl_sched *S);

static int busy_slots(const rl_sched *S) {
    int busy = 0;
    for (int i = 0; i < S->o.n_slots; i++) busy += S->sl[i].r != NULL;
    return busy;
}

int rl_sched_kv_check(const rl_sched *S, int n_prompt, int max_tokens, char *msg, size_t len) {
    return rl_admission_check(&S->adm, n_prompt, max_tokens, msg, len);
}

bool rl_sched_prefix_cache_on(const rl_sched *S) { return S->o.cache_bytes > 0; }

/* Moves waiting requests into free slots, in arrival order, while their KV
 * pages fit; the head of the queue waits for pages (no overtaking, so a
 * large request cannot starve). */
static void admit_waiting(rl_sched *S) {
    for (int i = 0; i < S->o.n_slots; i++) {
        if (S->sl[i].r) continue;
        /* only this thread pops, so the head stays put while we decide */
        pthread_mutex_lock(&S->mu);
        rl_req *r = S->q_n ? S->q[S->q_head] : NULL;
        pthread_mutex_unlock(&S->mu);
        if (!r) return;
        bool cancelled = atomic_load(&r->cancel);
        int fit = cancelled ? 0 : rl_admission_try(&S->adm, r);
        if (!cancelled && fit == 0) return; /* the head waits for pages */
        pthread_mutex_lock(&S->mu);
        q_pop(S);
        pthread_mutex_unlock(&S->mu);
        if (cancelled) finish_req(S, r, RL_FIN_CANCELLED, "cancelled");
        else if (fit < 0) finish_req(S, r, RL_FIN_ERROR, "the request needs more KV pages than the server's budget");
        else admit(S, &S->sl[i], r);
        if (!S->sl[i].r) i--; /* the slot is still free */
    }
}

static void update_gauges(rl_sched *S) {
    int busy = busy_slots(S);
    pthread_mutex_lock(&S->mx->mu);
    S->mx->slots_busy = busy;
    S->mx->queue_depth = S->q_n;
    pthread_mutex_unlock(&S->mx->mu);
}

static rl_req *q_pop(rl_sched *S) {
    rl_req *r = S->q[S->q_head];
    S->q_head = (S->q_head + 1) % S->o.queue_cap;
    S->q_n--;
    return r;
}

static int chunk_floor(int n) { return n - n % RL_CHUNK; }

/* Where the slot's prefill should pause next so that the step ends on a
 * chunk boundary worth a snapshot (snapshots are taken only after a step
 * that leaves the slot on a boundary): the last boundary of the system part,
 * which other conversations share, then the last boundary of the prompt,
 * which the next turn of this conversation extends. 0: no pause ahead. A
 * pause never changes the result (DESIGN.md §2.4: any split of a sequence
 * into steps gives the same logits); it costs one more step. */
static int snapshot_cut(const rl_sched *S, const sslot *sl) {
    const rl_req *r = sl->r;
    if (!S->pc.max_bytes || !r->gp.cache_prompt) return 0;
    int sys = r->n_sys > 0 && r->n_sys < r->n_prompt ? r->n_sys : 0;
    int cuts[2] = {chunk_floor(sys), chunk_floor(r->n_prompt)};
    for (int i = 0; i < 2; i++)
        /* a boundary at the prompt's end needs no pause: the final piece
         * ends there and is snapshotted like any other step */
        if (cuts[i] > sl->s.pos && cuts[i] < r->n_prompt) return cuts[i];
    return 0;
}

static int cmp_order(const void *a, const void *b) {
    const sslot *x = *(sslot *const *)a, *y = *(sslot *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void *run(void *arg) {
    rl_sched *S = arg;
    rl_err e;
    /* OpenMP's thread count is per thread: the -t that the main thread set
     * does not reach this one, whose parallel loops in rl_step would run
     * with one thread per core (and spin against the others on a busy
     * machine) */
    omp_set_num_threads(rl_get_threads());
    sslot **pre = malloc(sizeof(sslot *) * (size_t)S->o.n_slots);
    for (;;) {
        pthread_mutex_lock(&S->mu);
        bool quit = false;
        for (;;) {
            bool late = S->stopping && now_s() > S->deadline;
            if (late) { /* grace period over: cancel everything */
                while (S->q_n) finish_req(S, q_pop(S), RL_FIN_CANCELLED, "server shutting down");
                for (int i = 0; i < S->o.n_slots; i++)
                    if (S->sl[i].r) atomic_store(&S->sl[i].r->cancel, true);
            }
            int busy = busy_slots(S);
            if (busy || (S->q_n && busy < S->o.n_slots)) break;
            if (S->stopping && !S->q_n) { quit = true; break; }
            if (S->stopping) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += 50 * 1000000;
                if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
                pthread_cond_timedwait(&S->cv, &S->mu, &ts);
            } else {
                pthread_cond_wait(&S->cv, &S->mu);
            }
        }
        if (quit) {
            pthread_mutex_unlock(&S->mu);
            break;
        }
        pthread_mutex_unlock(&S->mu);
        admit_waiting(S);
        pthread_mutex_lock(&S->mu);
        update_gauges(S);
        pthread_mutex_unlock(&S->mu);

        /* cancellations (client gone, or shutdown) */
        for (int i = 0; i < S->o.n_slots; i++)
            if (S->sl[i].r && atomic_load(&S->sl[i].r->cancel))
                finish_slot(S, &S->sl[i], RL_FIN_CANCELLED, "cancelled", false);

        /* the step: decode tokens first, then prefill pieces in arrival order */
        int ns = 0, budget = S->o.batch_tokens, n_pre = 0;
        rl_kv_plan plan = {0};
        for (int i = 0; i < S->o.n_slots; i++) {
            sslot *sl = &S->sl[i];
            if (!sl->r) continue;
            if (!sl->decoding) {
                pre[n_pre++] = sl;
                continue;
            }
            if (!rl_admission_may_write(&S->adm, i, 1, &plan)) { /* out of KV pages */
                finish_slot(S, sl, RL_FIN_LENGTH, NULL, true);
                continue;
            }
            S->spans[ns] = (rl_span){&sl->s, &sl->last_tok, 1, sl->s.pos, RL_LOGITS_LAST, sl->logits};
            S->span_slot[ns++] = i;
            budget--;
        }
        qsort(pre, (size_t)n_pre, sizeof *pre, cmp_order);
        for (int k = 0; k < n_pre && budget > 0; k++) {
            sslot *sl = pre[k];
            int pos = sl->s.pos, rem = sl->r->n_prompt - pos;
            int n = rem < budget ? rem : budget;
            int cut = snapshot_cut(S, sl);
            if (cut && cut - pos < n) n = cut - pos;
            if (n < rem) { /* end non-final pieces on a chunk boundary (prefix snapshots) */
                int end = pos + n, al = end - end % RL_CHUNK;
                if (al > pos) n = al - pos;
            }
            if (!rl_admission_may_write(&S->adm, (int)(sl - S->sl), n, &plan)) { /* cannot happen: within the promise */
                finish_slot(S, sl, RL_FIN_LENGTH, NULL, true);
                continue;
            }
            S->spans[ns] = (rl_span){&sl->s, sl->r->prompt + pos, n, pos,
                                     n == rem ? RL_LOGITS_LAST : RL_LOGITS_NONE, sl->logits};
            S->span_slot[ns++] = (int)(sl - S->sl);
            budget -= n;
        }
        if (ns == 0) {
            rl_admission_gauges(&S->adm);
            continue;
        }
        int tokens = 0;
        for (int k = 0; k < ns; k++) tokens += S->spans[k].n;
        e.code = 0;
        e.msg[0] = 0;
        if (rl_step(S->eng, S->spans, ns, &e)) {
            for (int k = 0; k < ns; k++) finish_slot(S, &S->sl[S->span_slot[k]], RL_FIN_ERROR, e.msg, false);
            continue;
        }
        pthread_mutex_lock(&S->mx->mu);
        S->mx->steps++;
        S->mx->step_tokens += (uint64_t)tokens;
        pthread_mutex_unlock(&S->mx->mu);
        for (int k = 0; k < ns; k++) {
            sslot *sl = &S->sl[S->span_slot[k]];
            const rl_span *sp = &S->spans[k];
            memcpy(sl->held + sp->first_pos, sp->tokens, sizeof(int32_t) * (size_t)sp->n);
            if (S->pc.max_bytes && sl->r->gp.cache_prompt && sl->s.pos % RL_CHUNK == 0) {
                rl_err pe = {0};
                rl_pcache_insert(&S->pc, sl->held, &sl->s, &pe);
                pc_metrics(S);
            }
            if (sp->want == RL_LOGITS_LAST) on_logits(S, sl);
        }
        rl_admission_gauges(&S->adm);
        pthread_mutex_lock(&S->mu);
        update_gauges(S); /* requests that just finished free their slots */
        pthread_mutex_unlock(&S->mu);
    }
    free(pre);
    return NULL;
}

int rl_sched_start(rl_engine *eng, const rl_tok *tok, const int32_t *stop_ids, int n_stop_ids,
                   const rl_sched_opts *o, rl_metrics *mx, rl_sched **out, rl_err *e) {
    if (o->n_slots < 1 || o->batch_tokens < o->n_slots || o->queue_cap < 1 || o->n_ctx < 2)
        return rl_errf(e, RL_E_ARG, "scheduler: need slots >= 1, batch tokens >= slots, queue >= 1, context >= 2");
    rl_sched *S = calloc(1, sizeof *S);
    if (!S) return rl_errf(e, RL_E_NOMEM, "out of memory");
    S->eng = eng;
    S->tok = tok;
    S->n_stop_ids = n_stop_ids < 32 ? n_stop_ids : 32;
    memcpy(S->stop_ids, stop_ids, sizeof(int32_t) * (size_t)S->n_stop_ids);
    S->o = *o;
    S->mx = mx;
    S->V = eng->m->cfg.vocab_size;
    S->n_valid = rl_tok_vocab_size(tok) < S->V ? rl_tok_vocab_size(tok) : S->V;
    eng->pool.max_pages = o->kv_pages > 0 ? o->kv_pages : 0;
    pthread_mutex_init(&S->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&S->cv, &ca);
    pthread_condattr_destroy(&ca);
    rl_pcache_init(&S->pc, eng, o->cache_bytes);
    S->q = calloc((size_t)o->queue_cap, sizeof *S->q);
    S->sl = calloc((size_t)o->n_slots, sizeof *S->sl);
    S->spans = calloc((size_t)o->n_slots, sizeof *S->spans);
    S->span_slot = calloc((size_t)o->n_slots, sizeof *S->span_slot);
    int rc = (!S->q || !S->sl || !S->spans || !S->span_slot) ? rl_errf(e, RL_E_NOMEM, "out of memory") : 0;
    if (!rc) rc = rl_admission_init(&S->adm, &eng->pool, &S->pc, mx, o->n_ctx, o->n_slots, e);
    for (int i = 0; !rc && i < o->n_slots; i++) {
        rc = rl_slot_init(&S->sl[i].s, eng->m, e);
        if (rc) break;
        S->sl[i].held = malloc(sizeof(int32_t) * (size_t)o->n_ctx);
        S->sl[i].logits = malloc(sizeof(float) * (size_t)S->V);
        if (!S->sl[i].held || !S->sl[i].logits) rc = rl_errf(e, RL_E_NOMEM, "out of memory (slots)");
    }
    if (!rc && pthread_create(&S->th, NULL, run, S)) rc = rl_errf(e, RL_E_NOMEM, "cannot start the scheduler thread");
    if (rc) {
        S->o.n_slots = o->n_slots;
        for (int i = 0; S->sl && i < o->n_slots; i++) {
            rl_slot_free(&S->sl[i].s, &eng->pool);
            free(S->sl[i].held);
            free(S->sl[i].logits);
        }
        rl_admission_free(&S->adm);
        free(S->q); free(S->sl); free(S->spans); free(S->span_slot);
        free(S);
        return rc;
    }
    pthread_mutex_lock(&mx->mu);
    mx->slots_total = o->n_slots;
    pthread_mutex_unlock(&mx->mu);
    *out = S;
    return 0;
}

int rl_sched_submit(rl_sched *S, rl_req *r, rl_err *e) {
    pthread_mutex_lock(&S->mu);
    int rc = 0;
    if (S->stopping) rc = rl_errf(e, RL_E_ARG, "the server is shutting down");
    else if (S->q_n == S->o.queue_cap)
        rc = rl_errf(e, RL_E_CAPACITY, "too many requests waiting (queue of %d is full); retry later", S->o.queue_cap);
    if (!rc) {
        pthread_mutex_lock(&r->mu);
        r->refs++;
        pthread_mutex_unlock(&r->mu);
        S->q[(S->q_head + S->q_n) % S->o.queue_cap] = r;
        S->q_n++;
        update_gauges(S);
        pthread_cond_signal(&S->cv);
    }
    pthread_mutex_unlock(&S->mu);
    return rc;
}

void rl_sched_stop(rl_sched *S, double grace_s) {
    pthread_mutex_lock(&S->mu);
    S->stopping = true;
    S->deadline = now_s() + grace_s;
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
    pthread_join(S->th, NULL);
    for (int i = 0; i < S->o.n_slots; i++) {
        sslot *sl = &S->sl[i];
        if (sl->r) finish_slot(S, sl, RL_FIN_CANCELLED, "server shutting down", false);
        rl_slot_free(&sl->s, &S->eng->pool);
        free(sl->held);
        free(sl->logits);
    }
    while (S->q_n) finish_req(S, q_pop(S), RL_FIN_CANCELLED, "server shutting down");
    rl_pcache_free(&S->pc);
    rl_admission_free(&S->adm);
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv);
    free(S->q); free(S->sl); free(S->spans); free(S->span_slot);
    free(S);
}
