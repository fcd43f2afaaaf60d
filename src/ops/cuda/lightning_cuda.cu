/* Lightning attention on tensor cores (contract: attn_cuda.h).
 *
 * A span is cut at chunk boundaries (absolute positions, multiples of 64)
 * into segments; segment s of a span covers chunk-local rows [a, b) of one
 * chunk (rows below a of the first segment are in the stash). Four launches:
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
 * Decode (spans of 1 token) takes the same path: launches 1-2 do nothing
 * except on the token that completes a chunk (the fold), 3 reads S once.
 *
 * Determinism: a token's output is computed by the same instructions on the
 * same operand values whatever the split of its sequence into steps: its row
 * sits at the same place of the same 16-row tile (its chunk-local index),
 * keys after it are masked by a select (P = 0) and keys not yet arrived are
 * zeros; a chunk's contribution U is computed by one code from the same 64
 * keys/values (stash or step rows), and every fold is the same fmaf. So this
 * kernel set is bitwise split-invariant in both modes; `deterministic` is
 * accepted for symmetry with GQA and changes nothing here.
 *
 * Precision: tf32 operands (10-bit mantissa), fp32 accumulation, fp32 state.
 * Operands are read straight from global memory into mma fragments (each
 * 32-byte sector is fully used by a warp's load pair); no shared memory, so
 * occupancy stays high for the bandwidth-bound decode. */
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

__device__ __forceinline__ float ld0(const float *p, int i) { return p ? __ldg(p + i) : 0.0f; }

__device__ __forceinline__ size_t ws_index(int span, int seg, int nseg_max, int H, int h, int D) {
    return (((size_t)span * nseg_max + seg) * H + h) * (size_t)D * D;
}

/* ---- 1. chunk contributions ------------------------------------------------
 * One warp per (span, segment, head, 16 rows d of U); U[d][e] = sum_j
 * (pw[63-j] k_j[d]) v_j[e]: A = (pw K)^T (16 x 64 keys), B = V (64 x D). */
template <int D>
__global__ void __launch_bounds__(32) lin_contrib(const float *__restrict__ qkv, int ldqkv,
                                                  const rl_cu_span *__restrict__ spans,
                                                  const rl_cu_lin_state *__restrict__ states,
                                                  int H, const float *__restrict__ decay_pw,
                                                  float *__restrict__ W, int nseg_max) {
    constexpr int MT = D / 16, NT = D / 8;
    int x = blockIdx.x;
    int mt = x % MT;
    x /= MT;
    int h = x % H, s = x / H;
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, s);
    if (s >= sg.ncomp) return;
    const rl_cu_lin_state st = states[sp.seq];
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3, HD = H * D;
    const float *pw = decay_pw + h * (CH + 1);
    float acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll 2
    for (int kk = 0; kk < CH / 8; kk++) {
        int j0 = 8 * kk + t, j1 = j0 + 4;
        const float *k0 = kv_row(qkv, ldqkv, st.kst, sp, sg, j0, HD, HD, h * D);
        const float *k1 = kv_row(qkv, ldqkv, st.kst, sp, sg, j1, HD, HD, h * D);
        const float *v0 = kv_row(qkv, ldqkv, st.vst, sp, sg, j0, HD, 2 * HD, h * D);
        const float *v1 = kv_row(qkv, ldqkv, st.vst, sp, sg, j1, HD, 2 * HD, h * D);
        float w0 = __ldg(pw + CH - 1 - j0), w1 = __ldg(pw + CH - 1 - j1);
        int d = 16 * mt + g;
        uint32_t a0 = rl_tf32(w0 * ld0(k0, d)), a1 = rl_tf32(w0 * ld0(k0, d + 8));
        uint32_t a2 = rl_tf32(w1 * ld0(k1, d)), a3 = rl_tf32(w1 * ld0(k1, d + 8));
#pragma unroll
        for (int n = 0; n < NT; n++)
            rl_mma_tf32(acc[n], a0, a1, a2, a3, rl_tf32(ld0(v0, 8 * n + g)),
                        rl_tf32(ld0(v1, 8 * n + g)));
    }
    float *U = W + ws_index(blockIdx.y, s, nseg_max, H, h, D);
    int r0 = 16 * mt + g;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        *(float2 *)(U + (size_t)r0 * D + 8 * n + 2 * t) = make_float2(acc[n][0], acc[n][1]);
        *(float2 *)(U + (size_t)(r0 + 8) * D + 8 * n + 2 * t) = make_float2(acc[n][2], acc[n][3]);
    }
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

/* ---- 3. outputs --------------------------------------------------------------
 * One warp per (span, segment, head, 16-row tile mt of the chunk, 64 output
 * columns). Intra: P = mask(Q K^T) * decay over keys 0..16mt+15, O = P V;
 * inter: O += (pw[i+1] Q) S. P goes from accumulator to A layout by shuffles. */
template <int D>
__global__ void __launch_bounds__(32) lin_out(const float *__restrict__ qkv, int ldqkv,
                                              float *__restrict__ o, int ldo,
                                              const rl_cu_span *__restrict__ spans,
                                              const rl_cu_lin_state *__restrict__ states, int H,
                                              const float *__restrict__ decay_pw, float scale,
                                              const float *__restrict__ W, int nseg_max) {
    constexpr int KT = D / 8;   /* k-steps over channels */
    constexpr int NH = D / 64;  /* column blocks of 64 */
    int x = blockIdx.x;
    int hf = x % NH;
    x /= NH;
    int mt = x & 3;
    x >>= 2;
    int h = x % H, s = x / H;
    rl_cu_span sp = spans[blockIdx.y];
    Seg sg = seg_of(sp, s);
    if (s >= sg.nseg || 16 * mt >= sg.b || 16 * mt + 16 <= sg.a) return;
    const rl_cu_lin_state st = states[sp.seq];
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3, HD = H * D;
    const float *pw = decay_pw + h * (CH + 1);
    int r0 = 16 * mt + g, r1 = r0 + 8;
    const float *q0 = (r0 >= sg.a && r0 < sg.b)
                          ? qkv + (size_t)(sp.row0 + sg.jbase + r0) * ldqkv + h * D : nullptr;
    const float *q1 = (r1 >= sg.a && r1 < sg.b)
                          ? qkv + (size_t)(sp.row0 + sg.jbase + r1) * ldqkv + h * D : nullptr;
    uint32_t qa[KT][4];
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
        qa[kk][0] = rl_tf32(ld0(q0, 8 * kk + t));
        qa[kk][1] = rl_tf32(ld0(q1, 8 * kk + t));
        qa[kk][2] = rl_tf32(ld0(q0, 8 * kk + t + 4));
        qa[kk][3] = rl_tf32(ld0(q1, 8 * kk + t + 4));
    }
    /* intra-chunk scores and their A fragments (8 keys per k-step) */
    uint32_t pa[8][4];
    const int src = (lane & ~3) | (t >> 1);
    const bool odd = t & 1;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        pa[nt][0] = pa[nt][1] = pa[nt][2] = pa[nt][3] = 0u;
        if (nt > 2 * mt + 1) continue; /* warp-uniform: keys past the tile */
        float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const float *kr = kv_row(qkv, ldqkv, st.kst, sp, sg, 8 * nt + g, HD, HD, h * D);
#pragma unroll
        for (int kk = 0; kk < KT; kk++)
            rl_mma_tf32(c, qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3],
                        rl_tf32(ld0(kr, 8 * kk + t)), rl_tf32(ld0(kr, 8 * kk + t + 4)));
        int j = 8 * nt + 2 * t;
        float p0 = j <= r0 ? c[0] * __ldg(pw + r0 - j) : 0.0f;
        float p1 = j + 1 <= r0 ? c[1] * __ldg(pw + r0 - j - 1) : 0.0f;
        float p2 = j <= r1 ? c[2] * __ldg(pw + r1 - j) : 0.0f;
        float p3 = j + 1 <= r1 ? c[3] * __ldg(pw + r1 - j - 1) : 0.0f;
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
    float acc[8][4];
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    const int e0 = 64 * hf + g;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        if (nt > 2 * mt + 1) continue;
        const float *v0 = kv_row(qkv, ldqkv, st.vst, sp, sg, 8 * nt + t, HD, 2 * HD, h * D);
        const float *v1 = kv_row(qkv, ldqkv, st.vst, sp, sg, 8 * nt + t + 4, HD, 2 * HD, h * D);
#pragma unroll
        for (int n = 0; n < 8; n++)
            rl_mma_tf32(acc[n], pa[nt][0], pa[nt][1], pa[nt][2], pa[nt][3],
                        rl_tf32(ld0(v0, e0 + 8 * n)), rl_tf32(ld0(v1, e0 + 8 * n)));
    }
    /* inter-chunk term from the chunk-start state */
    const float *S = s < sg.ncomp ? W + ws_index(blockIdx.y, s, nseg_max, H, h, D)
                                  : st.S + (size_t)h * D * D;
    float d0 = __ldg(pw + r0 + 1), d1 = __ldg(pw + r1 + 1);
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
        uint32_t a0 = rl_tf32(__uint_as_float(qa[kk][0]) * d0);
        uint32_t a1 = rl_tf32(__uint_as_float(qa[kk][1]) * d1);
        uint32_t a2 = rl_tf32(__uint_as_float(qa[kk][2]) * d0);
        uint32_t a3 = rl_tf32(__uint_as_float(qa[kk][3]) * d1);
        const float *s0 = S + (size_t)(8 * kk + t) * D + e0, *s1 = s0 + 4 * D;
        float b0[8], b1[8];
#pragma unroll
        for (int n = 0; n < 8; n++) {
            b0[n] = __ldg(s0 + 8 * n);
            b1[n] = __ldg(s1 + 8 * n);
        }
#pragma unroll
        for (int n = 0; n < 8; n++) rl_mma_tf32(acc[n], a0, a1, a2, a3, rl_tf32(b0[n]), rl_tf32(b1[n]));
    }
    float *o0 = q0 ? o + (size_t)(sp.row0 + sg.jbase + r0) * ldo + h * D + 64 * hf : nullptr;
    float *o1 = q1 ? o + (size_t)(sp.row0 + sg.jbase + r1) * ldo + h * D + 64 * hf : nullptr;
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
    const float *src = qkv + (size_t)(sp.row0 + sg.jbase + i) * ldqkv;
    float *kd = st.kst + (size_t)i * HD, *vd = st.vst + (size_t)i * HD;
    for (int c = threadIdx.x; c < HD; c += blockDim.x) {
        kd[c] = src[HD + c];
        vd[c] = src[2 * HD + c];
    }
}

template <int D>
int launch(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans, int n_spans,
           int max_n, const rl_cu_lin_state *states, int H, const float *decay_pw, float scale,
           cudaStream_t st) {
    int nseg_max = (max_n + CH - 2) / CH + 1;
    void *wsp = nullptr;
    RL_CU_TRY(rl_cu_attn_ws(RL_CU_WS_LIN, (size_t)n_spans * nseg_max * H * D * D * sizeof(float),
                            &wsp));
    float *W = (float *)wsp;
    lin_contrib<D><<<dim3(nseg_max * H * (D / 16), n_spans), 32, 0, st>>>(
        qkv, ldqkv, spans, states, H, decay_pw, W, nseg_max);
    RL_CU_LAUNCHED();
    size_t n4 = (size_t)H * D * D / 4;
    lin_scan<<<dim3((unsigned)((n4 + 255) / 256), n_spans), 256, 0, st>>>(spans, states, H, D,
                                                                          decay_pw, W, nseg_max);
    RL_CU_LAUNCHED();
    lin_out<D><<<dim3(nseg_max * H * 4 * (D / 64), n_spans), 32, 0, st>>>(
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
