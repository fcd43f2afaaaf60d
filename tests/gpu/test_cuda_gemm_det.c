/* The deterministic mode's tensor-core GEMM (fwd_cuda.h rl_cu_moe_mma with
 * fixed_order) at the kernel level, on random bf16 weights and fp32
 * activations split by rl_cu_split_bf16:
 *   - accuracy: rows within 1e-4 relative (L2) of a double product with the
 *     unsplit fp32 activations (hi + lo carries ~16 bits of x's mantissa);
 *   - batch/split invariance, bitwise: the dense form over T rows equals the
 *     same rows run in random chunks (1, 2, 3, 63, 64, 65, ... rows), alone,
 *     and between other rows (so at other places of their 64-row tile);
 *   - the grouped form (experts, rows bucketed by rl_cu_moe_bucket, gate and
 *     up in one launch, xrow/yrow gathers) equals the dense form of each
 *     expert's matrix over all tokens, bitwise;
 *   - accumulate adds to y with one fp32 add.
 * Shapes include N and K that are not multiples of the block's 128 rows and
 * 64-wide k slices. Exits 77 (CTest: skipped) when no GPU is present. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/fwd_cuda.h"
#include "testutil.h"
#include "gpu_check.h"

static uint16_t to_bf16(float f) { /* round to nearest even (finite inputs) */
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void *dev(const void *h, size_t bytes) {
    void *d = NULL;
    CK(cudaMalloc(&d, bytes ? bytes : 16));
    if (h) CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static void poison(float *d, size_t n) { CK(cudaMemset(d, 0xff, n * sizeof(float))); } /* NaN */
static float *host(const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

/* fp32 activations of varied magnitude (the lo part matters) */
static void fill_x(float *x, size_t n, uint64_t *seed) {
    for (size_t i = 0; i < n; i++)
        x[i] = rl_t_uniform(seed, -1.0f, 1.0f) * ldexpf(1.0f, (int)(rl_t_rand(seed) % 9) - 4);
}

/* y = x . W^T in the dense form, fixed order; x already split into hi/lo (T rows, stride
 * K), y stride N */
static void dense(const uint16_t *W, int N, int K, const uint16_t *hi, const uint16_t *lo, int T,
                  float *y, int acc) {
    rl_cu_moe_mma_args g = {.W = W, .N = N, .K = K, .x = hi, .x_lo = lo, .ldx = K, .xdiv = 1,
                            .y = y, .ldy = N, .accumulate = acc, .T = T, .fixed_order = 1};
    CK(rl_cu_moe_mma(&g, 0));
}

static int random_chunk(uint64_t *seed, int left) {
    static const int pick[] = {1, 1, 2, 3, 7, 30, 63, 64, 65, 128, 129};
    int v = pick[rl_t_rand(seed) % (sizeof pick / sizeof pick[0])];
    if (rl_t_rand(seed) % 4 == 0) v = 1 + (int)(rl_t_rand(seed) % 150);
    return v < left ? v : left;
}

static void one_shape(int N, int K, int T, uint64_t seed) {
    size_t nw = (size_t)N * K, ny = (size_t)T * N;
    /* weights: E = 3 experts' gate and up matrices; dense tests use expert 0's gate */
    enum { E = 3, KR = 2 };
    uint16_t *Wh = malloc(2 * E * nw * 2);
    for (size_t i = 0; i < 2 * E * nw; i++)
        Wh[i] = to_bf16(rl_t_uniform(&seed, -1.0f, 1.0f) / sqrtf((float)K));
    /* P random rows, the T rows, Q random rows: the T rows inside a larger batch */
    int P = 37, Q = 50, TB = P + T + Q;
    float *xb = malloc((size_t)TB * K * sizeof(float));
    fill_x(xb, (size_t)TB * K, &seed);
    const float *xh = xb + (size_t)P * K;
    uint16_t *Wd = dev(Wh, 2 * E * nw * 2), *Wu = Wd + E * nw;
    float *xd = dev(xb, (size_t)TB * K * sizeof(float));
    uint16_t *hi = dev(NULL, (size_t)TB * K * 2), *lo = dev(NULL, (size_t)TB * K * 2);
    CK(rl_cu_split_bf16(xd, TB, K, K, hi, lo, 0));
    uint16_t *hiT = hi + (size_t)P * K, *loT = lo + (size_t)P * K;
    float *y = dev(NULL, (size_t)TB * N * sizeof(float));

    /* the reference run: the T rows alone, one call */
    poison(y, ny);
    dense(Wd, N, K, hiT, loT, T, y, 0);
    float *ya = host(y, ny);

    /* accuracy against double with the unsplit activations */
    double worst = 0;
    int bad = -1;
    for (int t = 0; t < T; t++) {
        double num = 0, den = 0;
        for (int o = 0; o < N; o++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)from_bf16(Wh[(size_t)o * K + k]) * xh[(size_t)t * K + k];
            double d = ya[(size_t)t * N + o] - s;
            num += d * d;
            den += s * s;
        }
        double rel = sqrt(num / (den > 0 ? den : 1));
        if (!(rel <= worst) && worst == worst) worst = rel, bad = t; /* a NaN row sticks */
    }
    printf("N %5d K %5d T %3d: worst rel err vs double %.2e (row %d)\n", N, K, T, worst, bad);
    CHECK(worst < 1e-4, "N %d K %d: row %d rel err %.3e vs double", N, K, bad, worst);

    /* random chunks, several times */
    for (int rep = 0; rep < 3; rep++) {
        poison(y, ny);
        int n_chunks = 0;
        for (int r0 = 0; r0 < T;) {
            int n = random_chunk(&seed, T - r0);
            dense(Wd, N, K, hiT + (size_t)r0 * K, loT + (size_t)r0 * K, n, y + (size_t)r0 * N, 0);
            r0 += n;
            n_chunks++;
        }
        float *yb = host(y, ny);
        CHECK(!memcmp(ya, yb, ny * sizeof(float)), "N %d K %d: %d random chunks != one call "
              "(bitwise)", N, K, n_chunks);
        free(yb);
    }
    /* row by row (decode) */
    poison(y, ny);
    for (int t = 0; t < T; t++)
        dense(Wd, N, K, hiT + (size_t)t * K, loT + (size_t)t * K, 1, y + (size_t)t * N, 0);
    float *yc = host(y, ny);
    CHECK(!memcmp(ya, yc, ny * sizeof(float)), "N %d K %d: row by row != one call (bitwise)", N, K);
    free(yc);
    /* inside a larger batch (P rows before: other places in the tiles) */
    poison(y, (size_t)TB * N);
    dense(Wd, N, K, hi, lo, TB, y, 0);
    float *yd = host(y, (size_t)TB * N);
    CHECK(!memcmp(ya, yd + (size_t)P * N, ny * sizeof(float)), "N %d K %d: rows beside %d + %d "
          "others != alone (bitwise)", N, K, P, Q);
    free(yd);
    /* accumulate: y = c + v, one fp32 add */
    float *c = malloc(ny * sizeof(float)), *want = malloc(ny * sizeof(float));
    for (size_t i = 0; i < ny; i++) {
        c[i] = rl_t_uniform(&seed, -1.0f, 1.0f);
        volatile float s = c[i] + ya[i];
        want[i] = s;
    }
    CK(cudaMemcpy(y, c, ny * sizeof(float), cudaMemcpyHostToDevice));
    dense(Wd, N, K, hiT, loT, T, y, 1);
    float *ye = host(y, ny);
    CHECK(!memcmp(want, ye, ny * sizeof(float)), "N %d K %d: accumulate != y + product", N, K);
    free(ye);
    free(c);
    free(want);

    /* grouped: token t goes to experts sel[t*KR + r] (distinct), gate and up in one
     * launch, x gathered by xrow / KR, y scattered by yrow */
    int TK = T * KR;
    int *sel = malloc(sizeof(int) * TK);
    for (int t = 0; t < T; t++) {
        sel[t * KR] = (int)(rl_t_rand(&seed) % E);
        sel[t * KR + 1] = (sel[t * KR] + 1 + (int)(rl_t_rand(&seed) % (E - 1))) % E;
    }
    int *seld = dev(sel, sizeof(int) * TK), *counts = dev(NULL, sizeof(int) * (E + 1));
    int *offs = dev(NULL, sizeof(int) * (E + 1)), *toff = dev(NULL, sizeof(int) * (E + 1));
    int *rows = dev(NULL, sizeof(int) * TK);
    CK(rl_cu_moe_bucket(seld, TK, E, RL_CU_MMA_TOKENS, counts, offs, toff, rows, 0));
    float *yk = dev(NULL, (size_t)TK * N * sizeof(float));
    float *yk2 = dev(NULL, (size_t)TK * N * sizeof(float));
    poison(yk, (size_t)TK * N);
    poison(yk2, (size_t)TK * N);
    rl_cu_moe_mma_args g = {.W = Wd, .W2 = Wu, .N = N, .K = K, .wstride = nw, .x = hiT,
                            .x_lo = loT, .ldx = K, .xrow = rows, .xdiv = KR, .y = yk, .y2 = yk2,
                            .ldy = N, .yrow = rows, .offsets = offs, .tile_off = toff, .E = E,
                            .max_tiles = (TK + RL_CU_MMA_TOKENS - 1) / RL_CU_MMA_TOKENS + E,
                            .fixed_order = 1};
    CK(rl_cu_moe_mma(&g, 0));
    float *gk = host(yk, (size_t)TK * N), *gk2 = host(yk2, (size_t)TK * N);
    int mism = 0;
    for (int m = 0; m < 2 * E; m++) { /* matrix m: expert m % E of gate (m < E) or up */
        poison(y, ny);
        dense(Wd + (size_t)m * nw, N, K, hiT, loT, T, y, 0);
        float *yr = host(y, ny);
        const float *got = m < E ? gk : gk2;
        for (int a = 0; a < TK; a++)
            if (sel[a] == m % E &&
                memcmp(got + (size_t)a * N, yr + (size_t)(a / KR) * N, (size_t)N * sizeof(float)))
                mism++;
        free(yr);
    }
    CHECK(mism == 0, "N %d K %d: %d grouped rows != the dense form of their expert (bitwise)",
          N, K, mism);
    free(gk);
    free(gk2);
    free(sel);
    cudaFree(seld);
    cudaFree(counts);
    cudaFree(offs);
    cudaFree(toff);
    cudaFree(rows);
    cudaFree(yk);
    cudaFree(yk2);
    free(ya);
    cudaFree(y);
    cudaFree(hi);
    cudaFree(lo);
    cudaFree(xd);
    cudaFree(Wd);
    free(xb);
    free(Wh);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        fprintf(stderr, "skipped: no CUDA device\n");
        return 77;
    }
    /* fixed_order must not follow the default mode's kernel choice: ask for a
     * wgmma kind that is not the default (its width follows the tile's rows) */
    setenv("RL_CUDA_MMA", "wg", 1);
    static const int shapes[][3] = {
        {333, 200, 300}, {128, 24, 150}, {700, 256, 200}, {1030, 2048, 130}, {64, 8, 70},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        one_shape(shapes[i][0], shapes[i][1], shapes[i][2], 77 + i);
    return rl_test_done();
}
