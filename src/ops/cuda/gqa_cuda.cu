/* KV append and paged causal GQA attention on tensor cores (contract:
 * attn_cuda.h; page layout: src/state/kv_pages.h).
 *
 * Three attention kernels. gqa_fa (below) takes every step of the
 * deterministic mode and the prefill-sized steps of the default mode (some
 * span longer than one 128-row tile). gqa_dec (gqa_dec_cuda.cu) takes the default
 * mode's decode steps (every span at most 16 rows, n * gq <= 16), splitting
 * the pages over blocks. gqa_attend takes the default mode's remaining steps
 * whose spans fit one 128-row tile when they have fewer than 64 (span, kv
 * head) pairs (RL_CUDA_FA_DECODE_BLOCKS; gqa_fa above that), where it too
 * splits the pages. RL_CUDA_GQA_DEC=0 gives gqa_dec's steps to the other
 * two (A/B of benchmarks).
 *
 * gqa_attend: one block of 8 warps per (span, kv head, tile of query rows,
 * split). A block's 128 rows are (token, query head) pairs of one kv head:
 * row r is token r / gq, head r % gq of the group, so a decode token with its
 * gq heads fills one 16-row warp tile and a prefill tile holds 128/gq tokens;
 * every row of a block shares the keys and values it stages. Keys are visited
 * one page (64 keys) at a time in ascending order: the page (bf16 in the
 * pool, rounded by kv_append) is re-laid in shared memory (keys as [j][d],
 * values transposed as [e][j] in pairs, so that every mma operand is one
 * 32-bit load), then each warp computes scores
 * (bf16 mma, fp32 accumulation), an online softmax in base 2, and P V.
 *
 * Determinism: a row's arithmetic depends only on its own query, its
 * position and the pages: tiles in page order, the same instructions for a
 * row whatever tile or block it sits in (mma rows are independent), and a
 * page entirely after a row's position is a bitwise no-op for that row
 * (alpha = 1, p = 0). Prefill and decode therefore give the same bits when
 * the keys are not split. gqa_attend (spans of 17-128 rows with few (span,
 * kv head) pairs) and gqa_dec (decode) split the pages over several blocks
 * and merge the partial softmaxes in split order (gqa_merge, gqa_dec_merge):
 * their bits depend on the batch size, so `deterministic` takes gqa_fa
 * alone. */
#include <math.h>
#include <stdlib.h>

#include "ops/cuda/attn_cuda.h"
#include "ops/cuda/attn_async.cuh"
#include "ops/cuda/attn_mma.cuh"
#include "ops/cuda/gqa_dec.cuh"
#include "ops/cuda/gqa_tile.cuh"
#include "state/kv_pages.h"

namespace {

constexpr int PG = RL_KV_PAGE; /* 64 keys per page = one key tile */
constexpr int NWARP = 8;
constexpr int ROWS = 16 * NWARP; /* rows per block */
static_assert(PG == 64, "the key tile is one page of 64 positions");

/* fp32 -> bf16 bits, round to nearest even (the rounding rl_bf2 applies) */
__device__ __forceinline__ uint16_t bf16_rn(float x) { return (uint16_t)(rl_bf2(x, 0.0f) & 0xffffu); }
/* bf16 pairs across two rows a (low half) and b: element 0 or element 1 of each word */
__device__ __forceinline__ uint32_t pair_lo(uint32_t a, uint32_t b) { return (a & 0xffffu) | (b << 16); }
__device__ __forceinline__ uint32_t pair_hi(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xffff0000u); }

/* ---- append -------------------------------------------------------------------
 * Block (page segment s, span): the span's tokens in one page, rows [a, b). */
__global__ void kv_append(const float *__restrict__ qkv, int ldqkv,
                          const rl_cu_span *__restrict__ spans, const int *const *page_tables,
                          uint16_t *__restrict__ pool, size_t page_elems, int layer, int H,
                          int Hkv, int D) {
    rl_cu_span sp = spans[blockIdx.y];
    int s = blockIdx.x, i0 = sp.pos0 & (PG - 1);
    int nseg = (i0 + sp.n + PG - 1) / PG;
    if (s >= nseg) return;
    int a = s == 0 ? i0 : 0, b = i0 + sp.n - PG * s;
    if (b > PG) b = PG;
    int n = b - a, jbase = PG * s - i0;
    int page = page_tables[sp.seq][sp.pos0 / PG + s];
    int KD = Hkv * D, HD = H * D;
    uint16_t *kb = pool + (size_t)page * page_elems + (size_t)layer * 2 * PG * KD;
    uint16_t *vb = kb + (size_t)PG * KD;
    const float *rows = qkv + (size_t)(sp.row0 + jbase) * ldqkv;
    /* keys transposed: consecutive threads write consecutive positions */
    for (int idx = threadIdx.x; idx < KD * n; idx += blockDim.x) {
        int c = idx / n, r = a + idx % n;
        kb[(size_t)c * PG + r] = bf16_rn(rows[(size_t)r * ldqkv + HD + c]);
    }
    for (int idx = threadIdx.x; idx < KD * n; idx += blockDim.x) {
        int r = a + idx / KD, c = idx % KD, h = c / D, d = c % D;
        vb[((size_t)h * PG + r) * D + d] = bf16_rn(rows[(size_t)r * ldqkv + HD + KD + c]);
    }
}

/* ---- attention -------------------------------------------------------------------- */
template <int D>
__global__ void __launch_bounds__(32 * NWARP)
    gqa_attend(const float *__restrict__ qkv, int ldqkv, float *__restrict__ o, int ldo,
               const rl_cu_span *__restrict__ spans, const int *const *page_tables,
               const uint16_t *__restrict__ pool, size_t page_elems, int layer, int H,
               int Hkv, float sl2, int NS, int ntile_max, float *__restrict__ part) {
    constexpr int LDK = D / 2 + 4; /* words per key row [j][d] (bf16 pairs) */
    constexpr int LDV = PG / 2 + 4; /* words per value column [e][j] */
    constexpr int KT = D / 16, NT = D / 8;
    __shared__ __align__(16) uint32_t Ks[PG * LDK];
    __shared__ __align__(16) uint32_t Vt[D * LDV];
    const int gq = H / Hkv, TPC = ROWS / gq;
    const int split = blockIdx.x % NS, tile = ntile_max - 1 - (int)(blockIdx.x / NS);
    const int kvh = blockIdx.y;
    const rl_cu_span sp = spans[blockIdx.z];
    const int tok0 = tile * TPC;
    if (tok0 >= sp.n) return; /* whole block: before any barrier */
    const int ntok = sp.n - tok0 < TPC ? sp.n - tok0 : TPC, nrows = ntok * gq;
    const int npages = (sp.pos0 + tok0 + ntok - 1) / PG + 1;
    const int pb = (int)((long long)split * npages / NS), pe = (int)((long long)(split + 1) * npages / NS);
    const int *pt = page_tables[sp.seq];
    const int KD = Hkv * D;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int r0 = 16 * warp + g, r1 = r0 + 8;
    const bool act = 16 * warp < nrows;
    const int last_row = 16 * warp + 15 < nrows ? 16 * warp + 15 : nrows - 1;
    const int wlast_page = act ? (sp.pos0 + tok0 + last_row / gq) / PG : -1;
    const int p0 = r0 < nrows ? sp.pos0 + tok0 + r0 / gq : -1;
    const int p1 = r1 < nrows ? sp.pos0 + tok0 + r1 / gq : -1;
    const float *q0 = r0 < nrows ? qkv + (size_t)(sp.row0 + tok0 + r0 / gq) * ldqkv +
                                       (size_t)(kvh * gq + r0 % gq) * D
                                 : nullptr;
    const float *q1 = r1 < nrows ? qkv + (size_t)(sp.row0 + tok0 + r1 / gq) * ldqkv +
                                       (size_t)(kvh * gq + r1 % gq) * D
                                 : nullptr;
    uint32_t qa[KT][4];
    rl_gqa_q_frags<KT>(qa, q0, q1, t, sl2);
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    const size_t loff = (size_t)layer * 2 * PG * KD;
    for (int p = pb; p < pe; p++) {
        const uint16_t *kb = pool + (size_t)pt[p] * page_elems + loff + (size_t)kvh * D * PG;
        const uint16_t *vb = pool + (size_t)pt[p] * page_elems + loff + (size_t)PG * KD +
                             (size_t)kvh * PG * D;
        __syncthreads(); /* previous page consumed */
        /* keys [d][j] bf16 -> Ks[j][d pair]: 8 along j (16-byte loads), two rows d */
        for (int idx = threadIdx.x; idx < (D / 2) * (PG / 8); idx += 32 * NWARP) {
            int dp = idx / (PG / 8), j = 8 * (idx % (PG / 8));
            uint4 x = __ldg((const uint4 *)(kb + (size_t)(2 * dp) * PG + j));
            uint4 y = __ldg((const uint4 *)(kb + (size_t)(2 * dp + 1) * PG + j));
            const uint32_t xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int w = 0; w < 4; w++) {
                Ks[(j + 2 * w) * LDK + dp] = pair_lo(xs[w], ys[w]);
                Ks[(j + 2 * w + 1) * LDK + dp] = pair_hi(xs[w], ys[w]);
            }
        }
        /* values [j][e] bf16 -> Vt[e][j pair]: 8 along e (16-byte loads), two rows j */
        for (int idx = threadIdx.x; idx < (PG / 2) * (D / 8); idx += 32 * NWARP) {
            int jp = idx / (D / 8), e = 8 * (idx % (D / 8));
            uint4 x = __ldg((const uint4 *)(vb + (size_t)(2 * jp) * D + e));
            uint4 y = __ldg((const uint4 *)(vb + (size_t)(2 * jp + 1) * D + e));
            const uint32_t xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int w = 0; w < 4; w++) {
                Vt[(e + 2 * w) * LDV + jp] = pair_lo(xs[w], ys[w]);
                Vt[(e + 2 * w + 1) * LDV + jp] = pair_hi(xs[w], ys[w]);
            }
        }
        __syncthreads();
        if (!act || p > wlast_page) continue; /* no row of this warp sees this page */
        float sc[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
            const uint32_t *kr = Ks + (8 * nt + g) * LDK + t;
#pragma unroll
            for (int kk = 0; kk < KT; kk++) rl_mma_bf16(sc[nt], qa[kk], kr[8 * kk], kr[8 * kk + 4]);
        }
        float al0, al1;
        rl_gqa_softmax_step<8, false>(sc, PG * p + 2 * t, p0, p1, m0, m1, l0, l1, al0, al1);
        rl_gqa_rescale<NT>(acc, al0, al1);
#pragma unroll
        for (int kk = 0; kk < PG / 16; kk++) {
            uint32_t pa[4] = {rl_bf2(sc[2 * kk][0], sc[2 * kk][1]), rl_bf2(sc[2 * kk][2], sc[2 * kk][3]),
                              rl_bf2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                              rl_bf2(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < NT; n++) {
                const uint32_t *vr = Vt + (8 * n + g) * LDV + 8 * kk + t;
                rl_mma_bf16(acc[n], pa, vr[0], vr[4]);
            }
        }
    }
    if (!act) return;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    if (NS == 1) {
        float i0 = 1.0f / l0, i1 = 1.0f / l1;
        float *o0 = q0 ? o + (size_t)(sp.row0 + tok0 + r0 / gq) * ldo + (size_t)(kvh * gq + r0 % gq) * D : nullptr;
        float *o1 = q1 ? o + (size_t)(sp.row0 + tok0 + r1 / gq) * ldo + (size_t)(kvh * gq + r1 % gq) * D : nullptr;
#pragma unroll
        for (int n = 0; n < NT; n++) {
            /* scalar stores: ldo and o carry no alignment promise */
            if (o0) {
                o0[8 * n + 2 * t] = acc[n][0] * i0;
                o0[8 * n + 2 * t + 1] = acc[n][1] * i0;
            }
            if (o1) {
                o1[8 * n + 2 * t] = acc[n][2] * i1;
                o1[8 * n + 2 * t + 1] = acc[n][3] * i1;
            }
        }
        return;
    }
    /* split: unnormalized partials, [row][D] then (m, l) */
    size_t base = (((size_t)blockIdx.z * Hkv + kvh) * NS + split) * ROWS;
    float *a0 = part + (base + r0) * (D + 2), *a1 = part + (base + r1) * (D + 2);
#pragma unroll
    for (int n = 0; n < NT; n++) {
        if (q0) *(float2 *)(a0 + 8 * n + 2 * t) = make_float2(acc[n][0], acc[n][1]);
        if (q1) *(float2 *)(a1 + 8 * n + 2 * t) = make_float2(acc[n][2], acc[n][3]);
    }
    if (t == 0) {
        if (q0) *(float2 *)(a0 + D) = make_float2(m0, l0);
        if (q1) *(float2 *)(a1 + D) = make_float2(m1, l1);
    }
}

/* Merges gqa_attend's NS partial softmaxes of each row, in split order. Block (kv head,
 * span), one thread per output channel. Used only when one tile holds every
 * token of each span. */
__global__ void gqa_merge(float *__restrict__ o, int ldo, const rl_cu_span *__restrict__ spans,
                          int H, int Hkv, int D, int NS, const float *__restrict__ part) {
    const rl_cu_span sp = spans[blockIdx.y];
    const int kvh = blockIdx.x, gq = H / Hkv;
    const int nrows = sp.n * gq;
    size_t base = ((size_t)blockIdx.y * Hkv + kvh) * NS * ROWS;
    for (int r = 0; r < nrows; r++) {
        float M = -INFINITY;
        for (int s = 0; s < NS; s++) M = fmaxf(M, part[(base + (size_t)s * ROWS + r) * (D + 2) + D]);
        for (int e = threadIdx.x; e < D; e += blockDim.x) {
            float L = 0.0f, A = 0.0f;
            for (int s = 0; s < NS; s++) {
                const float *pr = part + (base + (size_t)s * ROWS + r) * (D + 2);
                float m = pr[D];
                float w = m == -INFINITY ? 0.0f : exp2f(m - M);
                L += w * pr[D + 1];
                A += w * pr[e];
            }
            o[(size_t)(sp.row0 + r / gq) * ldo + (size_t)(kvh * gq + r % gq) * D + e] = A / L;
        }
    }
}

/* ---- prefill kernel (gqa_fa) ---------------------------------------------------------
 * One block of FW = 8 warps per (span, kv head, tile of FROWS = 256 rows), rows
 * as in gqa_attend (token r / gq, head r % gq of the group); warp w owns rows
 * 32w..32w+31 as two m16 tiles, so every K/V fragment read from shared memory
 * feeds two mma. Pages are visited in ascending order, one page per
 * iteration, in two phases:
 *   A: S = Q K^T (K of page p), online softmax (base 2)   | first: V(p) into place
 *   B: O += P V (V of page p)                              | first: K(p+1) into place
 * Each thread stages its share of a block of the pool (bf16) by cp.async one
 * phase before it moves that same share into the swizzled buffer (so staging
 * needs no barrier), interleaved with its first mma steps, then arrives on
 * the block's mbarrier. (When the pool was fp32 the move was the conversion
 * to bf16; the values the mma sees are the same.) bf16 K and V are double-buffered: a warp waits only for
 * every thread's share of the block it is about to read, and that wait also
 * proves the buffer it is about to overwrite is no longer read (see the
 * comments at the waits). No __syncthreads in the loop: warps drift apart,
 * so one warp's softmax overlaps another's mma (~17% faster on H200 than
 * the same kernel with two __syncthreads per page).
 * Shared memory holds bf16 Q [row][d], K [d][j] and V [j][e] with the 16-byte
 * chunks of a row XOR-swizzled by (row % 8), read by ldmatrix (.trans for K
 * and V): conflict-free. P stays in registers as the A operand of P V.
 *
 * Determinism: a row's arithmetic is the same whatever tile, warp or m16 tile
 * it sits in (mma rows are independent, the softmax reductions stay within
 * the row's quad), pages in ascending order one at a time, and a page after
 * the row's position changes nothing (alpha = 1, p = 0), so decode rows
 * (deterministic mode sends them here too) get the bits of prefill. */
constexpr int FW = 8;
constexpr int FROWS = 32 * FW;

/* FA_BAR bytes of mbarriers first, then Q, K, V and the two staging blocks */
constexpr int FA_BAR = 128;
template <int D> constexpr size_t fa_smem() {
    return FA_BAR + (size_t)FROWS * D * 2 + 4 * (size_t)PG * D * 2 + 2 * (size_t)PG * D * 2;
}

template <int D>
__global__ void __launch_bounds__(32 * FW, 1)
    gqa_fa(const float *__restrict__ qkv, int ldqkv, float *__restrict__ o, int ldo,
           const rl_cu_span *__restrict__ spans, const int *const *page_tables,
           const uint16_t *__restrict__ pool, size_t page_elems, int layer, int H, int Hkv,
           float sl2, int ntile_max) {
    constexpr int NTH = 32 * FW;
    constexpr int KT = D / 16, NT = D / 8;
    constexpr int BLK = PG * D;              /* elements of one K or V block */
    constexpr int NCV = BLK / 8 / NTH;       /* 16-byte moves per thread per block */
    /* moves front-loaded: V(p) over the first SA steps of Q K^T, K(p+1) in the
     * first step of P V, then the arrival, so that the other warps wait as
     * little as possible on this one */
    constexpr int SA = NCV < 4 ? NCV : 4, SB = 1;
    static_assert(SA <= KT, "moves within the Q K^T steps");
    constexpr int CVA = NCV / SA, CVB = NCV / SB;
    static_assert(CVA * SA == NCV && CVB * SB == NCV, "conversion split");
    extern __shared__ __align__(128) unsigned char sm[];
    unsigned char *Qs = sm + FA_BAR;                     /* [FROWS][D] bf16 */
    unsigned char *Ks = Qs + (size_t)FROWS * D * 2;      /* 2 x [D][PG] bf16 */
    unsigned char *Vs = Ks + 2 * (size_t)PG * D * 2;     /* 2 x [PG][D] bf16 */
    uint16_t *F0 = (uint16_t *)(Vs + 2 * (size_t)PG * D * 2); /* K block, as in the pool */
    uint16_t *F1 = F0 + BLK;                                   /* V block */
    /* fullK[b], fullV[b]: every thread converted its share into buffer b.
     * Before the buffers, not after F1: with the barriers right after F1,
     * compute-sanitizer racecheck reports the cp.async writes of F1's last
     * 1 KB as WAW hazards on the barrier words (BENCHMARKS.md, "GPU
     * attention kernels"; the same layout in racecheck_probe.cu, modes
     * 7-8, is not reported, so the tool's reason is not known). */
    const uint32_t mb = smem_u32(sm);
    const int gq = H / Hkv, TPC = FROWS / gq;
    const int tile = ntile_max - 1 - (int)blockIdx.x, kvh = blockIdx.y;
    const rl_cu_span sp = spans[blockIdx.z];
    const int tok0 = tile * TPC;
    if (tok0 >= sp.n) return; /* whole block: before any barrier */
    const int ntok = sp.n - tok0 < TPC ? sp.n - tok0 : TPC, nrows = ntok * gq;
    const int ppos = sp.pos0 + tok0; /* position of row 0 */
    const int npages = (ppos + ntok - 1) / PG + 1;
    const int *pt = page_tables[sp.seq];
    const int KD = Hkv * D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint16_t *lbase = pool + (size_t)layer * 2 * PG * KD;
    const size_t koff = (size_t)kvh * D * PG, voff = (size_t)PG * KD + (size_t)kvh * PG * D;

    auto stage = [&](uint16_t *F, const uint16_t *src) {
        uint32_t s = smem_u32(F);
#pragma unroll
        for (int i = 0; i < NCV; i++) {
            int q = tid + NTH * i;
            cp_async16(s + 16 * q, src + 8 * q);
        }
        cp_async_commit();
    };
    /* The i-th 16 bytes of this thread (the ones its own cp.async brought: no
     * barrier between staging and the move): F [R][C] -> dst [R][C], chunks of
     * 8 swizzled by row. Step i moves NTH * 8 elements = 2048 / C rows, a
     * multiple of 8, so the swizzle is the same for every i. */
    static_assert(NTH * 8 % (8 * PG) == 0 && NTH * 8 % (8 * D) == 0, "move rows");
    auto dst_off = [&](int C) {
        int e = 8 * tid, row = e / C, col = e % C;
        return row * C * 2 + (((col >> 3) ^ (row & 7)) << 4);
    };
    const int kdo = dst_off(PG), vdo = dst_off(D);
    auto convert = [&](const uint16_t *F, unsigned char *dst, int i) {
        *(uint4 *)(dst + 16 * NTH * i) = *(const uint4 *)(F + 8 * tid + 8 * NTH * i);
    };

    stage(F0, lbase + (size_t)pt[0] * page_elems + koff);
    stage(F1, lbase + (size_t)pt[0] * page_elems + voff);
    /* Q, scaled into base 2, bf16: 8 channels (one 16-byte chunk) per step */
    for (int idx = tid; idx < FROWS * D / 8; idx += NTH) {
        int r = idx / (D / 8), c = idx % (D / 8);
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (r < nrows) {
            const float *q = qkv + (size_t)(sp.row0 + tok0 + r / gq) * ldqkv +
                             (size_t)(kvh * gq + r % gq) * D + 8 * c;
            v.x = rl_bf2(q[0] * sl2, q[1] * sl2);
            v.y = rl_bf2(q[2] * sl2, q[3] * sl2);
            v.z = rl_bf2(q[4] * sl2, q[5] * sl2);
            v.w = rl_bf2(q[6] * sl2, q[7] * sl2);
        }
        *(uint4 *)(Qs + (size_t)r * D * 2 + ((c ^ (r & 7)) << 4)) = v;
    }
    if (tid < 4) mbar_init(mb + 8 * tid, NTH);
    __syncthreads(); /* barriers initialized, Q stored */
    cp_async_wait_1();
#pragma unroll
    for (int i = 0; i < NCV; i++) convert(F0, Ks + kdo, i);
    mbar_arrive(mb); /* fullK[0] */

    const int wr0 = 32 * warp;
    const bool act = wr0 < nrows;
    const int wlast = wr0 + 31 < nrows ? wr0 + 31 : nrows - 1;
    const int wlast_page = act ? (ppos + wlast / gq) / PG : -1;
    const int wfirst_pos = ppos + wr0 / gq;
    /* ldmatrix lane addresses: lane supplies row (lane & 7) + 8 * ((lane >> 3) & 1)
     * of a 16-row slab and chunk + (lane >> 4); (row & 7) == (lane & 7) */
    const int lr = (lane & 7) + 8 * ((lane >> 3) & 1), lc = lane >> 4, lx = lane & 7;
    const uint32_t qa0 = smem_u32(Qs) + (uint32_t)(wr0 + lr) * D * 2;
    const uint32_t ka00 = smem_u32(Ks) + (uint32_t)lr * PG * 2;
    const uint32_t va00 = smem_u32(Vs) + (uint32_t)lr * D * 2;

    float m[2][2], l[2][2], acc[2][NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < NT; n++) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.0f;
    }

    for (int p = 0; p < npages; p++) {
        const bool more = p + 1 < npages;
        const int b = p & 1;
        const uint32_t par = (p >> 1) & 1;
        unsigned char *Vb = Vs + (size_t)b * PG * D * 2, *Kn = Ks + (size_t)(b ^ 1) * PG * D * 2;
        const uint32_t ka0 = ka00 + b * PG * D * 2, va0 = va00 + b * PG * D * 2;
        /* F0 (K(p), converted by this thread in the previous phase) is free */
        if (more) stage(F0, lbase + (size_t)pt[p + 1] * page_elems + koff);
        else cp_async_commit();
        cp_async_wait_1(); /* this thread's share of V(p) has landed */
        /* K(p) complete; and since every thread converted K(p) after its
         * P V(p-2), buffer b of V is free for V(p) */
        mbar_wait(mb + 8 * b, par);
        const bool run = act && p <= wlast_page;
        float s[2][8][4];
        if (run) {
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 8; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KT; kk++) {
                if (kk < SA) {
#pragma unroll
                    for (int c = 0; c < CVA; c++) convert(F1, Vb + vdo, kk * CVA + c);
                    if (kk == SA - 1) mbar_arrive(mb + 16 + 8 * b); /* fullV[b] */
                }
                uint32_t qf[2][4];
                ldsm_x4(qf[0], qa0 + (((2 * kk + lc) ^ lx) << 4));
                ldsm_x4(qf[1], qa0 + 16 * D * 2 + (((2 * kk + lc) ^ lx) << 4));
#pragma unroll
                for (int nt = 0; nt < 8; nt += 2) {
                    uint32_t bf[4];
                    ldsm_x4_t(bf, ka0 + 16 * kk * PG * 2 + (((nt + lc) ^ lx) << 4));
                    rl_mma_bf16(s[0][nt], qf[0], bf[0], bf[1]);
                    rl_mma_bf16(s[1][nt], qf[1], bf[0], bf[1]);
                    rl_mma_bf16(s[0][nt + 1], qf[0], bf[2], bf[3]);
                    rl_mma_bf16(s[1][nt + 1], qf[1], bf[2], bf[3]);
                }
            }
            if (PG * p + PG - 1 > wfirst_pos) { /* some key of the page after some row */
                int rpos[2][2]; /* the rows' positions; -1: no row */
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        int r = wr0 + 16 * mt + g + 8 * h;
                        rpos[mt][h] = r < nrows ? ppos + r / gq : -1;
                    }
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) {
                        int kp = PG * p + 8 * nt + 2 * t;
                        s[mt][nt][0] = kp <= rpos[mt][0] ? s[mt][nt][0] : -INFINITY;
                        s[mt][nt][1] = kp + 1 <= rpos[mt][0] ? s[mt][nt][1] : -INFINITY;
                        s[mt][nt][2] = kp <= rpos[mt][1] ? s[mt][nt][2] : -INFINITY;
                        s[mt][nt][3] = kp + 1 <= rpos[mt][1] ? s[mt][nt][3] : -INFINITY;
                    }
            }
            float alv[2][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    float mn = fmaxf(m[mt][h], mx);
                    /* a row with no visible key yet keeps p = 0 and no NaN */
                    float mu = mn == -INFINITY ? 0.0f : mn;
                    float al = ex2(m[mt][h] - mu);
                    m[mt][h] = mn;
                    float rs = 0.0f;
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) {
                        s[mt][nt][2 * h] = ex2(s[mt][nt][2 * h] - mu);
                        s[mt][nt][2 * h + 1] = ex2(s[mt][nt][2 * h + 1] - mu);
                        rs += s[mt][nt][2 * h] + s[mt][nt][2 * h + 1];
                    }
                    l[mt][h] = l[mt][h] * al + rs;
                    alv[mt][h] = al;
                }
            /* most pages leave every row's maximum where it was: skip the
             * multiplications by 1 (same bits either way) */
            if (!__all_sync(0xffffffffu, alv[0][0] == 1.0f && alv[0][1] == 1.0f &&
                                             alv[1][0] == 1.0f && alv[1][1] == 1.0f)) {
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int n = 0; n < NT; n++) {
                        acc[mt][n][0] *= alv[mt][0];
                        acc[mt][n][1] *= alv[mt][0];
                        acc[mt][n][2] *= alv[mt][1];
                        acc[mt][n][3] *= alv[mt][1];
                    }
            }
        } else {
#pragma unroll
            for (int i = 0; i < NCV; i++) convert(F1, Vb + vdo, i);
            mbar_arrive(mb + 16 + 8 * b); /* fullV[b] */
        }
        if (more) stage(F1, lbase + (size_t)pt[p + 1] * page_elems + voff);
        else cp_async_commit();
        cp_async_wait_1(); /* this thread's share of K(p+1) has landed */
        /* V(p) complete; and since every thread converted V(p) after its
         * Q K(p-1)^T, buffer b^1 of K is free for K(p+1) */
        mbar_wait(mb + 16 + 8 * b, par);
        if (run) {
#pragma unroll
            for (int kj = 0; kj < PG / 16; kj++) {
                if (more && kj < SB) {
#pragma unroll
                    for (int c = 0; c < CVB; c++) convert(F0, Kn + kdo, kj * CVB + c);
                    if (kj == SB - 1) mbar_arrive(mb + 8 * (b ^ 1)); /* fullK[b^1] */
                }
                uint32_t pa[2][4];
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    pa[mt][0] = rl_bf2(s[mt][2 * kj][0], s[mt][2 * kj][1]);
                    pa[mt][1] = rl_bf2(s[mt][2 * kj][2], s[mt][2 * kj][3]);
                    pa[mt][2] = rl_bf2(s[mt][2 * kj + 1][0], s[mt][2 * kj + 1][1]);
                    pa[mt][3] = rl_bf2(s[mt][2 * kj + 1][2], s[mt][2 * kj + 1][3]);
                }
#pragma unroll
                for (int n = 0; n < NT; n += 2) {
                    uint32_t bf[4];
                    ldsm_x4_t(bf, va0 + 16 * kj * D * 2 + (((n + lc) ^ lx) << 4));
                    rl_mma_bf16(acc[0][n], pa[0], bf[0], bf[1]);
                    rl_mma_bf16(acc[1][n], pa[1], bf[0], bf[1]);
                    rl_mma_bf16(acc[0][n + 1], pa[0], bf[2], bf[3]);
                    rl_mma_bf16(acc[1][n + 1], pa[1], bf[2], bf[3]);
                }
            }
        } else if (more) {
#pragma unroll
            for (int i = 0; i < NCV; i++) convert(F0, Kn + kdo, i);
            mbar_arrive(mb + 8 * (b ^ 1)); /* fullK[b^1] */
        }
    }
    cp_async_wait_all(); /* nothing in flight when the block exits */
    __syncthreads();     /* every thread is past its last wait: the barriers are done */
    if (tid < 4) mbar_inval(mb + 8 * tid);
    if (!act) return;
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = wr0 + 16 * mt + g + 8 * h;
            float L = l[mt][h];
            L += __shfl_xor_sync(0xffffffffu, L, 1);
            L += __shfl_xor_sync(0xffffffffu, L, 2);
            if (r >= nrows) continue;
            float inv = 1.0f / L;
            float *orow = o + (size_t)(sp.row0 + tok0 + r / gq) * ldo + (size_t)(kvh * gq + r % gq) * D;
#pragma unroll
            for (int n = 0; n < NT; n++) {
                /* scalar stores: ldo and o carry no alignment promise */
                orow[8 * n + 2 * t] = acc[mt][n][2 * h] * inv;
                orow[8 * n + 2 * t + 1] = acc[mt][n][2 * h + 1] * inv;
            }
        }
}

/* (span, kv head) pairs from which a one-tile step that gqa_dec does not take
 * (spans of 17-128 rows, or RL_CUDA_GQA_DEC=0) goes to gqa_fa unsplit;
 * RL_CUDA_FA_DECODE_BLOCKS overrides it (benchmarks' A/B of the routing) */
static int fa_decode_blocks() {
    static int v = 0;
    if (!v) {
        const char *e = getenv("RL_CUDA_FA_DECODE_BLOCKS");
        v = e && atoi(e) > 0 ? atoi(e) : 64;
    }
    return v;
}

template <int D>
int launch_gqa(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
               int n_spans, int max_n, const int *const *page_tables, const uint16_t *pool,
               size_t page_elems, int layer, int H, int Hkv, float scale, int deterministic,
               cudaStream_t st) {
    int gq = H / Hkv, TPC = ROWS / gq;
    int ntile_max = (max_n + TPC - 1) / TPC;
    const float sl2 = scale * 1.4426950408889634f; /* base-2 softmax */
    if (!deterministic && max_n * gq <= RL_GQA_DEC_ROWS && rl_cu_gqa_dec_on())
        return rl_cu_gqa_dec(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                             page_elems, layer, H, Hkv, D, sl2, st);
    if (deterministic || ntile_max > 1 || n_spans * Hkv >= fa_decode_blocks()) {
        /* prefill-sized steps, every step in deterministic mode, and one-tile
         * steps with enough (span, kv head) pairs to fill the card without
         * splitting pages (gqa_fa's pipelined staging then beat gqa_attend's
         * split on decode steps before gqa_dec: H200, B = 16 at 4K / 32K:
         * 0.147 / 1.247 ms against 0.218 / 1.551 ms) */
        static bool attr_set = false; /* one per instantiation */
        if (!attr_set) {
            RL_CU_TRY(cudaFuncSetAttribute(gqa_fa<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int)fa_smem<D>()));
            attr_set = true;
        }
        int ftpc = FROWS / gq, nt = (max_n + ftpc - 1) / ftpc;
        gqa_fa<D><<<dim3(nt, Hkv, n_spans), 32 * FW, fa_smem<D>(), st>>>(
            qkv, ldqkv, o, ldo, spans, page_tables, pool, page_elems, layer, H, Hkv, sl2, nt);
        RL_CU_LAUNCHED();
        return 0;
    }
    /* one-tile steps of the default mode with few pairs: gqa_attend, pages split over blocks */
    int NS = 1;
    {
        int blocks = n_spans * Hkv, target = 2 * rl_cu_sm_count();
        NS = (target + blocks - 1) / blocks;
        if (NS > 32) NS = 32;
        if (NS < 1) NS = 1;
    }
    float *part = nullptr;
    if (NS > 1) {
        void *w = nullptr;
        RL_CU_TRY(rl_cu_attn_ws(RL_CU_WS_GQA,
                                (size_t)n_spans * Hkv * NS * ROWS * (D + 2) * sizeof(float), &w));
        part = (float *)w;
    }
    gqa_attend<D><<<dim3(ntile_max * NS, Hkv, n_spans), 32 * NWARP, 0, st>>>(
        qkv, ldqkv, o, ldo, spans, page_tables, pool, page_elems, layer, H, Hkv, sl2, NS,
        ntile_max, part);
    RL_CU_LAUNCHED();
    if (NS > 1) {
        gqa_merge<<<dim3(Hkv, n_spans), D, 0, st>>>(o, ldo, spans, H, Hkv, D, NS, part);
        RL_CU_LAUNCHED();
    }
    return 0;
}

} // namespace

extern "C" int rl_cu_kv_append(const float *qkv, int ldqkv, const rl_cu_span *spans, int n_spans,
                               int max_n, const int *const *page_tables, uint16_t *pool,
                               size_t page_elems, int layer, int H, int Hkv, int D,
                               void *stream) {
    if (n_spans <= 0 || max_n <= 0) return 0;
    if (n_spans > 65535 || Hkv <= 0 || D <= 0) return (int)cudaErrorInvalidValue;
    int nseg_max = (max_n + PG - 2) / PG + 1;
    kv_append<<<dim3(nseg_max, n_spans), 256, 0, (cudaStream_t)stream>>>(
        qkv, ldqkv, spans, page_tables, pool, page_elems, layer, H, Hkv, D);
    RL_CU_LAUNCHED();
    return 0;
}

extern "C" int rl_cu_gqa(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
                         int n_spans, int max_n, const int *const *page_tables,
                         const uint16_t *pool, size_t page_elems, int layer, int H, int Hkv, int D,
                         float scale,
                         int deterministic, void *stream) {
    if (n_spans <= 0 || max_n <= 0) return 0;
    if (n_spans > 65535 || Hkv <= 0 || H % Hkv || H / Hkv > ROWS) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    if (D == 128)
        return launch_gqa<128>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                               page_elems, layer, H, Hkv, scale, deterministic, st);
    if (D == 64)
        return launch_gqa<64>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                              page_elems, layer, H, Hkv, scale, deterministic, st);
    return (int)cudaErrorInvalidValue;
}
