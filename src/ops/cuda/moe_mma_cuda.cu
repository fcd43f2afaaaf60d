/* Tensor-core grouped GEMM for the MoE experts in the default mode
 * (fwd_cuda.h rl_cu_moe_mma): bf16 weights and activations, fp32
 * accumulation; with fixed_order, also every bf16-weight GEMM of the
 * deterministic mode (see the end of this comment).
 *
 * Rows (assignments) are sorted by expert (rl_cu_moe_bucket with tiles of
 * RL_CU_MMA_TOKENS = 64 rows); a block owns 128 weight rows x one 64-row
 * tile of one expert, found from tile_off on the device, so the launch
 * needs no host copy of the counts (and can be captured in a graph). Grid:
 * x = weight row blocks, y = an upper bound of the tiles (blocks past
 * tile_off[E] exit), z = the matrix (gate and up in one launch).
 *
 * Operands: A = W_e [N][K] (k contiguous) in the mma's M, B = the token rows
 * [tokens][K] (k contiguous) in its N. The fp32 activations come as x_hi +
 * x_lo (x_hi = bf16(x), x_lo = bf16(x - x_hi)); the products are those of
 * bf16 weights with near-fp32 activations, as rl_cu_wgemm's (bf16 alone was
 * 1.6e-2 off the CPU's logits on a test model). The B tile holds the hi rows
 * then the lo rows of the same tokens, so one weight slice in shared memory
 * serves both, and the two halves of the result are added at the end.
 *
 * Staging: 256 threads copy 64-wide k slices (one 128-byte row per weight
 * or token row, 16-byte chunks XOR-swizzled by row % 8: the 128-byte swizzle
 * of wgmma, conflict-free for ldmatrix too) with cp.async, two slices ahead,
 * into a 3-stage ring (3 x 32 KB: two blocks per SM). Token rows are
 * gathered per row (xrow / xdiv); rows past the tile's end and weight rows
 * past N are clamped to a valid row for the loads and not stored; a slice
 * past K is zero-filled (K % 8 == 0: a chunk is wholly inside or outside).
 *
 * Compute, by default on sm_90 (H100/H200): wgmma (two warpgroups, 64 weight
 * rows each, m64nNk16 over the hi + lo rows; an expert's last, partial tile
 * uses the smallest N of 16/32/64/128 that holds its rows), the prefetch of
 * slice kt+2 issued after the wgmma of slice kt is (kind 4 below,
 * RL_CUDA_MMA=wgl). Kept for A/B (RL_CUDA_MMA): wg (prefetch before the
 * wgmma), wg4 (4 stages, one block per SM, a wgmma left running across the
 * barrier), wgp (3 stages, one slice ahead, a wgmma left running), sync
 * (also the default off sm_90: ldmatrix + mma.sync m16n8k16, 8 warps of 64
 * weight rows x 16 tokens, hi and lo into the same accumulators, warps past
 * the tile's rows skip the math), old (also with x_lo == NULL: the previous
 * kernel, 64 x 64 tiles, 4 warps, 32-wide slices).
 *
 * The deterministic mode (args.fixed_order) always runs kind sync, for the
 * experts and, in the dense form (offsets == NULL: the T rows in tiles of 64),
 * for its other bf16-weight GEMMs. Why that is batch- and split-invariant:
 * an mma.sync output element depends only on its row of A, its column of B
 * and its accumulator (attn_mma.cuh), and in kind sync every output (o, t)
 * is one accumulator, zeroed, then for each k16 step in ascending k (the
 * slices kt ascending, the four k16 steps of a slice ascending; zero-filled
 * past K, a function of K only) mma(hi) then mma(lo), stored once (plus y
 * with accumulate). Nothing of that depends on the tile's row count, the
 * row's place in it, the other rows or the grid: rows past the tile's end
 * only feed columns that are not stored, and warps past them skip whole. The
 * wgmma kinds are not: their N (16..128) follows the tile's row count. */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/fwd_cuda.h"
#include "ops/cuda/moe_tiles.cuh"

namespace {

/* Expert *e, first row *r0 and row count *nt of grid tile `tile` (tiles of `rows`
 * rows): grouped (rl_cu_moe_tile) or, offsets == NULL, the dense form (rows r < T,
 * expert 0). False: the block has no work. */
__device__ __forceinline__ bool mma_tile(const rl_cu_moe_mma_args &p, int tile, int rows,
                                         int *e, int *r0, int *nt) {
    if (p.offsets) return rl_cu_moe_tile(p.tile_off, p.offsets, p.E, tile, rows, e, r0, nt);
    *e = 0;
    *r0 = tile * rows;
    *nt = min(rows, p.T - *r0);
    return true;
}

/* ---- the previous kernel (RL_CUDA_MMA=old) ---- */


constexpr int BM = 64, BN = RL_CU_MMA_TOKENS, BK = 32, LDS = BK + 8, STAGES = 3, NTH = 128;
/* 3 stages x (A, B hi, B lo) x 64 rows x 40 bf16 = 46080 bytes: under the 48 KB of static
 * shared memory */

__device__ __forceinline__ void cp16(void *smem, const void *g, bool ok) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = ok ? 16 : 0; /* 0: the 16 bytes are zero-filled, nothing is read */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(g), "r"(n));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void mma16816(float *c, const unsigned *a, const unsigned *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <bool LO>
__global__ void __launch_bounds__(NTH) moe_mma_old_kernel(rl_cu_moe_mma_args p) {
    __shared__ __align__(16) uint16_t As[STAGES][BM][LDS];
    __shared__ __align__(16) uint16_t Bs[STAGES][BN][LDS];
    __shared__ __align__(16) uint16_t Bl[LO ? STAGES : 1][LO ? BN : 1][LDS];
    const uint16_t *W = (const uint16_t *)(blockIdx.z ? p.W2 : p.W);
    float *Y = blockIdx.z ? p.y2 : p.y;
    int e, r0, nt;
    if (!mma_tile(p, blockIdx.y, BN, &e, &r0, &nt)) return;
    int o0 = blockIdx.x * BM;
    if (nt <= 0 || o0 >= p.N) return; /* uniform over the block: before any barrier */
    W += (size_t)e * p.wstride;

    int tid = threadIdx.x;
    /* this thread's two 16-byte chunks of each operand slice: row c >> 2, k (c & 3) * 8 */
    const uint16_t *ga[2], *gb[2], *gl[2];
    int srow[2], skc[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = tid + i * NTH;
        srow[i] = c >> 2;
        skc[i] = (c & 3) * 8;
        ga[i] = W + (size_t)min(o0 + srow[i], p.N - 1) * p.K;
        int r = r0 + min(srow[i], nt - 1);
        int xi = p.xrow ? p.xrow[r] / p.xdiv : r;
        gb[i] = p.x + (size_t)xi * p.ldx;
        gl[i] = LO ? p.x_lo + (size_t)xi * p.ldx : nullptr;
    }
    int nk = (p.K + BK - 1) / BK;
    auto load = [&](int stage, int kt) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int k = kt * BK + skc[i];
            bool ok = k < p.K; /* K % 8 == 0: a chunk is wholly inside or outside */
            cp16(&As[stage][srow[i]][skc[i]], ok ? ga[i] + k : ga[i], ok);
            cp16(&Bs[stage][srow[i]][skc[i]], ok ? gb[i] + k : gb[i], ok);
            if (LO) cp16(&Bl[LO ? stage : 0][srow[i]][skc[i]], ok ? gl[i] + k : gl[i], ok);
        }
    };

    int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    int wm = (warp >> 1) * 32, wn = (warp & 1) * 32; /* the warp's 32 x 32 of the block tile */
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nk) load(s, s);
        cp_commit();
    }
    for (int kt = 0; kt < nk; kt++) {
        /* groups committed so far: STAGES-1+kt; all but the newest STAGES-2 done = slice kt */
        cp_wait<STAGES - 2>();
        /* slice kt visible to all; every warp is done with slice kt-1, whose stage the
         * prefetch below overwrites */
        __syncthreads();
        int nx = kt + STAGES - 1;
        if (nx < nk) load(nx % STAGES, nx);
        cp_commit();
        int st = kt % STAGES;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned a[2][4], b[4][2], bl[4][2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const uint16_t *r = &As[st][wm + i * 16 + g][kk + 2 * t];
                a[i][0] = *(const unsigned *)r;
                a[i][1] = *(const unsigned *)(r + 8 * LDS);
                a[i][2] = *(const unsigned *)(r + 8);
                a[i][3] = *(const unsigned *)(r + 8 * LDS + 8);
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint16_t *r = &Bs[st][wn + j * 8 + g][kk + 2 * t];
                b[j][0] = *(const unsigned *)r;
                b[j][1] = *(const unsigned *)(r + 8);
                if (LO) {
                    const uint16_t *rl = &Bl[LO ? st : 0][wn + j * 8 + g][kk + 2 * t];
                    bl[j][0] = *(const unsigned *)rl;
                    bl[j][1] = *(const unsigned *)(rl + 8);
                }
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    mma16816(acc[i][j], a[i], b[j]);
                    if (LO) mma16816(acc[i][j], a[i], bl[j]);
                }
        }
    }
    cp_wait<0>();

    /* c0, c1: weight row g, tokens 2t, 2t+1; c2, c3: weight row g + 8 */
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int q = 0; q < 2; q++) {
            int n = wn + j * 8 + 2 * t + q;
            if (n >= nt) continue;
            int r = r0 + n;
            float *yr = Y + (size_t)(p.yrow ? p.yrow[r] : r) * p.ldy;
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    int o = o0 + wm + i * 16 + g + 8 * h;
                    if (o < p.N) yr[o] = p.accumulate ? yr[o] + acc[i][j][2 * h + q]
                                                      : acc[i][j][2 * h + q];
                }
        }
}


/* ---- the new kernel ------------------------------------------------------------------ */

constexpr int XM = 128;              /* weight rows per block */
constexpr int XT = RL_CU_MMA_TOKENS; /* token rows per tile (64) */
constexpr int XK = 64;               /* k slice: 64 bf16 = one 128-byte row */
constexpr int XNTH = 256;
constexpr int A_BYTES = XM * 128, B_BYTES = 2 * XT * 128, ST_BYTES = A_BYTES + B_BYTES;
/* kernel kinds: 1 = mma.sync, 2 = wgmma with 3 stages (prefetch distance 2, each slice's
 * wgmma waited before the next barrier: two blocks per SM), 3 = wgmma with 4 stages
 * (distance 2, one wgmma group left in flight across the barrier: one block per SM),
 * 4 = kind 2 with the prefetch issued after the wgmma (copies issued while it runs),
 * 5 = 3 stages, distance 1, the prefetch after the wgmma, one wgmma group in flight */
__host__ __device__ constexpr int x_stages(int kind) { return kind == 3 ? 4 : 3; }
constexpr int x_smem(int kind) { return x_stages(kind) * ST_BYTES + 1024; } /* + 1024 alignment */
static_assert(XT == 64, "the B tile layout assumes 64 token rows");

__device__ __forceinline__ void cp16s(unsigned s, const void *g, bool ok) {
    int n = ok ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(g), "r"(n));
}

__device__ __forceinline__ void ldsm4(unsigned *r, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define RL_WGMMA 1
/* shared memory descriptor of a K-major tile with the 128-byte swizzle: rows of 128 bytes,
 * 8-row groups 1024 bytes apart (stride byte offset); the leading offset is unused with
 * this swizzle (1 by convention). The k16 steps inside a row advance the start address by
 * 32 bytes (the swizzle is applied on the address bits, the tile is 1024-aligned). */
__device__ __forceinline__ uint64_t wg_desc(unsigned addr) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) |
           ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* cp.async writes are generic-proxy writes; wgmma reads through the async proxy */
__device__ __forceinline__ void fence_async_smem() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void fence_reg(float &r) { asm volatile("" : "+f"(r)::"memory"); }

__device__ __forceinline__ void wgmma_n16(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7"
                 "}, %8, %9, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(da), "l"(db));
}
__device__ __forceinline__ void wgmma_n32(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15"
                 "}, %16, %17, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "l"(da), "l"(db));
}
__device__ __forceinline__ void wgmma_n64(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
                 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db));
}
__device__ __forceinline__ void wgmma_n128(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
                 "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
                 "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
                 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db));
}

template <int N> __device__ __forceinline__ void wgmma_bf16(float *d, uint64_t da, uint64_t db) {
    if constexpr (N == 16) wgmma_n16(d, da, db);
    else if constexpr (N == 32) wgmma_n32(d, da, db);
    else if constexpr (N == 64) wgmma_n64(d, da, db);
    else wgmma_n128(d, da, db);
}
#else
#define RL_WGMMA 0
#endif

/* One block: weight rows o0.. of expert W, token rows r0 .. r0+nt-1 (nt <= 64). H: token
 * rows held per half of the B tile (hi rows at 0.., lo rows at H..): 64 for mma.sync, the
 * smallest of 8/16/32/64 >= nt for wgmma (N = 2H). */
template <int KIND, int H>
__device__ __forceinline__ void x_body(const rl_cu_moe_mma_args &p, const uint16_t *W, float *Y,
                                       int r0, int nt, int o0, unsigned sbase) {
    constexpr bool WG = KIND >= 2;
    constexpr int NS = x_stages(KIND), PD = KIND == 5 ? 1 : 2;
    constexpr int WW = KIND == 3 || KIND == 5 ? 1 : 0;
    constexpr bool LATE = KIND >= 4; /* prefetch after the wgmma issue */
    /* the prefetched stage is neither the one of slice kt nor, with WW, that of kt-1 */
    static_assert(PD + 1 + WW <= NS, "pipeline stages");
    (void)WW; /* unused where wgmma is not compiled */
    int tid = threadIdx.x, c = tid & 7, rr = tid >> 3; /* chunk c of rows rr + 32 i */
    const uint16_t *ga[4], *gb[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int row = rr + 32 * i;
        ga[i] = W + (size_t)min(o0 + row, p.N - 1) * p.K;
        int tok = row < H ? row : row - H; /* rows >= 2H are not loaded */
        const uint16_t *src = row < H ? p.x : p.x_lo;
        int r = r0 + min(tok, nt - 1);
        int xi = p.xrow ? p.xrow[r] / p.xdiv : r;
        gb[i] = src + (size_t)xi * p.ldx;
    }
    int swz = (c ^ (rr & 7)) << 4; /* row & 7 == rr & 7 for all four rows */
    int nk = (p.K + XK - 1) / XK;
    auto load = [&](int stage, int kt) {
        int k = kt * XK + c * 8;
        bool ok = k < p.K;
        unsigned a = sbase + stage * ST_BYTES, b = a + A_BYTES;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            unsigned off = (unsigned)((rr + 32 * i) * 128 + swz);
            cp16s(a + off, ok ? ga[i] + k : ga[i], ok);
            if (rr + 32 * i < 2 * H) cp16s(b + off, ok ? gb[i] + k : gb[i], ok);
        }
    };

    int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    int wg = warp >> 2, wq = warp & 3; /* wg: 64 weight rows; wq: the warp in its group */
    constexpr int NACC = WG ? H : 32;
    float acc[NACC];
#pragma unroll
    for (int i = 0; i < NACC; i++) acc[i] = 0.0f;

#pragma unroll
    for (int s = 0; s < PD; s++) {
        if (s < nk) load(s, s);
        cp_commit();
    }
    for (int kt = 0; kt < nk; kt++) {
        cp_wait<PD - 1>(); /* this thread's copies of slice kt landed */
#if RL_WGMMA
        if constexpr (WG) fence_async_smem();
#endif
        /* slice kt visible to all; every warp is done with slice kt+PD-NS (its wgmma waited
         * before this barrier: all but the newest WW groups), whose stage the prefetch
         * overwrites */
        __syncthreads();
        int nx = kt + PD;
        if (!LATE) {
            if (nx < nk) load(nx % NS, nx);
            cp_commit();
        }
        unsigned sa = sbase + (kt % NS) * ST_BYTES, sb = sa + A_BYTES;
        if constexpr (WG) {
#if RL_WGMMA
            uint64_t da = wg_desc(sa + wg * 64 * 128), db = wg_desc(sb);
#pragma unroll
            for (int i = 0; i < NACC; i++) fence_reg(acc[i]);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < XK / 16; kk++)
                wgmma_bf16<2 * H>(acc, da + 2 * kk, db + 2 * kk);
            wg_commit();
            if (LATE) {
                if (nx < nk) load(nx % NS, nx);
                cp_commit();
            }
            wg_wait<WW>();
#pragma unroll
            for (int i = 0; i < NACC; i++) fence_reg(acc[i]);
#else
            __trap();
#endif
        } else if (wq * 16 < nt) { /* warp-uniform: warps past the tile's rows skip */
            /* fixed_order (the deterministic mode) relies on this path: each output's
             * sequence of mma (k16 steps ascending, hi then lo) must not depend on nt,
             * r0 or the tile (header comment) */
#pragma unroll
            for (int kk = 0; kk < XK / 16; kk++) {
                unsigned a[4][4], bh[4], bl[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int row = wg * 64 + i * 16 + (lane & 15), ch = 2 * kk + (lane >> 4);
                    ldsm4(a[i], sa + row * 128 + ((ch ^ (row & 7)) << 4));
                }
                int rb = wq * 16 + ((lane >> 4) & 1) * 8 + (lane & 7);
                int ch = 2 * kk + ((lane >> 3) & 1);
                unsigned ob = (unsigned)(rb * 128 + ((ch ^ (rb & 7)) << 4));
                ldsm4(bh, sb + ob);
                ldsm4(bl, sb + 64 * 128 + ob); /* (rb + 64) & 7 == rb & 7 */
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    mma16816(&acc[(i * 2 + 0) * 4], a[i], &bh[0]);
                    mma16816(&acc[(i * 2 + 0) * 4], a[i], &bl[0]);
                    mma16816(&acc[(i * 2 + 1) * 4], a[i], &bh[2]);
                    mma16816(&acc[(i * 2 + 1) * 4], a[i], &bl[2]);
                }
            }
        }
    }
    cp_wait<0>();
#if RL_WGMMA
    if constexpr (WG && WW > 0) {
        wg_wait<0>();
#pragma unroll
        for (int i = 0; i < NACC; i++) fence_reg(acc[i]);
    }
#endif

    if constexpr (WG) {
        /* m64nN: warp wq holds weight rows wq*16 + g (+8: q >= 2) of its group, columns
         * j*8 + 2t (+1: odd q); columns >= H are the lo half of column - H */
#pragma unroll
        for (int j = 0; j < H / 8; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                int n = j * 8 + 2 * t + (q & 1);
                int o = o0 + wg * 64 + wq * 16 + g + 8 * (q >> 1);
                if (n >= nt || o >= p.N) continue;
                float v = acc[j * 4 + q] + acc[(j + H / 8) * 4 + q];
                int r = r0 + n;
                float *yr = Y + (size_t)(p.yrow ? p.yrow[r] : r) * p.ldy;
                yr[o] = p.accumulate ? yr[o] + v : v;
            }
    } else {
        /* mma m16n8: c0, c1: weight row g, tokens 2t, 2t+1; c2, c3: weight row g + 8 */
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    int n = wq * 16 + j * 8 + 2 * t + (q & 1);
                    int o = o0 + wg * 64 + i * 16 + g + 8 * (q >> 1);
                    if (n >= nt || o >= p.N) continue;
                    float v = acc[(i * 2 + j) * 4 + q];
                    int r = r0 + n;
                    float *yr = Y + (size_t)(p.yrow ? p.yrow[r] : r) * p.ldy;
                    yr[o] = p.accumulate ? yr[o] + v : v;
                }
    }
}

template <int KIND>
__global__ void __launch_bounds__(XNTH, 2) moe_mma_x_kernel(rl_cu_moe_mma_args p) {
    extern __shared__ uint8_t x_shm[];
    const uint16_t *W = (const uint16_t *)(blockIdx.z ? p.W2 : p.W);
    float *Y = blockIdx.z ? p.y2 : p.y;
    int e, r0, nt;
    if (!mma_tile(p, blockIdx.y, XT, &e, &r0, &nt)) return;
    int o0 = blockIdx.x * XM;
    if (nt <= 0 || o0 >= p.N) return; /* uniform over the block: before any barrier */
    W += (size_t)e * p.wstride;
    unsigned sbase = ((unsigned)__cvta_generic_to_shared(x_shm) + 1023u) & ~1023u;
    if constexpr (KIND >= 2) { /* block-uniform choice of the wgmma width */
        if (nt > 32) x_body<KIND, 64>(p, W, Y, r0, nt, o0, sbase);
        else if (nt > 16) x_body<KIND, 32>(p, W, Y, r0, nt, o0, sbase);
        else if (nt > 8) x_body<KIND, 16>(p, W, Y, r0, nt, o0, sbase);
        else x_body<KIND, 8>(p, W, Y, r0, nt, o0, sbase);
    } else {
        x_body<KIND, 64>(p, W, Y, r0, nt, o0, sbase);
    }
}

/* 0: old kernel, 1..5: the kinds above. RL_CUDA_MMA=old|sync|wg|wg4|wgl|wgp; default kind 4
 * (wgl) on sm_90 (the sm_90a code of the build), mma.sync elsewhere. H200, bench_gemm --moe,
 * T=4096 mini / flash: wgl 1.037 / 3.504 ms, wg 1.047 / 3.574, wgp 1.320 / 4.460, wg4
 * 1.463 / 4.571 (other call), sync 1.549 / 5.671 (other call), old 3.083 / 12.349. */
int mma_kind() {
    static int kind = -1;
    if (kind < 0) {
        int dev = 0, major = 0, minor = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
        int sm90 = major == 9 && minor == 0, k = sm90 ? 4 : 1;
        const char *s = getenv("RL_CUDA_MMA");
        if (s && !strcmp(s, "old")) k = 0;
        else if (s && !strcmp(s, "sync")) k = 1;
        else if (s && sm90 && !strcmp(s, "wg")) k = 2;
        else if (s && sm90 && !strcmp(s, "wg4")) k = 3;
        else if (s && sm90 && !strcmp(s, "wgl")) k = 4;
        else if (s && sm90 && !strcmp(s, "wgp")) k = 5;
        kind = k;
    }
    return kind;
}

} // namespace

extern "C" int rl_cu_moe_mma_ok(int K, int ldx, const void *x, const void *W, size_t wstride) {
    return K > 0 && K % 8 == 0 && ldx % 8 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)W & 15) == 0 && wstride % 8 == 0;
}

extern "C" int rl_cu_moe_mma(const rl_cu_moe_mma_args *p, void *stream) {
    /* the grid's tiles: an upper bound (grouped) or the dense form's row tiles */
    int tiles = p->offsets ? p->max_tiles : (p->T + RL_CU_MMA_TOKENS - 1) / RL_CU_MMA_TOKENS;
    if (tiles <= 0 || p->N <= 0) return 0;
    if (!rl_cu_moe_mma_ok(p->K, p->ldx, p->x, p->W, p->wstride) ||
        (p->x_lo && ((uintptr_t)p->x_lo & 15)) || (p->W2 && ((uintptr_t)p->W2 & 15)) ||
        tiles > 65535 || (p->fixed_order && !p->x_lo))
        return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    /* fixed_order: kind sync whatever RL_CUDA_MMA or the device (header comment) */
    int kind = p->fixed_order ? 1 : p->x_lo ? mma_kind() : 0;
    if (kind == 0) {
        dim3 grid((p->N + BM - 1) / BM, tiles, p->W2 ? 2 : 1);
        if (p->x_lo)
            moe_mma_old_kernel<true><<<grid, NTH, 0, st>>>(*p);
        else
            moe_mma_old_kernel<false><<<grid, NTH, 0, st>>>(*p);
        return (int)cudaGetLastError();
    }
    /* over 48 KB of dynamic shared memory: opt in once per kernel */
    static int opted[5];
    void (*kern)(rl_cu_moe_mma_args) = kind == 5   ? moe_mma_x_kernel<5>
                                       : kind == 4 ? moe_mma_x_kernel<4>
                                       : kind == 3 ? moe_mma_x_kernel<3>
                                       : kind == 2 ? moe_mma_x_kernel<2>
                                                   : moe_mma_x_kernel<1>;
    int smem = x_smem(kind);
    if (!opted[kind - 1]) {
        int rc = (int)cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           smem);
        if (rc) return rc;
        opted[kind - 1] = 1;
    }
    dim3 grid((p->N + XM - 1) / XM, tiles, p->W2 ? 2 : 1);
    kern<<<grid, XNTH, smem, st>>>(*p);
    return (int)cudaGetLastError();
}
