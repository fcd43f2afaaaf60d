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
 * partials combine in one fixed butterfly. rl_cu_moe_mma with fixed_order
 * (the deterministic mode's bf16-weight GEMMs) does the same on tensor
 * cores: one accumulator per output, mma.sync k16 steps in ascending k, the
 * hi then the lo part of x at each step, for any T, tile or grouping. */
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

/* Tensor-core grouped expert GEMM (moe_mma_cuda.cu): y[yr(r)][o] (= or +=)
 * sum_k x[xr(r)][k] * W_e[o][k] with bf16 W and x, fp32 accumulation and y,
 * rows sorted by expert as in rl_cu_gemm's grouped form but with tiles of
 * RL_CU_MMA_TOKENS rows (tile_off from rl_cu_moe_bucket with that tile
 * size); max_tiles bounds tile_off[E]. Dense form (offsets == NULL): rows r
 * < T, expert 0 (max_tiles, tile_off and E unused). W2/y2 (may be NULL): a
 * second matrix of the same shape computed in the same launch (gate and
 * up). x_lo (may be NULL): the activations' low parts (x = x + x_lo, see
 * rl_cu_bf16_lo), two mma per fragment. Needs rl_cu_moe_mma_ok (K and ldx
 * multiples of 8, 16-byte aligned x and W). Without fixed_order the sum
 * order depends on the tile, not only on k (default mode). fixed_order
 * (needs x_lo; the deterministic mode): one kernel whatever RL_CUDA_MMA, T
 * or the device, in which y[r][o] is the same mma.sync sequence (k16 steps
 * ascending, hi then lo, one fp32 accumulator) for any T, tile, grouping or
 * place of the row: bitwise batch- and split-invariant. */
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
    int T;           /* the dense form's rows (offsets == NULL) */
    int fixed_order; /* the batch-invariant kernel (deterministic mode) */
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

/* hi[r][i] = bf16(x[r][i]) and lo[r][i] = bf16(x[r][i] - hi[r][i]) in one
 * pass (x stride ldx, hi and lo dense): rl_cu_to_bf16 + rl_cu_bf16_lo, for
 * the deterministic mode, whose norms write no bf16 copy. */
int rl_cu_split_bf16(const float *x, int rows, int dim, int ldx, uint16_t *hi, uint16_t *lo,
                     void *stream);

/* x[t] += sum_r wt[t][r] * yk[t*K + r] (+ ys[t] when ys != NULL), in the CPU's
 * order. */
int rl_cu_moe_combine(float *x, const float *yk, const float *wt, const float *ys, int T, int K,
                      int dim, void *stream);

/* ---- small batches, default mode (decode_cuda.cu) ----
 * GEMVs that read each weight once with many loads in flight, fp32
 * activations and accumulation (no bf16 hi/lo split). */

/* y_m[t][o] (= or +=) sum_k x[t][k] * W_m[o][k] for up to 3 bf16 matrices
 * [N_m][K] sharing x (one launch: e.g. QKV and the gate projection), T <=
 * RL_CU_GEMV_T rows. Needs rl_cu_gemv_ok. blk0: filled by the launcher. */
enum { RL_CU_GEMV_T = 4 };
typedef struct rl_cu_gemv_args {
    const void *W[3];
    float *y[3];
    int N[3], ldy[3];
    int n, K;
    const float *x;
    int ldx, T, accumulate;
    int blk0[4];
} rl_cu_gemv_args;
int rl_cu_gemv_ok(int K, int ldx, const void *x, const void *W);
int rl_cu_gemv(rl_cu_gemv_args *p, void *stream);

/* Whether the small-batch MoE kernels take this shape (E <= 256, K <= 32,
 * T*K <= 1024, G <= 32). */
int rl_cu_moe_small_ok(int E, int T, int K, int G);

/* Router logits (fp32 router [E][hid], bitwise rl_cu_wgemm's) into logits
 * [T][E]; with route (rl_cu_moe_small_ok), in the same launch, the routing of
 * rl_cu_route into sel/wt and the bucketing of rl_cu_moe_bucket (offsets
 * [E+1], rows [T*K]); act [E+1]: act[s] = the s-th expert chosen by some
 * token (ascending), act[E] = their number. counter: one int, 0 before the
 * launch (the launch leaves it 0). */
typedef struct rl_cu_route_small_args {
    const float *router, *x, *bias;
    int route, ldx, hid, T, E, K, G, topk_group;
    float scale;
    float *logits, *wt;
    int *sel, *offsets, *rows, *act, *counter;
} rl_cu_route_small_args;
int rl_cu_moe_route_small(const rl_cu_route_small_args *p, void *stream);

/* The experts of rl_cu_moe_route_small's routing plus the shared expert
 * (s_gate/s_up/s_down, may be NULL) in two launches: h[r] = silu(gate . x) *
 * (up . x) per sorted row r (rows T*K + t: the shared expert's), then yk[a]
 * = down . h for assignment a = t*K + r and ys[t] for the shared expert
 * (rl_cu_moe_combine's inputs). h: (T*K + T) rows of stride ldh >= max(I, sI). */
typedef struct rl_cu_moe_small_args {
    const void *e_gate, *e_up, *e_down; /* [E][I][hid], [E][I][hid], [E][hid][I] bf16 */
    const void *s_gate, *s_up, *s_down; /* [sI][hid], [sI][hid], [hid][sI] */
    int hid, I, sI, T, K, E;
    const float *x;
    int ldx;
    float *h;
    int ldh;
    float *yk, *ys;
    const int *offsets, *rows, *act;
} rl_cu_moe_small_args;
int rl_cu_moe_experts_small(const rl_cu_moe_small_args *p, void *stream);

/* rl_cu_rmsnorm for the default mode: the same result up to the order of the
 * sum of squares (a fixed order that depends only on dim), one block of 512
 * threads per row holding the row in registers (dim <= 4096; wider rows:
 * rl_cu_rmsnorm). */
int rl_cu_rmsnorm_fast(const float *x, int T, int dim, const float *w, float eps, float *y,
                       uint16_t *ybf, void *stream);
/* rl_cu_moe_combine then rl_cu_rmsnorm_fast of the updated rows (one launch):
 * x[t] += sum_r wt[t][r] yk[t*K+r] (+ ys[t]); y = norm(x). */
int rl_cu_moe_combine_norm(float *x, const float *yk, const float *wt, const float *ys, int T,
                           int K, int dim, const float *w, float eps, float *y, uint16_t *ybf,
                           void *stream);

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
