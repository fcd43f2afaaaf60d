/* KV append and paged causal GQA attention on tensor cores (contract:
 * attn_cuda.h; page layout: src/state/kv_pages.h).
 *
 * gqa_attend: one block of 8 warps per (span, kv head, tile of query rows,
 * split). A block's 128 rows are (token, query head) pairs of one kv head:
 * row r is token r / gq, head r % gq of the group, so a decode token with its
 * gq heads fills one 16-row warp tile and a prefill tile holds 128/gq tokens;
 * every row of a block shares the keys and values it stages. Keys are visited
 * one page (64 keys) at a time in ascending order: the page is converted to
 * bf16 in shared memory (keys as [j][d], values transposed as [e][j], so that
 * every mma operand is one 32-bit load), then each warp computes scores
 * (bf16 mma, fp32 accumulation), an online softmax in base 2, and P V.
 *
 * Determinism: a row's arithmetic depends only on its own query, its
 * position and the pages: tiles in page order, the same instructions for a
 * row whatever tile or block it sits in (mma rows are independent), and a
 * page entirely after a row's position is a bitwise no-op for that row
 * (alpha = 1, p = 0). Prefill and decode therefore give the same bits when
 * the keys are not split. The default mode splits a decode step's pages
 * over several blocks when the step has few (span, kv head) pairs, and
 * merges the partial softmaxes in split order (gqa_merge): the bits then
 * depend on the batch size. `deterministic` turns the split off. */
#include <math.h>

#include "ops/cuda/attn_cuda.h"
#include "ops/cuda/attn_mma.cuh"
#include "state/kv_pages.h"

namespace {

constexpr int PG = RL_KV_PAGE; /* 64 keys per page = one key tile */
constexpr int NWARP = 8;
constexpr int ROWS = 16 * NWARP; /* rows per block */
static_assert(PG == 64, "the key tile is one page of 64 positions");

/* ---- append -------------------------------------------------------------------
 * Block (page segment s, span): the span's tokens in one page, rows [a, b). */
__global__ void kv_append(const float *__restrict__ qkv, int ldqkv,
                          const rl_cu_span *__restrict__ spans, const int *const *page_tables,
                          float *__restrict__ pool, size_t page_floats, int layer, int H, int Hkv,
                          int D) {
    rl_cu_span sp = spans[blockIdx.y];
    int s = blockIdx.x, i0 = sp.pos0 & (PG - 1);
    int nseg = (i0 + sp.n + PG - 1) / PG;
    if (s >= nseg) return;
    int a = s == 0 ? i0 : 0, b = i0 + sp.n - PG * s;
    if (b > PG) b = PG;
    int n = b - a, jbase = PG * s - i0;
    int page = page_tables[sp.seq][sp.pos0 / PG + s];
    int KD = Hkv * D, HD = H * D;
    float *kb = pool + (size_t)page * page_floats + (size_t)layer * 2 * PG * KD;
    float *vb = kb + (size_t)PG * KD;
    const float *rows = qkv + (size_t)(sp.row0 + jbase) * ldqkv;
    /* keys transposed: consecutive threads write consecutive positions */
    for (int idx = threadIdx.x; idx < KD * n; idx += blockDim.x) {
        int c = idx / n, r = a + idx % n;
        kb[(size_t)c * PG + r] = rows[(size_t)r * ldqkv + HD + c];
    }
    for (int idx = threadIdx.x; idx < KD * n; idx += blockDim.x) {
        int r = a + idx / KD, c = idx % KD, h = c / D, d = c % D;
        vb[((size_t)h * PG + r) * D + d] = rows[(size_t)r * ldqkv + HD + KD + c];
    }
}

/* ---- attention -------------------------------------------------------------------- */
template <int D>
__global__ void __launch_bounds__(32 * NWARP)
    gqa_attend(const float *__restrict__ qkv, int ldqkv, float *__restrict__ o, int ldo,
               const rl_cu_span *__restrict__ spans, const int *const *page_tables,
               const float *__restrict__ pool, size_t page_floats, int layer, int H, int Hkv,
               float sl2, int NS, int ntile_max, float *__restrict__ part) {
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
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
        int d = 16 * kk + 2 * t;
        qa[kk][0] = q0 ? rl_bf2(q0[d] * sl2, q0[d + 1] * sl2) : 0u;
        qa[kk][1] = q1 ? rl_bf2(q1[d] * sl2, q1[d + 1] * sl2) : 0u;
        qa[kk][2] = q0 ? rl_bf2(q0[d + 8] * sl2, q0[d + 9] * sl2) : 0u;
        qa[kk][3] = q1 ? rl_bf2(q1[d + 8] * sl2, q1[d + 9] * sl2) : 0u;
    }
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    const size_t loff = (size_t)layer * 2 * PG * KD;
    for (int p = pb; p < pe; p++) {
        const float *kb = pool + (size_t)pt[p] * page_floats + loff + (size_t)kvh * D * PG;
        const float *vb = pool + (size_t)pt[p] * page_floats + loff + (size_t)PG * KD +
                          (size_t)kvh * PG * D;
        __syncthreads(); /* previous page consumed */
        /* keys [d][j] fp32 -> Ks[j][d pair]: float4 along j, two rows d */
        for (int idx = threadIdx.x; idx < (D / 2) * (PG / 4); idx += 32 * NWARP) {
            int dp = idx / (PG / 4), j = 4 * (idx % (PG / 4));
            float4 x = __ldg((const float4 *)(kb + (size_t)(2 * dp) * PG + j));
            float4 y = __ldg((const float4 *)(kb + (size_t)(2 * dp + 1) * PG + j));
            Ks[(j + 0) * LDK + dp] = rl_bf2(x.x, y.x);
            Ks[(j + 1) * LDK + dp] = rl_bf2(x.y, y.y);
            Ks[(j + 2) * LDK + dp] = rl_bf2(x.z, y.z);
            Ks[(j + 3) * LDK + dp] = rl_bf2(x.w, y.w);
        }
        /* values [j][e] fp32 -> Vt[e][j pair]: float4 along e, two rows j */
        for (int idx = threadIdx.x; idx < (PG / 2) * (D / 4); idx += 32 * NWARP) {
            int jp = idx / (D / 4), e = 4 * (idx % (D / 4));
            float4 x = __ldg((const float4 *)(vb + (size_t)(2 * jp) * D + e));
            float4 y = __ldg((const float4 *)(vb + (size_t)(2 * jp + 1) * D + e));
            Vt[(e + 0) * LDV + jp] = rl_bf2(x.x, y.x);
            Vt[(e + 1) * LDV + jp] = rl_bf2(x.y, y.y);
            Vt[(e + 2) * LDV + jp] = rl_bf2(x.z, y.z);
            Vt[(e + 3) * LDV + jp] = rl_bf2(x.w, y.w);
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
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            int kp = PG * p + 8 * nt + 2 * t;
            sc[nt][0] = kp <= p0 ? sc[nt][0] : -INFINITY;
            sc[nt][1] = kp + 1 <= p0 ? sc[nt][1] : -INFINITY;
            sc[nt][2] = kp <= p1 ? sc[nt][2] : -INFINITY;
            sc[nt][3] = kp + 1 <= p1 ? sc[nt][3] : -INFINITY;
            mx0 = fmaxf(mx0, fmaxf(sc[nt][0], sc[nt][1]));
            mx1 = fmaxf(mx1, fmaxf(sc[nt][2], sc[nt][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        /* a row with no visible key yet keeps p = 0 and no NaN */
        float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
        float al0 = exp2f(m0 - mu0), al1 = exp2f(m1 - mu1);
        m0 = mn0;
        m1 = mn1;
        float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            sc[nt][0] = exp2f(sc[nt][0] - mu0);
            sc[nt][1] = exp2f(sc[nt][1] - mu0);
            sc[nt][2] = exp2f(sc[nt][2] - mu1);
            sc[nt][3] = exp2f(sc[nt][3] - mu1);
            rs0 += sc[nt][0] + sc[nt][1];
            rs1 += sc[nt][2] + sc[nt][3];
        }
        l0 = l0 * al0 + rs0;
        l1 = l1 * al1 + rs1;
#pragma unroll
        for (int n = 0; n < NT; n++) {
            acc[n][0] *= al0;
            acc[n][1] *= al0;
            acc[n][2] *= al1;
            acc[n][3] *= al1;
        }
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

/* Merges the NS partial softmaxes of each row, in split order. Block (kv head,
 * span), one thread per output channel. Used only when one tile holds every
 * token of each span (decode-sized steps). */
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

template <int D>
int launch_gqa(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
               int n_spans, int max_n, const int *const *page_tables, const float *pool,
               size_t page_floats, int layer, int H, int Hkv, float scale, int deterministic,
               cudaStream_t st) {
    int gq = H / Hkv, TPC = ROWS / gq;
    int ntile_max = (max_n + TPC - 1) / TPC;
    int NS = 1;
    if (!deterministic && ntile_max == 1) {
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
    const float sl2 = scale * 1.4426950408889634f; /* base-2 softmax */
    gqa_attend<D><<<dim3(ntile_max * NS, Hkv, n_spans), 32 * NWARP, 0, st>>>(
        qkv, ldqkv, o, ldo, spans, page_tables, pool, page_floats, layer, H, Hkv, sl2, NS,
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
                               int max_n, const int *const *page_tables, float *pool,
                               size_t page_floats, int layer, int H, int Hkv, int D,
                               void *stream) {
    if (n_spans <= 0 || max_n <= 0) return 0;
    if (n_spans > 65535 || Hkv <= 0 || D <= 0) return (int)cudaErrorInvalidValue;
    int nseg_max = (max_n + PG - 2) / PG + 1;
    kv_append<<<dim3(nseg_max, n_spans), 256, 0, (cudaStream_t)stream>>>(
        qkv, ldqkv, spans, page_tables, pool, page_floats, layer, H, Hkv, D);
    RL_CU_LAUNCHED();
    return 0;
}

extern "C" int rl_cu_gqa(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
                         int n_spans, int max_n, const int *const *page_tables, const float *pool,
                         size_t page_floats, int layer, int H, int Hkv, int D, float scale,
                         int deterministic, void *stream) {
    if (n_spans <= 0 || max_n <= 0) return 0;
    if (n_spans > 65535 || Hkv <= 0 || H % Hkv || H / Hkv > ROWS) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    if (D == 128)
        return launch_gqa<128>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                               page_floats, layer, H, Hkv, scale, deterministic, st);
    if (D == 64)
        return launch_gqa<64>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                              page_floats, layer, H, Hkv, scale, deterministic, st);
    return (int)cudaErrorInvalidValue;
}
