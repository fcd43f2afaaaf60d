/* Matmul micro-benchmark: the AVX-512 fp32-FMA design (rl_matmul_avx512) vs
 * the AVX512_BF16 hi/lo vdpbf16ps design (rl_matmul_bf16dp_avx512) on BF16
 * weights, decode (n = 1, reported as GB/s of weights) and prefill (n = 512,
 * GFLOP/s), next to a read-bandwidth probe and memcpy run in the same process.
 *   matmul_bench [threads]      (default: all cores)
 * Build (until the CMake project builds it):
 *   gcc -std=c17 -O2 -fopenmp -mavx512f -Isrc bench/matmul_bench.c <libringlm_core.a> -lm */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/cpu/cpu_ops.h"

typedef void (*mm_fn)(const rl_wmat *, const float *, int, int, float *, int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rs = 88172645463325252ull;
static float frand(void) {
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (float)((rs >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Best time of calls repeated for at least min_s seconds (after one warm-up). */
static double best_time(mm_fn f, const rl_wmat *W, int ncopy, const float *x, int n, float *y,
                        double min_s) {
    f(W, x, W->cols, n, y, W->rows);
    double best = 1e30, t_end = now() + min_s;
    int reps = 0;
    do {
        double t0 = now();
        f(&W[reps % ncopy], x, W->cols, n, y, W->rows);
        double t = now() - t0;
        if (t < best) best = t;
        reps++;
    } while (now() < t_end || reps < 3);
    return best;
}

static float read_sum_sink;
static double read_probe(size_t bytes, int threads) {
    float *buf = aligned_alloc(64, bytes);
    size_t nf = bytes / 4;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < nf; i++) buf[i] = 1.0f;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        float tot = 0;
#pragma omp parallel num_threads(threads) reduction(+ : tot)
        {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static)
            for (size_t i = 0; i < nf; i += 64) {
                a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + i));
                a1 = _mm512_add_ps(a1, _mm512_load_ps(buf + i + 16));
                a2 = _mm512_add_ps(a2, _mm512_load_ps(buf + i + 32));
                a3 = _mm512_add_ps(a3, _mm512_load_ps(buf + i + 48));
            }
            tot += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        }
        read_sum_sink += tot;
        double t = now() - t0;
        if (t < best) best = t;
    }
    free(buf);
    return (double)bytes / best / 1e9;
}

static double memcpy_probe(size_t bytes, int threads) {
    char *a = malloc(bytes), *b = malloc(bytes);
    memset(a, 1, bytes); memset(b, 2, bytes);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t per = bytes / (size_t)nt;
            memcpy(b + per * (size_t)t, a + per * (size_t)t, per);
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    free(a); free(b);
    return (double)bytes / best / 1e9; /* bytes copied per second (read + write = 2x traffic) */
}

/* max |y - ref| / (sum_c |x_c w_c|) and max |y - ref| / max |ref| over the
 * first nr rows of x and the first no weight rows. */
static void errors(const rl_wmat *W, const float *x, int n, const float *y, int nr, int no,
                   double *e_abs, double *e_norm) {
    rl_wmat Ws = *W;
    Ws.rows = no;
    float *yr = malloc((size_t)nr * (size_t)no * 4);
    rl_ops_ref.matmul(&Ws, x, W->cols, nr, yr, no);
    double ea = 0, md = 0, mref = 0;
    const uint16_t *w = W->data;
    for (int r = 0; r < nr && r < n; r++)
        for (int o = 0; o < no; o++) {
            double s = 0;
            for (int c = 0; c < W->cols; c++)
                s += fabs((double)x[(size_t)r * W->cols + c] * rl_bf16_to_f32(w[(size_t)o * W->cols + c]));
            double d = fabs((double)y[(size_t)r * W->rows + o] - yr[(size_t)r * no + o]);
            if (d / s > ea) ea = d / s;
            if (d > md) md = d;
            if (fabs(yr[(size_t)r * no + o]) > mref) mref = fabs(yr[(size_t)r * no + o]);
        }
    *e_abs = ea;
    *e_norm = md / mref;
    free(yr);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    rl_set_threads(threads);
    threads = rl_get_threads();
    printf("threads %d; cpu isa %s\n", threads, rl_ops_cpu_isa());
    double rd = read_probe((size_t)1 << 30, threads), mc = memcpy_probe((size_t)1 << 29, threads);
    printf("read probe (1 GiB, AVX-512 loads): %.1f GB/s; memcpy (512 MiB): %.1f GB/s copied\n", rd, mc);
    static const int shapes[][2] = {{2048, 2048}, {6144, 2048}, {512, 2048}, {2048, 512}, {157184, 2048}};
    const char *names[2] = {"fp32-fma (a)", "bf16dp hi/lo (b)"};
    mm_fn fns[2] = {rl_matmul_avx512, rl_matmul_bf16dp_avx512};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        size_t nw = (size_t)rows * (size_t)cols;
        /* enough copies of the weights (>= 256 MiB) that n=1 reads them from memory */
        int ncopy = (int)(((size_t)256 << 20) / (nw * 2)) + 1;
        if (ncopy > 64) ncopy = 64;
        uint16_t *w = malloc(nw * 2 * (size_t)ncopy);
        for (size_t i = 0; i < nw; i++) w[i] = rl_f32_to_bf16(frand() * 0.05f);
        for (int c = 1; c < ncopy; c++) memcpy(w + nw * (size_t)c, w, nw * 2);
        rl_wmat Wc[64];
        for (int c = 0; c < ncopy; c++)
            Wc[c] = (rl_wmat){.dtype = RL_BF16, .rows = rows, .cols = cols, .data = w + nw * (size_t)c};
        rl_wmat W = Wc[0];
        int nmax = rows > 100000 ? 1 : 512;
        float *x = malloc((size_t)nmax * (size_t)cols * 4), *y = malloc((size_t)nmax * (size_t)rows * 4);
        for (size_t i = 0; i < (size_t)nmax * (size_t)cols; i++) x[i] = frand();
        for (int f = 0; f < 2; f++) {
            double t1 = best_time(fns[f], Wc, ncopy, x, 1, y, 1.0);
            printf("%6dx%-5d %-17s n=1:   %7.3f ms  %6.1f GB/s (%3.0f%% of read probe)  %6.1f GFLOP/s\n",
                   rows, cols, names[f], t1 * 1e3, (double)nw * 2 / t1 / 1e9,
                   100.0 * (double)nw * 2 / t1 / 1e9 / rd, 2.0 * (double)nw / t1 / 1e9);
            if (nmax == 512) {
                double t = best_time(fns[f], Wc, 1, x, 512, y, 2.0);
                double ea, en;
                errors(&W, x, 512, y, 8, rows < 256 ? rows : 256, &ea, &en);
                printf("%6dx%-5d %-17s n=512: %7.3f ms  %6.1f GFLOP/s   err vs ref: %.2e of sum|xw|, %.2e of max|y|\n",
                       rows, cols, names[f], t * 1e3, 2.0 * 512 * (double)nw / t / 1e9, ea, en);
            } else {
                double ea, en;
                errors(&W, x, 1, y, 1, 256, &ea, &en);
                printf("%6dx%-5d %-17s err vs ref (n=1): %.2e of sum|xw|, %.2e of max|y|\n", rows, cols,
                       names[f], ea, en);
            }
        }
        free(w); free(x); free(y);
    }
    return 0;
}
