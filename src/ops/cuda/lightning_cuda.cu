/* Lightning attention on tensor cores (contract: attn_cuda.h).
 *
 * A span is cut at chunk boundaries (absolute positions, multiples of 64)
 * into segments; segment s of a span covers chunk-local rows [a, b) of one
 * chunk (rows below a of the first segment are in the stash).
 *
 * Prefill (a step with a span of more than one token), four launches:
 *   1. lin_contrib  (chunk-parallel) for every segment that completes its
 *      chunk: U = sum_j pw[63-j] k_j^T v_j, the chunk's state contribution,
 *      into the workspace W[span][seg][h] (D x D fp32).
 *   2. lin_scan     (parallel over the D*D*H state elements of each span, a
 *      cheap sequential loop over its completed chunks): W[seg] <- the state
 *      at the start of seg, S <- pw[64] S + U. Writes the final state.
 *   3. lin_out      (chunk-parallel) each token's output from the start state
 *      of its chunk (W[seg], or the slot's S for the last, open chunk):
 *        o_i = scale * ( sum_{j<=i} pw[i-j] (q_i.k_j) v_j + (pw[i+1] q_i) S ).
 *   4. lin_stash    keys/values of the open chunk's new tokens into the stash.
 * Launches 1 and 3 stage the chunk's rows in shared memory (coalesced loads,
 * tf32 conversion once); the state is read from global memory (L1-cached).
 *
 * Decode (every span one token): lin_decode per (span, head) computes the
 * output (reads S once) and puts the token in the stash; lin_dfold then folds
 * the chunks that this token completes (S <- pw[64] S + U, in place).
 *
 * Determinism: all paths run the same per-warp tile functions below
 * (intra_p, out_tile, contrib_tile) on the same operand values, so a token's
 * output and a chunk's fold are bitwise the same whatever the split of the
 * sequence into steps: the token's row sits at the same place of the same
 * 16-row tile (its chunk-local index), keys after it are masked by a select
 * (P = 0), keys not yet arrived are zeros, columns are independent, and the
 * fold is the same fmaf. So this is split-invariant in both modes;
 * `deterministic` is accepted for symmetry with GQA and changes nothing here.
 *
 * Precision: tf32 operands (10-bit mantissa), fp32 accumulation, fp32 state.
 * Fragment orders (attn_mma.cuh): the channel and key contractions of the
 * output use the "pair" order (lane t holds k-indices 2t, 2t+1), which makes
 * the accumulator of P = Q K^T directly the A operand of P V. */
#include <stdio.h>
#include <stdlib.h>

#include "ops/cuda/attn_cuda.h"
#include "ops/cuda/attn_mma.cuh"
#include "ops/ops.h"

namespace {

constexpr int CH = RL_CHUNK; /* 64 */
static_assert(CH == 64, "the kernels tile a chunk as 4 x 16 rows");

/* Segment geometry of span sp (see the file comment). */
struct Seg {
    int nseg, ncomp; /* segments, completed chunks */
    int a, b;        /* chunk-local rows of segment s: [a, b) */
    int jbase;       /* span token index of chunk-local row 0 */
};

__device__ __forceinline__ Seg seg_of(const rl_cu_span &sp, int s) {
    Seg r;
    int i0 = sp.pos0 & (CH - 1);
    r.nseg = (i0 + sp.n + CH - 1) / CH;
    r.ncomp = (i0 + sp.n) / CH;
    r.a = s == 0 ? i0 : 0;
    int b = i0 + sp.n - CH * s;
    r.b = b < CH ? b : CH;
    r.jbase = CH * s - i0;
    return r;
}

/* Row j (chunk-local) of keys (off = H*D) or values (off = 2*H*D) of head h:
 * the stash below a, the step's rows in [a, b), NULL (zeros) from b on. */
__device__ __forceinline__ const float *kv_row(const float *qkv, int ldqkv, const float *stash,
                                               const rl_cu_span &sp, const Seg &sg, int j, int HD,
                                               int off, int hD) {
    if (j < sg.a) return stash + (size_t)j * HD + hD;
    if (j < sg.b) return qkv + (size_t)(sp.row0 + sg.jbase + j) * ldqkv + off + hD;
    return nullptr;
}
__device__ __forceinline__ const float *q_row(const float *qkv, int ldqkv, const rl_cu_span &sp,
                                              const Seg &sg, int r, int hD) {
    return r >= sg.a && r < sg.b ? qkv + (size_t)(sp.row0 + sg.jbase + r) * ldqkv + hD : nullptr;
}

__device__ __forceinline__ float ld0(const float *p, int i) { return p ? __ldg(p + i) : 0.0f; }

__device__ __forceinline__ size_t ws_index(int span, int seg, int nseg_max, int H, int h, int D) {
    return (((size_t)span * nseg_max + seg) * H + h) * (size_t)D * D;
}

/* ---- per-warp tile math, shared by every path ----------------------------------
 * Loaders: Q2(r, c) and K2(j, c) give the tf32 bits of channels c, c+1 (c
 * even) of query row r / key row j; V(j, e) tf32 bits of value j, channel e;
 * Kf(j, d) / Vf(j, e) the fp32 values (contrib rounds after the decay
 * product). g = lane/4, t = lane%4; rows of the tile: r0 = 16 mt + g,
 * r1 = r0 + 8. */

/* P of tile mt over keys 0..16mt+15 in A layout (pair order over keys):
 * P[i][j] = (j <= i) ? (q_i . k_j) pw[i-j] : 0. */
template <int D, class QL, class KL>
__device__ __forceinline__ void intra_p(int mt, QL Q2, KL K2, const float *pw, uint32_t pa[8][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = 16 * mt + g, r1 = r0 + 8;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        pa[nt][0] = pa[nt][1] = pa[nt][2] = pa[nt][3] = 0u;
        if (nt > 2 * mt + 1) continue; /* warp-uniform: keys past the tile */
        float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const int j = 8 * nt + g;
#pragma unroll
        for (int kk = 0; kk < D / 8; kk++) {
            const int ch = 8 * kk + 2 * t;
            const uint2 x = Q2(r0, ch), y = Q2(r1, ch), k = K2(j, ch);
            rl_mma_tf32(c, x.x, y.x, x.y, y.y, k.x, k.y);
        }
        const int jc = 8 * nt + 2 * t; /* keys of c0/c2 (c1/c3: jc + 1) */
        float p0 = jc <= r0 ? c[0] * __ldg(pw + r0 - jc) : 0.0f;
        float p1 = jc + 1 <= r0 ? c[1] * __ldg(pw + r0 - jc - 1) : 0.0f;
        float p2 = jc <= r1 ? c[2] * __ldg(pw + r1 - jc) : 0.0f;
        float p3 = jc + 1 <= r1 ? c[3] * __ldg(pw + r1 - jc - 1) : 0.0f;
        /* A (g, k=t) = key jc, (g, k=t+4) = key jc+1: the accumulator itself */
        pa[nt][0] = rl_tf32(p0);
        pa[nt][1] = rl_tf32(p2);
        pa[nt][2] = rl_tf32(p1);
        pa[nt][3] = rl_tf32(p3);
    }
}

/* acc (NC columns from cb) = P V + (pw[i+1] Q) S, intra first then inter;
 * S row-major D x D fp32 (global). */
template <int D, int NC, class QL, class VL>
__device__ __forceinline__ void out_tile(int mt, const uint32_t pa[8][4], QL Q2, VL V,
                                         const float *__restrict__ S, int cb, const float *pw,
                                         float acc[NC / 8][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = 16 * mt + g, r1 = r0 + 8;
#pragma unroll
    for (int n = 0; n < NC / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        if (nt > 2 * mt + 1) continue;
        const int j = 8 * nt + 2 * t;
#pragma unroll
        for (int n = 0; n < NC / 8; n++) {
            const int e = cb + 8 * n + g;
            rl_mma_tf32(acc[n], pa[nt][0], pa[nt][1], pa[nt][2], pa[nt][3], V(j, e), V(j + 1, e));
        }
    }
    const float d0 = __ldg(pw + r0 + 1), d1 = __ldg(pw + r1 + 1);
#pragma unroll
    for (int kk = 0; kk < D / 8; kk++) {
        const int ch = 8 * kk + 2 * t;
        const uint2 x = Q2(r0, ch), y = Q2(r1, ch);
        uint32_t a0 = rl_tf32(__uint_as_float(x.x) * d0);
        uint32_t a1 = rl_tf32(__uint_as_float(y.x) * d1);
        uint32_t a2 = rl_tf32(__uint_as_float(x.y) * d0);
        uint32_t a3 = rl_tf32(__uint_as_float(y.y) * d1);
        const float *s0 = S + (size_t)ch * D + cb + g, *s1 = s0 + D;
        float b0[NC / 8], b1[NC / 8];
#pragma unroll
        for (int n = 0; n < NC / 8; n++) {
            b0[n] = __ldg(s0 + 8 * n);
            b1[n] = __ldg(s1 + 8 * n);
        }
#pragma unroll
        for (int n = 0; n < NC / 8; n++) rl_mma_tf32(acc[n], a0, a1, a2, a3, rl_tf32(b0[n]), rl_tf32(b1[n]));
    }
}

/* U rows 16mt..16mt+15 (channels d of the keys), all D columns:
 * U[d][e] = sum_j (pw[63-j] k_j[d]) v_j[e], keys in k-steps of 8 (j0 = 8kk+t,
 * j1 = j0+4). */
template <int D, class KF, class VF>
__device__ __forceinline__ void contrib_tile(int mt, KF Kf, VF Vf, const float *pw,
                                             float acc[D / 8][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int d = 16 * mt + g;
#pragma unroll
    for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll 2
    for (int kk = 0; kk < CH / 8; kk++) {
        const int j0 = 8 * kk + t, j1 = j0 + 4;
        const float w0 = __ldg(pw + CH - 1 - j0), w1 = __ldg(pw + CH - 1 - j1);
        uint32_t a0 = rl_tf32(w0 * Kf(j0, d)), a1 = rl_tf32(w0 * Kf(j0, d + 8));
        uint32_t a2 = rl_tf32(w1 * Kf(j1, d)), a3 = rl_tf32(w1 * Kf(j1, d + 8));
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            rl_mma_tf32(acc[n], a0, a1, a2, a3, rl_tf32(Vf(j0, 8 * n + g)), rl_tf32(Vf(j1, 8 * n + g)));
    }
}

/* ---- 1. chunk contributions (prefill) ----------------------------------------------
 * Block (segment, head) x span, D/16 warps (one 16-row tile of U each). The
 * chunk's 64 keys and values are staged as fp32 [64][D + 8] (conflict-free
 * fragment reads: row stride = 8 mod 32 words). */
template <int D>
__global__ void __launch_bounds__(2 * D) lin_contrib(const float *__restrict__ qkv, int ldqkv,
                                                     const rl_cu_span *__restrict__ spans,
                                                     const rl_cu_lin_state *__restrict__ states,
                                                     int H, const float *__restrict__ decay_pw,
                                                     float *__restrict__ W, int nseg_max) {
    constexpr int LD = D + 8;
    extern __shared__ float4 smem4[];
    float *Ks = (float *)smem4, *Vs = Ks + CH * LD;
    const int h = blockIdx.x % H, s = blockIdx.x / H;
    const rl_cu_span sp = spans[blockIdx.y];
    const Seg sg = seg_of(sp, s);
    if (s >= sg.ncomp) return; /* whole block, before any barrier */
    const rl_cu_lin_state st = states[sp.seq];
    const int HD = H * D;
    for (int idx = threadIdx.x; idx < CH * D; idx += blockDim.x) {
        int j = idx / D, c = idx % D;
        Ks[j * LD + c] = __ldg(kv_row(qkv, ldqkv, st.kst, sp, sg, j, HD, HD, h * D) + c);
        Vs[j * LD + c] = __ldg(kv_row(qkv, ldqkv, st.vst, sp, sg, j, HD, 2 * HD, h * D) + c);
    }
    __syncthreads();
    const int mt = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float acc[D / 8][4];
    contrib_tile<D>(
        mt, [&](int j, int d) { return Ks[j * LD + d]; }, [&](int j, int e) { return Vs[j * LD + e]; },
        decay_pw + h * (CH + 1), acc);
    float *U = W + ws_index(blockIdx.y, s, nseg_max, H, h, D);
    const int r0 = 16 * mt + g;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        *(float2 *)(U + (size_t)r0 * D + 8 * n + 2 * t) = make_float2(acc[n][0], acc[n][1]);
        *(float2 *)(U + (size_t)(r0 + 8) * D + 8 * n + 2 * t) = make_float2(acc[n][2], acc[n][3]);
    }
}

/* ---- 2. scan over completed chunks (prefill) -------------------------------------
 * Each thread owns 4 consecutive state elements of one span; the loads of the
 * next contributions do not depend on the running state, so they overlap. */
__global__ void lin_scan(const rl_cu_span *__restrict__ spans,
                         const rl_cu_lin_state *__restrict__ states, int H, int D,
                         const float *__restrict__ decay_pw, float *__restrict__ W,
                         int nseg_max) {
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, 0);
    if (sg.ncomp == 0) return;
    size_t n4 = (size_t)H * D * D / 4;
    size_t e4 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e4 >= n4) return;
    int h = (int)(e4 * 4 / ((size_t)D * D));
    float p = __ldg(decay_pw + h * (CH + 1) + CH);
    float4 *S = (float4 *)states[sp.seq].S + e4;
    float4 *w = (float4 *)(W + ws_index(blockIdx.y, 0, nseg_max, H, 0, D)) + e4;
    float4 s = *S;
    int c = 0;
    for (; c + 4 <= sg.ncomp; c += 4) {
        float4 u[4];
#pragma unroll
        for (int i = 0; i < 4; i++) u[i] = w[(size_t)(c + i) * n4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[(size_t)(c + i) * n4] = s;
            s.x = fmaf(p, s.x, u[i].x);
            s.y = fmaf(p, s.y, u[i].y);
            s.z = fmaf(p, s.z, u[i].z);
            s.w = fmaf(p, s.w, u[i].w);
        }
    }
    for (; c < sg.ncomp; c++) {
        float4 u = w[(size_t)c * n4];
        w[(size_t)c * n4] = s;
        s.x = fmaf(p, s.x, u.x);
        s.y = fmaf(p, s.y, u.y);
        s.z = fmaf(p, s.z, u.z);
        s.w = fmaf(p, s.w, u.w);
    }
    *S = s;
}

/* ---- 3. outputs (prefill) ------------------------------------------------------------
 * Block (segment, head) x span; warp w: tile mt = w / (D/64), 64 columns
 * from 64 (w % (D/64)). Q and K staged as tf32 [64][D + 8] (rows outside the
 * segment / not yet arrived are zeros), V as tf32 [64][D + 4]; the state
 * from global memory. */
template <int D>
__global__ void __launch_bounds__(2 * D) lin_out(const float *__restrict__ qkv, int ldqkv,
                                                 float *__restrict__ o, int ldo,
                                                 const rl_cu_span *__restrict__ spans,
                                                 const rl_cu_lin_state *__restrict__ states, int H,
                                                 const float *__restrict__ decay_pw, float scale,
                                                 const float *__restrict__ W, int nseg_max) {
    constexpr int NH = D / 64, LQ = D + 8, LV = D + 4;
    extern __shared__ float4 smem4[];
    uint32_t *Qs = (uint32_t *)smem4, *Ks = Qs + CH * LQ, *Vs = Ks + CH * LQ;
    const int h = blockIdx.x % H, s = blockIdx.x / H;
    const rl_cu_span sp = spans[blockIdx.y];
    const Seg sg = seg_of(sp, s);
    if (s >= sg.nseg) return;
    const rl_cu_lin_state st = states[sp.seq];
    const int HD = H * D;
    for (int idx = threadIdx.x; idx < CH * D; idx += blockDim.x) {
        int j = idx / D, c = idx % D;
        const float *qr = q_row(qkv, ldqkv, sp, sg, j, h * D);
        const float *kr = kv_row(qkv, ldqkv, st.kst, sp, sg, j, HD, HD, h * D);
        const float *vr = kv_row(qkv, ldqkv, st.vst, sp, sg, j, HD, 2 * HD, h * D);
        Qs[j * LQ + c] = rl_tf32(ld0(qr, c));
        Ks[j * LQ + c] = rl_tf32(ld0(kr, c));
        Vs[j * LV + c] = rl_tf32(ld0(vr, c));
    }
    __syncthreads();
    const int w = threadIdx.x >> 5, mt = w / NH, hf = w % NH;
    if (16 * mt >= sg.b || 16 * mt + 16 <= sg.a) return;
    const float *pw = decay_pw + h * (CH + 1);
    /* 64-bit shared loads: row stride 8 mod 32 words, conflict-free */
    auto Q2 = [&](int r, int c) { return *(const uint2 *)&Qs[r * LQ + c]; };
    uint32_t pa[8][4];
    intra_p<D>(mt, Q2, [&](int j, int c) { return *(const uint2 *)&Ks[j * LQ + c]; }, pw, pa);
    const float *S = s < sg.ncomp ? W + ws_index(blockIdx.y, s, nseg_max, H, h, D)
                                  : st.S + (size_t)h * D * D;
    float acc[8][4];
    out_tile<D, 64>(mt, pa, Q2, [&](int j, int e) { return Vs[j * LV + e]; }, S, 64 * hf, pw, acc);
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = 16 * mt + g, r1 = r0 + 8;
    float *o0 = r0 >= sg.a && r0 < sg.b ? o + (size_t)(sp.row0 + sg.jbase + r0) * ldo + h * D + 64 * hf : nullptr;
    float *o1 = r1 >= sg.a && r1 < sg.b ? o + (size_t)(sp.row0 + sg.jbase + r1) * ldo + h * D + 64 * hf : nullptr;
#pragma unroll
    for (int n = 0; n < 8; n++) {
        if (o0) {
            o0[8 * n + 2 * t] = scale * acc[n][0];
            o0[8 * n + 2 * t + 1] = scale * acc[n][1];
        }
        if (o1) {
            o1[8 * n + 2 * t] = scale * acc[n][2];
            o1[8 * n + 2 * t + 1] = scale * acc[n][3];
        }
    }
}

/* ---- 4. stash (prefill) -----------------------------------------------------------------
 * The new tokens of the span's last, open chunk (none when the span ends on a
 * chunk boundary: that chunk was folded). One block per span. */
__global__ void lin_stash(const float *__restrict__ qkv, int ldqkv,
                          const rl_cu_span *__restrict__ spans,
                          const rl_cu_lin_state *__restrict__ states, int HD) {
    rl_cu_span sp = spans[blockIdx.x];
    Seg sg = seg_of(sp, 0);
    if (sg.nseg == sg.ncomp) return;
    sg = seg_of(sp, sg.nseg - 1);
    const rl_cu_lin_state st = states[sp.seq];
    for (int i = sg.a; i < sg.b; i++) {
        const float *src = qkv + (size_t)(sp.row0 + sg.jbase + i) * ldqkv;
        float *kd = st.kst + (size_t)i * HD, *vd = st.vst + (size_t)i * HD;
        for (int c = threadIdx.x; c < HD; c += blockDim.x) {
            kd[c] = src[HD + c];
            vd[c] = src[2 * HD + c];
        }
    }
}

/* ---- decode: every span is one token ------------------------------------------------------
 * Block (head, span), D/32 warps of 32 output columns each. Operands straight
 * from global memory (each is used once per warp); the state is read once.
 * Same tile functions and operand values as the prefill kernels. */
template <int D>
__global__ void __launch_bounds__(D) lin_decode(const float *__restrict__ qkv, int ldqkv,
                                                float *__restrict__ o, int ldo,
                                                const rl_cu_span *__restrict__ spans,
                                                const rl_cu_lin_state *__restrict__ states, int H,
                                                const float *__restrict__ decay_pw, float scale) {
    const int h = blockIdx.x;
    const rl_cu_span sp = spans[blockIdx.y];
    const Seg sg = seg_of(sp, 0); /* n == 1: a = i0, b = i0 + 1 */
    const rl_cu_lin_state st = states[sp.seq];
    const int HD = H * D, i0 = sg.a, mt = i0 >> 4;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float *pw = decay_pw + h * (CH + 1);
    const float *qr = qkv + (size_t)sp.row0 * ldqkv + h * D;
    auto Q2 = [&](int r, int c) {
        return r == i0 ? make_uint2(rl_tf32(__ldg(qr + c)), rl_tf32(__ldg(qr + c + 1))) : make_uint2(0u, 0u);
    };
    auto K2 = [&](int j, int c) {
        const float *kr = kv_row(qkv, ldqkv, st.kst, sp, sg, j, HD, HD, h * D);
        return make_uint2(rl_tf32(ld0(kr, c)), rl_tf32(ld0(kr, c + 1)));
    };
    auto V = [&](int j, int e) {
        return rl_tf32(ld0(kv_row(qkv, ldqkv, st.vst, sp, sg, j, HD, 2 * HD, h * D), e));
    };
    float *Sh = st.S + (size_t)h * D * D;
    uint32_t pa[8][4];
    intra_p<D>(mt, Q2, K2, pw, pa);
    float acc[4][4];
    out_tile<D, 32>(mt, pa, Q2, V, Sh, 32 * w, pw, acc);
    const int r0 = 16 * mt + g, r1 = r0 + 8;
    float *orow = o + (size_t)sp.row0 * ldo + h * D + 32 * w;
#pragma unroll
    for (int n = 0; n < 4; n++) {
        if (r0 == i0) {
            orow[8 * n + 2 * t] = scale * acc[n][0];
            orow[8 * n + 2 * t + 1] = scale * acc[n][1];
        }
        if (r1 == i0) {
            orow[8 * n + 2 * t] = scale * acc[n][2];
            orow[8 * n + 2 * t + 1] = scale * acc[n][3];
        }
    }
    if (i0 != CH - 1) { /* the token joins the open chunk's stash (this head's columns) */
        const float *src = qkv + (size_t)sp.row0 * ldqkv;
        for (int c = threadIdx.x; c < D; c += blockDim.x) {
            st.kst[(size_t)i0 * HD + h * D + c] = src[HD + h * D + c];
            st.vst[(size_t)i0 * HD + h * D + c] = src[2 * HD + h * D + c];
        }
    }
}

/* Decode fold, after lin_decode (which read S): for a token that completes
 * its chunk, S <- pw[64] S + U exactly as lin_contrib + lin_scan compute it.
 * A separate launch keeps lin_decode's registers (and so its occupancy) low. */
template <int D>
__global__ void __launch_bounds__(D) lin_dfold(const float *__restrict__ qkv, int ldqkv,
                                               const rl_cu_span *__restrict__ spans,
                                               const rl_cu_lin_state *__restrict__ states, int H,
                                               const float *__restrict__ decay_pw) {
    const int h = blockIdx.x;
    const rl_cu_span sp = spans[blockIdx.y];
    const Seg sg = seg_of(sp, 0);
    if (sg.a != CH - 1) return;
    const rl_cu_lin_state st = states[sp.seq];
    const int HD = H * D;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float *pw = decay_pw + h * (CH + 1);
    const float p64 = __ldg(pw + CH);
    float *Sh = st.S + (size_t)h * D * D;
    auto Kf = [&](int j, int d) { return __ldg(kv_row(qkv, ldqkv, st.kst, sp, sg, j, HD, HD, h * D) + d); };
    auto Vf = [&](int j, int e) { return __ldg(kv_row(qkv, ldqkv, st.vst, sp, sg, j, HD, 2 * HD, h * D) + e); };
    for (int m = w; m < D / 16; m += D / 32) {
        float u[D / 8][4];
        contrib_tile<D>(m, Kf, Vf, pw, u);
        float *s0 = Sh + (size_t)(16 * m + g) * D + 2 * t, *s1 = s0 + 8 * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            s0[8 * n] = fmaf(p64, s0[8 * n], u[n][0]);
            s0[8 * n + 1] = fmaf(p64, s0[8 * n + 1], u[n][1]);
            s1[8 * n] = fmaf(p64, s1[8 * n], u[n][2]);
            s1[8 * n + 1] = fmaf(p64, s1[8 * n + 1], u[n][3]);
        }
    }
}

/* RL_CU_ATTN_PROF=1: time each launch (synchronizes; for benchmarks only). */
struct Prof {
    bool on;
    cudaEvent_t ev[6];
    int n;
    cudaStream_t st;
    explicit Prof(cudaStream_t s) : on(false), n(0), st(s) {
        static int env = -1;
        if (env < 0) env = getenv("RL_CU_ATTN_PROF") != nullptr;
        on = env;
        for (int i = 0; on && i < 6; i++) on = cudaEventCreate(&ev[i]) == cudaSuccess;
        mark();
    }
    void mark() {
        if (on && n < 6) on = cudaEventRecord(ev[n++], st) == cudaSuccess;
    }
    void done(const char *const *names) { /* a failed call only ends the profile */
        if (!on || cudaEventSynchronize(ev[n - 1]) != cudaSuccess) return;
        fprintf(stderr, "lightning:");
        for (int i = 1; i < n; i++) {
            float ms = 0;
            if (cudaEventElapsedTime(&ms, ev[i - 1], ev[i]) == cudaSuccess)
                fprintf(stderr, " %s %.3f ms", names[i - 1], ms);
        }
        fprintf(stderr, "\n");
        for (auto &e : ev)
            if (cudaEventDestroy(e) != cudaSuccess) break;
    }
};

template <int D>
int launch(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans, int n_spans,
           int max_n, const rl_cu_lin_state *states, int H, const float *decay_pw, float scale,
           cudaStream_t st) {
    Prof prof(st);
    if (max_n == 1) {
        lin_decode<D><<<dim3(H, n_spans), D, 0, st>>>(qkv, ldqkv, o, ldo, spans, states, H, decay_pw, scale);
        RL_CU_LAUNCHED();
        prof.mark();
        lin_dfold<D><<<dim3(H, n_spans), D, 0, st>>>(qkv, ldqkv, spans, states, H, decay_pw);
        RL_CU_LAUNCHED();
        prof.mark();
        static const char *nm[] = {"decode", "fold"};
        prof.done(nm);
        return 0;
    }
    int nseg_max = (max_n + CH - 2) / CH + 1;
    void *wsp = nullptr;
    RL_CU_TRY(rl_cu_attn_ws(RL_CU_WS_LIN, (size_t)n_spans * nseg_max * H * D * D * sizeof(float), &wsp));
    float *W = (float *)wsp;
    const size_t sm_c = 2 * CH * (D + 8) * sizeof(float);
    const size_t sm_o = CH * (2 * (D + 8) + (D + 4)) * sizeof(uint32_t);
    static bool attr = false; /* per D instantiation */
    if (!attr) {
        RL_CU_TRY(cudaFuncSetAttribute(lin_contrib<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm_c));
        RL_CU_TRY(cudaFuncSetAttribute(lin_out<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm_o));
        attr = true;
    }
    lin_contrib<D><<<dim3(nseg_max * H, n_spans), 2 * D, sm_c, st>>>(qkv, ldqkv, spans, states, H,
                                                                    decay_pw, W, nseg_max);
    RL_CU_LAUNCHED();
    prof.mark();
    size_t n4 = (size_t)H * D * D / 4;
    lin_scan<<<dim3((unsigned)((n4 + 255) / 256), n_spans), 256, 0, st>>>(spans, states, H, D,
                                                                          decay_pw, W, nseg_max);
    RL_CU_LAUNCHED();
    prof.mark();
    lin_out<D><<<dim3(nseg_max * H, n_spans), 2 * D, sm_o, st>>>(qkv, ldqkv, o, ldo, spans, states,
                                                                H, decay_pw, scale, W, nseg_max);
    RL_CU_LAUNCHED();
    prof.mark();
    lin_stash<<<n_spans, 256, 0, st>>>(qkv, ldqkv, spans, states, H * D);
    RL_CU_LAUNCHED();
    prof.mark();
    static const char *nm[] = {"contrib", "scan", "out", "stash"};
    prof.done(nm);
    return 0;
}

} // namespace

extern "C" int rl_cu_lightning(const float *qkv, int ldqkv, float *o, int ldo,
                               const rl_cu_span *spans, int n_spans, int max_n,
                               const rl_cu_lin_state *states, int H, int D,
                               const float *decay_pw, float scale, int deterministic,
                               void *stream) {
    (void)deterministic; /* split-invariant in both modes, see above */
    if (n_spans <= 0 || max_n <= 0) return 0;
    if (n_spans > 65535 || H <= 0) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    if (D == 128)
        return launch<128>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, states, H, decay_pw, scale, st);
    if (D == 64)
        return launch<64>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, states, H, decay_pw, scale, st);
    return (int)cudaErrorInvalidValue;
}
