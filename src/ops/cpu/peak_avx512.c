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

/* 12 independent accumulator chains (named registers, no array the
 * compiler could keep in memory) hide the FMA latency. */
#define CHAINS 12
#define ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

static double run_fma(long iters) {
#define DECL(i) __m512 a##i = _mm512_set1_ps(1e-3f * (float)(i));
    ALL(DECL)
    __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-6f);
    for (long k = 0; k < iters; k++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, x, y);
        ALL(STEP)
    }
#define SUM(i) s = _mm512_add_ps(s, a##i);
    __m512 s = _mm512_setzero_ps();
    ALL(SUM)
    return _mm512_reduce_add_ps(s);
}

static double run_dot(long iters) {
    ALL(DECL)
    __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-6f);
    __m512bh xh = _mm512_cvtne2ps_pbh(x, x), yh = _mm512_cvtne2ps_pbh(y, y);
    for (long k = 0; k < iters; k++) {
#define DSTEP(i) a##i = _mm512_dpbf16_ps(a##i, xh, yh);
        ALL(DSTEP)
    }
    __m512 s = _mm512_setzero_ps();
    ALL(SUM)
    return _mm512_reduce_add_ps(s);
}

double rl_cpu_peak_gflops_avx512(int bf16) {
    const long iters = 4000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), sink = 0;
#pragma omp parallel reduction(+ : sink)
        sink += bf16 ? run_dot(iters) : run_fma(iters);
        double dt = now() - t0;
        /* fp32 FMA: 16 lanes x 2 FLOP; bf16 dot: 32 products + 32 adds */
        double flop = (double)iters * CHAINS * (bf16 ? 64.0 : 32.0) * omp_get_max_threads();
        if (flop / dt / 1e9 > best) best = flop / dt / 1e9;
        if (sink == 12345.0) best += 0; /* keeps the loops */
    }
    return best;
}
