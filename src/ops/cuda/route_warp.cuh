/* The routing of one token by one warp (src/model/router.c on the device),
 * for rl_cu_route's warp kernel (moe_cuda.cu; decode_cuda.cu's fused router
 * has its own routing, route_fast, and uses only rl_route_warp_argmax):
 * sigmoid of the logits, group-limited top-k with the bias for selection
 * only, ties to the lower index (the CPU's first maximum), normalized
 * weights times scale. Scores live in the caller's
 * shared arrays of at least E entries (sig, b, ok) and 32 (gs, keep). */
#ifndef RL_OPS_CUDA_ROUTE_WARP_CUH
#define RL_OPS_CUDA_ROUTE_WARP_CUH

#include <cuda_runtime.h>

#include "model/route_group.h"

__device__ __forceinline__ void rl_route_warp_argmax(float &v, int &i) {
#pragma unroll
    for (int s = 16; s >= 1; s >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, s);
        int oi = __shfl_xor_sync(0xffffffffu, i, s);
        if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) {
            v = ov;
            i = oi;
        }
    }
}

/* z: the token's E logits (read once per lane, plain loads); sel/w: its K
 * choices and weights (written by lane 0). G <= 32, E / G >= 2 when G > 1. */
__device__ __forceinline__ void rl_route_token_warp(const float *z, int E, int K, int G,
                                                    int topk_group, float scale,
                                                    const float *bias, int *sel, float *w,
                                                    float *sig, float *b, unsigned char *ok,
                                                    float *gsc, int *keep) {
    int lane = threadIdx.x & 31;
    for (int e = lane; e < E; e += 32) {
        sig[e] = 1.0f / (1.0f + expf(-z[e]));
        b[e] = sig[e] + bias[e];
    }
    __syncwarp();
    if (G > 1) {
        int gs = E / G;
        if (lane < G) {
            gsc[lane] = rl_route_group_score(b + lane * gs, gs);
            keep[lane] = 0;
        }
        __syncwarp();
        if (lane == 0)
            for (int r = 0; r < topk_group; r++) {
                int best = -1;
                for (int g = 0; g < G; g++)
                    if (!keep[g] && (best < 0 || gsc[g] > gsc[best])) best = g;
                keep[best] = 1;
            }
        __syncwarp();
        for (int e = lane; e < E; e += 32) ok[e] = (unsigned char)keep[e / gs];
    } else {
        for (int e = lane; e < E; e += 32) ok[e] = 1;
    }
    __syncwarp();
    float sum = 0.0f;
    for (int r = 0; r < K; r++) {
        float v = 0.0f;
        int bi = -1;
        for (int e = lane; e < E; e += 32)
            if (ok[e] && (bi < 0 || b[e] > v)) {
                v = b[e];
                bi = e;
            }
        rl_route_warp_argmax(v, bi);
        if (lane == 0) {
            sel[r] = bi;
            ok[bi] = 0;
        }
        sum += sig[bi];
        __syncwarp();
    }
    if (lane == 0)
        for (int r = 0; r < K; r++) {
            float x = sig[sel[r]];
            if (K > 1) x = x / (sum + 1e-20f);
            w[r] = x * scale;
        }
    __syncwarp();
}

#endif
