/* The device forward's GEMMs against cuBLAS at Ring-mini-linear-2.0's and
 * Ring-flash-linear-2.0's shapes, each figure beside its floor.
 *
 * Dense projections (y[T][N] = x[T][K] W[N][K]^T, W bf16, y fp32):
 *   - cublas-bf16: the peer, one cuBLAS bf16 GEMM on bf16 activations (what
 *     an engine with bf16 activations runs);
 *   - default: the engine's default mode (step_cuda.c gemm()): up to
 *     RL_CU_GEMV_T (4) rows the fp32-activation GEMV of decode_cuda.cu; more
 *     rows split x into bf16 hi + lo, up to 16 rows as one GEMM of 2T rows
 *     then the halves added, more as two GEMMs into the same output;
 *   - deterministic: the deterministic mode's GEMM, rl_cu_moe_mma's
 *     fixed-order kernel in its dense form (x split into hi + lo by
 *     rl_cu_split_bf16, counted), the same kernel for every T;
 *   - det-old: rl_cu_wgemm, the fixed-order SIMT GEMM (the deterministic
 *     mode before, RL_CUDA_DET_MMA=0; fp32-weight models still).
 * MoE experts (the T*K routed rows sorted by expert, uniform random routing;
 * gate + up of every row, then down):
 *   - cublas-bf16: one cuBLAS GEMM per expert on its (pre-gathered, bf16)
 *     rows, gate and up as one [2I][hid] matrix;
 *   - default: rl_cu_moe_mma (hi + lo, gate and up in one launch, then down)
 *     as the engine calls it (tensor cores when TK >= 64 and TK >= 2E);
 *   - deterministic: rl_cu_moe_mma with fixed_order at every T (the x split
 *     counted);
 *   - det-old: rl_cu_wgemm grouped.
 * Floor = max(FLOPs / the card's cuBLAS bf16 rate, bytes / its copy
 * bandwidth), both measured in the same run (gpu_floors.h); bytes count the
 * weights (MoE: the distinct experts hit) and the activations once.
 * Weights rotate over copies of > 256 MB so that no repetition reads them
 * from L2. Times are CUDA-event medians of 9 repetitions of a queue of
 * launches.
 * bench_gemm [--quick | --moe | --check]: --moe: the MoE rows at T = 256 and
 * 4096 only; --check: rl_cu_moe_mma (the kernel RL_CUDA_MMA picks) against
 * cuBLAS per expert on the gathered hi and lo rows (gate + up with W2/y2 and
 * xrow gather, down with yrow scatter, then accumulate), both shapes, T = 16,
 * 256, 4096; max |diff| / max |ref| <= 1e-4, exit 1 otherwise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "gpu_floors.h"
#include "ops/cuda/fwd_cuda.h"

#define CK(x)                                                                         \
    do {                                                                              \
        int rc_ = (int)(x);                                                           \
        if (rc_) {                                                                    \
            fprintf(stderr, "bench_gemm: %s failed (%d) at line %d\n", #x, rc_, __LINE__); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static double g_bw, g_tf; /* GB/s, TFLOP/s */
static cublasHandle_t g_cb;

static void *dalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes));
    return p;
}

/* x (n fp32, device): random bf16 values plus a small remainder below their
 * last bit, so the activations have a real low part as the engine's do */
static void random_x(float *x, size_t n, uint64_t seed) {
    uint16_t *dh = dalloc(n * 2), *dl = dalloc(n * 2);
    CK(rl_cu_fill_random_bf16(dh, n, seed, 1.0f, 0));
    CK(rl_cu_fill_random_bf16(dl, n, seed + 1, 1.0f, 0));
    uint16_t *h = malloc(n * 2), *l = malloc(n * 2);
    float *xf = malloc(n * 4);
    CK(cudaMemcpy(h, dh, n * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(l, dl, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
        uint32_t a = (uint32_t)h[i] << 16, b = (uint32_t)l[i] << 16;
        float fa, fb;
        memcpy(&fa, &a, 4);
        memcpy(&fb, &b, 4);
        xf[i] = fa + fb * (1.0f / 512.0f);
    }
    CK(cudaMemcpy(x, xf, n * 4, cudaMemcpyHostToDevice));
    free(h);
    free(l);
    free(xf);
    CK(cudaFree(dh));
    CK(cudaFree(dl));
}

/* Median over 9 repetitions of fn(rep) (each a queue of launches), ms. */
typedef void (*bench_fn)(void *ctx, int rep);
static double median_ms(bench_fn fn, void *ctx) {
    enum { REPS = 9 };
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    fn(ctx, 0);
    fn(ctx, 1);
    CK(cudaDeviceSynchronize());
    float t[REPS];
    for (int r = 0; r < REPS; r++) {
        cudaEventRecord(e0, 0);
        fn(ctx, r + 2);
        cudaEventRecord(e1, 0);
        CK(cudaEventSynchronize(e1));
        cudaEventElapsedTime(&t[r], e0, e1);
    }
    for (int i = 1; i < REPS; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            float x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return t[REPS / 2];
}

static void report(const char *what, const char *shape, const char *variant, double ms,
                   double flops, double bytes, double peer_ms) {
    double fl = fmax(flops / (g_tf * 1e9), bytes / (g_bw * 1e6)); /* ms */
    printf("| %s | %s | %s | %.4f | %.1f | %.4f | %.0f%% |", what, shape, variant, ms,
           flops / (ms * 1e9), fl, 100 * fl / ms);
    if (peer_ms > 0) printf(" %.2f× |\n", peer_ms / ms);
    else printf(" |\n");
    fflush(stdout);
}

/* ---- dense -------------------------------------------------------------------- */

typedef struct {
    int T, N, K, nw, variant;
    uint16_t **W;   /* nw weight copies */
    float *x, *y, *y2;
    uint16_t *xb, *xl2; /* xl2: [2T][K] (hi rows, then lo rows) */
} dense_ctx;

static void dense_run(void *p, int rep) {
    dense_ctx *c = p;
    const uint16_t *W = c->W[rep % c->nw];
    int T = c->T, N = c->N, K = c->K;
    float one = 1.0f, zero = 0.0f;
    if (c->variant == 0) { /* peer: bf16 activations, one GEMM */
        CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, CUDA_R_16BF, K, c->xb,
                        CUDA_R_16BF, K, &zero, c->y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT));
    } else if (c->variant == 1) { /* default mode: hi + lo, as step_cuda.c gemm() */
        CK(rl_cu_to_bf16(c->x, T, K, K, c->xl2, 0));
        if (T <= RL_CU_STACK_T) { /* step_cuda.c gemm(): one stacked GEMM of 2T rows */
            CK(rl_cu_bf16_lo(c->x, T, K, K, c->xl2 + (size_t)T * K, 0));
            CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, N, 2 * T, K, &one, W, CUDA_R_16BF, K,
                            c->xl2, CUDA_R_16BF, K, &zero, c->y2, CUDA_R_32F, N,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            CK(rl_cu_add_halves(c->y2, T, N, c->y, N, 0, 0));
        } else {
            CK(rl_cu_bf16_lo(c->x, T, K, K, c->xl2 + (size_t)T * K, 0));
            CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, CUDA_R_16BF, K,
                            c->xl2, CUDA_R_16BF, K, &zero, c->y, CUDA_R_32F, N,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, CUDA_R_16BF, K,
                            c->xl2 + (size_t)T * K, CUDA_R_16BF, K, &one, c->y, CUDA_R_32F, N,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
    } else if (c->variant == 4) { /* deterministic mode: the fixed-order mma kernel */
        CK(rl_cu_split_bf16(c->x, T, K, K, c->xl2, c->xl2 + (size_t)T * K, 0));
        rl_cu_moe_mma_args g = {.W = W, .N = N, .K = K, .x = c->xl2,
                                .x_lo = c->xl2 + (size_t)T * K, .ldx = K, .xdiv = 1, .y = c->y,
                                .ldy = N, .T = T, .fixed_order = 1};
        CK(rl_cu_moe_mma(&g, 0));
    } else if (c->variant == 3) { /* default mode, <= RL_CU_GEMV_T rows: fp32 GEMV */
        rl_cu_gemv_args g = {.W = {W}, .y = {c->y}, .N = {N}, .ldy = {N}, .n = 1, .K = K,
                             .x = c->x, .ldx = K, .T = T};
        CK(rl_cu_gemv(&g, 0));
    } else { /* the deterministic mode before (and with fp32 weights) */
        rl_cu_gemm g = {.W = W, .N = N, .K = K, .x = c->x, .ldx = K, .xdiv = 1, .y = c->y,
                        .ldy = N, .T = T};
        CK(rl_cu_wgemm(&g, 0));
    }
}

static void dense(const char *model, const char *name, int N, int K, int T) {
    dense_ctx c = {.T = T, .N = N, .K = K};
    size_t wb = (size_t)N * K * 2;
    c.nw = (int)fmin(16, ceil(256e6 / (double)wb)) + 1;
    c.W = malloc(sizeof(uint16_t *) * c.nw);
    for (int i = 0; i < c.nw; i++) {
        c.W[i] = dalloc(wb);
        CK(rl_cu_fill_random_bf16(c.W[i], (size_t)N * K, 100 + i, 0.05f, 0));
    }
    c.x = dalloc((size_t)T * K * 4);
    c.y = dalloc((size_t)T * N * 4);
    c.y2 = dalloc((size_t)2 * T * N * 4);
    c.xb = dalloc((size_t)T * K * 2);
    c.xl2 = dalloc((size_t)2 * T * K * 2);
    random_x(c.x, (size_t)T * K, 7);
    CK(rl_cu_to_bf16(c.x, T, K, K, c.xb, 0)); /* the peer's bf16 activations: bf16(x) */
    char shape[96];
    snprintf(shape, sizeof shape, "%s %s N=%d K=%d T=%d", model, name, N, K, T);
    double flops = 2.0 * T * (double)N * K, bytes = (double)wb + T * (K * 4.0 + N * 4.0);
    double peer = 0;
    const char *names[5] = {"cublas-bf16 (peer)", "default > 4 rows (hi+lo cuBLAS)",
                            "det-old (rl_cu_wgemm)", "default <= 4 rows (fp32 GEMV)",
                            "deterministic (fixed-order mma)"};
    for (int v = 0; v < 5; v++) {
        if (v == 2 && T > 512) continue; /* the SIMT GEMM at prefill sizes: seconds */
        if (v == 3 && (T > RL_CU_GEMV_T || !rl_cu_gemv_ok(K, K, c.x, c.W[0]))) continue;
        c.variant = v;
        double ms = median_ms(dense_run, &c);
        if (v == 0) peer = ms;
        report("dense", shape, names[v], ms, flops, bytes, v ? peer : 0);
    }
    for (int i = 0; i < c.nw; i++) cudaFree(c.W[i]);
    free(c.W);
    cudaFree(c.x); cudaFree(c.y); cudaFree(c.y2); cudaFree(c.xb); cudaFree(c.xl2);
}

/* Uniform random routing: K distinct experts per token, [T][K] (malloc'ed). */
static int *random_routing(int T, int K, int E) {
    int *sel = malloc(sizeof(int) * (size_t)T * K);
    if (!sel) exit(1);
    uint64_t s = 0x9e3779b97f4a7c15ull + (uint64_t)T;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < K; r++) {
            int e, dup;
            do {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                e = (int)((s >> 33) % (uint64_t)E);
                dup = 0;
                for (int q = 0; q < r; q++) dup |= sel[t * K + q] == e;
            } while (dup);
            sel[t * K + r] = e;
        }
    return sel;
}

/* ---- MoE experts ---------------------------------------------------------------- */

typedef struct {
    int T, K, E, I, hid, TK, nw, variant, max_tiles_mma, max_tiles_8;
    uint16_t **Wg, **Wu, **Wd, **Wgu; /* per copy: gate, up, down [E][..]; gate|up [E][2I][hid] */
    float *x, *M1, *M2, *YK;
    uint16_t *XB, *XL, *MB, *ML, *XS, *MS; /* XS/MS: the peer's sorted bf16 rows */
    float *G, *D; /* peer outputs */
    int *sel, *cnt_mma, *offs_mma, *toff_mma, *rows_mma, *cnt8, *offs8, *toff8, *rows8;
    int *hcount; /* host: rows per expert */
} moe_ctx;

static void moe_run(void *p, int rep) {
    moe_ctx *c = p;
    int w = rep % c->nw, I = c->I, hid = c->hid;
    float one = 1.0f, zero = 0.0f;
    if (c->variant == 0) {
        size_t r0 = 0;
        for (int e = 0; e < c->E; e++) {
            int n = c->hcount[e];
            if (!n) continue;
            CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, n, hid, &one,
                            c->Wgu[w] + (size_t)e * 2 * I * hid, CUDA_R_16BF, hid,
                            c->XS + r0 * hid, CUDA_R_16BF, hid, &zero, c->G + r0 * 2 * I,
                            CUDA_R_32F, 2 * I, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, hid, n, I, &one,
                            c->Wd[w] + (size_t)e * hid * I, CUDA_R_16BF, I, c->MS + r0 * I,
                            CUDA_R_16BF, I, &zero, c->D + r0 * hid, CUDA_R_32F, hid,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            r0 += (size_t)n;
        }
    } else if (c->variant == 1 || c->variant == 3) { /* 3: deterministic, fixed order */
        if (c->variant == 3) CK(rl_cu_split_bf16(c->x, c->T, hid, hid, c->XB, c->XL, 0));
        rl_cu_moe_mma_args g = {.W = c->Wg[w], .W2 = c->Wu[w], .N = I, .K = hid,
                                .wstride = (size_t)I * hid, .x = c->XB, .x_lo = c->XL,
                                .ldx = hid, .xrow = c->rows_mma, .xdiv = c->K, .y = c->M1,
                                .y2 = c->M2, .ldy = I, .offsets = c->offs_mma,
                                .tile_off = c->toff_mma, .E = c->E,
                                .max_tiles = c->max_tiles_mma, .fixed_order = c->variant == 3};
        CK(rl_cu_moe_mma(&g, 0));
        rl_cu_moe_mma_args dn = g;
        dn.W = c->Wd[w];
        dn.W2 = NULL;
        dn.N = hid;
        dn.K = I;
        dn.wstride = (size_t)hid * I;
        dn.x = c->MB;
        dn.x_lo = c->ML;
        dn.ldx = I;
        dn.xrow = NULL;
        dn.xdiv = 1;
        dn.y = c->YK;
        dn.y2 = NULL;
        dn.ldy = hid;
        dn.yrow = c->rows_mma;
        CK(rl_cu_moe_mma(&dn, 0));
    } else {
        rl_cu_gemm g = {.W = c->Wg[w], .N = I, .K = hid, .wstride = (size_t)I * hid, .x = c->x,
                        .ldx = hid, .xrow = c->rows8, .xdiv = c->K, .y = c->M1, .ldy = I,
                        .T = c->TK, .offsets = c->offs8, .tile_off = c->toff8, .E = c->E,
                        .max_tiles = c->max_tiles_8};
        CK(rl_cu_wgemm(&g, 0));
        g.W = c->Wu[w];
        g.y = c->M2;
        CK(rl_cu_wgemm(&g, 0));
        rl_cu_gemm dn = g;
        dn.W = c->Wd[w];
        dn.N = hid;
        dn.K = I;
        dn.wstride = (size_t)hid * I;
        dn.x = c->M1;
        dn.ldx = I;
        dn.xrow = NULL;
        dn.xdiv = 1;
        dn.y = c->YK;
        dn.ldy = hid;
        dn.yrow = c->rows8;
        CK(rl_cu_wgemm(&dn, 0));
    }
}

static void moe(const char *model, int E, int K, int I, int hid, int T) {
    moe_ctx c = {.T = T, .K = K, .E = E, .I = I, .hid = hid, .TK = T * K};
    int TK = c.TK;
    size_t per = (size_t)E * 3 * I * hid * 2;
    c.nw = (int)fmin(8, ceil(256e6 / (double)per)) + 1;
    c.Wg = malloc(sizeof(void *) * c.nw);
    c.Wu = malloc(sizeof(void *) * c.nw);
    c.Wd = malloc(sizeof(void *) * c.nw);
    c.Wgu = malloc(sizeof(void *) * c.nw);
    for (int i = 0; i < c.nw; i++) {
        size_t n = (size_t)E * I * hid;
        c.Wgu[i] = dalloc(2 * n * 2); /* gate|up per expert; the engine's gate and up are
                                          separate matrices of the same bytes */
        c.Wg[i] = dalloc(n * 2);
        c.Wu[i] = dalloc(n * 2);
        c.Wd[i] = dalloc(n * 2);
        CK(rl_cu_fill_random_bf16(c.Wgu[i], 2 * n, 200 + i, 0.05f, 0));
        CK(rl_cu_fill_random_bf16(c.Wg[i], n, 300 + i, 0.05f, 0));
        CK(rl_cu_fill_random_bf16(c.Wu[i], n, 400 + i, 0.05f, 0));
        CK(rl_cu_fill_random_bf16(c.Wd[i], n, 500 + i, 0.05f, 0));
    }
    int *sel = random_routing(T, K, E);
    c.hcount = calloc((size_t)E, sizeof(int));
    for (int i = 0; i < TK; i++) c.hcount[sel[i]]++;
    int hit = 0;
    for (int e = 0; e < E; e++) hit += c.hcount[e] > 0;
    c.sel = dalloc(sizeof(int) * TK);
    CK(cudaMemcpy(c.sel, sel, sizeof(int) * TK, cudaMemcpyHostToDevice));
    c.x = dalloc((size_t)T * hid * 4);
    random_x(c.x, (size_t)T * hid, 9); /* the fp32 input of det-old and the fixed-order split */
    c.M1 = dalloc((size_t)TK * I * 4);
    c.M2 = dalloc((size_t)TK * I * 4);
    c.YK = dalloc((size_t)TK * hid * 4);
    c.G = dalloc((size_t)TK * 2 * I * 4);
    c.D = dalloc((size_t)TK * hid * 4);
    c.XB = dalloc((size_t)T * hid * 2);
    c.XL = dalloc((size_t)T * hid * 2);
    c.MB = dalloc((size_t)TK * I * 2);
    c.ML = dalloc((size_t)TK * I * 2);
    c.XS = dalloc((size_t)TK * hid * 2);
    c.MS = dalloc((size_t)TK * I * 2);
    CK(rl_cu_fill_random_bf16(c.XB, (size_t)T * hid, 11, 1.0f, 0));
    CK(rl_cu_fill_random_bf16(c.XL, (size_t)T * hid, 12, 0.002f, 0));
    CK(rl_cu_fill_random_bf16(c.MB, (size_t)TK * I, 13, 1.0f, 0));
    CK(rl_cu_fill_random_bf16(c.ML, (size_t)TK * I, 14, 0.002f, 0));
    CK(rl_cu_fill_random_bf16(c.XS, (size_t)TK * hid, 15, 1.0f, 0));
    CK(rl_cu_fill_random_bf16(c.MS, (size_t)TK * I, 16, 1.0f, 0));
    c.cnt_mma = dalloc(sizeof(int) * E);
    c.offs_mma = dalloc(sizeof(int) * (E + 1));
    c.max_tiles_mma = (TK + RL_CU_MMA_TOKENS - 1) / RL_CU_MMA_TOKENS + (E < TK ? E : TK);
    c.toff_mma = dalloc(sizeof(int) * (E + 1));
    c.rows_mma = dalloc(sizeof(int) * TK);
    c.cnt8 = dalloc(sizeof(int) * E);
    c.offs8 = dalloc(sizeof(int) * (E + 1));
    c.max_tiles_8 = (TK + 7) / 8 + (E < TK ? E : TK);
    c.toff8 = dalloc(sizeof(int) * (E + 1));
    c.rows8 = dalloc(sizeof(int) * TK);
    CK(rl_cu_moe_bucket(c.sel, TK, E, RL_CU_MMA_TOKENS, c.cnt_mma, c.offs_mma, c.toff_mma,
                        c.rows_mma, 0));
    CK(rl_cu_moe_bucket(c.sel, TK, E, 8, c.cnt8, c.offs8, c.toff8, c.rows8, 0));
    char shape[128];
    snprintf(shape, sizeof shape, "%s E=%d top-%d I=%d hid=%d T=%d (%d experts hit)", model, E, K,
             I, hid, T, hit);
    double flops = 2.0 * TK * 3.0 * I * hid;
    double bytes = hit * 3.0 * I * hid * 2 + T * hid * 4.0 + TK * hid * 4.0;
    const char *names[4] = {"cublas-bf16 per expert (peer)", "default (moe_mma hi+lo)",
                            "det-old (rl_cu_wgemm)", "deterministic (fixed-order mma)"};
    double peer = 0;
    for (int v = 0; v < 4; v++) {
        if (v == 1 && !(TK >= RL_CU_MMA_TOKENS && TK >= 2 * E)) {
            printf("| moe | %s | default | (below %d rows: the fused small-batch kernels at <= 16 "
                   "tokens, rl_cu_wgemm above; see the model benchmark) "
                   "| | | | |\n", shape, 2 * E > RL_CU_MMA_TOKENS ? 2 * E : RL_CU_MMA_TOKENS);
            continue;
        }
        if (v == 2 && TK > 8192) continue;
        c.variant = v;
        double ms = median_ms(moe_run, &c);
        if (v == 0) peer = ms;
        report("moe", shape, names[v], ms, flops, bytes, v ? peer : 0);
    }
    for (int i = 0; i < c.nw; i++) {
        cudaFree(c.Wg[i]); cudaFree(c.Wu[i]); cudaFree(c.Wd[i]); cudaFree(c.Wgu[i]);
    }
    free(c.Wg); free(c.Wu); free(c.Wd); free(c.Wgu); free(sel); free(c.hcount);
    void *bufs[] = {c.sel, c.x, c.M1, c.M2, c.YK, c.G, c.D, c.XB, c.XL, c.MB, c.ML, c.XS, c.MS,
                    c.cnt_mma, c.offs_mma, c.toff_mma, c.rows_mma, c.cnt8, c.offs8, c.toff8,
                    c.rows8};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]);
}


/* ---- --check: rl_cu_moe_mma against cuBLAS per expert --------------------------------- */

/* max |a - b| over max |b| (b: the reference); perm: a's row of b's row r (NULL: r) */
static double rel_err(const float *a, const float *b, int rows, int cols, const int *perm) {
    double num = 0, den = 0;
    for (int r = 0; r < rows; r++) {
        const float *ar = a + (size_t)(perm ? perm[r] : r) * cols, *br = b + (size_t)r * cols;
        for (int j = 0; j < cols; j++) {
            double d = fabs((double)ar[j] - br[j]), m = fabs((double)br[j]);
            if (!(d <= num) && num == num) num = d; /* a NaN sticks (NaN != NaN) */
            if (m > den) den = m;
        }
    }
    return den > 0 ? num / den : num;
}

static float *dl_f32(const float *d, size_t n) {
    float *h = malloc(n * 4);
    CK(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
    return h;
}

/* y_sorted[r] = W_e (x[r] + xl[r]) for the rows r of each expert (x, xl: sorted rows) */
static void ref_grouped(const uint16_t *W, int N, int Kd, const uint16_t *x, const uint16_t *xl,
                        float *y, const int *hoffs, int E) {
    float one = 1.0f, zero = 0.0f;
    for (int e = 0; e < E; e++) {
        int r0 = hoffs[e], n = hoffs[e + 1] - r0;
        if (n <= 0) continue;
        const uint16_t *We = W + (size_t)e * N * Kd;
        CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, N, n, Kd, &one, We, CUDA_R_16BF, Kd,
                        x + (size_t)r0 * Kd, CUDA_R_16BF, Kd, &zero, y + (size_t)r0 * N,
                        CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CK(cublasGemmEx(g_cb, CUBLAS_OP_T, CUBLAS_OP_N, N, n, Kd, &one, We, CUDA_R_16BF, Kd,
                        xl + (size_t)r0 * Kd, CUDA_R_16BF, Kd, &one, y + (size_t)r0 * N,
                        CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

/* Gate + up (W2/y2, gathered x through xrow / xdiv), then down (yrow scatter), then down
 * again with accumulate = 1 (expects twice the reference). Returns the failures. */
static int check_moe(const char *model, int E, int K, int I, int hid, int T) {
    int TK = T * K;
    int *sel = random_routing(T, K, E);
    size_t nw = (size_t)E * I * hid;
    uint16_t *Wg = dalloc(nw * 2), *Wu = dalloc(nw * 2), *Wd = dalloc(nw * 2);
    CK(rl_cu_fill_random_bf16(Wg, nw, 31, 0.05f, 0));
    CK(rl_cu_fill_random_bf16(Wu, nw, 32, 0.05f, 0));
    CK(rl_cu_fill_random_bf16(Wd, nw, 33, 0.05f, 0));
    uint16_t *XB = dalloc((size_t)T * hid * 2), *XL = dalloc((size_t)T * hid * 2);
    uint16_t *MB = dalloc((size_t)TK * I * 2), *ML = dalloc((size_t)TK * I * 2);
    CK(rl_cu_fill_random_bf16(XB, (size_t)T * hid, 34, 1.0f, 0));
    CK(rl_cu_fill_random_bf16(XL, (size_t)T * hid, 35, 0.01f, 0));
    CK(rl_cu_fill_random_bf16(MB, (size_t)TK * I, 36, 1.0f, 0));
    CK(rl_cu_fill_random_bf16(ML, (size_t)TK * I, 37, 0.01f, 0));
    int *dsel = dalloc(sizeof(int) * TK), *cnt = dalloc(sizeof(int) * E);
    int *offs = dalloc(sizeof(int) * (E + 1)), *toff = dalloc(sizeof(int) * (E + 1));
    int *rows = dalloc(sizeof(int) * TK);
    CK(cudaMemcpy(dsel, sel, sizeof(int) * TK, cudaMemcpyHostToDevice));
    CK(rl_cu_moe_bucket(dsel, TK, E, RL_CU_MMA_TOKENS, cnt, offs, toff, rows, 0));
    int *hoffs = malloc(sizeof(int) * (E + 1)), *hrows = malloc(sizeof(int) * TK);
    CK(cudaMemcpy(hoffs, offs, sizeof(int) * (E + 1), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hrows, rows, sizeof(int) * TK, cudaMemcpyDeviceToHost));
    float *M1 = dalloc((size_t)TK * I * 4), *M2 = dalloc((size_t)TK * I * 4);
    float *G1 = dalloc((size_t)TK * I * 4), *G2 = dalloc((size_t)TK * I * 4);
    float *YK = dalloc((size_t)TK * hid * 4), *D = dalloc((size_t)TK * hid * 4);
    CK(cudaMemset(M1, 0xff, (size_t)TK * I * 4)); /* NaN: rows never written show */
    CK(cudaMemset(M2, 0xff, (size_t)TK * I * 4));
    CK(cudaMemset(YK, 0xff, (size_t)TK * hid * 4));
    rl_cu_moe_mma_args g = {.W = Wg, .W2 = Wu, .N = I, .K = hid, .wstride = (size_t)I * hid,
                            .x = XB, .x_lo = XL, .ldx = hid, .xrow = rows, .xdiv = K, .y = M1,
                            .y2 = M2, .ldy = I, .offsets = offs, .tile_off = toff, .E = E,
                            .max_tiles = (TK + RL_CU_MMA_TOKENS - 1) / RL_CU_MMA_TOKENS +
                                         (E < TK ? E : TK)};
    CK(rl_cu_moe_mma(&g, 0));
    rl_cu_moe_mma_args dn = g;
    dn.W = Wd;
    dn.W2 = NULL;
    dn.N = hid;
    dn.K = I;
    dn.wstride = (size_t)hid * I;
    dn.x = MB;
    dn.x_lo = ML;
    dn.ldx = I;
    dn.xrow = NULL;
    dn.xdiv = 1;
    dn.y = YK;
    dn.y2 = NULL;
    dn.ldy = hid;
    dn.yrow = rows;
    CK(rl_cu_moe_mma(&dn, 0));
    CK(cudaDeviceSynchronize());
    float *hM1 = dl_f32(M1, (size_t)TK * I), *hM2 = dl_f32(M2, (size_t)TK * I);
    float *hY1 = dl_f32(YK, (size_t)TK * hid);
    dn.accumulate = 1;
    CK(rl_cu_moe_mma(&dn, 0));
    CK(cudaDeviceSynchronize());
    float *hY2 = dl_f32(YK, (size_t)TK * hid);
    /* reference: the gathered rows in sorted order, cuBLAS per expert */
    uint16_t *XSh = dalloc((size_t)TK * hid * 2), *XSl = dalloc((size_t)TK * hid * 2);
    {
        size_t nx = (size_t)T * hid;
        uint16_t *h = malloc(nx * 2), *l = malloc(nx * 2);
        uint16_t *sh = malloc((size_t)TK * hid * 2), *sl = malloc((size_t)TK * hid * 2);
        CK(cudaMemcpy(h, XB, nx * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(l, XL, nx * 2, cudaMemcpyDeviceToHost));
        for (int r = 0; r < TK; r++) {
            memcpy(sh + (size_t)r * hid, h + (size_t)(hrows[r] / K) * hid, (size_t)hid * 2);
            memcpy(sl + (size_t)r * hid, l + (size_t)(hrows[r] / K) * hid, (size_t)hid * 2);
        }
        CK(cudaMemcpy(XSh, sh, (size_t)TK * hid * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(XSl, sl, (size_t)TK * hid * 2, cudaMemcpyHostToDevice));
        free(h); free(l); free(sh); free(sl);
    }
    ref_grouped(Wg, I, hid, XSh, XSl, G1, hoffs, E);
    ref_grouped(Wu, I, hid, XSh, XSl, G2, hoffs, E);
    ref_grouped(Wd, hid, I, MB, ML, D, hoffs, E);
    CK(cudaDeviceSynchronize());
    float *hG1 = dl_f32(G1, (size_t)TK * I), *hG2 = dl_f32(G2, (size_t)TK * I);
    float *hD = dl_f32(D, (size_t)TK * hid);
    double e1 = rel_err(hM1, hG1, TK, I, NULL), e2 = rel_err(hM2, hG2, TK, I, NULL);
    double e3 = rel_err(hY1, hD, TK, hid, hrows);
    for (size_t i = 0; i < (size_t)TK * hid; i++) hD[i] *= 2.0f;
    double e4 = rel_err(hY2, hD, TK, hid, hrows);
    const double tol = 1e-4; /* fp32 sums in another order: ~1e-6; no lo part: ~1e-3 */
    int fails = !(e1 <= tol) + !(e2 <= tol) + !(e3 <= tol) + !(e4 <= tol);
    const char *kn = getenv("RL_CUDA_MMA");
    printf("check %s T=%d (TK=%d) kernel=%s: gate %.2e up %.2e down(yrow) %.2e "
           "down(accumulate) %.2e -> %s\n", model, T, TK, kn ? kn : "default", e1, e2, e3, e4,
           fails ? "FAIL" : "ok");
    fflush(stdout);
    free(sel); free(hoffs); free(hrows); free(hM1); free(hM2); free(hY1); free(hY2);
    free(hG1); free(hG2); free(hD);
    void *bufs[] = {Wg, Wu, Wd, XB, XL, MB, ML, dsel, cnt, offs, toff, rows,
                    M1, M2, G1, G2, YK, D, XSh, XSl};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]);
    return fails;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int moe_only = argc > 1 && !strcmp(argv[1], "--moe");
    int check = argc > 1 && !strcmp(argv[1], "--check");
    if (argc > 1 && !quick && !moe_only && !check) {
        fprintf(stderr, "usage: bench_gemm [--quick | --moe | --check]\n");
        return 2;
    }
    if (check) {
        CK(cublasCreate(&g_cb));
        const int cT[] = {16, 256, 4096};
        int fails = 0;
        for (int i = 0; i < 3; i++) {
            fails += check_moe("mini", 256, 8, 512, 2048, cT[i]);
            fails += check_moe("flash", 256, 8, 1024, 4096, cT[i]);
        }
        cublasDestroy(g_cb);
        printf("check: %s\n", fails ? "FAIL" : "all ok");
        return fails ? 1 : 0;
    }
    struct cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    g_bw = copy_bandwidth();
    g_tf = cublas_rate();
    if (g_bw <= 0 || g_tf <= 0) return 1;
    CK(cublasCreate(&g_cb));
    printf("## GEMM benchmark\n\ncard: %s (%d SMs); copy %.0f GB/s, cuBLAS bf16 %.0f TFLOP/s "
           "(measured now)\n\n", pr.name, pr.multiProcessorCount, g_bw, g_tf);
    printf("| kind | shape | variant | ms | TFLOP/s | floor ms | %% of floor | × peer |\n"
           "|---|---|---|---|---|---|---|---|\n");
    const int Ts[] = {1, 16, 256, 4096};
    int nT = quick ? 2 : 4;
    if (moe_only) { /* the MoE rows at prefill sizes only */
        for (int i = 2; i < 4; i++) {
            moe("mini", 256, 8, 512, 2048, Ts[i]);
            moe("flash", 256, 8, 1024, 4096, Ts[i]);
        }
        nT = 0;
    }
    for (int i = 0; i < nT; i++) {
        int T = quick ? (i ? 4096 : 1) : Ts[i];
        dense("mini", "qkv", 3 * 2048, 2048, T);
        dense("mini", "o", 2048, 2048, T);
        dense("flash", "qkv", 3 * 4096, 4096, T);
        dense("flash", "o", 4096, 4096, T);
        if (T <= 16) dense("mini", "lm-head", 157184, 2048, T);
        moe("mini", 256, 8, 512, 2048, T);
        moe("flash", 256, 8, 1024, 4096, T);
    }
    cublasDestroy(g_cb);
    return 0;
}
