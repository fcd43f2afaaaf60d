/* ringlm bench: llama-bench-style prefill and decode speed, judged against
 * the memory bandwidth probed right before and after each figure. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/app.h"
#include "apps/app_engine.h"
#include "ops/cpu/cpu_ops.h"

/* Read bandwidth in GB/s: all threads stream a 1 GiB buffer (best of 3).
 * Eight independent integer accumulators keep the loop bound by memory,
 * not by an add's latency. */
static double probe_bandwidth(void) {
    size_t n = (size_t)1 << 27; /* 2^27 u64 = 1 GiB */
    uint64_t *buf = malloc(n * sizeof(uint64_t));
    if (!buf) return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double best = 0;
    uint64_t sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = app_now();
        uint64_t s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i += 8) {
            uint64_t a0 = buf[i], a1 = buf[i + 1], a2 = buf[i + 2], a3 = buf[i + 3];
            uint64_t a4 = buf[i + 4], a5 = buf[i + 5], a6 = buf[i + 6], a7 = buf[i + 7];
            s += (a0 ^ a1) + (a2 ^ a3) + (a4 ^ a5) + (a6 ^ a7);
        }
        double dt = app_now() - t0;
        sink += s;
        double bw = (double)(n * sizeof(uint64_t)) / dt / 1e9;
        if (bw > best) best = bw;
    }
    free(buf);
    if (sink == 42) fputc(' ', stderr);
    return best;
}

static int g_count_elems; /* wbytes counts elements instead of bytes */
static int64_t wbytes(const rl_wmat *w) {
    if (!w->data) return 0;
    return (int64_t)w->rows * w->cols * (g_count_elems ? 1 : (int64_t)rl_dtype_size(w->dtype));
}

/* Weight bytes one decode token must read: every dense matrix, the router,
 * top-k + shared experts per MoE layer, the LM head. */
static int64_t active_weight_bytes(const rl_model *m) {
    const rl_config *c = &m->cfg;
    int64_t b = wbytes(&m->lm_head);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rl_layer *ly = &m->layers[l];
        b += wbytes(&ly->qkv) + wbytes(&ly->dense) + wbytes(&ly->g_proj);
        if (!ly->moe) {
            b += wbytes(&ly->gate) + wbytes(&ly->up) + wbytes(&ly->down);
        } else {
            b += wbytes(&ly->router) +
                 c->num_experts_per_tok * (wbytes(&ly->e_gate[0]) + wbytes(&ly->e_up[0]) + wbytes(&ly->e_down[0]));
            b += wbytes(&ly->s_gate) + wbytes(&ly->s_up) + wbytes(&ly->s_down);
        }
    }
    return b;
}

static void stats(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static uint64_t rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Brings a fresh slot to `depth` tokens in prefill steps of 512. */
static int fill_depth(app_engine *eng, app_seq *sl, int depth, int *tok, rl_err *e) {
    for (int d = 0; d < depth;) {
        int k = depth - d < 512 ? depth - d : 512;
        app_span s = {sl, tok + d, k, app_seq_pos(eng, sl), RL_LOGITS_NONE, NULL, NULL};
        if (app_step(eng, &s, 1, e)) return 1;
        d += k;
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1, .cuda_ok = true};
    int p = 512, n = 128, depth = 0, reps = 3;
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ringlm bench -m DIR [-p 512] [-n 128] [-d DEPTH] [-t THREADS] [-r REPS]\n"
                   "Prefill of p tokens and decode of n tokens after `depth` tokens of context,\n"
                   "tokens/s as mean +- sd over REPS runs, with the read bandwidth probed before\n"
                   "and after and the decode floor it implies (active weight bytes per token).\n"
                   "  -p N   prompt tokens (0: skip)      -n N   decoded tokens (0: skip)\n"
                   "  -d N   context depth (default 0)    -r N   repetitions (default 3)\n%s",
                   app_model_opts_help);
            return 0;
        }
        bool ok;
        if (!strcmp(a, "-p")) ok = app_int(a, v, 0, 1 << 20, &p);
        else if (!strcmp(a, "-n")) ok = app_int(a, v, 0, 1 << 20, &n);
        else if (!strcmp(a, "-d")) ok = app_int(a, v, 0, 1 << 24, &depth);
        else if (!strcmp(a, "-r")) ok = app_int(a, v, 1, 1000, &reps);
        else return app_fail("bench: unknown option '%s'", a);
        if (!ok) return 1;
        i++;
    }
    rl_model m;
    if (app_load(&mo, &m)) return 1;
    app_engine eng = {0};
    rl_err e = {0};
    bool gpu = mo.device == APP_CUDA;
    int rc = 1, total = depth + p + n + 1;
    int *tok = malloc(sizeof(int) * (size_t)total);
    float *logits = malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    double *bw = calloc((size_t)reps + 1, sizeof(double)); /* probe before each rep, and after */
    if (!tok || !logits || !pp || !tg || !bw || app_engine_init(&eng, &m, &mo, &e)) {
        app_fail("%s", e.msg[0] ? e.msg : "out of memory");
        goto out;
    }
    if (total > m.cfg.max_position_embeddings) app_engine_set_max_ctx(&eng, total);
    uint64_t seed = 1234;
    for (int i = 0; i < total; i++) tok[i] = (int)(rnd(&seed) % (uint64_t)m.cfg.vocab_size);
    /* the context is filled once; every rep forks it (KV pages shared
     * copy-on-write, Lightning state copied) */
    app_seq deep;
    if (app_seq_init(&eng, &deep, &e)) { app_fail("%s", e.msg); goto out; }
    if (depth && isatty(2)) fprintf(stderr, "filling %d tokens of context...\n", depth);
    if (fill_depth(&eng, &deep, depth, tok, &e)) { app_fail("%s", e.msg); goto out; }
    /* rep -1 is a warm-up (page faults, allocations), as llama-bench does.
     * The bandwidth is probed before every rep and after the last: the
     * machine's bandwidth swings within minutes, so each decode rep is judged
     * against the probes right around it. */
    for (int r = -1; r < reps; r++) {
        if (r >= 0 && n && !gpu) bw[r] = probe_bandwidth();
        app_seq sl, base;
        if (app_seq_init(&eng, &sl, &e) || app_seq_fork(&eng, &sl, &deep, &e) ||
            app_seq_init(&eng, &base, &e) || app_seq_fork(&eng, &base, &deep, &e)) {
            app_fail("%s", e.msg);
            goto out;
        }
        if (p) {
            double t0 = app_now();
            app_span s = {&sl, tok + depth, p, app_seq_pos(&eng, &sl), RL_LOGITS_LAST, logits, NULL};
            if (app_step(&eng, &s, 1, &e)) { app_fail("%s", e.msg); goto out; }
            if (r >= 0) pp[r] = p / (app_now() - t0);
        }
        if (n) { /* decode from the depth point, as llama-bench's tg */
            double t0 = app_now();
            for (int i = 0; i < n; i++) {
                app_span s = {&base, tok + depth + p + i, 1, app_seq_pos(&eng, &base),
                              RL_LOGITS_LAST, logits, NULL};
                if (app_step(&eng, &s, 1, &e)) { app_fail("%s", e.msg); goto out; }
            }
            if (r >= 0) tg[r] = n / (app_now() - t0);
        }
        app_seq_free(&eng, &sl);
        app_seq_free(&eng, &base);
        if (isatty(2)) fprintf(stderr, "\r%s %d/%d", r < 0 ? "warm-up" : "rep", r + 1, reps);
    }
    if (isatty(2)) fputc('\n', stderr);
    if (n && !gpu) bw[reps] = probe_bandwidth();
    double awb = (double)active_weight_bytes(&m);
    const char *isa = gpu ? (mo.deterministic ? "cuda-det" : "cuda")
                          : m.ops == &rl_ops_ref ? "ref" : rl_ops_cpu_isa();
    printf("| model | threads | isa | test | t/s | note |\n|---|---|---|---|---|---|\n");
    double mean, sd;
    if (p) {
        /* prefill FLOPs: 2 per active weight, the LM head once (last row only) */
        g_count_elems = 1;
        double ael = (double)active_weight_bytes(&m);
        g_count_elems = 0;
        double fl = 2.0 * (ael - (double)m.lm_head.rows * m.lm_head.cols) +
                    2.0 * (double)m.lm_head.rows * m.lm_head.cols / p;
        stats(pp, reps, &mean, &sd);
        printf("| %s | %d | %s | pp%d @ d%d | %.2f ± %.2f | %.1f GFLOP/s (%.2f GFLOP/token "
               "in weight matmuls)",
               mo.dir, omp_get_max_threads(), isa, p, depth, mean, sd, fl * mean / 1e9, fl / 1e9);
        if (!gpu && rl_cpu_isa_supported(RL_ISA_AVX512)) {
            double pf = rl_cpu_peak_gflops_avx512(0), pb = rl_cpu_peak_gflops_avx512(1);
            printf("; %.0f%% of the fp32 FMA peak %.0f, %.0f%% of the bf16 dot peak %.0f GFLOP/s",
                   100 * fl * mean / 1e9 / pf, pf, 100 * fl * mean / 1e9 / pb, pb);
        }
        printf(" |\n");
    }
    if (n) {
        /* bytes a decode token must read: active weights, every Lightning
         * state, the KV rows of the context (depth + half the decoded tokens) */
        double sb = (double)m.n_linear * m.cfg.num_attention_heads * m.cfg.head_dim *
                    m.cfg.head_dim * 4.0;
        double kvb = (double)rl_model_kv_bytes_per_token(&m) * (depth + n / 2.0);
        double bytes = awb + sb + kvb, lo = 1e30, hi = 0;
        double *ratio = calloc((size_t)reps, sizeof(double));
        for (int r = 0; r < reps && ratio; r++) {
            double b = 0.5 * (bw[r] + bw[r + 1]); /* GB/s around rep r */
            ratio[r] = tg[r] / (b * 1e9 / bytes);
            for (int k = r; k <= r + 1; k++) {
                lo = bw[k] < lo ? bw[k] : lo;
                hi = bw[k] > hi ? bw[k] : hi;
            }
        }
        double rm = 0, rsd = 0;
        if (ratio) stats(ratio, reps, &rm, &rsd);
        free(ratio);
        stats(tg, reps, &mean, &sd);
        if (gpu)
            printf("| %s | - | %s | tg%d @ d%d | %.2f ± %.2f | %.3f GB/token (weights %.3f + "
                   "state %.3f + KV %.3f); device floors: bench/gpu |\n",
                   mo.dir, isa, n, depth, mean, sd, bytes / 1e9, awb / 1e9, sb / 1e9, kvb / 1e9);
        else
        printf("| %s | %d | %s | tg%d @ d%d | %.2f ± %.2f | %.3f GB/token (weights %.3f + state "
               "%.3f + KV %.3f); probes %.1f..%.1f GB/s around the reps; %.0f%% ± %.0f%% of the "
               "floor (rep speed / (probe around it / bytes)) |\n",
               mo.dir, omp_get_max_threads(), isa, n, depth, mean, sd, bytes / 1e9, awb / 1e9,
               sb / 1e9, kvb / 1e9, lo, hi, 100 * rm, 100 * rsd);
    }
    app_seq_free(&eng, &deep);
    rc = 0;
out:
    if (eng.m) app_engine_free(&eng);
    rl_model_free(&m);
    free(tok);
    free(logits);
    free(pp);
    free(tg);
    free(bw);
    return rc;
}
