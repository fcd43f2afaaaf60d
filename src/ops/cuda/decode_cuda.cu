/* Small-batch kernels of the default mode (fwd_cuda.h rl_cu_gemv,
 * rl_cu_moe_route_small, rl_cu_moe_experts_small, rl_cu_moe_combine_norm):
 * decode reads every weight once for a handful of tokens, so these are
 * GEMVs built to keep many 16-byte weight loads in flight on every SM,
 * with fp32 activations (no bf16 hi/lo split: the products are those of
 * bf16 weights with the fp32 activations, fp32 accumulation).
 *
 * The common core (dot_rows): a warp owns R weight rows; lane l holds the
 * 8 weights at k = 8l + 256j (j < CH, one 16-byte load each, all issued
 * before any use), then for each of up to TT token rows reads the matching
 * 8 activations (float4 x2, L1/L2 hits: every warp reads the same rows) and
 * accumulates with fmaf in ascending k; a butterfly over the 32 lanes ends
 * the sum. For the router (fp32 weights) that order is rl_cu_wgemm's, FMA
 * for FMA and add for add, so the fused router's scores are bitwise those
 * of rl_cu_wgemm and the routing does not depend on the kernel (hence not
 * on the batch). Also the default mode's RMSNorm (alone or after the MoE
 * combine) with the row in registers. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/fwd_cuda.h"
#include "ops/cuda/route_warp.cuh"

namespace {

constexpr int NW = 8, NT = NW * 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int s = 16; s >= 1; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    return v;
}

__device__ __forceinline__ float silu(float g) { return g * (1.0f / (1.0f + expf(-g))); }

/* 8 consecutive weights: bf16 (one uint4) or fp32 (two float4) */
template <bool F32> struct WChunk;
template <> struct WChunk<false> {
    uint4 v;
    __device__ __forceinline__ void load(const void *row, int k) {
        v = __ldcs((const uint4 *)((const uint16_t *)row + k));
    }
    __device__ __forceinline__ void get(float *w) const {
        w[0] = __uint_as_float(v.x << 16); w[1] = __uint_as_float(v.x & 0xffff0000u);
        w[2] = __uint_as_float(v.y << 16); w[3] = __uint_as_float(v.y & 0xffff0000u);
        w[4] = __uint_as_float(v.z << 16); w[5] = __uint_as_float(v.z & 0xffff0000u);
        w[6] = __uint_as_float(v.w << 16); w[7] = __uint_as_float(v.w & 0xffff0000u);
    }
};
template <> struct WChunk<true> {
    float4 a, b;
    __device__ __forceinline__ void load(const void *row, int k) {
        const float4 *p = (const float4 *)((const float *)row + k);
        a = __ldcs(p);
        b = __ldcs(p + 1);
    }
    __device__ __forceinline__ void get(float *w) const {
        w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
        w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
    }
};

/* acc[r][t] = sum_k W_r[k] x_t[k] over K (K % 8 == 0, rows 16-byte aligned),
 * t < nt (<= TT); every lane gets the totals. */
template <int R, int TT, int CH, bool F32>
__device__ __forceinline__ void dot_rows(const void *const *wr, int K, const float *const *xr,
                                         int nt, float (&acc)[R][TT]) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < TT; t++) acc[r][t] = 0.0f;
    for (int kb = 0; kb < K; kb += CH * 256) {
        WChunk<F32> w[R][CH];
#pragma unroll
        for (int j = 0; j < CH; j++) {
            int k = kb + j * 256 + lane * 8;
#pragma unroll
            for (int r = 0; r < R; r++)
                if (k < K) w[r][j].load(wr[r], k);
        }
#pragma unroll
        for (int t = 0; t < TT; t++) {
            if (t >= nt) break;
#pragma unroll
            for (int j = 0; j < CH; j++) {
                int k = kb + j * 256 + lane * 8;
                if (k >= K) break;
                float4 a = __ldg((const float4 *)(xr[t] + k)), b = __ldg((const float4 *)(xr[t] + k + 4));
                float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float wv[8];
                    w[r][j].get(wv);
#pragma unroll
                    for (int i = 0; i < 8; i++) acc[r][t] = fmaf(wv[i], xv[i], acc[r][t]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < TT; t++)
            if (t < nt) acc[r][t] = warp_sum(acc[r][t]);
}

/* ---- dense GEMV ----------------------------------------------------------- */

constexpr int GR = 2; /* weight rows per warp */

template <int TT, int CH>
__global__ void __launch_bounds__(NT) gemv_kernel(rl_cu_gemv_args p) {
    int b = blockIdx.x, m = 0;
    if (p.n > 1 && b >= p.blk0[1]) m = p.n > 2 && b >= p.blk0[2] ? 2 : 1;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    /* constant indices only: a dynamic one would copy the arguments to local memory */
    int N = m == 0 ? p.N[0] : m == 1 ? p.N[1] : p.N[2];
    int b0 = m == 0 ? p.blk0[0] : m == 1 ? p.blk0[1] : p.blk0[2];
    const void *Wm = m == 0 ? p.W[0] : m == 1 ? p.W[1] : p.W[2];
    float *Y = m == 0 ? p.y[0] : m == 1 ? p.y[1] : p.y[2];
    int ldy = m == 0 ? p.ldy[0] : m == 1 ? p.ldy[1] : p.ldy[2];
    int o0 = ((b - b0) * NW + warp) * GR;
    if (o0 >= N) return;
    const void *wr[GR];
#pragma unroll
    for (int r = 0; r < GR; r++)
        wr[r] = (const uint16_t *)Wm + (size_t)min(o0 + r, N - 1) * p.K;
    const float *xr[TT];
#pragma unroll
    for (int t = 0; t < TT; t++) xr[t] = p.x + (size_t)min(t, p.T - 1) * p.ldx;
    float acc[GR][TT];
    dot_rows<GR, TT, CH, false>(wr, p.K, xr, p.T, acc);
    /* lane r * TT + t stores (row r, token t) */
#pragma unroll
    for (int r = 0; r < GR; r++)
#pragma unroll
        for (int t = 0; t < TT; t++)
            if (lane == r * TT + t && t < p.T && o0 + r < N) {
                float *y = Y + (size_t)t * ldy + o0 + r;
                *y = p.accumulate ? *y + acc[r][t] : acc[r][t];
            }
}

template <int TT>
int gemv_launch(const rl_cu_gemv_args &p, int blocks, int ch, cudaStream_t s) {
    switch (ch) {
    case 1: gemv_kernel<TT, 1><<<blocks, NT, 0, s>>>(p); break;
    case 2: gemv_kernel<TT, 2><<<blocks, NT, 0, s>>>(p); break;
    case 4: gemv_kernel<TT, 4><<<blocks, NT, 0, s>>>(p); break;
    default: gemv_kernel<TT, 8><<<blocks, NT, 0, s>>>(p); break;
    }
    return (int)cudaGetLastError();
}

int chunks_for(int K) { return K >= 2048 ? 8 : K >= 1024 ? 4 : K >= 512 ? 2 : 1; }

/* ---- fused MoE routing ---------------------------------------------------- */

constexpr int RTT = 8, SMALL_E = 256, SMALL_TK = 1024;

/* rl_route_token_warp (route_warp.cuh) with the scores in registers (lane l
 * holds experts l + 32i, E <= 256) and no serial loop on one lane: the same
 * sigmoid and bias, the same group scores (the sum of the group's two
 * largest values), the same first-maximum tie rules, the same sum order for
 * the normalization: the same choices and weights bit for bit. bsh: E floats
 * of shared scratch (the groups' scans). K <= 32. */
__device__ __forceinline__ void route_fast(const float *z, int E, int K, int G, int topk_group,
                                           float scale, const float *bias, int *sel, float *w,
                                           float *bsh) {
    int lane = threadIdx.x & 31;
    float sg[8], bb[8];
    unsigned okm = 0;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int e = lane + 32 * i;
        sg[i] = bb[i] = 0.0f;
        if (e < E) {
            sg[i] = 1.0f / (1.0f + expf(-z[e]));
            bb[i] = sg[i] + bias[e];
            bsh[e] = bb[i];
        }
    }
    __syncwarp();
    if (G > 1) {
        int gs = E / G;
        float gsc = 0.0f;
        if (lane < G) { /* top two values of the group, duplicates counted (router.c's i1, i2) */
            const float *x = bsh + lane * gs;
            float m1 = x[0], m2 = -INFINITY;
            for (int i = 1; i < gs; i++) {
                float v = x[i];
                if (v > m1) {
                    m2 = m1;
                    m1 = v;
                } else if (v > m2) {
                    m2 = v;
                }
            }
            gsc = m1 + m2;
        }
        unsigned keep = 0;
        for (int r = 0; r < topk_group; r++) {
            float v = gsc;
            int gi = lane < G && !((keep >> lane) & 1u) ? lane : -1;
            rl_route_warp_argmax(v, gi);
            keep |= 1u << gi;
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int e = lane + 32 * i;
            if (e < E && ((keep >> (e / gs)) & 1u)) okm |= 1u << i;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
            if (lane + 32 * i < E) okm |= 1u << i;
    }
    float sum = 0.0f, my_sig = 0.0f;
    int my_sel = -1;
    for (int r = 0; r < K; r++) {
        float v = 0.0f, s = 0.0f;
        int bi = -1;
#pragma unroll
        for (int i = 0; i < 8; i++)
            if (((okm >> i) & 1u) && (bi < 0 || bb[i] > v)) {
                v = bb[i];
                bi = lane + 32 * i;
                s = sg[i];
            }
#pragma unroll
        for (int st = 16; st >= 1; st >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, v, st);
            int oi = __shfl_xor_sync(0xffffffffu, bi, st);
            float os = __shfl_xor_sync(0xffffffffu, s, st);
            if (oi >= 0 && (bi < 0 || ov > v || (ov == v && oi < bi))) {
                v = ov;
                bi = oi;
                s = os;
            }
        }
        if (bi >= 0 && (bi & 31) == lane) okm &= ~(1u << (bi >> 5));
        sum += s;
        if (lane == r) {
            my_sel = bi;
            my_sig = s;
        }
    }
    if (lane < K) {
        float x = my_sig;
        if (K > 1) x = x / (sum + 1e-20f);
        sel[lane] = my_sel;
        w[lane] = x * scale;
    }
    __syncwarp();
}

/* Phase 1 (every block): warp -> one expert's router row, the logits of all
 * T tokens (RTT at a time) into logits[T][E]. Phase 2 (the last block to
 * finish, found by a counter it resets): per token the warp routing
 * route_fast (above), then the bucketing of rl_cu_moe_bucket: offsets[e],
 * rows[] stable by assignment id, act[s] = the s-th expert with a row
 * (ascending), act[E] = their number. */
__global__ void __launch_bounds__(NT) route_small_kernel(rl_cu_route_small_args p) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int e = blockIdx.x * NW + warp, t0 = blockIdx.y * RTT;
    if (e < p.E) {
        const void *wr[1] = {p.router + (size_t)e * p.hid};
        const float *xr[RTT];
#pragma unroll
        for (int t = 0; t < RTT; t++) xr[t] = p.x + (size_t)min(t0 + t, p.T - 1) * p.ldx;
        float acc[1][RTT];
        int nt = min(RTT, p.T - t0);
        if (p.hid >= 2048) dot_rows<1, RTT, 8, true>(wr, p.hid, xr, nt, acc);
        else if (p.hid >= 512) dot_rows<1, RTT, 2, true>(wr, p.hid, xr, nt, acc);
        else dot_rows<1, RTT, 1, true>(wr, p.hid, xr, nt, acc);
#pragma unroll
        for (int t = 0; t < RTT; t++)
            if (lane == t && t < nt) p.logits[(size_t)(t0 + t) * p.E + e] = acc[0][t];
    }
    if (!p.route) return;
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        s_last = atomicAdd(p.counter, 1) == (int)(gridDim.x * gridDim.y) - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();

    __shared__ float sh_z[NW][SMALL_E], sh_b[NW][SMALL_E];
    for (int t = warp; t < p.T; t += NW) {
        /* other blocks' logits: L2 reads (this SM's L1 never held them) */
        for (int i = lane; i < p.E; i += 32) sh_z[warp][i] = __ldcg(p.logits + (size_t)t * p.E + i);
        __syncwarp();
        route_fast(sh_z[warp], p.E, p.K, p.G, p.topk_group, p.scale, p.bias,
                   p.sel + (size_t)t * p.K, p.wt + (size_t)t * p.K, sh_b[warp]);
    }
    __syncthreads();
    /* bucketing (E <= 256 = one expert per thread; TK <= 1024) */
    __shared__ int s_sel[SMALL_TK], s_cnt[SMALL_E], s_off[SMALL_E], s_ws[2][NW];
    int TK = p.T * p.K, i = threadIdx.x;
    for (int a = i; a < TK; a += NT) s_sel[a] = p.sel[a];
    s_cnt[i] = 0;
    __syncthreads();
    for (int a = i; a < TK; a += NT) atomicAdd(&s_cnt[s_sel[a]], 1);
    __syncthreads();
    int c = i < p.E ? s_cnt[i] : 0, f = c > 0, ci = c, fi = f;
    for (int s = 1; s < 32; s <<= 1) { /* inclusive warp scans */
        int u = __shfl_up_sync(0xffffffffu, ci, s), v = __shfl_up_sync(0xffffffffu, fi, s);
        if (lane >= s) {
            ci += u;
            fi += v;
        }
    }
    if (lane == 31) {
        s_ws[0][warp] = ci;
        s_ws[1][warp] = fi;
    }
    __syncthreads();
    int cb = 0, fb = 0;
    for (int w = 0; w < warp; w++) {
        cb += s_ws[0][w];
        fb += s_ws[1][w];
    }
    if (i < p.E) {
        p.offsets[i] = cb + ci - c;
        s_off[i] = cb + ci - c;
        if (f) p.act[fb + fi - 1] = i;
    }
    if (i == p.E - 1) {
        p.offsets[p.E] = cb + ci;
        p.act[p.E] = fb + fi;
    }
    __syncthreads();
    for (int a = i; a < TK; a += NT) {
        int ex = s_sel[a], before = 0;
        for (int j = 0; j < a; j++) before += s_sel[j] == ex;
        p.rows[s_off[ex] + before] = a;
    }
    if (i == 0) *p.counter = 0; /* for the next launch (graph replays included) */
}

/* ---- experts -------------------------------------------------------------- */

/* Slot s < act[E]: routed expert act[s], its rows [offsets[e], offsets[e+1])
 * of the sorted assignments (token rows[r] / K). Slot act[E]: the shared
 * expert (if any), rows TK + t for the T tokens. */
struct Slot {
    int e, r0, r1, shared;
};
__device__ __forceinline__ bool find_slot(const rl_cu_moe_small_args &p, int s, Slot &o) {
    int nact = p.act[p.E], TK = p.T * p.K;
    if (s < nact) {
        o.e = p.act[s];
        o.r0 = p.offsets[o.e];
        o.r1 = p.offsets[o.e + 1];
        o.shared = 0;
        return true;
    }
    if (s == nact && p.s_gate) {
        o.e = -1;
        o.r0 = TK;
        o.r1 = TK + p.T;
        o.shared = 1;
        return true;
    }
    return false;
}

constexpr int ETT = 4, DR = 4;

/* H[r][o] = silu(gate_e[o] . x) * (up_e[o] . x): warp = one output row o of
 * gate and up together (two weight rows in flight). */
template <int CH>
__global__ void __launch_bounds__(NT) gate_up_kernel(rl_cu_moe_small_args p) {
    Slot sl;
    if (!find_slot(p, blockIdx.y, sl)) return;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int N = sl.shared ? p.sI : p.I, o = blockIdx.x * NW + warp;
    if (o >= N) return;
    const void *wr[2];
    if (sl.shared) {
        wr[0] = (const uint16_t *)p.s_gate + (size_t)o * p.hid;
        wr[1] = (const uint16_t *)p.s_up + (size_t)o * p.hid;
    } else {
        size_t off = (size_t)sl.e * p.I * p.hid + (size_t)o * p.hid;
        wr[0] = (const uint16_t *)p.e_gate + off;
        wr[1] = (const uint16_t *)p.e_up + off;
    }
    for (int rb = sl.r0; rb < sl.r1; rb += ETT) {
        int nt = min(ETT, sl.r1 - rb);
        const float *xr[ETT];
#pragma unroll
        for (int t = 0; t < ETT; t++) {
            int r = rb + min(t, nt - 1);
            int tok = sl.shared ? r - p.T * p.K : p.rows[r] / p.K;
            xr[t] = p.x + (size_t)tok * p.ldx;
        }
        float acc[2][ETT];
        dot_rows<2, ETT, CH, false>(wr, p.hid, xr, nt, acc);
#pragma unroll
        for (int t = 0; t < ETT; t++)
            if (lane == t && t < nt) p.h[(size_t)(rb + t) * p.ldh + o] = silu(acc[0][t]) * acc[1][t];
    }
}

/* down: yk[assignment][o] = down_e[o] . H[r] (ys[t][o] for the shared
 * expert); warp = DR output rows. */
template <int CH>
__global__ void __launch_bounds__(NT) down_kernel(rl_cu_moe_small_args p) {
    Slot sl;
    if (!find_slot(p, blockIdx.y, sl)) return;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int Kd = sl.shared ? p.sI : p.I, o0 = (blockIdx.x * NW + warp) * DR;
    if (o0 >= p.hid) return;
    const uint16_t *W = sl.shared ? (const uint16_t *)p.s_down
                                  : (const uint16_t *)p.e_down + (size_t)sl.e * p.hid * p.I;
    const void *wr[DR];
#pragma unroll
    for (int r = 0; r < DR; r++) wr[r] = W + (size_t)min(o0 + r, p.hid - 1) * Kd;
    for (int rb = sl.r0; rb < sl.r1; rb += ETT) {
        int nt = min(ETT, sl.r1 - rb);
        const float *xr[ETT];
#pragma unroll
        for (int t = 0; t < ETT; t++) xr[t] = p.h + (size_t)(rb + min(t, nt - 1)) * p.ldh;
        float acc[DR][ETT];
        dot_rows<DR, ETT, CH, false>(wr, Kd, xr, nt, acc);
#pragma unroll
        for (int r = 0; r < DR; r++)
#pragma unroll
            for (int t = 0; t < ETT; t++)
                if (lane == r * ETT + t && t < nt && o0 + r < p.hid) {
                    int row = rb + t;
                    float *y = sl.shared ? p.ys + (size_t)(row - p.T * p.K) * p.hid
                                         : p.yk + (size_t)p.rows[row] * p.hid;
                    y[o0 + r] = acc[r][t];
                }
    }
}

/* ---- RMSNorm (+ MoE combine) -------------------------------------------- */

/* One block of NN threads per row, the row's values in registers (dim <=
 * NN * NV): every load of the row is issued before the reduction, where
 * rl_cu_rmsnorm's 256 threads walk the row in dependent rounds. With COMB,
 * first x[t] += sum_r wt[t][r] yk[t*K+r] (+ ys[t]) in rl_cu_moe_combine's
 * order. y may be x. */
constexpr int NN = 512, NV = 8;

template <bool COMB>
__global__ void __launch_bounds__(NN) norm_fast_kernel(float *x, const float *yk, const float *wt,
                                                       const float *ys, int K, int dim,
                                                       const float *nw, float eps, float *y,
                                                       uint16_t *ybf) {
    __shared__ float sh[NN / 32];
    int t = blockIdx.x;
    float *xr = x + (size_t)t * dim;
    float v[NV], ss = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int d = threadIdx.x + i * NN;
        v[i] = 0.0f;
        if (d < dim) {
            float a = xr[d];
            if (COMB) {
                float acc = 0.0f;
                /* unrolled: the K loads are issued together (the sum's order stays) */
#pragma unroll 8
                for (int r = 0; r < K; r++)
                    acc += wt[(size_t)t * K + r] * yk[((size_t)t * K + r) * dim + d];
                if (ys) acc += ys[(size_t)t * dim + d];
                a += acc;
            }
            v[i] = a;
            ss = fmaf(a, a, ss);
        }
    }
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = ss;
    __syncthreads();
    float tot = 0.0f;
#pragma unroll
    for (int i = 0; i < NN / 32; i++) tot += sh[i];
    float inv = 1.0f / sqrtf(tot / (float)dim + eps);
    float *yr = y + (size_t)t * dim;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int d = threadIdx.x + i * NN;
        if (d < dim) {
            if (COMB) xr[d] = v[i];
            float o = nw[d] * (v[i] * inv);
            yr[d] = o;
            if (ybf) ybf[(size_t)t * dim + d] = __bfloat16_as_ushort(__float2bfloat16_rn(o));
        }
    }
}

} // namespace

extern "C" {

int rl_cu_gemv_ok(int K, int ldx, const void *x, const void *W) {
    return K > 0 && K % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)W & 15) == 0;
}

int rl_cu_gemv(rl_cu_gemv_args *p, void *stream) {
    if (p->T <= 0 || p->T > RL_CU_GEMV_T || p->n < 1 || p->n > 3) return (int)cudaErrorInvalidValue;
    int blocks = 0;
    for (int m = 0; m < p->n; m++) {
        if (!rl_cu_gemv_ok(p->K, p->ldx, p->x, p->W[m])) return (int)cudaErrorInvalidValue;
        p->blk0[m] = blocks;
        blocks += (p->N[m] + NW * GR - 1) / (NW * GR);
    }
    p->blk0[p->n] = blocks;
    cudaStream_t s = (cudaStream_t)stream;
    int ch = chunks_for(p->K);
    if (p->T == 1) return gemv_launch<1>(*p, blocks, ch, s);
    if (p->T == 2) return gemv_launch<2>(*p, blocks, ch, s);
    return gemv_launch<4>(*p, blocks, ch, s);
}

int rl_cu_moe_small_ok(int E, int T, int K, int G) {
    return E > 0 && E <= SMALL_E && T > 0 && K >= 1 && K <= 32 && T * K <= SMALL_TK && G <= 32 &&
           (G <= 1 || E / G >= 2);
}

int rl_cu_moe_route_small(const rl_cu_route_small_args *p, void *stream) {
    if ((p->route ? !rl_cu_moe_small_ok(p->E, p->T, p->K, p->G) : (p->E <= 0 || p->T <= 0)) ||
        p->hid % 8 || p->ldx % 4 || ((uintptr_t)p->x & 15) || ((uintptr_t)p->router & 15) ||
        (p->T + RTT - 1) / RTT > 65535)
        return (int)cudaErrorInvalidValue;
    dim3 grid((p->E + NW - 1) / NW, (p->T + RTT - 1) / RTT);
    route_small_kernel<<<grid, NT, 0, (cudaStream_t)stream>>>(*p);
    return (int)cudaGetLastError();
}

int rl_cu_moe_experts_small(const rl_cu_moe_small_args *p, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    int TK = p->T * p->K, slots = (p->E < TK ? p->E : TK) + 1;
    int N = p->s_gate && p->sI > p->I ? p->sI : p->I;
    if (p->hid % 8 || p->I % 8 || p->sI % 8 || p->ldx % 4 || p->ldh % 4 || ((uintptr_t)p->x & 15) ||
        ((uintptr_t)p->h & 15))
        return (int)cudaErrorInvalidValue;
    dim3 g1((N + NW - 1) / NW, slots);
    switch (chunks_for(p->hid)) {
    case 1: gate_up_kernel<1><<<g1, NT, 0, s>>>(*p); break;
    case 2: gate_up_kernel<2><<<g1, NT, 0, s>>>(*p); break;
    case 4: gate_up_kernel<4><<<g1, NT, 0, s>>>(*p); break;
    default: gate_up_kernel<8><<<g1, NT, 0, s>>>(*p); break;
    }
    int rc = (int)cudaGetLastError();
    if (rc) return rc;
    dim3 g2((p->hid + NW * DR - 1) / (NW * DR), slots);
    int kd = p->s_gate && p->sI > p->I ? p->sI : p->I;
    switch (chunks_for(kd)) {
    case 1: down_kernel<1><<<g2, NT, 0, s>>>(*p); break;
    case 2: down_kernel<2><<<g2, NT, 0, s>>>(*p); break;
    case 4: down_kernel<4><<<g2, NT, 0, s>>>(*p); break;
    default: down_kernel<8><<<g2, NT, 0, s>>>(*p); break;
    }
    return (int)cudaGetLastError();
}

int rl_cu_moe_combine_norm(float *x, const float *yk, const float *wt, const float *ys, int T,
                           int K, int dim, const float *w, float eps, float *y, uint16_t *ybf,
                           void *stream) {
    if (T <= 0) return 0;
    if (dim > NN * NV) {
        int rc = rl_cu_moe_combine(x, yk, wt, ys, T, K, dim, stream);
        return rc ? rc : rl_cu_rmsnorm(x, T, dim, w, eps, y, ybf, stream);
    }
    norm_fast_kernel<true><<<T, NN, 0, (cudaStream_t)stream>>>(x, yk, wt, ys, K, dim, w, eps, y,
                                                              ybf);
    return (int)cudaGetLastError();
}

int rl_cu_rmsnorm_fast(const float *x, int T, int dim, const float *w, float eps, float *y,
                       uint16_t *ybf, void *stream) {
    if (T <= 0) return 0;
    if (dim > NN * NV) return rl_cu_rmsnorm(x, T, dim, w, eps, y, ybf, stream);
    norm_fast_kernel<false><<<T, NN, 0, (cudaStream_t)stream>>>((float *)x, NULL, NULL, NULL, 0,
                                                               dim, w, eps, y, ybf);
    return (int)cudaGetLastError();
}

} // extern "C"
