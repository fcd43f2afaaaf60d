/* Deterministic AVX-512 math shared by the *_avx512.c kernels (include only
 * from files compiled with AVX-512 flags).
 *
 * exp16: range reduction x = n ln2 + r (ln2 split hi/lo, |r| <= ln2/2), the
 * Cephes degree-6 polynomial for e^r, then scalef by 2^n (which handles
 * overflow to +inf and gradual underflow to 0). Max relative error measured
 * against expf over [-88, 88]: about 2 ulp (~2.4e-7). NaN propagates. */
#ifndef RL_OPS_CPU_VMATH_AVX512_H
#define RL_OPS_CPU_VMATH_AVX512_H

#include <immintrin.h>

static inline __m512 rl_exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x); /* second operand wins on NaN */
    x = _mm512_min_ps(_mm512_set1_ps(100.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* 1 / (1 + e^-x), with an IEEE division. */
static inline __m512 rl_sigmoid16(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, rl_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* Fixed-tree sum of 16 lanes. */
static inline float rl_hsum16(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}

static inline __mmask16 rl_tail16(int rem) {
    return rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
}

/* Dot product of n floats: lanes over i = l, l+16, ..., masked tail, tree. */
static inline float rl_dot16(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = rl_tail16(n - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return rl_hsum16(acc);
}

#endif
