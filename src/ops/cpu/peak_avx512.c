/* Compute-peak probes for benchmarks: fp32 FMA and AVX512_BF16 dot-product
 * throughput of this machine, all threads, measured (not from a datasheet). */
#include <immintrin.h>
#include <omp.h>
#include <time.h>

#include "ops/cpu/cpu_ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 12 independent accumulator chains hide the FMA latency. */
#define CHAINS 12

double rl_cpu_peak_gflops_avx512(int bf16) {
    const long iters = 2000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), sink = 0;
#pragma omp parallel reduction(+ : sink)
        {
            __m512 acc[CHAINS];
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(1e-3f * (float)i);
            __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-6f);
            __m512bh ah = _mm512_cvtne2ps_pbh(a, a), bh = _mm512_cvtne2ps_pbh(b, b);
            if (bf16) {
                for (long k = 0; k < iters; k++)
                    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], ah, bh);
            } else {
                for (long k = 0; k < iters; k++)
                    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
            }
            __m512 s = acc[0];
            for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
            sink += _mm512_reduce_add_ps(s);
        }
        double dt = now() - t0;
        /* fp32 FMA: 16 lanes x 2 FLOP; bf16 dot: 32 products + 32 adds */
        double flop = (double)iters * CHAINS * (bf16 ? 64.0 : 32.0) * omp_get_max_threads();
        if (flop / dt / 1e9 > best) best = flop / dt / 1e9;
        if (sink == 12345.0) best += 0; /* keep the loop */
    }
    return best;
}
