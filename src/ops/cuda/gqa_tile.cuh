/* m16-tile helpers shared by the paged GQA kernels that hold a tile's
 * queries in registers (gqa_cuda.cu's gqa_attend, gqa_dec_cuda.cu's
 * gqa_dec): the query fragments and one page step of the online softmax
 * (base 2), for the two rows a lane holds (rows g and g + 8, g = lane / 4,
 * t = lane % 4). Internal to src/ops/cuda. */
#ifndef RL_OPS_CUDA_GQA_TILE_CUH
#define RL_OPS_CUDA_GQA_TILE_CUH

#include <math.h>
#include <stdint.h>

#include "ops/cuda/attn_async.cuh"
#include "ops/cuda/attn_mma.cuh"

/* The bf16 mma A fragments of rows q0 and q1 (either NULL: a zero row),
 * scaled by sl2 (the softmax scale in base 2), KT = D / 16 k-steps. */
template <int KT>
static __device__ __forceinline__ void rl_gqa_q_frags(uint32_t (&qa)[KT][4], const float *q0,
                                                      const float *q1, int t, float sl2) {
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
        int d = 16 * kk + 2 * t;
        qa[kk][0] = q0 ? rl_bf2(q0[d] * sl2, q0[d + 1] * sl2) : 0u;
        qa[kk][1] = q1 ? rl_bf2(q1[d] * sl2, q1[d + 1] * sl2) : 0u;
        qa[kk][2] = q0 ? rl_bf2(q0[d + 8] * sl2, q0[d + 9] * sl2) : 0u;
        qa[kk][3] = q1 ? rl_bf2(q1[d + 8] * sl2, q1[d + 9] * sl2) : 0u;
    }
}

/* sc[nt]: scores (already in base 2) of keys kp0 + 8 nt + {0, 1} (c0, c1:
 * row g) and the same keys for row g + 8 (c2, c3), t = lane % 4 folded into
 * kp0. Keys after a row's position (pos0, pos1; -1 = no row) are masked; the
 * running maxima m and sums l are updated in place, sc becomes p = 2^(s - m)
 * and al0 / al1 the factors that rescale the accumulators. A row with no
 * visible key yet keeps p = 0 and no NaN. APPROX: ex2.approx instead of
 * exp2f (gqa_dec; gqa_attend keeps exp2f so its bits do not move). */
template <int NT, bool APPROX>
static __device__ __forceinline__ void rl_gqa_softmax_step(float (&sc)[NT][4], int kp0, int pos0,
                                                           int pos1, float &m0, float &m1,
                                                           float &l0, float &l1, float &al0,
                                                           float &al1) {
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int kp = kp0 + 8 * nt;
        sc[nt][0] = kp <= pos0 ? sc[nt][0] : -INFINITY;
        sc[nt][1] = kp + 1 <= pos0 ? sc[nt][1] : -INFINITY;
        sc[nt][2] = kp <= pos1 ? sc[nt][2] : -INFINITY;
        sc[nt][3] = kp + 1 <= pos1 ? sc[nt][3] : -INFINITY;
        mx0 = fmaxf(mx0, fmaxf(sc[nt][0], sc[nt][1]));
        mx1 = fmaxf(mx1, fmaxf(sc[nt][2], sc[nt][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
    al0 = APPROX ? ex2(m0 - mu0) : exp2f(m0 - mu0);
    al1 = APPROX ? ex2(m1 - mu1) : exp2f(m1 - mu1);
    m0 = mn0;
    m1 = mn1;
    float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        sc[nt][0] = APPROX ? ex2(sc[nt][0] - mu0) : exp2f(sc[nt][0] - mu0);
        sc[nt][1] = APPROX ? ex2(sc[nt][1] - mu0) : exp2f(sc[nt][1] - mu0);
        sc[nt][2] = APPROX ? ex2(sc[nt][2] - mu1) : exp2f(sc[nt][2] - mu1);
        sc[nt][3] = APPROX ? ex2(sc[nt][3] - mu1) : exp2f(sc[nt][3] - mu1);
        rs0 += sc[nt][0] + sc[nt][1];
        rs1 += sc[nt][2] + sc[nt][3];
    }
    l0 = l0 * al0 + rs0;
    l1 = l1 * al1 + rs1;
}

/* acc (NT n-tiles of the m16 x D accumulator) rescaled by the rows' factors */
template <int NT>
static __device__ __forceinline__ void rl_gqa_rescale(float (&acc)[NT][4], float al0, float al1) {
#pragma unroll
    for (int n = 0; n < NT; n++) {
        acc[n][0] *= al0;
        acc[n][1] *= al0;
        acc[n][2] *= al1;
        acc[n][3] *= al1;
    }
}

#endif
