/* Paged causal GQA attention for decode steps (default mode) on tensor
 * cores: gqa_dec and its merge. Contract: attn_cuda.h (rl_cu_gqa routes here,
 * gqa_dec.cuh); page layout: src/state/kv_pages.h.
 *
 * Why a kernel of its own: a decode token is gq rows (4 at Ring-mini, 8 at
 * Ring-flash), so the work is reading K and V pages once, at memory speed.
 * gqa_fa's 256-row blocks take a whole context per (span, kv head) and reach
 * ~45% of the copy bandwidth at batch 64 (H200, 32K: 2.2 ms); gqa_attend's
 * split staged pages synchronously (23% at 32K). Here every block keeps pages
 * in flight through a cp.async ring and the pages are split over enough
 * blocks to fill the card whatever the batch. */
#include <math.h>
#include <stdlib.h>

#include "ops/cuda/attn_async.cuh"
#include "ops/cuda/attn_mma.cuh"
#include "ops/cuda/gqa_dec.cuh"
#include "ops/cuda/gqa_tile.cuh"
#include "state/kv_pages.h"

namespace {

/* ---- decode kernel (gqa_dec) ---------------------------------------------------------
 * Default-mode steps whose spans each hold at most 16 rows (n * gq <= 16; a
 * decode token is gq rows): one m16 tile per (span, kv head), so the work is
 * reading the pages, at memory speed if enough bytes are in flight. The
 * pages of a (span, kv head) are split over NS blocks (split x, kv head y,
 * span z); a block of DW = 4 warps streams its pages through a DSTG-page
 * cp.async ring (K and V of a page: 32 KB at D = 128; two blocks per SM, so
 * up to four pages in flight per SM), straight into the XOR-swizzled layout
 * that ldmatrix reads (as gqa_fa's). Warp w owns keys 16w..16w+15 of every
 * page: S = Q K^T over its 16 keys (bf16 mma, fp32), its own online softmax
 * (base 2) and P V into its own accumulators, so the warps never wait on
 * each other inside a page; one __syncthreads per page guards the ring.
 * At the end the warps' softmaxes are merged in warp order in shared memory;
 * the block writes the normalized rows (NS = 1) or its partial softmax,
 * which gqa_dec_merge combines in split order. The bits depend on NS (the batch
 * size), so `deterministic` never comes here (gqa_fa instead). */
constexpr int DW = 4;                 /* warps per block = key slices of a page */
constexpr int DSTG = 3;               /* pages in the cp.async ring */
constexpr int DROWS = RL_GQA_DEC_ROWS; /* rows per (span, kv head): one m16 tile */
constexpr int PG = RL_KV_PAGE; /* keys per page */
static_assert(DW * 16 == PG, "one 16-key slice per warp");

template <int D> constexpr size_t dec_smem() { return (size_t)DSTG * 2 * PG * D * 2; }
static_assert(DW * DROWS * (128 + 2) * 4 <= dec_smem<128>() &&
                  DW * DROWS * (64 + 2) * 4 <= dec_smem<64>(),
              "the merge reuses the ring");

template <int D>
__global__ void __launch_bounds__(32 * DW, 2)
    gqa_dec(const float *__restrict__ qkv, int ldqkv, float *__restrict__ o, int ldo,
            const rl_cu_span *__restrict__ spans, const int *const *page_tables,
            const uint16_t *__restrict__ pool, size_t page_elems, int layer, int H, int Hkv,
            float sl2, int NS, float *__restrict__ part) {
    constexpr int NTH = 32 * DW, KT = D / 16, NT = D / 8;
    constexpr int BLK = PG * D;          /* elements of one K or V block */
    constexpr int NCP = BLK / 8 / NTH;   /* 16-byte copies per thread per block */
    static_assert(NCP * 8 * NTH == BLK, "copy split");
    extern __shared__ __align__(128) unsigned char sm[];
    const int split = blockIdx.x, kvh = blockIdx.y;
    const rl_cu_span sp = spans[blockIdx.z];
    const int gq = H / Hkv, nrows = sp.n * gq;
    const int npages = (sp.pos0 + sp.n - 1) / PG + 1;
    const int pb = (int)((long long)split * npages / NS);
    const int np = (int)((long long)(split + 1) * npages / NS) - pb;
    const int *pt = page_tables[sp.seq];
    const int KD = Hkv * D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint16_t *lbase = pool + (size_t)layer * 2 * PG * KD;
    const size_t koff = (size_t)kvh * D * PG, voff = (size_t)PG * KD + (size_t)kvh * PG * D;
    const uint32_t ring = smem_u32(sm);

    /* page p into ring slot s: K [D][PG] and V [PG][D], 16-byte chunks of a
     * row XOR-swizzled by (row % 8) */
    auto stage = [&](int s, int p) {
        const uint16_t *src = lbase + (size_t)pt[p] * page_elems;
        const uint32_t kd = ring + (uint32_t)s * 2 * BLK * 2, vd = kd + BLK * 2;
#pragma unroll
        for (int i = 0; i < NCP; i++) {
            int q = tid + NTH * i;
            int kr = q / (PG / 8), kc = q % (PG / 8);
            cp_async16(kd + kr * PG * 2 + ((kc ^ (kr & 7)) << 4), src + koff + 8 * q);
            int vr = q / (D / 8), vc = q % (D / 8);
            cp_async16(vd + vr * D * 2 + ((vc ^ (vr & 7)) << 4), src + voff + 8 * q);
        }
    };
#pragma unroll
    for (int s = 0; s < DSTG - 1; s++) {
        if (s < np) stage(s, pb + s);
        cp_async_commit();
    }

    /* Q rows g and g + 8 of the tile, scaled into base 2, as mma A fragments */
    const int r0 = g, r1 = g + 8;
    const float *q0 = r0 < nrows ? qkv + (size_t)(sp.row0 + r0 / gq) * ldqkv + (size_t)(kvh * gq + r0 % gq) * D
                                 : nullptr;
    const float *q1 = r1 < nrows ? qkv + (size_t)(sp.row0 + r1 / gq) * ldqkv + (size_t)(kvh * gq + r1 % gq) * D
                                 : nullptr;
    const int pos0 = r0 < nrows ? sp.pos0 + r0 / gq : -1, pos1 = r1 < nrows ? sp.pos0 + r1 / gq : -1;
    uint32_t qa[KT][4];
    rl_gqa_q_frags<KT>(qa, q0, q1, t, sl2);
    /* ldmatrix lane addresses (as gqa_fa): row (lane & 7) + 8 * ((lane >> 3) & 1)
     * of a 16-row slab, chunk + (lane >> 4); (row & 7) == (lane & 7) */
    const int lr = (lane & 7) + 8 * ((lane >> 3) & 1), lc = lane >> 4, lx = lane & 7;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

    for (int i = 0; i < np; i++) {
        cp_async_wait_1();  /* this thread's copies of page i have landed */
        __syncthreads();    /* everyone's have; and everyone is done with page i - 1 */
        if (i + DSTG - 1 < np) stage((i + DSTG - 1) % DSTG, pb + i + DSTG - 1);
        cp_async_commit();
        const int p = pb + i;
        const uint32_t kb = ring + (uint32_t)(i % DSTG) * 2 * BLK * 2, vb = kb + BLK * 2;
        float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
        const uint32_t ka = kb + (uint32_t)lr * PG * 2 + ((((2 * warp) + lc) ^ lx) << 4);
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
            uint32_t bf[4];
            ldsm_x4_t(bf, ka + 16 * kk * PG * 2);
            rl_mma_bf16(sc[0], qa[kk], bf[0], bf[1]);
            rl_mma_bf16(sc[1], qa[kk], bf[2], bf[3]);
        }
        float al0, al1;
        rl_gqa_softmax_step<2, true>(sc, PG * p + 16 * warp + 2 * t, pos0, pos1, m0, m1, l0, l1, al0,
                                     al1);
        if (!__all_sync(0xffffffffu, al0 == 1.0f && al1 == 1.0f)) rl_gqa_rescale<NT>(acc, al0, al1);
        const uint32_t pa[4] = {rl_bf2(sc[0][0], sc[0][1]), rl_bf2(sc[0][2], sc[0][3]),
                                rl_bf2(sc[1][0], sc[1][1]), rl_bf2(sc[1][2], sc[1][3])};
        const uint32_t va = vb + (uint32_t)(16 * warp + lr) * D * 2;
#pragma unroll
        for (int n = 0; n < NT; n += 2) {
            uint32_t bf[4];
            ldsm_x4_t(bf, va + (((n + lc) ^ lx) << 4));
            rl_mma_bf16(acc[n], pa, bf[0], bf[1]);
            rl_mma_bf16(acc[n + 1], pa, bf[2], bf[3]);
        }
    }
    cp_async_wait_all();
    __syncthreads(); /* the ring is free: merge the warps' softmaxes there */
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float *Mw = (float *)sm, *Lw = Mw + DW * DROWS, *Aw = Lw + DW * DROWS; /* [DW][16](x D) */
    if (t == 0) {
        Mw[warp * DROWS + r0] = m0;
        Mw[warp * DROWS + r1] = m1;
        Lw[warp * DROWS + r0] = l0;
        Lw[warp * DROWS + r1] = l1;
    }
    float *a0 = Aw + (size_t)(warp * DROWS + r0) * D, *a1 = Aw + (size_t)(warp * DROWS + r1) * D;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        *(float2 *)(a0 + 8 * n + 2 * t) = make_float2(acc[n][0], acc[n][1]);
        *(float2 *)(a1 + 8 * n + 2 * t) = make_float2(acc[n][2], acc[n][3]);
    }
    __syncthreads();
    for (int idx = tid; idx < nrows * D; idx += NTH) {
        const int r = idx / D, e = idx % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DW; w++) M = fmaxf(M, Mw[w * DROWS + r]);
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int w = 0; w < DW; w++) {
            float mw = Mw[w * DROWS + r];
            float wt = mw == -INFINITY ? 0.0f : exp2f(mw - M);
            L += wt * Lw[w * DROWS + r];
            A += wt * Aw[(size_t)(w * DROWS + r) * D + e];
        }
        if (NS == 1) {
            o[(size_t)(sp.row0 + r / gq) * ldo + (size_t)(kvh * gq + r % gq) * D + e] = A / L;
        } else {
            float *pr = part + ((((size_t)blockIdx.z * Hkv + kvh) * NS + split) * DROWS + r) * (D + 2);
            pr[e] = A;
            if (e == 0) {
                pr[D] = M;
                pr[D + 1] = L;
            }
        }
    }
}

/* Merges gqa_dec's NS partial softmaxes of one row, in split order: block
 * (row, kv head, span), one thread per output channel. The splits' maxima
 * and sums go through shared memory once, so the channel loop is NS
 * independent loads (gqa_merge, one block per (kv head, span) walking rows
 * and splits serially, took ~10 us per row at NS = 64). */
constexpr int DEC_NS_MAX = 64;
__global__ void gqa_dec_merge(float *__restrict__ o, int ldo, const rl_cu_span *__restrict__ spans,
                              int H, int Hkv, int D, int NS, const float *__restrict__ part) {
    __shared__ float wm[DEC_NS_MAX], wl[DEC_NS_MAX];
    const rl_cu_span sp = spans[blockIdx.z];
    const int r = blockIdx.x, kvh = blockIdx.y, gq = H / Hkv;
    if (r >= sp.n * gq) return; /* whole block */
    const float *p0 = part + ((((size_t)blockIdx.z * Hkv + kvh) * NS) * DROWS + r) * (D + 2);
    const size_t sstride = (size_t)DROWS * (D + 2);
    for (int s = threadIdx.x; s < NS; s += blockDim.x) {
        wm[s] = p0[s * sstride + D];
        wl[s] = p0[s * sstride + D + 1];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int s = 0; s < NS; s++) M = fmaxf(M, wm[s]);
    __syncthreads();
    if (threadIdx.x == 0) {
        /* split weights, in place */
        for (int s = 0; s < NS; s++) wm[s] = wm[s] == -INFINITY ? 0.0f : exp2f(wm[s] - M);
    }
    __syncthreads();
    float L = 0.0f;
    for (int s = 0; s < NS; s++) L += wm[s] * wl[s];
    float *orow = o + (size_t)(sp.row0 + r / gq) * ldo + (size_t)(kvh * gq + r % gq) * D;
    for (int e = threadIdx.x; e < D; e += blockDim.x) {
        float A = 0.0f;
#pragma unroll 8
        for (int s = 0; s < NS; s++) A += wm[s] * p0[s * sstride + e];
        orow[e] = A / L;
    }
}

} // namespace

bool rl_cu_gqa_dec_on(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("RL_CUDA_GQA_DEC");
        v = !(e && atoi(e) == 0);
    }
    return v != 0;
}

template <int D>
static int launch_dec(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
                      int n_spans, int max_n, const int *const *page_tables, const uint16_t *pool,
                      size_t page_elems, int layer, int H, int Hkv, float sl2, cudaStream_t st) {
    const int gq = H / Hkv;
    /* the pages of each (span, kv head) split over enough blocks for two per SM */
    int pairs = n_spans * Hkv, NS = (2 * rl_cu_sm_count() + pairs - 1) / pairs;
    if (NS > DEC_NS_MAX) NS = DEC_NS_MAX;
    float *part = nullptr;
    if (NS > 1) {
        /* one size whatever the batch: with NS > 1, pairs < 2 SMs and pairs * NS <
         * 2 SMs + pairs < 4 SMs, so the scratch never grows between batch sizes (a
         * growth synchronizes the device and invalidates captured decode graphs) */
        size_t need = (size_t)pairs * NS * DROWS * (D + 2) * sizeof(float);
        size_t fixed = (size_t)4 * rl_cu_sm_count() * DROWS * (D + 2) * sizeof(float);
        void *w = nullptr;
        RL_CU_TRY(rl_cu_attn_ws(RL_CU_WS_GQA, need > fixed ? need : fixed, &w));
        part = (float *)w;
    }
    static bool attr_set = false; /* one per instantiation */
    if (!attr_set) {
        RL_CU_TRY(cudaFuncSetAttribute(gqa_dec<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)dec_smem<D>()));
        attr_set = true;
    }
    gqa_dec<D><<<dim3(NS, Hkv, n_spans), 32 * DW, dec_smem<D>(), st>>>(
        qkv, ldqkv, o, ldo, spans, page_tables, pool, page_elems, layer, H, Hkv, sl2, NS, part);
    RL_CU_LAUNCHED();
    if (NS > 1) {
        gqa_dec_merge<<<dim3(max_n * gq, Hkv, n_spans), D, 0, st>>>(o, ldo, spans, H, Hkv, D, NS,
                                                                      part);
        RL_CU_LAUNCHED();
    }
    return 0;
}

int rl_cu_gqa_dec(const float *qkv, int ldqkv, float *o, int ldo, const rl_cu_span *spans,
                  int n_spans, int max_n, const int *const *page_tables, const uint16_t *pool,
                  size_t page_elems, int layer, int H, int Hkv, int D, float sl2, cudaStream_t st) {
    if (max_n * (H / Hkv) > DROWS) return (int)cudaErrorInvalidValue;
    if (D == 128)
        return launch_dec<128>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                               page_elems, layer, H, Hkv, sl2, st);
    if (D == 64)
        return launch_dec<64>(qkv, ldqkv, o, ldo, spans, n_spans, max_n, page_tables, pool,
                              page_elems, layer, H, Hkv, sl2, st);
    return (int)cudaErrorInvalidValue;
}
