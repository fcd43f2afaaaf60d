/* MoE on the device: the router of src/model/router.c (one thread per token,
 * the same loops and tie rules), the sort of assignments by expert (stable:
 * (token, choice) order within an expert, so a token's expert rows do not
 * depend on the launch), and the weighted combine in the CPU's order. */
#include <cuda_runtime.h>

#include "ops/cuda/fwd_cuda.h"
#include "model/route_group.h"
#include "ops/cuda/route_warp.cuh"

namespace {

__device__ int argmax_allowed(const float *v, const float *allowed, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (allowed[i] != 0.0f && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

__global__ void route_kernel(const float *logits, int T, int E, int K, int G, int topk_group,
                             float scale, const float *bias, float *scratch, int *sel_out,
                             float *w_out) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    const float *z = logits + (size_t)t * E;
    float *sig = scratch + (size_t)t * (3 * E + 2 * G), *b = sig + E, *allowed = b + E;
    float *gscore = allowed + E, *gallowed = gscore + G;
    int *sel = sel_out + (size_t)t * K;
    float *w = w_out + (size_t)t * K;
    for (int e = 0; e < E; e++) {
        sig[e] = 1.0f / (1.0f + expf(-z[e]));
        b[e] = sig[e] + bias[e];
    }
    if (G > 1) {
        int gs = E / G;
        for (int g = 0; g < G; g++) {
            gscore[g] = rl_route_group_score(b + g * gs, gs);
            gallowed[g] = 1.0f;
        }
        for (int e = 0; e < E; e++) allowed[e] = 0.0f;
        for (int r = 0; r < topk_group; r++) {
            int g = argmax_allowed(gscore, gallowed, G);
            gallowed[g] = 0.0f;
            for (int i = 0; i < gs; i++) allowed[g * gs + i] = 1.0f;
        }
    } else {
        for (int e = 0; e < E; e++) allowed[e] = 1.0f;
    }
    float sum = 0.0f;
    for (int r = 0; r < K; r++) {
        int e = argmax_allowed(b, allowed, E);
        sel[r] = e;
        allowed[e] = 0.0f;
        sum += sig[e];
    }
    for (int r = 0; r < K; r++) {
        float x = sig[sel[r]];
        if (K > 1) x = x / (sum + 1e-20f);
        w[r] = x * scale;
    }
}

/* The same routing with one warp per token (E <= 1024, G <= 32, route_warp.cuh),
 * scores in shared memory. */
constexpr int RW = 4, EMAX = 1024;

__global__ void __launch_bounds__(RW * 32) route_warp_kernel(const float *logits, int T, int E, int K,
                                                           int G, int topk_group, float scale,
                                                           const float *bias, int *sel_out,
                                                           float *w_out) {
    __shared__ float sh_sig[RW][EMAX], sh_b[RW][EMAX];
    __shared__ unsigned char sh_ok[RW][EMAX];
    __shared__ float sh_g[RW][32];
    __shared__ int sh_keep[RW][32];
    int warp = threadIdx.x >> 5;
    int t = blockIdx.x * RW + warp;
    if (t >= T) return;
    rl_route_token_warp(logits + (size_t)t * E, E, K, G, topk_group, scale, bias,
                        sel_out + (size_t)t * K, w_out + (size_t)t * K, sh_sig[warp], sh_b[warp],
                        sh_ok[warp], sh_g[warp], sh_keep[warp]);
}

constexpr int BT = 256;

/* one block per expert: how many assignments chose it */
__global__ void count_kernel(const int *sel, int TK, int *counts) {
    __shared__ int sh[BT / 32];
    int e = blockIdx.x, c = 0;
    for (int i = threadIdx.x; i < TK; i += BT) c += sel[i] == e;
    for (int s = 16; s >= 1; s >>= 1) c += __shfl_xor_sync(0xffffffffu, c, s);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = c;
    __syncthreads();
    if (threadIdx.x == 0) {
        int t = 0;
        for (int i = 0; i < BT / 32; i++) t += sh[i];
        counts[e] = t;
    }
}

/* exclusive scans of the counts (one block; the serial part runs on shared memory) */
__global__ void scan_kernel(const int *counts, int E, int tr, int *offsets, int *tile_off) {
    __shared__ int c[4096], o[4097], tl[4097];
    for (int e = threadIdx.x; e < E; e += blockDim.x) c[e] = counts[e];
    __syncthreads();
    if (threadIdx.x == 0) {
        int a = 0, t = 0;
        for (int e = 0; e < E; e++) {
            o[e] = a;
            tl[e] = t;
            a += c[e];
            t += (c[e] + tr - 1) / tr;
        }
        o[E] = a;
        tl[E] = t;
    }
    __syncthreads();
    for (int e = threadIdx.x; e <= E; e += blockDim.x) {
        offsets[e] = o[e];
        tile_off[e] = tl[e];
    }
}

/* one block per expert: writes its assignments in ascending order */
__global__ void fill_kernel(const int *sel, int TK, const int *offsets, int *rows) {
    __shared__ int wsum[BT / 32];
    int e = blockIdx.x, base = offsets[e];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int c0 = 0; c0 < TK; c0 += BT) {
        int i = c0 + threadIdx.x;
        bool hit = i < TK && sel[i] == e;
        unsigned m = __ballot_sync(0xffffffffu, hit);
        if (lane == 0) wsum[warp] = __popc(m);
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < BT / 32; w++) {
            if (w < warp) before += wsum[w];
            total += wsum[w];
        }
        if (hit) rows[base + before + __popc(m & ((1u << lane) - 1u))] = i;
        base += total;
        __syncthreads();
    }
}

/* The three kernels above in one block of SB threads, for TK <= SB and E <= SB
 * (decode): counts by shared atomics (a count does not depend on the order),
 * a block-wide exclusive scan, and each assignment's place = its expert's
 * offset + the number of earlier assignments of that expert, so rows[] is
 * the same stable order as fill_kernel's. */
constexpr int SB = 1024;

__global__ void __launch_bounds__(SB) bucket_small_kernel(const int *sel, int TK, int E, int tr,
                                                          int *counts, int *offsets,
                                                          int *tile_off, int *rows) {
    __shared__ int s_sel[SB], s_cnt[SB], s_off[SB], s_wsum[2][SB / 32];
    int i = threadIdx.x, lane = i & 31, warp = i >> 5;
    s_cnt[i] = 0;
    if (i < TK) s_sel[i] = sel[i];
    __syncthreads();
    if (i < TK && s_sel[i] >= 0 && s_sel[i] < E) atomicAdd(&s_cnt[s_sel[i]], 1);
    __syncthreads();
    int c = i < E ? s_cnt[i] : 0, tl = (c + tr - 1) / tr;
    int ci = c, ti = tl; /* inclusive warp scans */
    for (int s = 1; s < 32; s <<= 1) {
        int a = __shfl_up_sync(0xffffffffu, ci, s), b = __shfl_up_sync(0xffffffffu, ti, s);
        if (lane >= s) {
            ci += a;
            ti += b;
        }
    }
    if (lane == 31) {
        s_wsum[0][warp] = ci;
        s_wsum[1][warp] = ti;
    }
    __syncthreads();
    int cb = 0, tb = 0;
    for (int w = 0; w < warp; w++) {
        cb += s_wsum[0][w];
        tb += s_wsum[1][w];
    }
    if (i < E) {
        counts[i] = c;
        offsets[i] = cb + ci - c;
        tile_off[i] = tb + ti - tl;
        s_off[i] = cb + ci - c;
    }
    if (i == E - 1) {
        offsets[E] = cb + ci;
        tile_off[E] = tb + ti;
    }
    __syncthreads();
    if (i < TK && s_sel[i] >= 0 && s_sel[i] < E) {
        int e = s_sel[i], before = 0;
        for (int j = 0; j < i; j++) before += s_sel[j] == e;
        rows[s_off[e] + before] = i;
    }
}

__global__ void combine_kernel(float *x, const float *yk, const float *wt, const float *ys, int K,
                               int dim) {
    int t = blockIdx.x;
    const float *w = wt + (size_t)t * K;
    for (int d = threadIdx.x; d < dim; d += BT) {
        float acc = 0.0f;
        for (int r = 0; r < K; r++) acc += w[r] * yk[((size_t)t * K + r) * dim + d];
        if (ys) acc += ys[(size_t)t * dim + d];
        x[(size_t)t * dim + d] += acc;
    }
}

} // namespace

extern "C" {

int rl_cu_route(const float *logits, int T, int E, int K, int G, int topk_group, float scale,
                const float *bias, float *scratch, int *sel, float *wt, void *stream) {
    if (T <= 0) return 0;
    if (E <= EMAX && G <= 32 && (G <= 1 || E / G >= 2)) {
        route_warp_kernel<<<(T + RW - 1) / RW, RW * 32, 0, (cudaStream_t)stream>>>(
            logits, T, E, K, G, topk_group, scale, bias, sel, wt);
        return (int)cudaGetLastError();
    }
    route_kernel<<<(T + 63) / 64, 64, 0, (cudaStream_t)stream>>>(logits, T, E, K, G, topk_group,
                                                                 scale, bias, scratch, sel, wt);
    return (int)cudaGetLastError();
}

int rl_cu_moe_bucket(const int *sel, int TK, int E, int tile_rows, int *counts, int *offsets,
                     int *tile_off, int *rows, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    if (E <= 0 || E > 4096 || tile_rows <= 0 || TK < 0) return (int)cudaErrorInvalidValue;
    if (TK <= SB && E <= SB) {
        bucket_small_kernel<<<1, SB, 0, s>>>(sel, TK, E, tile_rows, counts, offsets, tile_off,
                                             rows);
        return (int)cudaGetLastError();
    }
    count_kernel<<<E, BT, 0, s>>>(sel, TK, counts);
    scan_kernel<<<1, BT, 0, s>>>(counts, E, tile_rows, offsets, tile_off);
    fill_kernel<<<E, BT, 0, s>>>(sel, TK, offsets, rows);
    return (int)cudaGetLastError();
}

int rl_cu_moe_combine(float *x, const float *yk, const float *wt, const float *ys, int T, int K,
                      int dim, void *stream) {
    if (T <= 0) return 0;
    combine_kernel<<<T, BT, 0, (cudaStream_t)stream>>>(x, yk, wt, ys, K, dim);
    return (int)cudaGetLastError();
}

} // extern "C"
