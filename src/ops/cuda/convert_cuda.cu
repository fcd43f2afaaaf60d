/* Weight conversion at upload (stored dtype -> the device's bf16 matrices or
 * fp32 vectors/router) and the hashed random fill of checkpoint-less
 * benchmark models. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/cuda/fwd_cuda.h"

namespace {

constexpr int NT = 256;

__device__ float load_any(const void *src, int dtype, size_t i) {
    switch (dtype) {
    case 0: return ((const float *)src)[i];
    case 1: return __half2float(__ushort_as_half(((const uint16_t *)src)[i]));
    default: return __uint_as_float((uint32_t)((const uint16_t *)src)[i] << 16);
    }
}

__global__ void to_bf16_kernel(const void *src, int dtype, size_t n, uint16_t *dst) {
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT)
        dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(load_any(src, dtype, i)));
}

__global__ void to_f32_kernel(const void *src, int dtype, size_t n, float *dst) {
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT)
        dst[i] = load_any(src, dtype, i);
}

/* OCP E4M3 ("fn"): bias 7, no infinities, 0x7f/0xff NaN */
__device__ float f8e4m3(uint8_t v) {
    int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
    float f;
    if (e == 15 && m == 7) f = __int_as_float(0x7fc00000);
    else if (e == 0) f = ldexpf((float)m, -9);
    else f = ldexpf((float)(8 + m), e - 10);
    return s ? -f : f;
}

__global__ void f8_kernel(const uint8_t *src, int rows, int cols, const float *scale, int sbr,
                          int sbc, void *dst, int dst_f32) {
    size_t n = (size_t)rows * cols;
    int sc = (cols + sbc - 1) / sbc;
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT) {
        int r = (int)(i / cols), c = (int)(i % cols);
        float v = f8e4m3(src[i]) * scale[(size_t)(r / sbr) * sc + c / sbc];
        if (dst_f32) ((float *)dst)[i] = v;
        else ((uint16_t *)dst)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
    }
}

__device__ uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__global__ void random_kernel(uint16_t *dst, size_t n, uint64_t seed, float bound) {
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT) {
        uint64_t h = mix(seed * 0x9e3779b97f4a7c15ull + i);
        float u = (float)(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
        dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(bound * u));
    }
}

int grid_for(size_t n) {
    size_t b = (n + NT - 1) / NT;
    return (int)(b > 65536 ? 65536 : (b ? b : 1));
}

} // namespace

extern "C" {

int rl_cu_convert_bf16(const void *src, int dtype, size_t n, uint16_t *dst, void *stream) {
    if (!n) return 0;
    to_bf16_kernel<<<grid_for(n), NT, 0, (cudaStream_t)stream>>>(src, dtype, n, dst);
    return (int)cudaGetLastError();
}

int rl_cu_convert_f32(const void *src, int dtype, size_t n, float *dst, void *stream) {
    if (!n) return 0;
    to_f32_kernel<<<grid_for(n), NT, 0, (cudaStream_t)stream>>>(src, dtype, n, dst);
    return (int)cudaGetLastError();
}

int rl_cu_f8_dequant(const uint8_t *src, int rows, int cols, const float *scale, int sbr, int sbc,
                     void *dst, int dst_f32, void *stream) {
    size_t n = (size_t)rows * cols;
    if (!n) return 0;
    f8_kernel<<<grid_for(n), NT, 0, (cudaStream_t)stream>>>(src, rows, cols, scale, sbr, sbc, dst,
                                                            dst_f32);
    return (int)cudaGetLastError();
}

int rl_cu_fill_random_bf16(uint16_t *dst, size_t n, uint64_t seed, float bound, void *stream) {
    if (!n) return 0;
    random_kernel<<<grid_for(n), NT, 0, (cudaStream_t)stream>>>(dst, n, seed, bound);
    return (int)cudaGetLastError();
}

} // extern "C"
