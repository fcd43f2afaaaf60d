/* The optimizer against hand-computed AdamW steps and the schedule's
 * formula; clipping, the decay rule, write-back in the stored dtype, the
 * expert-bias update and load statistics, thread-count invariance and
 * bitwise resume from saved moments. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "train/optim.h"

static bool close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1 + fabs(b)); }

int main(void) {
    rl_err e = {0};
    /* ---- schedule ---- */
    rl_schedule s = {.lr = 1e-3f, .lr_min = 1e-4f, .warmup = 10, .total = 110};
    CHECK(close_to(rl_schedule_lr(&s, 0), 1e-4, 1e-6), "warmup step 0 = lr/warmup: %g", rl_schedule_lr(&s, 0));
    CHECK(close_to(rl_schedule_lr(&s, 4), 5e-4, 1e-6), "warmup step 4: %g", rl_schedule_lr(&s, 4));
    CHECK(close_to(rl_schedule_lr(&s, 9), 1e-3, 1e-6), "end of warmup = peak");
    CHECK(close_to(rl_schedule_lr(&s, 10), 1e-3, 1e-6), "cosine starts at the peak");
    CHECK(close_to(rl_schedule_lr(&s, 60), 5.5e-4, 1e-6), "half way = (lr + lr_min) / 2: %g", rl_schedule_lr(&s, 60));
    double q = 1e-4 + 0.5 * 9e-4 * (1 + cos(M_PI * 25 / 100.0));
    CHECK(close_to(rl_schedule_lr(&s, 35), q, 1e-6), "quarter: %g vs %g", rl_schedule_lr(&s, 35), q);
    CHECK(rl_schedule_lr(&s, 110) == 1e-4f && rl_schedule_lr(&s, 1000) == 1e-4f, "after total: lr_min");
    bool mono = true;
    for (int k = 10; k < 110; k++) mono &= rl_schedule_lr(&s, k + 1) <= rl_schedule_lr(&s, k);
    CHECK(mono, "cosine decreases");
    rl_schedule s0 = {.lr = 2e-3f, .lr_min = 0, .warmup = 0, .total = 4};
    CHECK(rl_schedule_lr(&s0, 0) == 2e-3f && close_to(rl_schedule_lr(&s0, 2), 1e-3, 1e-6), "no warmup");

    /* ---- decay rule ---- */
    CHECK(rl_param_decays("model.layers.0.attention.query_key_value.weight", 2), "matrices decay");
    CHECK(rl_param_decays("model.word_embeddings.weight", 2), "embeddings decay");
    CHECK(!rl_param_decays("model.layers.0.input_layernorm.weight", 1), "norms do not");
    CHECK(!rl_param_decays("model.layers.1.attention.g_norm.weight", 1), "group norm does not");
    CHECK(!rl_param_decays("model.layers.1.mlp.gate.expert_bias", 1), "expert_bias does not");

    /* ---- AdamW by hand ---- */
    float w[3] = {0.5f, -1.0f, 2.0f}, g[3];
    float wv[2] = {1.0f, -2.0f}, gv[2];
    rl_opt_param p[2] = {
        {.name = "a.weight", .ndim = 2, .shape = {1, 3}, .numel = 3, .master = w, .grad = g,
         .decay = true, .dtype = RL_F32},
        {.name = "a.norm.weight", .ndim = 1, .shape = {2}, .numel = 2, .master = wv, .grad = gv,
         .decay = false, .dtype = RL_F32},
    };
    rl_adamw_cfg c = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 0};
    rl_adamw o;
    CHECK(rl_adamw_init(&o, p, 2, &c, &e) == 0, "%s", e.msg);
    /* step 1: m^ = g, v^ = g^2, so the step is lr * sign(g) (up to eps) */
    g[0] = 0.3f; g[1] = -4.0f; g[2] = 0.0f; gv[0] = 1e-3f; gv[1] = -2.0f;
    double nrm = rl_adamw_step(&o, 0.01f);
    CHECK(close_to(nrm, sqrt(0.09 + 16 + 1e-6 + 4), 1e-6), "norm %g", nrm);
    CHECK(close_to(w[0], 0.5 * (1 - 0.001) - 0.01, 1e-5), "w0 %.9g", w[0]);
    CHECK(close_to(w[1], -1.0 * (1 - 0.001) + 0.01, 1e-5), "w1 %.9g", w[1]);
    CHECK(close_to(w[2], 2.0 * (1 - 0.001), 1e-6), "zero gradient: decay only %.9g", w[2]);
    CHECK(close_to(wv[0], 1.0 - 0.01 * 1e-3 / (1e-3 + 1e-8), 1e-6), "no decay on the norm %.9g", wv[0]);
    CHECK(close_to(wv[1], -2.0 + 0.01, 1e-6), "wv1 %.9g", wv[1]);
    /* step 2, against the formula in double */
    double m0 = 0.1 * 0.3, v0 = 0.01 * 0.09, W0 = w[0];
    g[0] = -0.2f; g[1] = 1.0f; g[2] = 0.5f; gv[0] = 0; gv[1] = 0;
    rl_adamw_step(&o, 0.005f);
    double m1 = 0.9 * m0 + 0.1 * -0.2, v1 = 0.99 * v0 + 0.01 * 0.04;
    double want = W0 * (1 - 0.005 * 0.1) - 0.005 * (m1 / (1 - 0.81)) / (sqrt(v1 / (1 - 0.9801)) + 1e-8);
    CHECK(close_to(w[0], want, 1e-5), "step 2: %.9g vs %.9g", w[0], want);
    CHECK(o.t == 2, "t");
    rl_adamw_free(&o);

    /* ---- clipping ---- */
    float cw[4] = {0}, cg[4] = {3, 4, 0, 0};
    rl_opt_param cp = {.name = "c", .ndim = 2, .shape = {2, 2}, .numel = 4, .master = cw, .grad = cg,
                       .dtype = RL_F32};
    rl_adamw_cfg cc = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip = 1.0f};
    rl_adamw_init(&o, &cp, 1, &cc, &e);
    nrm = rl_adamw_step(&o, 0.1f);
    CHECK(close_to(nrm, 5, 1e-9), "pre-clip norm %g", nrm);
    CHECK(close_to(cg[0], 0.6, 1e-5) && close_to(cg[1], 0.8, 1e-5), "clipped to norm 1: %g %g", cg[0], cg[1]);
    CHECK(close_to(o.m[0][1], 0.1 * 0.8, 1e-5), "moments see the clipped gradient");
    cg[0] = 0.3f; cg[1] = 0.4f;
    rl_adamw_step(&o, 0.1f);
    CHECK(cg[0] == 0.3f && cg[1] == 0.4f, "under the limit: untouched");
    rl_adamw_free(&o);

    /* ---- write-back in the stored dtype ---- */
    float bw[3] = {1.0f, 2.0f, 3.0f}, bg[3] = {1, 1, 1}, fw[3] = {1, 2, 3}, fg[3] = {1, 1, 1};
    uint16_t bdst[3], fdst[3];
    float f32w[1] = {0.25f}, f32g[1] = {-1}, f32dst[1];
    rl_opt_param wp[3] = {
        {.name = "b", .ndim = 2, .numel = 3, .master = bw, .grad = bg, .dtype = RL_BF16, .dst = bdst},
        {.name = "h", .ndim = 2, .numel = 3, .master = fw, .grad = fg, .dtype = RL_F16, .dst = fdst},
        {.name = "f", .ndim = 1, .numel = 1, .master = f32w, .grad = f32g, .dtype = RL_F32, .dst = f32dst},
    };
    rl_adamw_init(&o, wp, 3, &c, &e);
    rl_adamw_step(&o, 0.01f);
    bool ok = true;
    for (int i = 0; i < 3; i++) ok &= bdst[i] == rl_f32_to_bf16(bw[i]) && fdst[i] == rl_f32_to_f16(fw[i]);
    CHECK(ok && f32dst[0] == f32w[0], "dst holds the master in its dtype");
    rl_adamw_free(&o);
    rl_opt_param f8 = {.name = "q", .numel = 1, .master = bw, .dtype = RL_F8_E4M3, .dst = bdst};
    CHECK(rl_adamw_init(&o, &f8, 1, &c, &e) != 0 && strstr(e.msg, "q:"), "fp8 refused: %s", e.msg);

    /* ---- thread invariance and resume, on a bigger random problem ---- */
    enum { N = 100003, STEPS = 6 };
    float *wa = malloc(N * 4), *wb = malloc(N * 4), *ga = malloc(N * 4), *gb = malloc(N * 4);
    uint64_t rs = 1;
    for (int i = 0; i < N; i++) wa[i] = wb[i] = rl_t_uniform(&rs, -1, 1);
    rl_opt_param pa = {.name = "x", .ndim = 2, .numel = N, .master = wa, .grad = ga, .decay = true, .dtype = RL_F32};
    rl_opt_param pb = pa;
    pb.master = wb;
    pb.grad = gb;
    rl_adamw_cfg rc = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 0.5f};
    rl_adamw oa, ob;
    rl_adamw_init(&oa, &pa, 1, &rc, &e);
    rl_adamw_init(&ob, &pb, 1, &rc, &e);
    bool same = true;
    for (int st = 0; st < STEPS; st++) {
        uint64_t gs = 100 + (uint64_t)st;
        for (int i = 0; i < N; i++) ga[i] = gb[i] = rl_t_uniform(&gs, -0.01f, 0.01f);
        omp_set_num_threads(1);
        rl_adamw_step(&oa, rl_schedule_lr(&s, st));
        omp_set_num_threads(2);
        rl_adamw_step(&ob, rl_schedule_lr(&s, st));
        same &= memcmp(wa, wb, N * 4) == 0;
        if (st == 2) { /* "save" ob after 3 steps and restore into a fresh optimizer */
            float *m = malloc(N * 4), *v = malloc(N * 4), *w2 = malloc(N * 4);
            memcpy(m, ob.m[0], N * 4);
            memcpy(v, ob.v[0], N * 4);
            memcpy(w2, wb, N * 4);
            int64_t t = ob.t;
            rl_adamw_free(&ob);
            memset(wb, 0, N * 4);
            rl_adamw_init(&ob, &pb, 1, &rc, &e);
            memcpy(wb, w2, N * 4);
            memcpy(ob.m[0], m, N * 4);
            memcpy(ob.v[0], v, N * 4);
            ob.t = t;
            free(m);
            free(v);
            free(w2);
        }
    }
    CHECK(same, "1 vs 2 threads, and a restored optimizer: bitwise equal weights");
    rl_adamw_free(&oa);
    rl_adamw_free(&ob);
    free(wa); free(wb); free(ga); free(gb);

    /* ---- expert bias and load statistics ---- */
    int load[4] = {10, 0, 5, 5};
    float bias[4] = {0, 0, 0.5f, 0};
    rl_expert_bias_update(bias, load, 4, 0.001f);
    CHECK(bias[0] == -0.001f && bias[1] == 0.001f && bias[2] == 0.5f && bias[3] == 0.0f,
          "sign of the load error: %g %g %g %g", bias[0], bias[1], bias[2], bias[3]);
    int load3[3] = {1, 1, 2}; /* mean 4/3: 1 is under, 2 is over */
    float b3[3] = {0};
    rl_expert_bias_update(b3, load3, 3, 0.5f);
    CHECK(b3[0] == 0.5f && b3[1] == 0.5f && b3[2] == -0.5f, "non-integer mean");
    rl_expert_stats es;
    rl_expert_stats_of(load, 4, &es);
    CHECK(es.tokens == 20 && close_to(es.max_over_mean, 2.0, 1e-12) && es.idle == 1 &&
          close_to(es.cv, sqrt(12.5) / 5, 1e-12), "stats %g %g %d", es.max_over_mean, es.cv, es.idle);
    int even[4] = {3, 3, 3, 3};
    rl_expert_stats_of(even, 4, &es);
    CHECK(es.max_over_mean == 1.0 && es.cv == 0 && es.idle == 0, "balanced");
    return rl_test_done();
}
