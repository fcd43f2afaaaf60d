/* The draws that ride on a device step (rl_cuda_span.sample; engine_cuda.h).
 *
 * For every span with a request, rl_sampler_prepare takes the draw from the
 * host sampler (advancing its RNG exactly as rl_sampler_sample would). Draws
 * the device supports (rl_cu_sample_ok) go to one rl_cu_sample launch over
 * the step's logits rows, and only their tokens and log-probabilities come
 * back; the others have their logits row copied and are picked on the host
 * with the same draw (rl_sampler_pick, rl_logprob). Everything is queued on
 * the step's stream and the results are read after it synchronizes; the host
 * buffers are pageable, so a copy into one (a fallback's logits row) returns
 * only once the forward has finished. A step that fails after the launch
 * has still advanced its samplers' RNGs (prepare ran): a retry draws anew. */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_cuda.h"
#include "engine/logprob.h"
#include "ops/cuda/sample_cuda.h"

static int grow_dev(void **p, size_t bytes, rl_err *e) {
    if (*p) cudaFree(*p);
    *p = NULL;
    if (cudaMalloc(p, bytes ? bytes : 16) != cudaSuccess)
        return rl_errf(e, RL_E_NOMEM, "cannot allocate %zu bytes of device memory for sampling",
                       bytes);
    return RL_OK;
}

static int grow_host(void **p, size_t bytes, rl_err *e) {
    void *q = realloc(*p, bytes ? bytes : 16);
    if (!q) return rl_errf(e, RL_E_NOMEM, "out of memory (sampling buffers)");
    *p = q;
    return RL_OK;
}

void rl_cu_samples_free(cu_sampling *s) {
    void *dev[] = {s->d_args, s->d_pen_tok, s->d_pen_cnt, s->d_tok, s->d_lp, s->d_scratch};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i]) cudaFree(dev[i]);
    free(s->h_args);
    free(s->h_pen_tok);
    free(s->h_pen_cnt);
    free(s->h_tok);
    free(s->h_lp);
    free(s->h_logits);
    free(s->draws);
    free(s->kind);
    memset(s, 0, sizeof *s);
}

/* room for `rows` draws, `pen` penalty entries, `spans` spans and the logits
 * rows of `host` draws that stay on the host (none in the usual case) */
static int reserve(cu_sampling *s, int rows, int pen, int spans, int host, size_t V, rl_err *e) {
    /* each capacity is cleared before its buffers grow and set after all of them
     * did: a failed cudaMalloc leaves a NULL buffer, which a stale capacity would
     * let a later, smaller step hand to the kernel */
    if (rows > s->cap_rows) {
        int c = rows > 2 * s->cap_rows ? rows : 2 * s->cap_rows;
        s->cap_rows = 0;
        RL_TRY(grow_dev((void **)&s->d_args, sizeof(rl_cu_sample_args) * (size_t)c, e));
        RL_TRY(grow_dev((void **)&s->d_tok, sizeof(int) * (size_t)c, e));
        RL_TRY(grow_dev((void **)&s->d_lp, sizeof(float) * (size_t)c, e));
        RL_TRY(grow_host((void **)&s->h_args, sizeof(rl_cu_sample_args) * (size_t)c, e));
        RL_TRY(grow_host((void **)&s->h_tok, sizeof(int) * (size_t)c, e));
        RL_TRY(grow_host((void **)&s->h_lp, sizeof(float) * (size_t)c, e));
        RL_TRY(grow_host((void **)&s->draws, sizeof(rl_sampler_draw) * (size_t)c, e));
        s->cap_rows = c;
    }
    if (pen > s->cap_pen) {
        int c = pen > 2 * s->cap_pen ? pen : 2 * s->cap_pen;
        s->cap_pen = 0;
        RL_TRY(grow_dev((void **)&s->d_pen_tok, sizeof(int) * (size_t)c, e));
        RL_TRY(grow_dev((void **)&s->d_pen_cnt, sizeof(int) * (size_t)c, e));
        RL_TRY(grow_host((void **)&s->h_pen_tok, sizeof(int) * (size_t)c, e));
        RL_TRY(grow_host((void **)&s->h_pen_cnt, sizeof(int) * (size_t)c, e));
        s->cap_pen = c;
    }
    if (spans > s->cap_spans) {
        RL_TRY(grow_host((void **)&s->kind, sizeof(int) * (size_t)spans, e));
        s->cap_spans = spans;
    }
    if (host > s->cap_host) {
        RL_TRY(grow_host((void **)&s->h_logits, sizeof(float) * (size_t)host * V, e));
        s->cap_host = host;
    }
    return RL_OK;
}

/* the device's view of a prepared draw (n_valid clamped to V) */
static rl_cu_sample_args args_of(const rl_sampler_draw *d, int n_valid, int V, int pen_off,
                                 int row) {
    return (rl_cu_sample_args){
        .temperature = d->temperature, .top_p = d->top_p, .min_p = d->min_p,
        .repeat_penalty = d->repeat_penalty, .presence_penalty = d->presence_penalty,
        .frequency_penalty = d->frequency_penalty, .top_k = d->top_k,
        .n_valid = n_valid < V ? n_valid : V, .penalize = d->penalize,
        .n_pen = d->penalize ? d->n_pen : 0, .pen_off = pen_off, .row = row, .u01 = d->u01};
}

int rl_cu_samples_launch(rl_cuda_engine *eng, const rl_cuda_span *spans, int n, rl_err *e) {
    cu_sampling *s = &eng->smp;
    size_t V = (size_t)eng->m->cfg.vocab_size;
    int nreq = 0;
    for (int i = 0; i < n; i++) nreq += spans[i].sample != NULL;
    if (!nreq) return RL_OK;
    /* prepare every draw first: the sizes of the penalty lists and of the host
     * fallback follow from the draws */
    RL_TRY(reserve(s, nreq, 0, n, 0, V, e));
    int pen = 0, host = 0, q = 0;
    for (int i = 0; i < n; i++) {
        if (!spans[i].sample) continue;
        rl_sampler_draw *d = &s->draws[q++];
        rl_sampler_prepare(spans[i].sample->smp, d);
        rl_cu_sample_args a = args_of(d, spans[i].sample->n_valid, (int)V, 0, 0);
        pen += a.n_pen;
        host += !rl_cu_sample_ok(&a);
    }
    RL_TRY(reserve(s, nreq, pen, n, host, V, e));
    /* the step's logits rows: spans in order, n rows for ALL, 1 for LAST */
    int row = 0, nd = 0, nh = 0, np = 0, penalized = 0;
    q = 0;
    for (int i = 0; i < n; i++) {
        const rl_cuda_span *sp = &spans[i];
        int rows = sp->want == RL_LOGITS_ALL ? sp->n : sp->want == RL_LOGITS_LAST;
        s->kind[i] = 0;
        if (sp->sample) {
            const rl_sampler_draw *d = &s->draws[q];
            rl_cu_sample_args a = args_of(d, sp->sample->n_valid, (int)V, np, row);
            if (rl_cu_sample_ok(&a)) {
                memcpy(s->h_pen_tok + np, d->pen_tok, sizeof(int) * (size_t)a.n_pen);
                memcpy(s->h_pen_cnt + np, d->pen_cnt, sizeof(int) * (size_t)a.n_pen);
                np += a.n_pen;
                penalized += a.penalize && a.n_pen > 0;
                s->h_args[nd++] = a;
                s->kind[i] = 1;
            } else {
                s->kind[i] = 2;
                CU_TRY(cudaMemcpyAsync(s->h_logits + (size_t)nh++ * V,
                                       eng->w.LOGITS + (size_t)row * V, sizeof(float) * V,
                                       cudaMemcpyDeviceToHost, eng->st));
            }
            q++;
        }
        row += rows;
    }
    if (!nd) return RL_OK;
    if (penalized && (size_t)nd * V > s->scratch_floats) {
        s->scratch_floats = 0; /* as in reserve: no stale capacity after a failure */
        RL_TRY(grow_dev((void **)&s->d_scratch, sizeof(float) * (size_t)nd * V, e));
        s->scratch_floats = (size_t)nd * V;
    }
    CU_TRY(cudaMemcpyAsync(s->d_args, s->h_args, sizeof(rl_cu_sample_args) * (size_t)nd,
                           cudaMemcpyHostToDevice, eng->st));
    if (np) {
        CU_TRY(cudaMemcpyAsync(s->d_pen_tok, s->h_pen_tok, sizeof(int) * (size_t)np,
                               cudaMemcpyHostToDevice, eng->st));
        CU_TRY(cudaMemcpyAsync(s->d_pen_cnt, s->h_pen_cnt, sizeof(int) * (size_t)np,
                               cudaMemcpyHostToDevice, eng->st));
    }
    CU_TRY(rl_cu_sample(eng->w.LOGITS, (int)V, nd, s->d_args, s->d_pen_tok, s->d_pen_cnt,
                        s->d_scratch, s->d_tok, s->d_lp, eng->st));
    CU_TRY(cudaMemcpyAsync(s->h_tok, s->d_tok, sizeof(int) * (size_t)nd, cudaMemcpyDeviceToHost,
                           eng->st));
    CU_TRY(cudaMemcpyAsync(s->h_lp, s->d_lp, sizeof(float) * (size_t)nd, cudaMemcpyDeviceToHost,
                           eng->st));
    return RL_OK;
}

void rl_cu_samples_finish(rl_cuda_engine *eng, const rl_cuda_span *spans, int n) {
    cu_sampling *s = &eng->smp;
    int V = eng->m->cfg.vocab_size, nd = 0, nh = 0, q = 0;
    for (int i = 0; i < n; i++) {
        rl_sample_req *r = spans[i].sample;
        if (!r) continue;
        if (s->kind[i] == 1) {
            r->token = s->h_tok[nd];
            r->logprob = s->h_lp[nd];
            nd++;
        } else {
            const float *l = s->h_logits + (size_t)nh++ * V;
            r->token = rl_sampler_pick(r->smp, &s->draws[q], l, r->n_valid);
            r->logprob = rl_logprob(l, V, r->token);
        }
        q++;
    }
}
