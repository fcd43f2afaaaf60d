#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bounds[RL_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10,  30};

void rl_metrics_init(rl_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void rl_metrics_free(rl_metrics *m) { pthread_mutex_destroy(&m->mu); }

void rl_metrics_outcome(rl_metrics *m, int outcome) {
    pthread_mutex_lock(&m->mu);
    m->requests[outcome]++;
    pthread_mutex_unlock(&m->mu);
}

void rl_hist_add(rl_hist *h, double s) {
    int b = 0;
    while (b < RL_HIST_BUCKETS && s > bounds[b]) b++;
    h->count[b]++;
    h->sum += s;
    h->n++;
}

typedef struct sb {
    char *p;
    size_t n, cap;
    int oom;
} sb;

static void put(sb *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
}

static void hist(sb *b, const char *name, const char *help, const rl_hist *h) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < RL_HIST_BUCKETS; i++) {
        cum += h->count[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->count[RL_HIST_BUCKETS];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum,
        name, h->sum, name, (unsigned long long)h->n);
}

static void counter(sb *b, const char *name, const char *help, uint64_t v) {
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void gauge(sb *b, const char *name, const char *help, double v) {
    put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

char *rl_metrics_render(rl_metrics *m) {
    static const char *out_names[RL_OUT_COUNT] = {"stop", "length", "cancelled", "error",
                                                  "bad_request", "queue_full", "unavailable"};
    sb b = {0};
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP ringlm_requests_total Completion requests by outcome.\n"
            "# TYPE ringlm_requests_total counter\n");
    for (int i = 0; i < RL_OUT_COUNT; i++)
        put(&b, "ringlm_requests_total{outcome=\"%s\"} %llu\n", out_names[i],
            (unsigned long long)m->requests[i]);
    counter(&b, "ringlm_http_requests_total", "HTTP requests received.", m->http_requests);
    counter(&b, "ringlm_prompt_tokens_total", "Prompt tokens of admitted requests.", m->prompt_tokens);
    counter(&b, "ringlm_prompt_tokens_cached_total", "Prompt tokens taken from the prefix cache (prefill skipped).",
            m->cached_tokens);
    counter(&b, "ringlm_generated_tokens_total", "Sampled tokens.", m->generated_tokens);
    counter(&b, "ringlm_steps_total", "Batched forward steps.", m->steps);
    counter(&b, "ringlm_step_tokens_total", "Tokens computed by the steps.", m->step_tokens);
    gauge(&b, "ringlm_queue_depth", "Requests waiting for a slot.", m->queue_depth);
    gauge(&b, "ringlm_slots_busy", "Slots running a request.", m->slots_busy);
    gauge(&b, "ringlm_slots_total", "Slots (--parallel).", m->slots_total);
    counter(&b, "ringlm_prefix_cache_hits_total", "Admitted requests that started from a cached prefix.", m->pc_hits);
    counter(&b, "ringlm_prefix_cache_misses_total", "Admitted requests with no cached prefix.", m->pc_misses);
    counter(&b, "ringlm_prefix_cache_evictions_total", "Snapshots evicted (LRU).", m->pc_evictions);
    gauge(&b, "ringlm_prefix_cache_entries", "Snapshots held.", m->pc_entries);
    gauge(&b, "ringlm_prefix_cache_bytes", "Bytes held by snapshots.", (double)m->pc_bytes);
    gauge(&b, "ringlm_kv_pages_total", "KV page budget (--kv-pages); 0: unbounded.", m->kv_total);
    gauge(&b, "ringlm_kv_pages_used", "KV pages held by running requests or prefix-cache snapshots.", m->kv_used);
    gauge(&b, "ringlm_kv_pages_free", "KV pages of the budget nobody holds.", m->kv_free);
    gauge(&b, "ringlm_kv_pages_promised", "Free KV pages promised to running requests (prompt + max_tokens).",
          m->kv_promised);
    gauge(&b, "ringlm_kv_pages_cache_only", "KV pages held only by prefix-cache snapshots (evicted first).",
          m->kv_cache_only);
    counter(&b, "ringlm_kv_deferred_requests_total", "Requests that waited in the queue for KV pages.", m->kv_deferred);
    counter(&b, "ringlm_kv_truncated_requests_total",
            "Requests finished early (finish_reason length) because no KV page was left.", m->kv_truncated);
    hist(&b, "ringlm_time_to_first_token_seconds", "From arrival to the first sampled token.", &m->ttft);
    hist(&b, "ringlm_inter_token_latency_seconds", "Between consecutive sampled tokens of a request.", &m->itl);
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
