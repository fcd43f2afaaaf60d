/* Device sampling (src/ops/cuda/sample_cuda.h) against the host sampler
 * (src/engine/sampler.c, an independent plain-C implementation of the same
 * draw): for random rows of logits (wide and narrow spreads, many exact ties,
 * -inf entries, padding ids past n_valid) and random draws (greedy, top-k
 * 1..1024 with top-p, min-p, temperature, repeat/presence/frequency
 * penalties over a window with repeats), the host prepares each draw with a
 * real rl_sampler (rl_sampler_prepare), picks with rl_sampler_pick, and the
 * device picks from the same draw: the tokens must be equal, and the device
 * log-probability equal to rl_logprob's within float rounding. Several draws
 * per launch, each on its own row, so row and penalty offsets are exercised.
 * Also: rl_cu_sample_ok refuses top-k off with a temperature. Exit 77 without
 * a GPU; RL_TEST_QUICK=1: fewer rounds (sanitizer runs). */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/logprob.h"
#include "engine/sampler.h"
#include "ops/cuda/sample_cuda.h"
#include "gpu_check.h"

static uint64_t g_s = 0x1234567;
static uint64_t next(void) {
    g_s += 0x9e3779b97f4a7c15ull;
    uint64_t z = g_s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
static int irand(int n) { return (int)(next() % (uint64_t)n); }
static float gauss(void) {
    double u = unif() + 1e-12, v = unif();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

enum { ROWS = 8 };

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    int fails = 0, draws = 0, lp_exact = 0, greedy = 0, topk = 0, penal = 0;
    double worst_lp = 0;
    /* rl_cu_sample_ok: what stays on the host */
    rl_cu_sample_args q = {.temperature = 0.8f, .top_k = 0, .n_valid = 100};
    if (rl_cu_sample_ok(&q)) { fprintf(stderr, "FAIL: top-k off accepted\n"); fails++; }
    q.top_k = 100;
    if (rl_cu_sample_ok(&q)) { fprintf(stderr, "FAIL: top-k = n_valid accepted\n"); fails++; }
    q.top_k = 1025;
    q.n_valid = 5000;
    if (rl_cu_sample_ok(&q)) { fprintf(stderr, "FAIL: top-k 1025 accepted\n"); fails++; }
    q.temperature = 0.0f;
    if (!rl_cu_sample_ok(&q)) { fprintf(stderr, "FAIL: greedy refused\n"); fails++; }

    const int Vs[] = {157184, 1000, 37};
    for (int vi = 0; vi < 3; vi++) {
        int V = Vs[vi];
        float *lg = malloc(sizeof(float) * (size_t)V * ROWS);
        float *dl, *dscr, *dlp;
        int *dtok, *dpt, *dpc;
        rl_cu_sample_args *dargs;
        CK(cudaMalloc((void **)&dl, sizeof(float) * (size_t)V * ROWS));
        CK(cudaMalloc((void **)&dscr, sizeof(float) * (size_t)V * ROWS));
        CK(cudaMalloc((void **)&dlp, sizeof(float) * ROWS));
        CK(cudaMalloc((void **)&dtok, sizeof(int) * ROWS));
        CK(cudaMalloc((void **)&dpt, sizeof(int) * 64 * ROWS));
        CK(cudaMalloc((void **)&dpc, sizeof(int) * 64 * ROWS));
        CK(cudaMalloc((void **)&dargs, sizeof(rl_cu_sample_args) * ROWS));
        int rounds = V > 100000 ? 12 : 60;
        if (getenv("RL_TEST_QUICK")) rounds = V > 100000 ? 2 : 6; /* under a sanitizer */
        for (int round = 0; round < rounds; round++) {
            rl_sampler smp[ROWS];
            rl_sampler_draw d[ROWS];
            rl_cu_sample_args a[ROWS];
            int pt[64 * ROWS], pc[64 * ROWS], np = 0, nv[ROWS];
            for (int r = 0; r < ROWS; r++) {
                float *row = lg + (size_t)r * V;
                int shape = irand(4);
                float sd = shape == 0 ? 1.0f : shape == 1 ? 5.0f : 20.0f;
                for (int i = 0; i < V; i++) {
                    float x = sd * gauss();
                    if (shape == 3) x = 0.5f * floorf(2.0f * gauss()); /* many exact ties */
                    row[i] = x;
                }
                if (irand(3) == 0)
                    for (int i = 0; i < V / 50 + 1; i++) row[irand(V)] = -INFINITY;
                if (irand(4) == 0) row[irand(V)] = -0.0f;
                nv[r] = irand(3) == 0 ? V - irand(V / 4 + 1) : V;
                if (nv[r] < 2) nv[r] = 2;
                rl_sampler_params p;
                rl_sampler_defaults(&p);
                p.seed = next() & 0xffffffffull;
                int kind = irand(6);
                p.temperature = kind == 0 ? 0.0f : (float)(0.2 + 1.5 * unif());
                int kmax = nv[r] - 1 < 1024 ? nv[r] - 1 : 1024;
                int kc = irand(4);
                p.top_k = kc == 0 ? 1 : kc == 1 ? 40 : kc == 2 ? 1 + irand(kmax) : kmax;
                if (p.top_k > kmax) p.top_k = kmax;
                p.top_p = irand(3) == 0 ? 1.0f : (float)(0.3 + 0.7 * unif());
                p.min_p = irand(3) == 0 ? 0.0f : (float)(0.2 * unif());
                int pen = irand(3) == 0;
                p.repeat_penalty = pen ? 1.3f : 1.0f;
                p.presence_penalty = pen ? 0.5f : 0.0f;
                p.frequency_penalty = pen ? 0.25f : 0.0f;
                p.repeat_last_n = 64;
                if (rl_sampler_init(&smp[r], &p, V)) { fprintf(stderr, "oom\n"); return 2; }
                int hist = irand(80);
                for (int i = 0; i < hist; i++) /* repeats: a few hot tokens */
                    rl_sampler_accept(&smp[r], irand(3) ? irand(20) : irand(V));
                rl_sampler_prepare(&smp[r], &d[r]);
                a[r] = (rl_cu_sample_args){
                    .temperature = d[r].temperature, .top_p = d[r].top_p, .min_p = d[r].min_p,
                    .repeat_penalty = d[r].repeat_penalty,
                    .presence_penalty = d[r].presence_penalty,
                    .frequency_penalty = d[r].frequency_penalty, .top_k = d[r].top_k,
                    .n_valid = nv[r], .penalize = d[r].penalize,
                    .n_pen = d[r].penalize ? d[r].n_pen : 0, .pen_off = np, .row = r,
                    .u01 = d[r].u01};
                for (int i = 0; i < a[r].n_pen; i++) {
                    pt[np + i] = d[r].pen_tok[i];
                    pc[np + i] = d[r].pen_cnt[i];
                }
                np += a[r].n_pen;
                if (!rl_cu_sample_ok(&a[r])) {
                    fprintf(stderr, "FAIL: supported draw refused (k %d, n %d)\n", a[r].top_k, nv[r]);
                    fails++;
                }
            }
            CK(cudaMemcpy(dl, lg, sizeof(float) * (size_t)V * ROWS, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dargs, a, sizeof a, cudaMemcpyHostToDevice));
            if (np) {
                CK(cudaMemcpy(dpt, pt, sizeof(int) * np, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dpc, pc, sizeof(int) * np, cudaMemcpyHostToDevice));
            }
            CK(cudaMemset(dtok, 0xff, sizeof(int) * ROWS));
            CK(rl_cu_sample(dl, V, ROWS, dargs, dpt, dpc, dscr, dtok, dlp, NULL));
            CK(cudaDeviceSynchronize());
            int tok[ROWS];
            float lp[ROWS];
            CK(cudaMemcpy(tok, dtok, sizeof tok, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(lp, dlp, sizeof lp, cudaMemcpyDeviceToHost));
            for (int r = 0; r < ROWS; r++) {
                const float *row = lg + (size_t)r * V;
                int ht = rl_sampler_pick(&smp[r], &d[r], row, nv[r]);
                float hl = rl_logprob(row, V, ht);
                draws++;
                greedy += a[r].temperature <= 0;
                topk += a[r].temperature > 0;
                penal += a[r].penalize && a[r].n_pen > 0;
                if (tok[r] != ht) {
                    if (fails < 20)
                        fprintf(stderr, "FAIL V=%d round %d row %d: device token %d, host %d "
                                "(t %.3f k %d p %.3f minp %.3f pen %d)\n", V, round, r, tok[r],
                                ht, a[r].temperature, a[r].top_k, a[r].top_p, a[r].min_p,
                                a[r].n_pen);
                    fails++;
                    continue;
                }
                double dlp_ = fabs((double)lp[r] - (double)hl);
                lp_exact += lp[r] == hl;
                if (isfinite(hl) && dlp_ > worst_lp) worst_lp = dlp_;
                if (!(dlp_ <= 1e-6 * (1.0 + fabs(hl))) && !(isinf(hl) && hl == lp[r])) {
                    if (fails < 20)
                        fprintf(stderr, "FAIL V=%d round %d row %d: logprob %.9g vs host %.9g\n",
                                V, round, r, lp[r], hl);
                    fails++;
                }
            }
            for (int r = 0; r < ROWS; r++) rl_sampler_free(&smp[r]);
        }
        free(lg);
        cudaFree(dl); cudaFree(dscr); cudaFree(dlp); cudaFree(dtok); cudaFree(dpt); cudaFree(dpc);
        cudaFree(dargs);
    }
    printf("device sampling: %d draws (%d greedy, %d top-k, %d penalized): tokens equal to the "
           "host sampler's in %d; logprob bitwise equal in %d, worst |diff| %.3g; %s (%d failures)\n",
           draws, greedy, topk, penal, draws - fails, lp_exact, worst_lp, fails ? "FAIL" : "PASS",
           fails);
    return fails ? 1 : 0;
}
