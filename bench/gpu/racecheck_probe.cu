// racecheck probe (a diagnostic, not built by CMake; session 4): does compute-sanitizer racecheck flag a
// textbook-correct "each thread cp.asyncs its own chunk, waits for its own group,
// moves it into a shared buffer with a plain store, arrives on an mbarrier; every
// thread waits on the mbarrier and reads other threads' elements" pattern?
//   mode 0: one phase, __syncthreads instead of the mbarrier (control)
//   mode 1: one phase, mbarrier arrive + wait
//   mode 2: many phases, double-buffered, gqa_fa's protocol (full[b] proves buffer b^1 free)
//   mode 3: mode 2 with the barriers initialized after the first cp.async is issued (gqa_fa's
//           prologue order)
//   mode 4: mode 2 with every buffer and the barriers in dynamic shared memory, the barriers
//           after the buffers (gqa_fa's layout)
// Build and run on a GPU machine from the repository root:
//   nvcc -O3 -std=c++17 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Isrc \
//        bench/gpu/racecheck_probe.cu -o /tmp/rc_probe
//   for m in 0 1 2 3; do compute-sanitizer --tool racecheck /tmp/rc_probe $m; done
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include "ops/cuda/attn_async.cuh"

constexpr int NTH = 256;

__global__ void probe(const uint4 *g, uint4 *out, int mode, int iters) {
    __shared__ __align__(16) uint4 stage[2][NTH];
    __shared__ __align__(16) uint4 buf[2][NTH];
    __shared__ __align__(8) unsigned long long mb[2];
    const int tid = threadIdx.x;
    const uint32_t m0 = smem_u32(&mb[0]);
    if (mode == 3) {
        cp_async16(smem_u32(&stage[0][tid]), g + tid);
        cp_async_commit();
    }
    if (tid < 2) mbar_init(m0 + 8 * tid, NTH);
    __syncthreads();
    uint4 acc = make_uint4(0, 0, 0, 0);
    if (mode < 2) {
        cp_async16(smem_u32(&stage[0][tid]), g + tid);
        cp_async_commit();
        cp_async_wait_all();
        buf[0][tid] = stage[0][tid];
        if (mode == 0) {
            __syncthreads();
        } else {
            mbar_arrive(m0);
            mbar_wait(m0, 0);
        }
        acc = buf[0][(tid + 37) % NTH];
    } else {
        if (mode == 2) {
            cp_async16(smem_u32(&stage[0][tid]), g + tid);
            cp_async_commit();
        }
        for (int it = 0; it < iters; it++) {
            const int b = it & 1;
            if (it + 1 < iters) cp_async16(smem_u32(&stage[b ^ 1][tid]), g + (it + 1) * NTH + tid);
            cp_async_commit();
            cp_async_wait_1(); /* this thread's chunk of iteration it */
            /* buffer b was last read in iteration it-2; every thread arrived on
             * full[b^1] in iteration it-1 after that read, and this thread waited
             * on full[b^1] in iteration it-1: so buffer b is free */
            buf[b][tid] = stage[b][tid];
            mbar_arrive(m0 + 8 * b);
            mbar_wait(m0 + 8 * b, (it >> 1) & 1);
            uint4 v = buf[b][(tid + 37 * (it + 1)) % NTH];
            acc.x += v.x; acc.y ^= v.y; acc.z += v.z; acc.w ^= v.w;
        }
        cp_async_wait_all();
    }
    out[blockIdx.x * NTH + tid] = acc;
}

__global__ void probe_dyn(const uint4 *g, uint4 *out, int iters) {
    extern __shared__ __align__(128) unsigned char sm[];
    uint4 *stage = (uint4 *)sm;                 /* [2][NTH] */
    uint4 *buf = stage + 2 * NTH;               /* [2][NTH] */
    const uint32_t m0 = smem_u32(buf + 2 * NTH); /* two barriers after the buffers */
    const int tid = threadIdx.x;
    if (tid < 2) mbar_init(m0 + 8 * tid, NTH);
    __syncthreads();
    uint4 acc = make_uint4(0, 0, 0, 0);
    cp_async16(smem_u32(&stage[tid]), g + tid);
    cp_async_commit();
    for (int it = 0; it < iters; it++) {
        const int b = it & 1;
        if (it + 1 < iters) cp_async16(smem_u32(&stage[(b ^ 1) * NTH + tid]), g + (it + 1) * NTH + tid);
        cp_async_commit();
        cp_async_wait_1();
        buf[b * NTH + tid] = stage[b * NTH + tid];
        mbar_arrive(m0 + 8 * b);
        mbar_wait(m0 + 8 * b, (it >> 1) & 1);
        uint4 v = buf[b * NTH + (tid + 37 * (it + 1)) % NTH];
        acc.x += v.x; acc.y ^= v.y; acc.z += v.z; acc.w ^= v.w;
    }
    cp_async_wait_all();
    out[blockIdx.x * NTH + tid] = acc;
}

int main(int argc, char **argv) {
    int mode = argc > 1 ? atoi(argv[1]) : 0, iters = 16;
    uint4 *g, *o;
    cudaMalloc(&g, sizeof(uint4) * NTH * iters);
    cudaMalloc(&o, sizeof(uint4) * NTH * 4);
    cudaMemset(g, 1, sizeof(uint4) * NTH * iters);
    if (mode == 4)
        probe_dyn<<<4, NTH, 4 * NTH * sizeof(uint4) + 64>>>(g, o, iters);
    else
        probe<<<4, NTH>>>(g, o, mode, iters);
    cudaError_t e = cudaDeviceSynchronize();
    printf("mode %d: %s\n", mode, cudaGetErrorString(e));
    return e != cudaSuccess;
}
