/* The card's ceilings, measured the same way by every GPU benchmark
 * (bench_gpu, bench_gemm): the floors their figures are compared with. */
#ifndef RL_BENCH_GPU_FLOORS_H
#define RL_BENCH_GPU_FLOORS_H

/* Device-to-device copy of 2 GiB buffers: bytes read + written per second
 * (GB/s), best of 5. */
double copy_bandwidth(void);
/* cuBLAS bf16 x bf16 -> fp32 GEMM, 8192^3, random data: TFLOP/s, best of 5. */
double cublas_rate(void);

#endif
