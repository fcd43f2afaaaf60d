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
//   mode 5: mode 4 with 8 blocks per SM, one resident at a time (100 KB of shared memory each),
//           so later blocks reuse an earlier block's barrier words; no mbarrier.inval
//   mode 6: mode 5 with the barriers invalidated before the block exits (session 5's
//           hypothesis for gqa_fa's report: mode 5 hazards, mode 6 clean; refuted, both clean)
//   mode 7: mode 4 with the barriers right after the cp.async staging buffer (gqa_fa's layout
//           until session 5, where racecheck reported the staging's last cp.async writes as
//           hazards on the barrier words)
//   mode 8: mode 7 with 1 KB between the staging buffer and the barriers
//   Session 5 on an H200: every mode is clean, 7 included, so the probe does not reproduce
//   gqa_fa's report; moving gqa_fa's barriers before its buffers did remove it.
// Build and run on a GPU machine from the repository root:
//   nvcc -O3 -std=c++17 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Isrc \
//        bench/gpu/racecheck_probe.cu -o /tmp/rc_probe
//   for m in 0 1 2 3 4 5 6 7 8; do compute-sanitizer --tool racecheck /tmp/rc_probe $m; done
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

__global__ void probe_dyn(const uint4 *g, uint4 *out, int iters, int inval, int layout) {
    extern __shared__ __align__(128) unsigned char sm[];
    /* layout 0: stage [2][NTH], buf [2][NTH], barriers; 1: buf, stage, barriers;
     * 2: buf, stage, 1 KB, barriers */
    uint4 *stage = layout ? (uint4 *)sm + 2 * NTH : (uint4 *)sm;
    uint4 *buf = layout ? (uint4 *)sm : (uint4 *)sm + 2 * NTH;
    const uint32_t m0 = smem_u32((uint4 *)sm + 4 * NTH + (layout == 2 ? 64 : 0));
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
    if (inval) {
        __syncthreads();
        if (tid < 2) mbar_inval(m0 + 8 * tid);
    }
    out[blockIdx.x * NTH + tid] = acc;
}

int main(int argc, char **argv) {
    int mode = argc > 1 ? atoi(argv[1]) : 0, iters = 16;
    uint4 *g, *o;
    cudaMalloc(&g, sizeof(uint4) * NTH * iters);
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const int nb = mode == 5 || mode == 6 ? 8 * sms : 4;
    cudaMalloc(&o, sizeof(uint4) * NTH * nb);
    cudaMemset(g, 1, sizeof(uint4) * NTH * iters);
    if (mode >= 4) {
        /* modes 5-6: 100 KB per block, so one block per SM at a time */
        size_t smem = mode == 5 || mode == 6 ? 100 * 1024 : 4 * NTH * sizeof(uint4) + 1024 + 64;
        cudaFuncSetAttribute(probe_dyn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        probe_dyn<<<nb, NTH, smem>>>(g, o, iters, mode == 6, mode == 7 ? 1 : mode == 8 ? 2 : 0);
    } else
        probe<<<4, NTH>>>(g, o, mode, iters);
    cudaError_t e = cudaDeviceSynchronize();
    printf("mode %d: %s\n", mode, cudaGetErrorString(e));
    return e != cudaSuccess;
}
