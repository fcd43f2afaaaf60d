/* Lightning attention on tensor cores (contract: attn_cuda.h).
 *
 * Prefill: a span is cut at chunk boundaries (absolute positions, multiples
 * of 64) into segments; segment s of a span covers chunk-local rows [a, b) of
 * one chunk (rows below a of the first segment are in the stash). Four
 * launches:
 *
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
 *
 * Decode (every span one token: max_n == 1) takes one launch instead. In
 * deterministic mode lin_decode: a block per (span, head) computes the
 * token's output as lin_out does, then either appends its key/value to the
 * stash or, when the token completes its chunk, computes U as lin_contrib
 * does and folds it into S as lin_scan does. In the default mode
 * lin_decode_fast: the same arithmetic in plain fp32 FMAs, laid out for
 * memory speed (see there); equal to the tensor-core path to rounding only.
 *
 * Determinism: a token's output is computed by the same instructions on the
 * same operand values whatever the split of its sequence into steps: its row
 * sits at the same place of the same 16-row tile (its chunk-local index) and
 * each output column at the same place of its 8-column tile (the column
 * layout below, shared by every kernel), keys after it are masked by a select
 * (P = 0) and keys not yet arrived are zeros; a chunk's contribution U is
 * computed by one code (contrib_groups) from the same 64 keys/values (stash
 * or step rows), and every fold is the same fmaf. So with lin_decode for
 * decode (deterministic mode) this kernel set is bitwise split-invariant.
 *
 * Operand layouts (fragments: attn_mma.cuh). Columns (value channels) come in
 * groups of 32 spread over 4 n-tiles, tile n / in-tile column c holding
 * column c32 + 4c + n: a lane's B operands are then 4 consecutive columns of
 * one row (one float4) and its outputs 8 consecutive columns. Channels of a
 * q.k or q.S product come in blocks of 16 over two k-steps, channel
 * 16p + 4t + i at k-step 2p + i/2, position t + 4 (i % 2): a lane's A operands
 * are one float4 of q. Operands are read straight from global memory (no
 * shared memory), so occupancy stays high for the bandwidth-bound decode.
 *
 * Precision: tf32 operands (10-bit mantissa), fp32 accumulation, fp32 state.
 * Rows (qkv, o, S, stash) must be 16-byte aligned: the strides are multiples
 * of 4 floats (checked). */
#include <stdint.h>

#include "ops/cuda/attn_async.cuh"
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

/* Where the keys and values of one head of one segment live: chunk-local
 * row j is in the stash below a, a step row in [a, b), zeros (NULL) from b on. */
struct Rows {
    const float *qkv, *kst, *vst;
    int ldqkv, HD, hD, base, a, b; /* base: step row of chunk-local row 0 */

    __device__ __forceinline__ Rows(const float *qkv_, int ldqkv_, const rl_cu_lin_state &st,
                                    const rl_cu_span &sp, const Seg &sg, int H, int h, int D)
        : qkv(qkv_), kst(st.kst), vst(st.vst), ldqkv(ldqkv_), HD(H * D), hD(h * D),
          base(sp.row0 + sg.jbase), a(sg.a), b(sg.b) {}

    __device__ __forceinline__ const float *row(int j, const float *stash, int off) const {
        if (j < a) return stash + (size_t)j * HD + hD;
        if (j < b) return qkv + (size_t)(base + j) * ldqkv + off + hD;
        return nullptr;
    }
    __device__ __forceinline__ const float *k(int j) const { return row(j, kst, HD); }
    __device__ __forceinline__ const float *v(int j) const { return row(j, vst, 2 * HD); }
    __device__ __forceinline__ const float *q(int j) const {
        return j >= a && j < b ? qkv + (size_t)(base + j) * ldqkv + hD : nullptr;
    }
};

__device__ __forceinline__ float ld0(const float *p, int i) { return p ? __ldg(p + i) : 0.0f; }
__device__ __forceinline__ float4 ld4(const float *p, int i) {
    return p ? __ldg((const float4 *)(p + i)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}
__device__ __forceinline__ float f4(const float4 &x, int i) {
    return i == 0 ? x.x : i == 1 ? x.y : i == 2 ? x.z : x.w;
}

/* Asks L2 for the 128-byte line holding p (no register, no wait). */
__device__ __forceinline__ void prefetch_l2(const float *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

__device__ __forceinline__ size_t ws_index(int span, int seg, int nseg_max, int H, int h, int D) {
    return (((size_t)span * nseg_max + seg) * H + h) * (size_t)D * D;
}

/* Stores a 16-row accumulator tile of NG column groups (base c32) into rows
 * r0 = 16 mt + g and r0 + 8 of a row-major matrix (either row pointer may be
 * NULL: not written), times `mul`. */
template <int NG>
__device__ __forceinline__ void store_groups(float *o0, float *o1, const float (*acc)[4][4],
                                             int c32, float mul, int t) {
#pragma unroll
    for (int m = 0; m < NG; m++) {
        int c = c32 + 32 * m + 8 * t;
        if (o0) {
            *(float4 *)(o0 + c) = make_float4(mul * acc[m][0][0], mul * acc[m][1][0],
                                              mul * acc[m][2][0], mul * acc[m][3][0]);
            *(float4 *)(o0 + c + 4) = make_float4(mul * acc[m][0][1], mul * acc[m][1][1],
                                                  mul * acc[m][2][1], mul * acc[m][3][1]);
        }
        if (o1) {
            *(float4 *)(o1 + c) = make_float4(mul * acc[m][0][2], mul * acc[m][1][2],
                                              mul * acc[m][2][2], mul * acc[m][3][2]);
            *(float4 *)(o1 + c + 4) = make_float4(mul * acc[m][0][3], mul * acc[m][1][3],
                                                  mul * acc[m][2][3], mul * acc[m][3][3]);
        }
    }
}

/* ---- the chunk contribution U, rows 16 mt .. 16 mt + 15, NG column groups ----
 * U[d][e] = sum_j (pw[63-j] k_j[d]) v_j[e]: A = (pw K)^T (16 x 8 keys per
 * k-step), B = V (8 keys x columns). Shared by lin_contrib and lin_decode's
 * fold, so both give the same bits. */
template <int NG>
__device__ __forceinline__ void contrib_groups(float (*acc)[4][4], const Rows &R, const float *pw,
                                               int mt, int c32, int g, int t) {
#pragma unroll
    for (int m = 0; m < NG; m++)
#pragma unroll
        for (int n = 0; n < 4; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
#pragma unroll 2
    for (int kk = 0; kk < CH / 8; kk++) {
        int j0 = 8 * kk + t, j1 = j0 + 4;
        const float *k0 = R.k(j0), *k1 = R.k(j1), *v0 = R.v(j0), *v1 = R.v(j1);
        float w0 = __ldg(pw + CH - 1 - j0), w1 = __ldg(pw + CH - 1 - j1);
        int d = 16 * mt + g;
        uint32_t a0 = rl_tf32(w0 * ld0(k0, d)), a1 = rl_tf32(w0 * ld0(k0, d + 8));
        uint32_t a2 = rl_tf32(w1 * ld0(k1, d)), a3 = rl_tf32(w1 * ld0(k1, d + 8));
#pragma unroll
        for (int m = 0; m < NG; m++) {
            float4 x0 = ld4(v0, c32 + 32 * m + 4 * g), x1 = ld4(v1, c32 + 32 * m + 4 * g);
#pragma unroll
            for (int n = 0; n < 4; n++)
                rl_mma_tf32(acc[m][n], a0, a1, a2, a3, rl_tf32(f4(x0, n)), rl_tf32(f4(x1, n)));
        }
    }
}

/* ---- a token tile's output, NG column groups ------------------------------------
 * q fragments (tf32) of channels 16p.. of rows r0/r1 (NULL: zeros), in the
 * channel layout: k-step 2p in e[], 2p + 1 in o[], times `mul` (then
 * rounded again: tf32(tf32(q) mul), the inter-chunk operand). Read where
 * used (L1 hits) rather than held: 64 registers fewer. */
__device__ __forceinline__ void q_frags(uint32_t e[4], uint32_t o[4], const float *q0,
                                        const float *q1, int p, int t, float m0, float m1,
                                        bool mul) {
    float4 x0 = ld4(q0, 16 * p + 4 * t), x1 = ld4(q1, 16 * p + 4 * t);
    e[0] = rl_tf32(x0.x);
    e[1] = rl_tf32(x1.x);
    e[2] = rl_tf32(x0.y);
    e[3] = rl_tf32(x1.y);
    o[0] = rl_tf32(x0.z);
    o[1] = rl_tf32(x1.z);
    o[2] = rl_tf32(x0.w);
    o[3] = rl_tf32(x1.w);
    if (mul) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float m = i & 1 ? m1 : m0;
            e[i] = rl_tf32(__uint_as_float(e[i]) * m);
            o[i] = rl_tf32(__uint_as_float(o[i]) * m);
        }
    }
}

/* Intra-chunk scores of tile mt as A fragments: P = mask(Q K^T) * decay over
 * keys 0..16mt+15, moved from accumulator to A layout by shuffles. The key
 * tiles' accumulation chains run side by side (channel blocks outer). */
template <int D>
__device__ __forceinline__ void scores(uint32_t (*pa)[4], const float *q0, const float *q1,
                                       const Rows &R, const float *pw, int mt, int r0, int r1,
                                       int lane) {
    const int g = lane >> 2, t = lane & 3;
    const int src = (lane & ~3) | (t >> 1);
    const bool odd = t & 1;
    const int ntiles = 2 * mt + 2; /* warp-uniform: keys past the tile are not visited */
    const float *kr[8];
    float c[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        kr[nt] = nt < ntiles ? R.k(8 * nt + g) : nullptr;
        c[nt][0] = c[nt][1] = c[nt][2] = c[nt][3] = 0.0f;
    }
#pragma unroll
    for (int p = 0; p < D / 16; p++) {
        uint32_t ae[4], ao[4];
        q_frags(ae, ao, q0, q1, p, t, 0.0f, 0.0f, false);
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            if (nt >= ntiles) continue;
            float4 kx = ld4(kr[nt], 16 * p + 4 * t);
            rl_mma_tf32(c[nt], ae[0], ae[1], ae[2], ae[3], rl_tf32(kx.x), rl_tf32(kx.y));
            rl_mma_tf32(c[nt], ao[0], ao[1], ao[2], ao[3], rl_tf32(kx.z), rl_tf32(kx.w));
        }
    }
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        pa[nt][0] = pa[nt][1] = pa[nt][2] = pa[nt][3] = 0u;
        if (nt >= ntiles) continue;
        int j = 8 * nt + 2 * t;
        float p0 = j <= r0 ? c[nt][0] * __ldg(pw + r0 - j) : 0.0f;
        float p1 = j + 1 <= r0 ? c[nt][1] * __ldg(pw + r0 - j - 1) : 0.0f;
        float p2 = j <= r1 ? c[nt][2] * __ldg(pw + r1 - j) : 0.0f;
        float p3 = j + 1 <= r1 ? c[nt][3] * __ldg(pw + r1 - j - 1) : 0.0f;
        uint32_t u0 = rl_tf32(p0), u1 = rl_tf32(p1), u2 = rl_tf32(p2), u3 = rl_tf32(p3);
        /* A (g, t) = C (g, col t) lives in lane (g, t/2), element t&1 */
        uint32_t x0 = __shfl_sync(0xffffffffu, u0, src), x1 = __shfl_sync(0xffffffffu, u1, src);
        uint32_t y0 = __shfl_sync(0xffffffffu, u2, src), y1 = __shfl_sync(0xffffffffu, u3, src);
        uint32_t z0 = __shfl_sync(0xffffffffu, u0, src + 2), z1 = __shfl_sync(0xffffffffu, u1, src + 2);
        uint32_t w0 = __shfl_sync(0xffffffffu, u2, src + 2), w1 = __shfl_sync(0xffffffffu, u3, src + 2);
        pa[nt][0] = odd ? x1 : x0;
        pa[nt][1] = odd ? y1 : y0;
        pa[nt][2] = odd ? z1 : z0;
        pa[nt][3] = odd ? w1 : w0;
    }
}

/* acc = (pw[r+1] q) S + P V (keys of tiles 0..2mt+1), NG column groups from
 * c32: the output of a token tile before the scale. The two terms have their
 * own accumulators (independent chains: the state's loads and products do
 * not wait for the scores) and are added last. */
template <int D, int NG>
__device__ __forceinline__ void tile_out(float (*acc)[4][4], const uint32_t (*pa)[4],
                                         const float *q0, const float *q1, const Rows &R,
                                         const float *S, float d0, float d1, int mt, int c32,
                                         int g, int t) {
    float ai[NG][4][4];
#pragma unroll
    for (int m = 0; m < NG; m++)
#pragma unroll
        for (int n = 0; n < 4; n++) {
            acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
            ai[m][n][0] = ai[m][n][1] = ai[m][n][2] = ai[m][n][3] = 0.0f;
        }
    /* inter-chunk term: A = pw[r+1] q (channel layout), B = S rows */
#pragma unroll
    for (int p = 0; p < D / 16; p++) {
        uint32_t a[2][4];
        q_frags(a[0], a[1], q0, q1, p, t, d0, d1, true);
        const float *s0 = S + (size_t)(16 * p + 4 * t) * D + c32 + 4 * g;
#pragma unroll
        for (int m = 0; m < NG; m++) {
            float4 x[4];
#pragma unroll
            for (int i = 0; i < 4; i++) x[i] = __ldg((const float4 *)(s0 + (size_t)i * D + 32 * m));
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int n = 0; n < 4; n++)
                    rl_mma_tf32(acc[m][n], a[i][0], a[i][1], a[i][2], a[i][3],
                                rl_tf32(f4(x[2 * i], n)), rl_tf32(f4(x[2 * i + 1], n)));
        }
    }
    /* intra-chunk term */
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        if (nt > 2 * mt + 1) continue;
        const float *v0 = R.v(8 * nt + t), *v1 = R.v(8 * nt + t + 4);
#pragma unroll
        for (int m = 0; m < NG; m++) {
            float4 x0 = ld4(v0, c32 + 32 * m + 4 * g), x1 = ld4(v1, c32 + 32 * m + 4 * g);
#pragma unroll
            for (int n = 0; n < 4; n++)
                rl_mma_tf32(ai[m][n], pa[nt][0], pa[nt][1], pa[nt][2], pa[nt][3],
                            rl_tf32(f4(x0, n)), rl_tf32(f4(x1, n)));
        }
    }
#pragma unroll
    for (int m = 0; m < NG; m++)
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[m][n][i] += ai[m][n][i];
}

/* ---- 1. chunk contributions ------------------------------------------------
 * A block per (span, segment, head), warp mt computing rows 16 mt.. of U, all
 * D columns: the warps of a chunk share its keys and values through L1. */
template <int D>
__global__ void __launch_bounds__(D * 2, 2) lin_contrib(const float *__restrict__ qkv, int ldqkv,
                                                  const rl_cu_span *__restrict__ spans,
                                                  const rl_cu_lin_state *__restrict__ states,
                                                  int H, const float *__restrict__ decay_pw,
                                                  float *__restrict__ W, int nseg_max) {
    constexpr int NG = D / 32;
    int x = blockIdx.x, mt = threadIdx.x >> 5;
    int h = x % H, s = x / H;
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, s);
    if (s >= sg.ncomp) return;
    Rows R(qkv, ldqkv, states[sp.seq], sp, sg, H, h, D);
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float acc[NG][4][4];
    contrib_groups<NG>(acc, R, decay_pw + h * (CH + 1), mt, 0, g, t);
    float *U = W + ws_index(blockIdx.y, s, nseg_max, H, h, D);
    int r0 = 16 * mt + g;
    store_groups<NG>(U + (size_t)r0 * D, U + (size_t)(r0 + 8) * D, acc, 0, 1.0f, t);
}

/* ---- 2. scan over completed chunks -------------------------------------------
 * Each thread owns 4 consecutive state elements of one span; the loads of the
 * next contributions do not depend on the running state, so they overlap
 * (16 at a time). */
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
    /* 16 contributions in flight per thread (the scan is bound by load latency at 4:
     * ~1.2 TB/s measured at 16K tokens); the fmaf chain is the same, so the bits are */
    for (; c + 16 <= sg.ncomp; c += 16) {
        float4 u[16];
#pragma unroll
        for (int i = 0; i < 16; i++) u[i] = w[(size_t)(c + i) * n4];
#pragma unroll
        for (int i = 0; i < 16; i++) {
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

/* ---- 3. outputs --------------------------------------------------------------
 * A block per (span, segment, head); a warp per (16-row tile mt of the chunk,
 * 64 output columns), sharing the chunk's keys, values and state via L1. */
template <int D>
__global__ void __launch_bounds__(D * 2, 2) lin_out(const float *__restrict__ qkv, int ldqkv,
                                              float *__restrict__ o, int ldo,
                                              const rl_cu_span *__restrict__ spans,
                                              const rl_cu_lin_state *__restrict__ states, int H,
                                              const float *__restrict__ decay_pw, float scale,
                                              const float *__restrict__ W, int nseg_max) {
    constexpr int NH = D / 64; /* column blocks of 64 = 2 groups */
    int x = blockIdx.x, w = threadIdx.x >> 5;
    int hf = w % NH, mt = w / NH;
    int h = x % H, s = x / H;
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, s);
    if (s >= sg.nseg || 16 * mt >= sg.b || 16 * mt + 16 <= sg.a) return;
    const rl_cu_lin_state st = states[sp.seq];
    Rows R(qkv, ldqkv, st, sp, sg, H, h, D);
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float *pw = decay_pw + h * (CH + 1);
    int r0 = 16 * mt + g, r1 = r0 + 8;
    const float *q0 = R.q(r0), *q1 = R.q(r1);
    uint32_t pa[8][4];
    scores<D>(pa, q0, q1, R, pw, mt, r0, r1, lane);
    const float *S = s < sg.ncomp ? W + ws_index(blockIdx.y, s, nseg_max, H, h, D)
                                  : st.S + (size_t)h * D * D;
    float acc[2][4][4];
    tile_out<D, 2>(acc, pa, q0, q1, R, S, __ldg(pw + r0 + 1), __ldg(pw + r1 + 1), mt, 64 * hf, g, t);
    float *o0 = q0 ? o + (size_t)(R.base + r0) * ldo + h * D : nullptr;
    float *o1 = q1 ? o + (size_t)(R.base + r1) * ldo + h * D : nullptr;
    store_groups<2>(o0, o1, acc, 64 * hf, scale, t);
}

/* ---- 4. stash ------------------------------------------------------------------
 * The new tokens of the span's last, open chunk (none when the span ends on a
 * chunk boundary: that chunk was folded). Block (row i, span). */
__global__ void lin_stash(const float *__restrict__ qkv, int ldqkv,
                          const rl_cu_span *__restrict__ spans,
                          const rl_cu_lin_state *__restrict__ states, int HD) {
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, 0);
    if (sg.nseg == sg.ncomp) return;
    sg = seg_of(sp, sg.nseg - 1);
    int i = blockIdx.x;
    if (i < sg.a || i >= sg.b) return;
    const rl_cu_lin_state st = states[sp.seq];
    const float4 *src = (const float4 *)(qkv + (size_t)(sp.row0 + sg.jbase + i) * ldqkv);
    float4 *kd = (float4 *)(st.kst + (size_t)i * HD), *vd = (float4 *)(st.vst + (size_t)i * HD);
    for (int c = threadIdx.x; c < HD / 4; c += blockDim.x) {
        kd[c] = src[HD / 4 + c];
        vd[c] = src[HD / 2 + c];
    }
}

/* ---- decode: one token per span ------------------------------------------------
 * Block (head, span) of D/32 warps, warp w owning columns [32w, 32w + 32): the
 * token's output (scores recomputed by every warp: at most 64 keys), then the
 * stash append, or on the chunk's last token the fold of U into S. A warp
 * writes only the S columns it read, after a __syncwarp. */
template <int D>
__global__ void __launch_bounds__(D) lin_decode(const float *__restrict__ qkv, int ldqkv,
                                                float *__restrict__ o, int ldo,
                                                const rl_cu_span *__restrict__ spans,
                                                const rl_cu_lin_state *__restrict__ states, int H,
                                                const float *__restrict__ decay_pw, float scale) {
    int h = blockIdx.x;
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, 0); /* one segment: a = i0, b = i0 + 1 */
    const rl_cu_lin_state st = states[sp.seq];
    Rows R(qkv, ldqkv, st, sp, sg, H, h, D);
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, c32 = threadIdx.x & ~31;
    const float *pw = decay_pw + h * (CH + 1);
    int mt = sg.a >> 4, r0 = 16 * mt + g, r1 = r0 + 8;
    const float *q0 = R.q(r0), *q1 = R.q(r1);
    float *S = st.S + (size_t)h * D * D;
    /* Everything the block reads, requested from L2 up front: the state and
     * the stash rows. The loads below then wait on L2, not on a chain of
     * dependent trips to memory (scores -> P V -> q S). */
    for (int i = threadIdx.x; i < D * D / 32; i += D) prefetch_l2(S + 32 * i);
    for (int i = threadIdx.x; i < sg.a * (D / 32); i += D) {
        int j = i / (D / 32), c = 32 * (i % (D / 32));
        prefetch_l2(st.kst + (size_t)j * R.HD + R.hD + c);
        prefetch_l2(st.vst + (size_t)j * R.HD + R.hD + c);
    }
    {
        uint32_t pa[8][4];
        scores<D>(pa, q0, q1, R, pw, mt, r0, r1, lane);
        float acc[1][4][4];
        tile_out<D, 1>(acc, pa, q0, q1, R, S, __ldg(pw + r0 + 1), __ldg(pw + r1 + 1), mt, c32, g, t);
        float *o0 = q0 ? o + (size_t)(R.base + r0) * ldo + h * D : nullptr;
        float *o1 = q1 ? o + (size_t)(R.base + r1) * ldo + h * D : nullptr;
        store_groups<1>(o0, o1, acc, c32, scale, t);
    }
    if (sg.ncomp == 0) { /* append to the stash */
        const float *src = R.q(sg.a);
        int c = c32 + lane;
        st.kst[(size_t)sg.a * R.HD + R.hD + c] = __ldg(src + R.HD + c);
        st.vst[(size_t)sg.a * R.HD + R.hD + c] = __ldg(src + 2 * R.HD + c);
        return;
    }
    __syncwarp(); /* every lane's reads of S columns [c32, c32+32) precede the writes */
    float p = __ldg(pw + CH);
#pragma unroll 1
    for (int m2 = 0; m2 < D / 16; m2++) {
        float acc[1][4][4];
        contrib_groups<1>(acc, R, pw, m2, c32, g, t);
        int d = 16 * m2 + g;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float *row = S + (size_t)(d + 8 * half) * D + c32 + 8 * t;
            float4 a = *(const float4 *)row, b = *(const float4 *)(row + 4);
            a.x = fmaf(p, a.x, acc[0][0][2 * half]);
            a.y = fmaf(p, a.y, acc[0][1][2 * half]);
            a.z = fmaf(p, a.z, acc[0][2][2 * half]);
            a.w = fmaf(p, a.w, acc[0][3][2 * half]);
            b.x = fmaf(p, b.x, acc[0][0][2 * half + 1]);
            b.y = fmaf(p, b.y, acc[0][1][2 * half + 1]);
            b.z = fmaf(p, b.z, acc[0][2][2 * half + 1]);
            b.w = fmaf(p, b.w, acc[0][3][2 * half + 1]);
            *(float4 *)row = a;
            *(float4 *)(row + 4) = b;
        }
    }
}

/* ---- decode, default mode: fp32 FMAs at memory speed ----------------------------
 * Block (head, span) of 256 threads. A decode token's output needs the whole
 * state (D x D) once and up to 64 stash rows, against a few FLOPs per byte:
 * tensor-core tiles of 16 rows would hold one useful row. Thread (c4, rg)
 * owns columns 4 c4 .. 4 c4 + 3 and the state rows d = rg (mod RG), so every
 * load is an independent float4 of a row that the block's threads read
 * contiguously; partial sums over the RG row groups meet in shared memory.
 * fp32 throughout (no tf32 rounding): closer to the CPU than the tensor-core
 * path, but not its bits, so the default mode's decode and prefill of a
 * sequence agree to rounding only; `deterministic` takes lin_decode. */
constexpr int DEC_THREADS = 256;

/* dynamic shared memory of lin_decode_fast<D>: the chunk's keys then values */
template <int D> constexpr size_t dec_fast_smem() { return (size_t)2 * CH * D * sizeof(float); }

template <int D>
__global__ void __launch_bounds__(DEC_THREADS) lin_decode_fast(
    const float *__restrict__ qkv, int ldqkv, float *__restrict__ o, int ldo,
    const rl_cu_span *__restrict__ spans, const rl_cu_lin_state *__restrict__ states, int H,
    const float *__restrict__ decay_pw, float scale) {
    constexpr int C4 = D / 4, RG = DEC_THREADS / C4, NW = DEC_THREADS / 32;
    constexpr int FP = D / RG < 8 ? D / RG : 8; /* state rows per fold pass */
    static_assert(DEC_THREADS % C4 == 0 && D % RG == 0 && (D / RG) % FP == 0, "thread layout");
    __shared__ float qs[D];               /* q (pw[r+1] applied at the reduction) */
    __shared__ float ps[CH];              /* decayed scores of keys 0..r */
    __shared__ float4 red[RG][C4];        /* partial outputs per row group */
    /* keys 0..r of the chunk (stash rows, then the new key at row r), then the
     * values; a fold turns the keys into pw[63-j] k_j in place */
    extern __shared__ __align__(16) float kvs[];
    float *ks = kvs, *vs = kvs + CH * D;
    int h = blockIdx.x, tid = threadIdx.x, lane = tid & 31, wid = tid >> 5;
    rl_cu_span sp = spans[blockIdx.y];
    const rl_cu_lin_state st = states[sp.seq];
    const int r = sp.pos0 & (CH - 1), HD = H * D;
    const float *pw = decay_pw + h * (CH + 1);
    const float *qrow = qkv + (size_t)sp.row0 * ldqkv + h * D;
    const float *knew = qrow + HD, *vnew = qrow + 2 * HD;
    const float *kst = st.kst + h * D, *vst = st.vst + h * D;
    float *S = st.S + (size_t)h * D * D;
    const int c4 = tid % C4, rg = tid / C4;
    /* every byte the block needs, requested before anything waits: the state's
     * rows of this thread into registers, the chunk's keys and values into
     * shared memory (cp.async; before, the keys were read after a barrier and
     * the values after a second one: two more memory latencies per block) */
    float4 sv[D / RG];
#pragma unroll
    for (int i = 0; i < D / RG; i++)
        sv[i] = __ldg((const float4 *)(S + (size_t)(rg + RG * i) * D) + c4);
    for (int i = tid; i < (r + 1) * C4; i += DEC_THREADS) {
        int j = i / C4, c = i % C4;
        cp_async16(smem_u32(ks + j * D + 4 * c), (j < r ? kst + (size_t)j * HD : knew) + 4 * c);
        cp_async16(smem_u32(vs + j * D + 4 * c), (j < r ? vst + (size_t)j * HD : vnew) + 4 * c);
    }
    cp_async_commit();
    float pin = __ldg(pw + r + 1);
    for (int d = tid; d < D; d += DEC_THREADS) qs[d] = __ldg(qrow + d);
    cp_async_wait_all();
    __syncthreads();
    /* scores: warp w takes keys w, w + NW, ...; lanes split the channels */
    for (int j = wid; j <= r; j += NW) {
        const float *kj = ks + j * D;
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < D / 32; i++) dot = fmaf(qs[lane + 32 * i], kj[lane + 32 * i], dot);
#pragma unroll
        for (int m = 16; m > 0; m >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, m);
        if (lane == 0) ps[j] = dot * __ldg(pw + r - j);
    }
    __syncthreads();
    /* intra: keys j = rg (mod RG); inter: the state rows held in sv */
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b = a;
    for (int j = rg; j <= r; j += RG) {
        float4 v = ((const float4 *)(vs + j * D))[c4];
        float pj = ps[j];
        a.x = fmaf(pj, v.x, a.x);
        a.y = fmaf(pj, v.y, a.y);
        a.z = fmaf(pj, v.z, a.z);
        a.w = fmaf(pj, v.w, a.w);
    }
#pragma unroll
    for (int i = 0; i < D / RG; i++) {
        float qd = qs[rg + RG * i];
        b.x = fmaf(qd, sv[i].x, b.x);
        b.y = fmaf(qd, sv[i].y, b.y);
        b.z = fmaf(qd, sv[i].z, b.z);
        b.w = fmaf(qd, sv[i].w, b.w);
    }
    red[rg][c4] = make_float4(a.x + pin * b.x, a.y + pin * b.y, a.z + pin * b.z, a.w + pin * b.w);
    __syncthreads();
    if (tid < C4) {
        float4 y = red[0][tid];
#pragma unroll
        for (int g2 = 1; g2 < RG; g2++) {
            float4 z = red[g2][tid];
            y.x += z.x;
            y.y += z.y;
            y.z += z.z;
            y.w += z.w;
        }
        *((float4 *)(o + (size_t)sp.row0 * ldo + h * D) + tid) =
            make_float4(scale * y.x, scale * y.y, scale * y.z, scale * y.w);
    }
    if (r < CH - 1) { /* append to the stash */
        for (int d = tid; d < D; d += DEC_THREADS) {
            st.kst[(size_t)r * HD + h * D + d] = knew[d];
            st.vst[(size_t)r * HD + h * D + d] = vnew[d];
        }
        return;
    }
    /* fold: S[d] <- pw[64] S[d] + sum_j pw[63-j] k_j[d] v_j, on the rows this
     * thread read (so no other thread's read can race with the write) */
    float p64 = __ldg(pw + CH);
    for (int i = tid; i < CH * C4; i += DEC_THREADS) {
        int j = i / C4, c = i % C4;
        float4 *kp = (float4 *)(ks + j * D) + c, k = *kp;
        float w = __ldg(pw + CH - 1 - j);
        *kp = make_float4(w * k.x, w * k.y, w * k.z, w * k.w);
    }
    __syncthreads();
#pragma unroll 1
    for (int i0 = 0; i0 < D / RG; i0 += FP) {
        float4 acc[FP];
#pragma unroll
        for (int i = 0; i < FP; i++) acc[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
        for (int j = 0; j < CH; j++) {
            float4 v = ((const float4 *)(vs + j * D))[c4];
#pragma unroll
            for (int i = 0; i < FP; i++) {
                float kd = ks[j * D + rg + RG * (i0 + i)];
                acc[i].x = fmaf(kd, v.x, acc[i].x);
                acc[i].y = fmaf(kd, v.y, acc[i].y);
                acc[i].z = fmaf(kd, v.z, acc[i].z);
                acc[i].w = fmaf(kd, v.w, acc[i].w);
            }
        }
#pragma unroll
        for (int i = 0; i < FP; i++) {
            float4 *sd = (float4 *)(S + (size_t)(rg + RG * (i0 + i)) * D) + c4;
            float4 s0 = *sd;
            *sd = make_float4(fmaf(p64, s0.x, acc[i].x), fmaf(p64, s0.y, acc[i].y),
                              fmaf(p64, s0.z, acc[i].z), fmaf(p64, s0.w, acc[i].w));
        }
    }
}

template <int D>
int launch(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans, int n_spans,
           int max_n, const rl_cu_lin_state *states, int H, const float *decay_pw, float scale,
           int deterministic, cudaStream_t st) {
    if (max_n == 1 && !deterministic) {
        static bool attr_set = false; /* one per instantiation: 64 KB at D = 128 */
        if (!attr_set) {
            RL_CU_TRY(cudaFuncSetAttribute(lin_decode_fast<D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int)dec_fast_smem<D>()));
            attr_set = true;
        }
        lin_decode_fast<D><<<dim3(H, n_spans), DEC_THREADS, dec_fast_smem<D>(), st>>>(
            qkv, ldqkv, o, ldo, spans, states, H, decay_pw, scale);
        RL_CU_LAUNCHED();
        return 0;
    }
    if (max_n == 1) {
        lin_decode<D><<<dim3(H, n_spans), D, 0, st>>>(qkv, ldqkv, o, ldo, spans, states, H,
                                                       decay_pw, scale);
        RL_CU_LAUNCHED();
        return 0;
    }
    int nseg_max = (max_n + CH - 2) / CH + 1;
    void *wsp = nullptr;
    RL_CU_TRY(rl_cu_attn_ws(RL_CU_WS_LIN, (size_t)n_spans * nseg_max * H * D * D * sizeof(float),
                            &wsp));
    float *W = (float *)wsp;
    lin_contrib<D><<<dim3(nseg_max * H, n_spans), D * 2, 0, st>>>(
        qkv, ldqkv, spans, states, H, decay_pw, W, nseg_max);
    RL_CU_LAUNCHED();
    size_t n4 = (size_t)H * D * D / 4;
    lin_scan<<<dim3((unsigned)((n4 + 255) / 256), n_spans), 256, 0, st>>>(spans, states, H, D,
                                                                          decay_pw, W, nseg_max);
    RL_CU_LAUNCHED();
    lin_out<D><<<dim3(nseg_max * H, n_spans), D * 2, 0, st>>>(
        qkv, ldqkv, o, ldo, spans, states, H, decay_pw, scale, W, nseg_max);
    RL_CU_LAUNCHED();
    lin_stash<<<dim3(CH, n_spans), 128, 0, st>>>(qkv, ldqkv, spans, states, H * D);
    RL_CU_LAUNCHED();
    return 0;
}

} // namespace

extern "C" int rl_cu_lightning(const float *qkv, int ldqkv, float *o, int ldo,
                               const rl_cu_span *spans, int n_spans, int max_n,
                               const rl_cu_lin_state *states, int H, int D,
                               const float *decay_pw, float scale, int deterministic,
                               void *stream) {
    if (n_spans <= 0 || max_n <= 0) return 0;
    if (n_spans > 65535 || H <= 0 || H > 65535) return (int)cudaErrorInvalidValue;
    /* float4 rows: 16-byte aligned bases and strides */
    if ((ldqkv & 3) || (ldo & 3) || ((uintptr_t)qkv & 15) || ((uintptr_t)o & 15))
        return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    if (D == 128)
        return launch<128>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, states, H, decay_pw, scale,
                           deterministic, st);
    if (D == 64)
        return launch<64>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, states, H, decay_pw, scale,
                          deterministic, st);
    return (int)cudaErrorInvalidValue;
}
