/* Tensor-core grouped GEMM for the MoE experts in the default mode
 * (fwd_cuda.h rl_cu_moe_mma): bf16 weights and activations, fp32
 * accumulation, mma.sync m16n8k16. The deterministic mode keeps rl_cu_wgemm.
 *
 * Rows (assignments) are sorted by expert (rl_cu_moe_bucket with tiles of
 * MMA_TOKENS rows); a block owns 64 weight rows x one 64-row tile of one
 * expert, found from tile_off on the device, so the launch needs no host
 * copy of the counts (and could be captured in a graph). Grid: x = weight
 * row blocks, y = an upper bound of the tiles (blocks past tile_off[E] exit),
 * z = the matrix (gate and up in one launch).
 *
 * Operands: A = W_e [N][K] (row-major, k contiguous) in the mma's M, B = the
 * token rows [tokens][K] (k contiguous: the mma's "col" B) in its N. With
 * x_lo, the fp32 activations come as x_hi + x_lo (x_hi = bf16(x), x_lo =
 * bf16(x - x_hi), ~2^-16 relative of x together) and every fragment gets two
 * mma: the products are those of bf16 weights with near-fp32 activations,
 * as rl_cu_wgemm's (the first version rounded the activations to bf16 and
 * was 1.6e-2 off the CPU's logits on a test model). All are staged by cp.async in a 3-stage ring of 32-wide k slices; a shared row is
 * 40 bf16 (80 bytes) so the 32-bit fragment loads of a warp hit 32 distinct
 * banks (row g at word 20g + t). K must be a multiple of 8 (16-byte copies);
 * a slice past K is zero-filled. Out-of-range weight rows and token rows are
 * clamped to a valid row for the loads and not stored. */
#include <cuda_runtime.h>

#include "ops/cuda/fwd_cuda.h"

namespace {

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
__global__ void __launch_bounds__(NTH) moe_mma_kernel(rl_cu_moe_mma_args p) {
    __shared__ __align__(16) uint16_t As[STAGES][BM][LDS];
    __shared__ __align__(16) uint16_t Bs[STAGES][BN][LDS];
    __shared__ __align__(16) uint16_t Bl[LO ? STAGES : 1][LO ? BN : 1][LDS];
    const uint16_t *W = (const uint16_t *)(blockIdx.z ? p.W2 : p.W);
    float *Y = blockIdx.z ? p.y2 : p.y;
    int tile = blockIdx.y;
    if (tile >= p.tile_off[p.E]) return;
    int lo = 0, hi = p.E - 1; /* the last expert whose first tile <= tile */
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (p.tile_off[mid] <= tile) lo = mid;
        else hi = mid - 1;
    }
    int e = lo;
    int r0 = p.offsets[e] + (tile - p.tile_off[e]) * BN;
    int nt = min(BN, p.offsets[e + 1] - r0);
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

} // namespace

extern "C" int rl_cu_moe_mma_ok(int K, int ldx, const void *x, const void *W, size_t wstride) {
    return K > 0 && K % 8 == 0 && ldx % 8 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)W & 15) == 0 && wstride % 8 == 0;
}

extern "C" int rl_cu_moe_mma(const rl_cu_moe_mma_args *p, void *stream) {
    if (p->max_tiles <= 0 || p->N <= 0) return 0;
    if (!rl_cu_moe_mma_ok(p->K, p->ldx, p->x, p->W, p->wstride) ||
        (p->x_lo && ((uintptr_t)p->x_lo & 15)) || (p->W2 && ((uintptr_t)p->W2 & 15)) ||
        p->max_tiles > 65535)
        return (int)cudaErrorInvalidValue;
    dim3 grid((p->N + BM - 1) / BM, p->max_tiles, p->W2 ? 2 : 1);
    if (p->x_lo)
        moe_mma_kernel<true><<<grid, NTH, 0, (cudaStream_t)stream>>>(*p);
    else
        moe_mma_kernel<false><<<grid, NTH, 0, (cudaStream_t)stream>>>(*p);
    return (int)cudaGetLastError();
}
