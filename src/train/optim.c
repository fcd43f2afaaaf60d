#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool rl_param_decays(const char *name, int ndim) {
    if (ndim < 2) return false;
    return !strstr(name, "norm") && !strstr(name, "bias");
}

float rl_schedule_lr(const rl_schedule *s, int64_t step) {
    if (step < s->warmup) return (float)((double)s->lr * (double)(step + 1) / (double)s->warmup);
    if (step >= s->total) return s->lr_min;
    double x = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    return (float)((double)s->lr_min + ((double)s->lr - (double)s->lr_min) * 0.5 * (1.0 + cos(M_PI * x)));
}

int rl_adamw_init(rl_adamw *o, rl_opt_param *p, int n, const rl_adamw_cfg *c, rl_err *e) {
    memset(o, 0, sizeof *o);
    for (int i = 0; i < n; i++)
        if (p[i].dst && p[i].dtype != RL_F32 && p[i].dtype != RL_BF16 && p[i].dtype != RL_F16)
            return rl_errf(e, RL_E_UNSUPPORTED, "%s: cannot train weights stored as %s (F32, BF16, F16 only)",
                           p[i].name, rl_dtype_name(p[i].dtype));
    o->c = *c;
    o->p = p;
    o->n = n;
    o->m = calloc((size_t)n + 1, sizeof *o->m);
    o->v = calloc((size_t)n + 1, sizeof *o->v);
    if (!o->m || !o->v) goto oom;
    for (int i = 0; i < n; i++) {
        o->m[i] = calloc((size_t)p[i].numel + 1, sizeof(float));
        o->v[i] = calloc((size_t)p[i].numel + 1, sizeof(float));
        if (!o->m[i] || !o->v[i]) goto oom;
    }
    return RL_OK;
oom:
    rl_adamw_free(o);
    return rl_errf(e, RL_E_NOMEM, "out of memory for the optimizer moments");
}

void rl_adamw_free(rl_adamw *o) {
    for (int i = 0; o->m && i < o->n; i++) free(o->m[i]);
    for (int i = 0; o->v && i < o->n; i++) free(o->v[i]);
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

double rl_grad_norm(const rl_opt_param *p, int n) {
    double *part = calloc((size_t)n + 1, sizeof *part);
    if (!part) return NAN;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        if (!p[i].grad) continue;
        double s = 0;
        for (int64_t k = 0; k < p[i].numel; k++) s += (double)p[i].grad[k] * (double)p[i].grad[k];
        part[i] = s;
    }
    double s = 0;
    for (int i = 0; i < n; i++) s += part[i];
    free(part);
    return sqrt(s);
}

/* The master rounded to the stored dtype and widened back. */
static float rounded(rl_dtype dt, float x) {
    switch (dt) {
    case RL_BF16: return rl_bf16_to_f32(rl_f32_to_bf16(x));
    case RL_F16: return rl_f16_to_f32(rl_f32_to_f16(x));
    default: return x;
    }
}

static void store(const rl_opt_param *p, int64_t k0, int64_t k1) {
    if (p->dst_f32)
        for (int64_t k = k0; k < k1; k++) p->dst_f32[k] = rounded(p->dtype, p->master[k]);
    if (!p->dst) return;
    char *d = p->dst; /* tensors inside a safetensors mmap need not be aligned */
    switch (p->dtype) {
    case RL_F32: memcpy(d + 4 * k0, p->master + k0, (size_t)(k1 - k0) * sizeof(float)); break;
    case RL_BF16:
    case RL_F16:
        for (int64_t k = k0; k < k1; k++) {
            uint16_t h = p->dtype == RL_BF16 ? rl_f32_to_bf16(p->master[k]) : rl_f32_to_f16(p->master[k]);
            memcpy(d + 2 * k, &h, 2);
        }
        break;
    default: break;
    }
}

double rl_adamw_step(rl_adamw *o, float lr) {
    double norm = rl_grad_norm(o->p, o->n);
    float scale = 1.0f;
    if (o->c.clip > 0 && norm + 1e-6 > o->c.clip) scale = (float)(o->c.clip / (norm + 1e-6));
    o->t++;
    const float b1 = o->c.beta1, b2 = o->c.beta2, eps = o->c.eps;
    const float bc1 = (float)(1.0 - pow((double)b1, (double)o->t));
    const float bc2s = (float)sqrt(1.0 - pow((double)b2, (double)o->t));
    /* lr / bc1 and the sqrt of bc2 folded as PyTorch's single-tensor AdamW:
     * step = lr / bc1; denom = sqrt(v) / sqrt(bc2) + eps */
    const float step_size = lr / bc1;
    const float decay = 1.0f - lr * o->c.weight_decay;
    enum { BLK = 1 << 14 };
    for (int i = 0; i < o->n; i++) {
        rl_opt_param *p = &o->p[i];
        if (!p->grad) continue;
        float *m = o->m[i], *v = o->v[i], *w = p->master, *g = p->grad;
        int64_t nb = (p->numel + BLK - 1) / BLK;
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < nb; b++) {
            int64_t k0 = b * BLK, k1 = k0 + BLK < p->numel ? k0 + BLK : p->numel;
            for (int64_t k = k0; k < k1; k++) {
                float gk = g[k] * scale;
                g[k] = gk;
                if (p->decay) w[k] *= decay;
                m[k] = b1 * m[k] + (1.0f - b1) * gk;
                v[k] = b2 * v[k] + (1.0f - b2) * gk * gk;
                float denom = sqrtf(v[k]) / bc2s + eps;
                w[k] -= step_size * (m[k] / denom);
            }
            store(p, k0, k1);
        }
    }
    return norm;
}

void rl_expert_stats_of(const int *load, int E, rl_expert_stats *s) {
    memset(s, 0, sizeof *s);
    if (E <= 0) return;
    int64_t tot = 0;
    int mx = 0;
    for (int x = 0; x < E; x++) {
        tot += load[x];
        if (load[x] > mx) mx = load[x];
        if (!load[x]) s->idle++;
    }
    s->tokens = tot;
    double mean = (double)tot / E;
    if (mean <= 0) return;
    double var = 0;
    for (int x = 0; x < E; x++) var += ((double)load[x] - mean) * ((double)load[x] - mean);
    s->max_over_mean = mx / mean;
    s->cv = sqrt(var / E) / mean;
}

void rl_expert_bias_update(float *bias, const int *load, int E, float rate) {
    int64_t tot = 0;
    for (int x = 0; x < E; x++) tot += load[x];
    /* compare load * E with the total: mean_load - load[e] in exact integers */
    for (int x = 0; x < E; x++) {
        int64_t d = tot - (int64_t)load[x] * E;
        bias[x] += d > 0 ? rate : d < 0 ? -rate : 0.0f;
    }
}
