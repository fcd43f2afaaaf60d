/* Server metrics, rendered in the Prometheus text format (GET /metrics). */
#ifndef RL_SERVER_METRICS_H
#define RL_SERVER_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum {
    RL_OUT_STOP, RL_OUT_LENGTH, RL_OUT_CANCELLED, RL_OUT_ERROR, /* finished requests */
    RL_OUT_BAD_REQUEST, RL_OUT_QUEUE_FULL, RL_OUT_UNAVAILABLE, /* refused before work */
    RL_OUT_COUNT
};

#define RL_HIST_BUCKETS 14

typedef struct rl_hist {
    uint64_t count[RL_HIST_BUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t n;
} rl_hist;

typedef struct rl_metrics {
    pthread_mutex_t mu;
    uint64_t requests[RL_OUT_COUNT];
    uint64_t prompt_tokens, generated_tokens, cached_tokens;
    uint64_t steps, step_tokens;
    uint64_t http_requests;
    int queue_depth, slots_busy, slots_total;
    uint64_t pc_hits, pc_misses, pc_evictions;
    int pc_entries;
    size_t pc_bytes;
    /* KV pages (kvbudget.h): budget, held by sequences or snapshots, free,
     * promised to running requests, held by snapshots only (evictable) */
    int kv_total, kv_used, kv_free, kv_promised, kv_cache_only;
    uint64_t kv_deferred, kv_truncated;
    rl_hist ttft, itl;
} rl_metrics;

void rl_metrics_init(rl_metrics *m);
void rl_metrics_free(rl_metrics *m);
void rl_metrics_outcome(rl_metrics *m, int outcome);
void rl_hist_add(rl_hist *h, double seconds); /* with m->mu held */
/* malloc'd NUL-terminated text. */
char *rl_metrics_render(rl_metrics *m);

#endif
