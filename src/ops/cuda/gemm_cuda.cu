/* The fixed-order SIMT GEMM of the device forward (fwd_cuda.h): the
 * deterministic mode's GEMMs that the tensor-core fixed-order kernel does not
 * take (fp32 weights, K not a multiple of 8; all of them with
 * RL_CUDA_DET_MMA=0), the default mode's MoE expert GEMMs below the tensor-core
 * thresholds, and the fp32 router of both modes (decode_cuda.cu's router
 * reproduces its order for few tokens).
 *
 * A warp computes 4 output columns (weight rows) x 8 rows of x. Lane l reads
 * 8 consecutive weights of each of its 4 rows at k = 8l + 256j (16-byte loads
 * of bf16), so a warp streams 512 contiguous bytes per weight row, and keeps
 * 32 fp32 partial sums. A reduce-scatter butterfly over the lanes then leaves
 * the total of output (column c, row t) in lane 8c + t. The sum of an output
 * is the same sequence of fmaf and adds whatever T, tile or expert group:
 * results are bitwise independent of the batch. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/fwd_cuda.h"
#include "ops/cuda/moe_tiles.cuh"

namespace {

constexpr int COLS = 4, ROWS = 8, WARPS = 4;

__device__ __forceinline__ float bf(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

template <int WF32>
__device__ __forceinline__ void load_w8(const void *W, size_t off, bool vec, int k0, int K,
                                        float *w) {
    if (WF32) {
        const float *p = (const float *)W + off + k0;
        if (vec) {
            float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
            w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
            w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) w[i] = k0 + i < K ? p[i] : 0.0f;
        }
    } else {
        const uint16_t *p = (const uint16_t *)W + off + k0;
        if (vec) {
            uint4 v = *(const uint4 *)p;
            uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int i = 0; i < 4; i++) {
                w[2 * i] = __uint_as_float(u[i] << 16);
                w[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) w[i] = k0 + i < K ? bf(p[i]) : 0.0f;
        }
    }
}

template <int S>
__device__ __forceinline__ void rs_step(float *acc, int lane) {
    bool upper = lane & S;
#pragma unroll
    for (int i = 0; i < S; i++) {
        float send = upper ? acc[i] : acc[i + S];
        float keep = upper ? acc[i + S] : acc[i];
        acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, S);
    }
}

template <int WF32>
__global__ void __launch_bounds__(WARPS * 32) wgemm_kernel(rl_cu_gemm p, int vec) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int o0 = (blockIdx.x * WARPS + warp) * COLS;
    int e = 0, r0, nt;
    if (p.offsets) {
        if (!rl_cu_moe_tile(p.tile_off, p.offsets, p.E, blockIdx.y, ROWS, &e, &r0, &nt)) return;
    } else {
        r0 = blockIdx.y * ROWS;
        nt = min(ROWS, p.T - r0);
    }
    if (o0 >= p.N || nt <= 0) return;
    const float *xr[ROWS];
#pragma unroll
    for (int t = 0; t < ROWS; t++) {
        int r = r0 + (t < nt ? t : 0);
        int xi = p.xrow ? p.xrow[r] / p.xdiv : r;
        xr[t] = p.x + (size_t)xi * p.ldx;
    }
    size_t woff[COLS];
#pragma unroll
    for (int c = 0; c < COLS; c++)
        woff[c] = (size_t)e * p.wstride + (size_t)min(o0 + c, p.N - 1) * p.K;
    float acc[COLS * ROWS];
#pragma unroll
    for (int i = 0; i < COLS * ROWS; i++) acc[i] = 0.0f;
    for (int k0 = lane * 8; k0 < p.K; k0 += 256) {
        bool v = vec && k0 + 8 <= p.K;
        float w[COLS][8];
#pragma unroll
        for (int c = 0; c < COLS; c++) load_w8<WF32>(p.W, woff[c], v, k0, p.K, w[c]);
#pragma unroll
        for (int t = 0; t < ROWS; t++) {
            if (t >= nt) break;
            float xv[8];
            if (v) {
                float4 a = *(const float4 *)(xr[t] + k0), b = *(const float4 *)(xr[t] + k0 + 4);
                xv[0] = a.x; xv[1] = a.y; xv[2] = a.z; xv[3] = a.w;
                xv[4] = b.x; xv[5] = b.y; xv[6] = b.z; xv[7] = b.w;
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) xv[i] = k0 + i < p.K ? xr[t][k0 + i] : 0.0f;
            }
#pragma unroll
            for (int c = 0; c < COLS; c++)
#pragma unroll
                for (int i = 0; i < 8; i++) acc[c * ROWS + t] = fmaf(w[c][i], xv[i], acc[c * ROWS + t]);
        }
    }
    /* reduce-scatter: after the step of width s, a lane keeps the half of
     * its values selected by its bit s; lane l ends with value l */
    rs_step<16>(acc, lane);
    rs_step<8>(acc, lane);
    rs_step<4>(acc, lane);
    rs_step<2>(acc, lane);
    rs_step<1>(acc, lane);
    int c = lane / ROWS, t = lane % ROWS;
    if (t < nt && o0 + c < p.N) {
        int r = r0 + t;
        int yi = p.yrow ? p.yrow[r] : r;
        float *y = p.y + (size_t)yi * p.ldy + o0 + c;
        *y = p.accumulate ? *y + acc[0] : acc[0];
    }
}

} // namespace

extern "C" int rl_cu_wgemm(const rl_cu_gemm *g, void *stream) {
    int tiles = g->offsets ? g->max_tiles : (g->T + ROWS - 1) / ROWS;
    if (tiles <= 0 || g->N <= 0) return 0;
    int vec = g->K % 8 == 0 && g->ldx % 4 == 0 && ((uintptr_t)g->x & 15) == 0 &&
              ((uintptr_t)g->W & 15) == 0 && (g->wstride % 8) == 0;
    dim3 grid((g->N + COLS * WARPS - 1) / (COLS * WARPS), tiles);
    cudaStream_t s = (cudaStream_t)stream;
    if (g->w_f32)
        wgemm_kernel<1><<<grid, WARPS * 32, 0, s>>>(*g, vec);
    else
        wgemm_kernel<0><<<grid, WARPS * 32, 0, s>>>(*g, vec);
    return (int)cudaGetLastError();
}
