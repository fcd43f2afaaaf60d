/* Token sampling on the device (contract: sample_cuda.h). One block of 1024
 * threads per row:
 *   1. penalties (when the draw has any) on a copy of the row in scratch,
 *      with the host's float operations, rounded one by one (no FMA);
 *   2. greedy: the first maximum (block argmax, ties to the lower id); or
 *      top-k: a radix select of the k-th largest composite key (value key in
 *      the high 32 bits, ~id in the low: every key distinct, larger = earlier
 *      in the host's (value desc, id asc) order) in 8 passes of 8 bits, the k
 *      keys at or above it gathered and bitonic-sorted; the exps of the
 *      softmax and of the temperature pass computed in parallel, then one
 *      thread runs the host's sums, top-p, min-p and draw in its order;
 *   3. rl_logprob of the token: block max and a double sum of exp(l - max).
 * Grid = rows; the rows' draws are independent (one sequence each). */
#include <math.h>
#include <stdint.h>

#include "ops/cuda/attn_mma.cuh"
#include "ops/cuda/sample_cuda.h"

namespace {

constexpr int NT = 1024;
static_assert(NT == RL_CU_SAMPLE_MAX_K, "one candidate per thread");

/* float -> unsigned key with the same order (-0 taken as +0, as == does) */
__device__ __forceinline__ uint32_t vkey(float x) {
    uint32_t u = __float_as_uint(x);
    if (u == 0x80000000u) u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_val(uint64_t k) {
    uint32_t u = (uint32_t)(k >> 32);
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}
__device__ __forceinline__ int key_id(uint64_t k) { return (int)~(uint32_t)k; }
__device__ __forceinline__ uint64_t ckey(float x, int id) {
    return ((uint64_t)vkey(x) << 32) | (uint64_t)(~(uint32_t)id);
}

struct Shared {
    uint64_t keys[NT];
    double e1[NT], e2[NT]; /* exp(v - mx), exp((v - mx) / temperature) of the candidates */
    unsigned hist[256];
    float wf[32];
    int wi[32];
    double wd[32];
    uint64_t prefix;
    int remaining, n_cand, token;
    float mx;
};

/* block-wide (value, id) argmax, first maximum; result valid in thread 0 */
__device__ int block_argmax(Shared &sh, float bv, int bi) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, m);
        int oi = __shfl_xor_sync(0xffffffffu, bi, m);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if (lane == 0) {
        sh.wf[w] = bv;
        sh.wi[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < NT / 32; i++)
            if (sh.wf[i] > bv || (sh.wf[i] == bv && sh.wi[i] < bi)) {
                bv = sh.wf[i];
                bi = sh.wi[i];
            }
    }
    return bi;
}

__device__ float block_max(Shared &sh, float x) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, m));
    if (lane == 0) sh.wf[w] = x;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < NT / 32; i++) x = fmaxf(x, sh.wf[i]);
        sh.mx = x;
    }
    __syncthreads();
    return sh.mx;
}

__device__ double block_sum(Shared &sh, double x) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) x += __shfl_xor_sync(0xffffffffu, x, m);
    if (lane == 0) sh.wd[w] = x;
    __syncthreads();
    double s = 0;
    if (threadIdx.x == 0)
        for (int i = 0; i < NT / 32; i++) s += sh.wd[i];
    return s; /* thread 0 */
}

/* the top-k draw (host: rl_sampler_pick after the top-k heap); thread 0's
 * return value is the token */
__device__ int topk_draw(Shared &sh, const float *v, int n, const rl_cu_sample_args &a) {
    const int tid = threadIdx.x, k = a.top_k;
    if (tid == 0) {
        sh.prefix = 0;
        sh.remaining = k;
        sh.n_cand = 0;
    }
    __syncthreads();
    for (int pass = 0; pass < 8; pass++) {
        int shift = 56 - 8 * pass;
        if (tid < 256) sh.hist[tid] = 0;
        __syncthreads();
        uint64_t pre = sh.prefix;
        for (int i = tid; i < n; i += NT) {
            uint64_t key = ckey(v[i], i);
            if (pass == 0 || (key >> (shift + 8)) == (pre >> (shift + 8)))
                atomicAdd(&sh.hist[(key >> shift) & 255], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            int rem = sh.remaining;
            unsigned cum = 0;
            for (int b = 255; b >= 0; b--) {
                if (cum + sh.hist[b] >= (unsigned)rem) {
                    sh.remaining = rem - (int)cum;
                    sh.prefix = pre | ((uint64_t)b << shift);
                    break;
                }
                cum += sh.hist[b];
            }
        }
        __syncthreads();
    }
    /* keys are distinct: exactly k are >= the k-th largest */
    const uint64_t T = sh.prefix;
    sh.keys[tid] = 0; /* padding sorts last */
    __syncthreads();
    for (int i = tid; i < n; i += NT) {
        uint64_t key = ckey(v[i], i);
        if (key >= T) sh.keys[atomicAdd(&sh.n_cand, 1)] = key;
    }
    __syncthreads();
    for (int k2 = 2; k2 <= NT; k2 <<= 1)
        for (int j = k2 >> 1; j > 0; j >>= 1) {
            int o = tid ^ j;
            if (o > tid) {
                uint64_t x = sh.keys[tid], y = sh.keys[o];
                bool desc = (tid & k2) == 0;
                if (desc ? x < y : x > y) {
                    sh.keys[tid] = y;
                    sh.keys[o] = x;
                }
            }
            __syncthreads();
        }
    /* the host's double softmax over the sorted candidates */
    double mx = (double)key_val(sh.keys[0]);
    if (tid < k) {
        double d = (double)key_val(sh.keys[tid]) - mx;
        sh.e1[tid] = exp(d);
        sh.e2[tid] = exp(d / (double)a.temperature);
    }
    __syncthreads();
    int pick = 0;
    if (tid == 0) {
        int kk = k;
        double sum = 0;
        for (int i = 0; i < kk; i++) sum += sh.e1[i];
        for (int i = 0; i < kk; i++) sh.e1[i] /= sum;
        if (a.top_p < 1.0f) {
            double c = 0;
            int keep = kk;
            for (int i = 0; i < kk; i++) {
                c += sh.e1[i];
                if (c >= a.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            kk = keep;
        }
        if (a.min_p > 0.0f) {
            int keep = 1;
            while (keep < kk && sh.e1[keep] >= a.min_p * sh.e1[0]) keep++;
            kk = keep;
        }
        sum = 0;
        for (int i = 0; i < kk; i++) sum += sh.e2[i];
        double u = a.u01 * sum, c = 0;
        pick = key_id(sh.keys[kk - 1]);
        for (int i = 0; i < kk; i++) {
            c += sh.e2[i];
            if (u < c) {
                pick = key_id(sh.keys[i]);
                break;
            }
        }
    }
    return pick;
}

__global__ void __launch_bounds__(NT) sample_rows(const float *__restrict__ logits, int V,
                                                  const rl_cu_sample_args *__restrict__ args,
                                                  const int *__restrict__ pen_tok,
                                                  const int *__restrict__ pen_cnt,
                                                  float *__restrict__ scratch, int *token,
                                                  float *logprob) {
    __shared__ Shared sh;
    const int row = blockIdx.x, tid = threadIdx.x;
    const rl_cu_sample_args a = args[row];
    const float *lg = logits + (size_t)a.row * V, *v = lg;
    int n = a.n_valid < V ? a.n_valid : V;
    if (n < 1) n = 1;
    if (a.penalize && a.n_pen > 0) {
        float *w = scratch + (size_t)row * V;
        for (int i = tid; i < n; i += NT) w[i] = lg[i];
        __syncthreads();
        for (int i = tid; i < a.n_pen; i += NT) { /* distinct tokens: no write conflicts */
            int t = pen_tok[a.pen_off + i], cnt = pen_cnt[a.pen_off + i];
            if (t >= 0 && t < n) {
                float x = w[t];
                x = x <= 0 ? __fmul_rn(x, a.repeat_penalty) : __fdiv_rn(x, a.repeat_penalty);
                x = __fsub_rn(x, __fadd_rn(__fmul_rn((float)cnt, a.frequency_penalty),
                                           a.presence_penalty));
                w[t] = x;
            }
        }
        __syncthreads();
        v = w;
    }
    int tok;
    if (a.temperature <= 0.0f) {
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        for (int i = tid; i < n; i += NT) {
            float x = v[i];
            if (bi == 0x7fffffff || x > bv) {
                bv = x;
                bi = i;
            }
        }
        tok = block_argmax(sh, bv, bi);
    } else {
        tok = topk_draw(sh, v, n, a);
    }
    if (tid == 0) sh.token = tok;
    __syncthreads();
    tok = sh.token;
    /* rl_logprob over all V raw logits */
    float m = -INFINITY;
    for (int i = tid; i < V; i += NT) m = fmaxf(m, lg[i]);
    m = block_max(sh, m);
    double s = 0;
    for (int i = tid; i < V; i += NT) s += exp((double)lg[i] - (double)m);
    s = block_sum(sh, s);
    if (tid == 0) {
        token[row] = tok;
        logprob[row] = (float)(((double)lg[tok] - (double)m) - log(s));
    }
}

} // namespace

extern "C" int rl_cu_sample_ok(const rl_cu_sample_args *a) {
    if (a->temperature <= 0.0f) return 1;
    return a->top_k >= 1 && a->top_k <= RL_CU_SAMPLE_MAX_K && a->top_k < a->n_valid;
}

extern "C" int rl_cu_sample(const float *logits, int V, int rows, const rl_cu_sample_args *args,
                            const int *pen_tok, const int *pen_cnt, float *scratch, int *token,
                            float *logprob, void *stream) {
    if (rows <= 0) return 0;
    if (V <= 0) return (int)cudaErrorInvalidValue;
    sample_rows<<<rows, NT, 0, (cudaStream_t)stream>>>(logits, V, args, pen_tok, pen_cnt, scratch,
                                                       token, logprob);
    RL_CU_LAUNCHED();
    return 0;
}
