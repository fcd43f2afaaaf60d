#include "apps/app_engine.h"

#include "engine/logprob.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifdef RL_HAVE_CUDA
#include "engine/step_cuda.h"
#endif

int app_device_check(const app_model_opts *o) {
    if (o->device != APP_CUDA) return 0;
#ifndef RL_HAVE_CUDA
    return app_fail("--device cuda: this ringlm was built without the CUDA backend (CMake found "
                    "no nvcc; install the CUDA toolkit and rebuild, or configure with -DRL_CUDA=ON)");
#else
    if (!o->cuda_ok) return app_fail("--device cuda is supported by generate, logits, bench and info");
    if (o->ref_ops) return app_fail("--ref-ops selects CPU kernels: not with --device cuda");
    rl_err e = {0};
    if (!rl_cuda_available(&e)) return app_fail("--device cuda: %s", e.msg);
    return 0;
#endif
}

void app_device_describe(const app_model_opts *o, char *buf, size_t n) {
#ifdef RL_HAVE_CUDA
    if (o->device == APP_CUDA) {
        char d[512];
        rl_cuda_describe(0, d, sizeof d);
        snprintf(buf, n, "cuda: %s%s", d, o->deterministic ? ", deterministic GEMMs" : "");
        return;
    }
#endif
    snprintf(buf, n, "cpu (%s, %d threads)", o->ref_ops ? "ref" : rl_ops_cpu_isa(),
             omp_get_max_threads());
}

int app_engine_init(app_engine *g, rl_model *m, const app_model_opts *o, rl_err *e) {
    memset(g, 0, sizeof *g);
    g->m = m;
    g->device = o->device;
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) {
        rl_cuda_opts co = {.deterministic = o->deterministic};
        return rl_cuda_engine_init(&g->gpu, m, &co, e);
    }
#endif
    return rl_engine_init(&g->cpu, m, 0, e);
}

void app_engine_free(app_engine *g) {
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) {
        rl_cuda_engine_free(g->gpu);
        g->gpu = NULL;
        return;
    }
#endif
    rl_engine_free(&g->cpu);
}

void app_engine_set_max_ctx(app_engine *g, int max_ctx) {
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) {
        rl_cuda_set_max_ctx(g->gpu, max_ctx);
        return;
    }
#endif
    g->cpu.max_ctx = max_ctx;
}

int app_seq_init(app_engine *g, app_seq *s, rl_err *e) {
    memset(s, 0, sizeof *s);
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) return rl_cuda_seq_new(g->gpu, &s->gpu, e);
#endif
    return rl_slot_init(&s->cpu, g->m, e);
}

void app_seq_free(app_engine *g, app_seq *s) {
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) {
        rl_cuda_seq_free(s->gpu);
        s->gpu = NULL;
        return;
    }
#endif
    rl_slot_free(&s->cpu, &g->cpu.pool);
}

int app_seq_pos(const app_engine *g, const app_seq *s) {
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) return rl_cuda_seq_pos(s->gpu);
#endif
    (void)g;
    return s->cpu.pos;
}

int app_seq_fork(app_engine *g, app_seq *dst, const app_seq *src, rl_err *e) {
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) return rl_cuda_seq_fork(dst->gpu, src->gpu, e);
#endif
    return rl_slot_fork(&dst->cpu, &src->cpu, &g->cpu.pool, e);
}

int app_step(app_engine *g, const app_span *spans, int n, rl_err *e) {
    if (n <= 0 || n > 4096) return rl_errf(e, RL_E_ARG, "app_step: %d spans", n);
#ifdef RL_HAVE_CUDA
    if (g->device == APP_CUDA) {
        rl_cuda_span *cs = malloc(sizeof *cs * (size_t)n);
        if (!cs) return rl_errf(e, RL_E_NOMEM, "out of memory");
        for (int i = 0; i < n; i++)
            cs[i] = (rl_cuda_span){spans[i].seq->gpu, spans[i].tokens, spans[i].n,
                                   spans[i].first_pos, spans[i].want, spans[i].logits,
                                   spans[i].sample};
        int rc = rl_cuda_step(g->gpu, cs, n, e);
        free(cs);
        return rc;
    }
#endif
    for (int i = 0; i < n; i++)
        if (spans[i].sample && (spans[i].want != RL_LOGITS_LAST || !spans[i].logits))
            return rl_errf(e, RL_E_ARG, "app_step: span %d samples without a logits row", i);
    rl_span *cs = malloc(sizeof *cs * (size_t)n);
    if (!cs) return rl_errf(e, RL_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        cs[i] = (rl_span){&spans[i].seq->cpu, spans[i].tokens, spans[i].n, spans[i].first_pos,
                          spans[i].want, spans[i].logits};
    int rc = rl_step(&g->cpu, cs, n, e);
    free(cs);
    for (int i = 0; !rc && i < n; i++) {
        rl_sample_req *r = spans[i].sample;
        if (!r) continue;
        r->token = rl_sampler_sample(r->smp, spans[i].logits, r->n_valid);
        r->logprob = rl_logprob(spans[i].logits, g->m->cfg.vocab_size, r->token);
    }
    return rc;
}
