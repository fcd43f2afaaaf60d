/* The card's ceilings (gpu_floors.h). */
#include <stdio.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "gpu_floors.h"
#include "ops/cuda/fwd_cuda.h"

#define CK(x)                                                                      \
    do {                                                                           \
        int rc_ = (int)(x);                                                        \
        if (rc_) {                                                                 \
            fprintf(stderr, "gpu_floors: %s failed (%d) at line %d\n", #x, rc_, __LINE__); \
            return -1;                                                             \
        }                                                                          \
    } while (0)

/* device-to-device copy: bytes read + written per second (GB/s) */
double copy_bandwidth(void) {
    size_t n = (size_t)2 << 30;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0, e1;
    CK(cudaMalloc(&a, n));
    CK(cudaMalloc(&b, n));
    CK(rl_cu_fill_random_bf16(a, n / 2, 1, 1.0f, NULL));
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 3; i++) CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    double best = 0;
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(e0, 0);
        for (int i = 0; i < 4; i++) cudaMemcpyAsync(i & 1 ? a : b, i & 1 ? b : a, n, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        double bw = 4.0 * 2.0 * (double)n / (ms / 1e3) / 1e9;
        if (bw > best) best = bw;
    }
    cudaFree(a);
    cudaFree(b);
    return best;
}

/* cuBLAS bf16 x bf16 -> fp32 GEMM, 8192^3, random data (TFLOP/s) */
double cublas_rate(void) {
    int n = 8192;
    void *a = NULL, *b = NULL, *c = NULL;
    cublasHandle_t h;
    cudaEvent_t e0, e1;
    CK(cudaMalloc(&a, (size_t)n * n * 2));
    CK(cudaMalloc(&b, (size_t)n * n * 2));
    CK(cudaMalloc(&c, (size_t)n * n * 4));
    CK(rl_cu_fill_random_bf16(a, (size_t)n * n, 2, 1.0f, NULL));
    CK(rl_cu_fill_random_bf16(b, (size_t)n * n, 3, 1.0f, NULL));
    CK(cublasCreate(&h));
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float al = 1, be = 0;
    double best = 0;
    for (int r = 0; r < 6; r++) {
        cudaEventRecord(e0, 0);
        for (int i = 0; i < 5; i++)
            CK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &al, a, CUDA_R_16BF, n, b,
                            CUDA_R_16BF, n, &be, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        double t = 5 * 2.0 * n * (double)n * n / (ms / 1e3) / 1e12;
        if (r > 0 && t > best) best = t;
    }
    cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return best;
}

