/* GPU model benchmark: prefill and decode speed of full model shapes on the
 * CUDA backend, each figure beside its floor (bytes / the card's measured
 * copy bandwidth, FLOPs / the card's measured cuBLAS bf16 rate; both
 * measured in the same run).
 *
 * Models are built from presets without a checkpoint (rl_model_skeleton):
 * the device fills the matrices with hashed random bf16 values, so the
 * routing is as random as mkmodel's and no 32 GB file is written or read.
 *
 *   bench_gpu [--model PRESET[:softmax]]... [--contexts 4096,32768,131072]
 *             [--batches 1,16,64,256] [--budget S] [--step 4096]
 *             [--deterministic] [--distinct-kv GB] [--profile-decode]
 * PRESET:softmax is the preset with layer_group_size = 1 (every layer
 * softmax). Prefill feeds the context in steps of --step tokens; the time to
 * reach each context is its prefill time. Decode forks B sequences from the
 * prefilled context (KV pages shared, Lightning state copied: many samples
 * of one prompt, as in RL rollouts; the floor reads the shared KV once), runs 2 warm-up
 * steps and 5 timed steps of one token per sequence, each sequence drawing
 * its next token on the device (default sampler; no logits copied). Each model gets --budget seconds (default 90); what does not fit
 * is printed as "not measured". --distinct-kv GB gives every fork its own copy
 * of the prompt's KV pages (rl_cuda_seq_unshare) in a pool of GB gigabytes,
 * so no two sequences read the same memory (serving unrelated prompts); the
 * rows whose KV does not fit are "not measured". --profile-decode brackets the
 * timed decode steps with cudaProfilerStart/Stop, so that a profiler started
 * with its capture off (ncu --profile-from-start off) sees only them
 * (bench/gpu/decode_kernels.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include "engine/step_cuda.h"
#include "model/mkmodel.h"
#include "model/model_skeleton.h"
#include "ops/cuda/fwd_cuda.h"
#include "gpu_floors.h"

/* --profile-decode (header comment) */
static int g_profile_decode;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int *parse_list(const char *s, int *n) {
    int *v = malloc(sizeof(int) * 64), k = 0;
    for (const char *p = s; p && *p && k < 64;) {
        v[k++] = atoi(p);
        p = strchr(p, ',');
        if (p) p++;
    }
    *n = k;
    return v;
}

typedef struct counts {
    double w_fixed;     /* bf16/f32 bytes read once per step whatever the batch */
    double w_expert;    /* bytes of one routed expert (gate+up+down) */
    double params_tok;  /* weight elements a token multiplies (active, no embedding) */
    double state_seq;   /* Lightning state bytes read per sequence per step */
    double kv_tok;      /* KV bytes per context token per sequence */
    int n_moe, E, K;
} counts;

static counts count(const rl_model *m) {
    const rl_config *c = &m->cfg;
    counts k = {0};
    double hid = c->hidden_size, HD = (double)c->num_attention_heads * c->head_dim;
    double D = c->head_dim, V = c->vocab_size;
    k.w_fixed = V * hid * 2;
    k.params_tok = V * hid;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rl_layer *ly = &m->layers[l];
        double a = (double)ly->qkv.rows * hid + hid * HD + (ly->softmax ? 0 : HD * hid);
        double mlp;
        if (!ly->moe) {
            mlp = 3.0 * c->intermediate_size * hid;
        } else {
            k.n_moe++;
            mlp = 3.0 * (ly->has_shared ? ly->s_gate.rows : 0) * hid;
            k.w_fixed += (double)c->num_experts * hid * 4; /* fp32 router */
            k.params_tok += (double)c->num_experts * hid + c->num_experts_per_tok * 3.0 * c->moe_intermediate_size * hid;
        }
        k.w_fixed += (a + mlp) * 2;
        k.params_tok += a + mlp;
    }
    k.w_expert = 3.0 * c->moe_intermediate_size * hid * 2;
    k.state_seq = (double)m->n_linear * c->num_attention_heads * D * D * 4;
    k.kv_tok = (double)m->n_softmax * 2 * c->num_key_value_heads * D * 2; /* bf16 pool */
    k.E = c->num_experts;
    k.K = c->num_experts_per_tok;
    (void)HD;
    return k;
}

/* FLOPs of a prefill of N tokens: weights + attention (causal softmax; Lightning
 * intra-chunk, inter-chunk and fold terms) */
static double prefill_flops(const rl_model *m, const counts *k, double N) {
    const rl_config *c = &m->cfg;
    double H = c->num_attention_heads, D = c->head_dim;
    double f = 2.0 * k->params_tok * N - 2.0 * c->vocab_size * (double)c->hidden_size * (N - 1);
    f += m->n_softmax * 2.0 * H * D * N * N;
    f += m->n_linear * N * H * (4.0 * D * D + 2.0 * D * RL_CHUNK);
    return f;
}

/* Bytes a decode step must read at least: the weights (fixed matrices + the
 * expected distinct experts of B tokens), each sequence's Lightning state,
 * and the KV of the context. The B sequences are forks of one prefilled
 * prompt (the RL rollout pattern: many samples per prompt), so their KV
 * pages are the same physical pages: the floor counts them once (what a
 * kernel reading each page once per step would move), not B times. With
 * --distinct-kv every fork gets its own copy of the pages and the floor
 * counts B copies. */
static double decode_bytes(const counts *k, int B, double ctx, int distinct) {
    double uniq = k->E ? k->E * (1.0 - pow(1.0 - (double)k->K / k->E, B)) : 0;
    return k->w_fixed + k->n_moe * uniq * k->w_expert + B * k->state_seq +
           (distinct ? B : 1) * k->kv_tok * ctx;
}

/* RL_CUDA_PROFILE: the device time of each phase since the last reset, per
 * `per` units (steps, or thousands of tokens), as one table row; resets. */
static void print_profile(rl_cuda_engine *g, double per, const char *what) {
    double pr[RL_CUDA_PROF_CATS], tot = 0;
    rl_cuda_profile(g, pr, true);
    for (int i = 0; i < RL_CUDA_PROF_CATS; i++) tot += pr[i];
    printf("|   %s | %.2f ms |", what, 1e3 * tot / per);
    for (int i = 0; i < RL_CUDA_PROF_CATS; i++)
        if (pr[i] > 0) printf(" %s %.2f;", rl_cuda_prof_names[i], 1e3 * pr[i] / per);
    printf(" | | |\n");
}

static int run_model(const char *spec, const int *ctxs, int nc, const int *bs, int nb,
                     double budget, int stepsz, int det, double distinct_gb, double bw,
                     double tflops) {
    char name[128];
    snprintf(name, sizeof name, "%s", spec);
    char *colon = strchr(name, ':');
    int softmax = colon && !strcmp(colon + 1, "softmax");
    if (colon) *colon = 0;
    rl_config c;
    rl_err e = {0};
    if (rl_config_preset(name, &c, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    if (softmax) c.layer_group_size = 1;
    int maxctx = 0;
    for (int i = 0; i < nc; i++) maxctx = ctxs[i] > maxctx ? ctxs[i] : maxctx;
    if (c.max_position_embeddings < maxctx + 64) c.max_position_embeddings = maxctx + 64;
    if (rl_config_finish(&c, spec, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    rl_model m;
    if (rl_model_skeleton(&c, &m, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    counts k = count(&m);
    int maxb = 0;
    for (int i = 0; i < nb; i++) maxb = bs[i] > maxb ? bs[i] : maxb;
    int pages = (maxctx + 63) / 64 + 2 * maxb + 64;
    int distinct = distinct_gb > 0;
    if (distinct && k.kv_tok > 0) /* a model without softmax layers has no pages to copy */
        pages = (int)fmin(distinct_gb * 1e9 / (k.kv_tok * 64), 2e9);
    rl_cuda_opts o = {.deterministic = det, .max_kv_pages = pages, .random_seed = 42};
    double t0 = now();
    rl_cuda_engine *g;
    if (rl_cuda_engine_init(&g, &m, &o, &e)) {
        printf("| %s | init failed: %s |\n", spec, e.msg);
        rl_model_free(&m);
        return 1;
    }
    printf("\n### %s (%s layers: %d linear + %d softmax; %s GEMMs)\n\n", spec, name, m.n_linear,
           m.n_softmax, det ? "deterministic" : "cuBLAS");
    printf("weights on device %.2f GB (upload/fill %.1f s); KV pool %.2f GB; per token %.3f GB "
           "active weights (%.2f G weight elements)\n\n",
           rl_cuda_weight_bytes(g) / 1e9, now() - t0, rl_cuda_kv_pool_bytes(g) / 1e9,
           (k.w_fixed + k.n_moe * k.K * k.w_expert) / 1e9, k.params_tok / 1e9);
    double start = now();
    int V = c.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)V); /* the prefill's last row */
    int *tok = malloc(sizeof(int) * (size_t)(maxctx + 64));
    uint64_t s = 12345;
    for (int i = 0; i < maxctx + 64; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int)((s >> 33) % (uint64_t)V);
    }
    /* prefill, recording the time to reach each context; snapshots for decode */
    rl_cuda_seq *base = NULL, *snap[16] = {0};
    double tp[16];
    int reached = 0;
    if (rl_cuda_seq_new(g, &base, &e)) { printf("%s\n", e.msg); return 1; }
    printf("| test | tokens/s | floor tokens/s | %% of floor | note |\n|---|---|---|---|---|\n");
    double tt = 0;
    rl_cuda_profile(g, NULL, true);
    for (int ci = 0; ci < nc; ci++) {
        int target = ctxs[ci];
        while (rl_cuda_seq_pos(base) < target && now() - start < budget * 0.5) {
            int pos = rl_cuda_seq_pos(base), n = target - pos < stepsz ? target - pos : stepsz;
            rl_cuda_span sp = {base, tok + pos, n, pos, RL_LOGITS_LAST, logits, NULL};
            double a = now();
            if (rl_cuda_step(g, &sp, 1, &e)) { printf("prefill: %s\n", e.msg); goto done; }
            tt += now() - a;
        }
        if (rl_cuda_seq_pos(base) < target) {
            for (int cj = ci; cj < nc; cj++)
                printf("| pp%d | not measured | | | past the time budget (%.0f s for the prefills) |\n",
                       ctxs[cj], budget * 0.5);
            break;
        }
        tp[ci] = tt;
        double fl = prefill_flops(&m, &k, target), floor_s = fl / (tflops * 1e12);
        double att = m.n_softmax * 2.0 * c.num_attention_heads * c.head_dim * (double)target * target;
        printf("| pp%d | %.0f | %.0f | %.0f%% | %.1f s; %.3f PFLOP (%.0f%% softmax attention) in "
               "steps of %d |\n", target, target / tt, target / floor_s, 100 * floor_s / tt, tt,
               fl / 1e15, 100 * att / fl, stepsz);
        if (getenv("RL_CUDA_PROFILE")) /* the tokens since the last row */
            print_profile(g, (target - (ci ? ctxs[ci - 1] : 0)) / 1000.0, "device time per 1000 tokens");
        fflush(stdout);
        if (rl_cuda_seq_new(g, &snap[ci], &e) || rl_cuda_seq_fork(snap[ci], base, &e)) {
            printf("snapshot: %s\n", e.msg);
            goto done;
        }
        reached = ci + 1;
    }
    (void)tp;
    /* decode */
    for (int ci = 0; ci < reached; ci++) {
        for (int bi = 0; bi < nb; bi++) {
            int B = bs[bi], ctx = ctxs[ci];
            if (now() - start > budget) {
                printf("| tg b%d @ %d | not measured | | | past the time budget (%.0f s) |\n", B, ctx, budget);
                continue;
            }
            rl_cuda_seq **q = calloc((size_t)B, sizeof *q);
            rl_cuda_span *sp = calloc((size_t)B, sizeof *sp);
            rl_sampler *smp = calloc((size_t)B, sizeof *smp);
            rl_sample_req *req = calloc((size_t)B, sizeof *req);
            int ok = q && sp && smp && req;
            /* each sequence draws its next token on the device with llama.cpp's
             * default sampler (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05)
             * and feeds it back: only tokens cross to the host, as in serving */
            rl_sampler_params spar;
            rl_sampler_defaults(&spar);
            for (int i = 0; ok && i < B; i++) {
                spar.seed = 1000 + (uint64_t)i;
                ok = !rl_sampler_init(&smp[i], &spar, V) &&
                     !rl_cuda_seq_new(g, &q[i], &e) && !rl_cuda_seq_fork(q[i], snap[ci], &e) &&
                     !(distinct && rl_cuda_seq_unshare(q[i], &e));
                req[i] = (rl_sample_req){&smp[i], V, tok[ctx + (i % 7)], 0.0f};
            }
            double td = 0;
            rl_cuda_profile(g, NULL, true);
            for (int st = 0; ok && st < 7; st++) {
                if (st == 2) rl_cuda_profile(g, NULL, true);
                if (st == 2 && g_profile_decode) cudaProfilerStart();
                for (int i = 0; i < B; i++)
                    sp[i] = (rl_cuda_span){q[i], &req[i].token, 1, ctx + st, RL_LOGITS_LAST, NULL,
                                           &req[i]};
                double a = now();
                ok = !rl_cuda_step(g, sp, B, &e);
                if (st >= 2) td += now() - a;
            }
            if (g_profile_decode) cudaProfilerStop();
            for (int i = 0; i < B && smp; i++) rl_sampler_free(&smp[i]);
            free(smp);
            free(req);
            if (!ok && distinct && e.code == RL_E_CAPACITY) {
                printf("| tg b%d @ %d | not measured | | | %d distinct contexts need %.1f GB of KV; the pool "
                       "holds %.1f GB (--distinct-kv) |\n",
                       B, ctx, B, B * k.kv_tok * ctx / 1e9, rl_cuda_kv_pool_bytes(g) / 1e9);
            } else if (!ok) {
                printf("| tg b%d @ %d | failed | | | %s |\n", B, ctx, e.msg);
            } else {
                double tps = 5.0 * B / td, by = decode_bytes(&k, B, ctx, distinct), fl = by / (bw * 1e9);
                double wfl = (k.w_fixed + k.n_moe * (k.E ? k.E * (1.0 - pow(1.0 - (double)k.K / k.E, B)) : 0) * k.w_expert) / (bw * 1e9);
                printf("| tg b%d @ %d | %.1f | %.1f | %.0f%% | %.2f ms/step; %.2f GB/step (weights %.2f, KV "
                       "%.2f: %s); %.0f%% of the weight-bytes floor |\n",
                       B, ctx, tps, B / fl, 100 * fl / (td / 5), 1e3 * td / 5, by / 1e9, wfl * bw,
                       (distinct ? B : 1) * k.kv_tok * ctx / 1e9,
                       distinct ? "each fork its own pages" : "one prompt's pages, shared by the forks",
                       100 * wfl / (td / 5));
            }
            if (ok && getenv("RL_CUDA_PROFILE")) print_profile(g, 5, "device time per step");
            for (int i = 0; q && i < B; i++) rl_cuda_seq_free(q[i]);
            free(q);
            free(sp);
            fflush(stdout);
        }
    }
done:
    fflush(stdout);
    for (int i = 0; i < 16; i++) rl_cuda_seq_free(snap[i]);
    rl_cuda_seq_free(base);
    rl_cuda_engine_free(g);
    rl_model_free(&m);
    free(logits);
    free(tok);
    return 0;
}

int main(int argc, char **argv) {
    const char *models[8];
    int nm = 0, nc, nb, stepsz = 4096, det = 0;
    int *ctxs = parse_list("4096,32768,131072", &nc), *bs = parse_list("1,16,64,256", &nb);
    double budget = 90, distinct_gb = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--deterministic")) { det = 1; continue; }
        if (!strcmp(a, "--profile-decode")) { g_profile_decode = 1; continue; }
        if (!v) { fprintf(stderr, "bench_gpu: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--model") && nm < 8) models[nm++] = v;
        else if (!strcmp(a, "--contexts")) { free(ctxs); ctxs = parse_list(v, &nc); }
        else if (!strcmp(a, "--batches")) { free(bs); bs = parse_list(v, &nb); }
        else if (!strcmp(a, "--budget")) budget = atof(v);
        else if (!strcmp(a, "--distinct-kv")) distinct_gb = atof(v);
        else if (!strcmp(a, "--step")) stepsz = atoi(v);
        else { fprintf(stderr, "bench_gpu: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!nm) {
        models[nm++] = "ring-mini-linear-2.0";
        models[nm++] = "ring-mini-linear-2.0:softmax";
    }
    rl_err e = {0};
    if (!rl_cuda_available(&e)) { fprintf(stderr, "bench_gpu: %s\n", e.msg); return 1; }
    char dev[512];
    rl_cuda_describe(0, dev, sizeof dev);
    double bw = copy_bandwidth(), tf = cublas_rate();
    printf("## GPU model benchmark\n\ndevice: %s\n\ncopy bandwidth %.0f GB/s (device-to-device, "
           "read + write); cuBLAS bf16 GEMM 8192^3 (fp32 out) %.0f TFLOP/s\n", dev, bw, tf);
    if (bw <= 0 || tf <= 0) return 1;
    for (int i = 0; i < nm; i++) run_model(models[i], ctxs, nc, bs, nb, budget, stepsz, det, distinct_gb, bw, tf);
    free(ctxs);
    free(bs);
    return 0;
}
