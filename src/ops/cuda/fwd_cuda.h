/* Kernels of the device forward other than attention (attn_cuda.h): GEMMs,
 * norms, RoPE, gates, MoE routing and combine, weight conversion. Plain C
 * launchers (callable from step_cuda.c); every pointer is a device pointer;
 * each returns 0 or the CUDA error code of the launch.
 *
 * Determinism: every kernel reduces in a fixed order that depends only on
 * the reduced length (block sizes are constants), never on the number of
 * rows or a row's place in the launch. rl_cu_wgemm in particular computes an
 * output element with the same FMAs for any T, tile or grouping: lane l of a
 * warp sums k = 8l..8l+7 (+256j, ascending) with fmaf, then the 32 lane
 * partials combine in one fixed butterfly. */
#ifndef RL_OPS_CUDA_FWD_CUDA_H
#define RL_OPS_CUDA_FWD_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[r][o] (= or +=) sum_k x[xr(r)][k] * W_e[o][k], fp32 activations and
 * accumulation, W bf16 (w_f32 = 0) or fp32 (w_f32 = 1), [N][K] row-major.
 * Dense (offsets == NULL): rows r < T, xr(r) = r, yr(r) = r, e = 0.
 * Grouped (MoE): rows are sorted by expert, expert e owns rows
 * [offsets[e], offsets[e+1]) and tiles [tile_off[e], tile_off[e+1]) of 8 rows;
 * W_e = W + e * wstride elements; xr(r) = xrow ? xrow[r] / xdiv : r and
 * yr(r) = yrow ? yrow[r] : r. max_tiles bounds tile_off[E] (the launch size). */
typedef struct rl_cu_gemm {
    const void *W;
    int w_f32, N, K;
    size_t wstride;
    const float *x;
    int ldx;
    const int *xrow;
    int xdiv;
    float *y;
    int ldy;
    const int *yrow;
    int accumulate;
    int T;
    const int *offsets, *tile_off;
    int E, max_tiles;
} rl_cu_gemm;
int rl_cu_wgemm(const rl_cu_gemm *g, void *stream);

/* x[t] = float(E[ids[t]]), E [V][dim] bf16 (e_f32 = 0) or fp32. */
int rl_cu_embed(const void *E, int e_f32, const int *ids, int T, int dim, float *x, void *stream);

/* y[r] = w * (x[r] * 1/sqrt(mean(x[r]^2) + eps)) (y may be x); ybf (may be
 * NULL) also gets y rounded to bf16, row stride dim. */
int rl_cu_rmsnorm(const float *x, int T, int dim, const float *w, float eps, float *y,
                  uint16_t *ybf, void *stream);

/* In place on qkv rows (stride ld): SiLU over the first silu_width columns
 * (0: none), then QK-norm (qn/kn, NULL: none) and partial NeoX RoPE (rot > 0,
 * cos/sin per token in cs [T][rot]) of nq query heads at column 0 and nk key
 * heads at column nq*D. */
int rl_cu_qk_prep(float *qkv, int T, int ld, int nq, int nk, int D, int silu_width,
                  const float *qn, const float *kn, float eps, int rot, const float *cs,
                  void *stream);

/* Lightning output group RMSNorm and sigmoid gate (SPEC §3.5 steps 8-9). */
int rl_cu_group_norm_gate(const float *o, const float *gate, int T, int dim, int groups,
                          const float *w, float eps, float *y, void *stream);

/* h1[i] = silu(h1[i]) * h2[i], n elements. */
int rl_cu_swiglu(float *h1, const float *h2, size_t n, void *stream);

/* y[i] = bf16(x[i]) for rows of dim floats (x stride ldx, y dense). */
int rl_cu_to_bf16(const float *x, int rows, int dim, int ldx, uint16_t *y, void *stream);

/* Steps of at most this many rows run a library GEMM's hi and lo parts as one
 * GEMM of 2T rows (the weights read once), then rl_cu_add_halves. */
enum { RL_CU_STACK_T = 16 };

/* y[t][o] = (acc ? y[t][o] : 0) + (y2[t][o] + y2[T + t][o]), t < T, o < N
 * (y2 dense [2T][N], y stride ldy). */
int rl_cu_add_halves(const float *y2, int T, int N, float *y, int ldy, int acc, void *stream);

/* dst[i] = src[rows[i]] for n rows of dim floats. */
int rl_cu_gather_rows(const float *src, const int *rows, int n, int dim, float *dst,
                      void *stream);

/* MoE router (src/model/router.c on the device): per token, sigmoid of the
 * logits [T][E], group-limited top-k with bias for selection only, ties to
 * the lower index, normalized weights times scale. scratch: T*(3E+2G) floats. */
int rl_cu_route(const float *logits, int T, int E, int K, int G, int topk_group,
                float scale, const float *bias, float *scratch, int *sel, float *wt,
                void *stream);

/* Sorts the T*K assignments (t*K + r) by expert, keeping (t, r) order within
 * an expert: rows[offsets[e] ..] = assignment ids; tile_off[e] = first tile
 * of tile_rows rows of expert e (8 for rl_cu_wgemm, RL_CU_MMA_TOKENS for
 * rl_cu_moe_mma). counts: E ints of scratch. Up to 1024 assignments and
 * experts it runs as one block (one launch instead of three; same output). */
int rl_cu_moe_bucket(const int *sel, int TK, int E, int tile_rows, int *counts, int *offsets,
                     int *tile_off, int *rows, void *stream);

/* Tensor-core grouped expert GEMM of the default mode (moe_mma_cuda.cu):
 * y[yr(r)][o] (= or +=) sum_k x[xr(r)][k] * W_e[o][k] with bf16 W and x, fp32
 * accumulation and y, rows sorted by expert as in rl_cu_gemm's grouped form
 * but with tiles of RL_CU_MMA_TOKENS rows (tile_off from rl_cu_moe_bucket
 * with that tile size); max_tiles bounds tile_off[E]. W2/y2 (may be NULL):
 * a second matrix of the same shape computed in the same launch (gate and
 * up). x_lo (may be NULL): the activations' low parts (x = x + x_lo, see
 * rl_cu_bf16_lo), two mma per fragment. Needs rl_cu_moe_mma_ok (K and ldx
 * multiples of 8, 16-byte aligned x and W); the sum order depends on the
 * tile, not only on k (default mode only). */
enum { RL_CU_MMA_TOKENS = 64 };
typedef struct rl_cu_moe_mma_args {
    const void *W, *W2;
    int N, K;
    size_t wstride;
    const uint16_t *x, *x_lo; /* x_lo (may be NULL): bf16(x - x_hi), same layout */
    int ldx;
    const int *xrow;
    int xdiv;
    float *y, *y2;
    int ldy;
    const int *yrow;
    int accumulate;
    const int *offsets, *tile_off;
    int E, max_tiles;
} rl_cu_moe_mma_args;
int rl_cu_moe_mma_ok(int K, int ldx, const void *x, const void *W, size_t wstride);
int rl_cu_moe_mma(const rl_cu_moe_mma_args *p, void *stream);

/* s = silu(h1[i]) * h2[i] as hi[i] = bf16(s) and lo[i] = bf16(s - hi[i]) (n
 * elements): the input of the tensor-core down projection. */
int rl_cu_swiglu_bf16(const float *h1, const float *h2, size_t n, uint16_t *hi, uint16_t *lo,
                      void *stream);

/* lo[r][i] = bf16(x[r][i] - bf16(x[r][i])) for rows of dim floats (x stride
 * ldx, lo dense): the low part beside the bf16 copy rl_cu_rmsnorm writes. */
int rl_cu_bf16_lo(const float *x, int rows, int dim, int ldx, uint16_t *lo, void *stream);

/* x[t] += sum_r wt[t][r] * yk[t*K + r] (+ ys[t] when ys != NULL), in the CPU's
 * order. */
int rl_cu_moe_combine(float *x, const float *yk, const float *wt, const float *ys, int T, int K,
                      int dim, void *stream);

/* Weight conversion at upload: n elements of src (dtype: 0 f32, 1 f16, 2
 * bf16) to bf16 or to fp32. F8 E4M3 with block scales to bf16 or fp32. */
int rl_cu_convert_bf16(const void *src, int dtype, size_t n, uint16_t *dst, void *stream);
int rl_cu_convert_f32(const void *src, int dtype, size_t n, float *dst, void *stream);
int rl_cu_f8_dequant(const uint8_t *src, int rows, int cols, const float *scale, int sbr,
                     int sbc, void *dst, int dst_f32, void *stream);
/* bf16 uniform values in [-bound, bound) from a hash of (seed, index): the
 * random weights of benchmark models built without a checkpoint. */
int rl_cu_fill_random_bf16(uint16_t *dst, size_t n, uint64_t seed, float bound, void *stream);

#ifdef __cplusplus
}
#endif

#endif
