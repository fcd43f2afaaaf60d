/* Row-wise kernels of the device forward: embedding gather, RMSNorm, SiLU +
 * QK-norm + partial RoPE, group RMSNorm + sigmoid gate, SwiGLU, bf16 copies
 * for the library GEMM, row gather. Sums of squares reduce in a fixed order
 * (strided per thread, then a fixed tree) that depends only on the length. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/fwd_cuda.h"

namespace {

constexpr int NT = 256;

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int s = 16; s >= 1; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    return v;
}

/* Sum over a block of NT threads, fixed order; every thread gets the total. */
__device__ float block_sum(float v, float *sh) {
    v = warp_sum(v);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    float t = 0.0f;
#pragma unroll
    for (int i = 0; i < NT / 32; i++) t += sh[i];
    return t;
}

__global__ void embed_kernel(const void *E, int e_f32, const int *ids, int dim, float *x) {
    size_t off = (size_t)ids[blockIdx.x] * dim;
    float *y = x + (size_t)blockIdx.x * dim;
    if (e_f32) {
        const float *row = (const float *)E + off;
        for (int i = threadIdx.x; i < dim; i += NT) y[i] = row[i];
    } else {
        const uint16_t *row = (const uint16_t *)E + off;
        for (int i = threadIdx.x; i < dim; i += NT) y[i] = __uint_as_float((uint32_t)row[i] << 16);
    }
}

__global__ void rmsnorm_kernel(const float *x, int dim, const float *w, float eps, float *y,
                               uint16_t *ybf) {
    __shared__ float sh[NT / 32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += NT) ss = fmaf(xr[i], xr[i], ss);
    ss = block_sum(ss, sh);
    float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    float *yr = y + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += NT) {
        float v = w[i] * (xr[i] * inv);
        yr[i] = v;
        if (ybf) ybf[(size_t)blockIdx.x * dim + i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
    }
}

/* one block per token; SiLU over the row, then one warp per head. The block
 * has a warp per head (8 to 32 warps: rl_cu_qk_prep), so that at decode,
 * where the step is one block, no warp takes a second head in turn. */
__global__ void __launch_bounds__(1024) qk_prep_kernel(float *qkv, int ld, int nq, int nk, int D,
                                                       int silu_width, const float *qn,
                                                       const float *kn, float eps, int rot,
                                                       const float *cs) {
    float *row = qkv + (size_t)blockIdx.x * ld;
    if (silu_width) {
        for (int i = threadIdx.x; i < silu_width; i += blockDim.x) row[i] = row[i] * sigmoidf_(row[i]);
        __syncthreads();
    }
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, half = rot / 2;
    const float *c = cs + (size_t)blockIdx.x * rot, *sn = c + half;
    for (int h = warp; h < nq + nk; h += blockDim.x / 32) {
        float *x = row + (size_t)h * D;
        const float *w = h < nq ? qn : kn;
        float inv = 1.0f;
        if (w) {
            float ss = 0.0f;
            for (int d = lane; d < D; d += 32) ss = fmaf(x[d], x[d], ss);
            ss = warp_sum(ss);
            inv = 1.0f / sqrtf(ss / (float)D + eps);
        }
        for (int j = lane; j < half; j += 32) {
            float a = x[j], b = x[j + half];
            if (w) {
                a = w[j] * (a * inv);
                b = w[j + half] * (b * inv);
            }
            x[j] = a * c[j] - b * sn[j];
            x[j + half] = b * c[j] + a * sn[j];
        }
        if (w)
            for (int d = rot + lane; d < D; d += 32) x[d] = w[d] * (x[d] * inv);
    }
}

/* one block of NT threads per (token, group): at decode the step's groups
 * run side by side (a block per token walked them one warp per group, ~10 us
 * per layer on an H200). Any group width (Ring: 512): the sum's loop is
 * unrolled so that a thread's loads are issued together; the output pass
 * reads the group again (L1 hits). */
__global__ void __launch_bounds__(NT) group_norm_gate_kernel(const float *o, const float *gate,
                                                             int dim, int groups, const float *w,
                                                             float eps, float *y) {
    __shared__ float sh[NT / 32];
    int gs = dim / groups, g = blockIdx.y;
    size_t base = (size_t)blockIdx.x * dim + (size_t)g * gs;
    float ss = 0.0f;
#pragma unroll 8
    for (int i = threadIdx.x; i < gs; i += NT) ss = fmaf(o[base + i], o[base + i], ss);
    float inv = 1.0f / sqrtf(block_sum(ss, sh) / (float)gs + eps);
#pragma unroll 4
    for (int i = threadIdx.x; i < gs; i += NT)
        y[base + i] = o[base + i] * inv * w[(size_t)g * gs + i] * sigmoidf_(gate[base + i]);
}

__global__ void swiglu_kernel(float *h1, const float *h2, size_t n) {
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT) {
        float g = h1[i];
        h1[i] = g * sigmoidf_(g) * h2[i];
    }
}

__device__ __forceinline__ void split_bf16(float v, uint16_t *hi, uint16_t *lo) {
    __nv_bfloat16 h = __float2bfloat16_rn(v);
    *hi = __bfloat16_as_ushort(h);
    *lo = __bfloat16_as_ushort(__float2bfloat16_rn(v - __bfloat162float(h)));
}

__global__ void swiglu_bf16_kernel(const float *h1, const float *h2, size_t n, uint16_t *hi,
                                   uint16_t *lo) {
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT) {
        float g = h1[i];
        split_bf16(g * sigmoidf_(g) * h2[i], hi + i, lo + i);
    }
}

__global__ void bf16_lo_kernel(const float *x, int dim, int ldx, uint16_t *lo) {
    const float *xr = x + (size_t)blockIdx.x * ldx;
    uint16_t *lr = lo + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += NT) {
        uint16_t h;
        split_bf16(xr[i], &h, lr + i);
    }
}

__global__ void split_bf16_kernel(const float *x, int dim, int ldx, uint16_t *hi, uint16_t *lo) {
    const float *xr = x + (size_t)blockIdx.x * ldx;
    size_t o = (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += NT) split_bf16(xr[i], hi + o + i, lo + o + i);
}

__global__ void to_bf16_kernel(const float *x, int dim, int ldx, uint16_t *y) {
    const float *xr = x + (size_t)blockIdx.x * ldx;
    uint16_t *yr = y + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += NT) yr[i] = __bfloat16_as_ushort(__float2bfloat16_rn(xr[i]));
}

__global__ void add_halves_kernel(const float *y2, int T, int N, float *y, int ldy, int acc) {
    size_t n = (size_t)T * N;
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT) {
        int t = (int)(i / N), o = (int)(i % N);
        float v = y2[i] + y2[n + i];
        float *d = y + (size_t)t * ldy + o;
        *d = acc ? *d + v : v;
    }
}

__global__ void gather_kernel(const float *src, const int *rows, int dim, float *dst) {
    const float *s = src + (size_t)rows[blockIdx.x] * dim;
    float *d = dst + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += NT) d[i] = s[i];
}

int grid_for(size_t n) {
    size_t b = (n + NT - 1) / NT;
    return (int)(b > 65536 ? 65536 : (b ? b : 1));
}

} // namespace

extern "C" {

int rl_cu_embed(const void *E, int e_f32, const int *ids, int T, int dim, float *x, void *stream) {
    if (T <= 0) return 0;
    embed_kernel<<<T, NT, 0, (cudaStream_t)stream>>>(E, e_f32, ids, dim, x);
    return (int)cudaGetLastError();
}

int rl_cu_rmsnorm(const float *x, int T, int dim, const float *w, float eps, float *y,
                  uint16_t *ybf, void *stream) {
    if (T <= 0) return 0;
    rmsnorm_kernel<<<T, NT, 0, (cudaStream_t)stream>>>(x, dim, w, eps, y, ybf);
    return (int)cudaGetLastError();
}

int rl_cu_qk_prep(float *qkv, int T, int ld, int nq, int nk, int D, int silu_width,
                  const float *qn, const float *kn, float eps, int rot, const float *cs,
                  void *stream) {
    if (T <= 0) return 0;
    int heads = nq + nk, threads = 32 * (heads < 8 ? 8 : heads > 32 ? 32 : heads);
    qk_prep_kernel<<<T, threads, 0, (cudaStream_t)stream>>>(qkv, ld, nq, nk, D, silu_width, qn,
                                                            kn, eps, rot, cs);
    return (int)cudaGetLastError();
}

int rl_cu_group_norm_gate(const float *o, const float *gate, int T, int dim, int groups,
                          const float *w, float eps, float *y, void *stream) {
    if (T <= 0) return 0;
    if (groups < 1 || dim % groups || groups > 65535)
        return (int)cudaErrorInvalidValue;
    group_norm_gate_kernel<<<dim3(T, groups), NT, 0, (cudaStream_t)stream>>>(o, gate, dim, groups,
                                                                             w, eps, y);
    return (int)cudaGetLastError();
}

int rl_cu_swiglu(float *h1, const float *h2, size_t n, void *stream) {
    if (!n) return 0;
    swiglu_kernel<<<grid_for(n), NT, 0, (cudaStream_t)stream>>>(h1, h2, n);
    return (int)cudaGetLastError();
}

int rl_cu_swiglu_bf16(const float *h1, const float *h2, size_t n, uint16_t *hi, uint16_t *lo,
                      void *stream) {
    if (!n) return 0;
    swiglu_bf16_kernel<<<grid_for(n), NT, 0, (cudaStream_t)stream>>>(h1, h2, n, hi, lo);
    return (int)cudaGetLastError();
}

int rl_cu_bf16_lo(const float *x, int rows, int dim, int ldx, uint16_t *lo, void *stream) {
    if (rows <= 0) return 0;
    bf16_lo_kernel<<<rows, NT, 0, (cudaStream_t)stream>>>(x, dim, ldx, lo);
    return (int)cudaGetLastError();
}

int rl_cu_split_bf16(const float *x, int rows, int dim, int ldx, uint16_t *hi, uint16_t *lo,
                     void *stream) {
    if (rows <= 0) return 0;
    split_bf16_kernel<<<rows, NT, 0, (cudaStream_t)stream>>>(x, dim, ldx, hi, lo);
    return (int)cudaGetLastError();
}

int rl_cu_to_bf16(const float *x, int rows, int dim, int ldx, uint16_t *y, void *stream) {
    if (rows <= 0) return 0;
    to_bf16_kernel<<<rows, NT, 0, (cudaStream_t)stream>>>(x, dim, ldx, y);
    return (int)cudaGetLastError();
}

int rl_cu_add_halves(const float *y2, int T, int N, float *y, int ldy, int acc, void *stream) {
    if (T <= 0 || N <= 0) return 0;
    add_halves_kernel<<<grid_for((size_t)T * N), NT, 0, (cudaStream_t)stream>>>(y2, T, N, y, ldy,
                                                                              acc);
    return (int)cudaGetLastError();
}

int rl_cu_gather_rows(const float *src, const int *rows, int n, int dim, float *dst,
                      void *stream) {
    if (n <= 0) return 0;
    gather_kernel<<<n, NT, 0, (cudaStream_t)stream>>>(src, rows, dim, dst);
    return (int)cudaGetLastError();
}

} // extern "C"
