/* Scratch memory of the attention kernels (see attn_mma.cuh): the Lightning
 * per-chunk states and the split-K partials of GQA decode. Not thread-safe:
 * one host thread drives the attention kernels of a process. */
#include "ops/cuda/attn_cuda.h"
#include "ops/cuda/attn_mma.cuh"

static void *g_ws[RL_CU_WS_COUNT];
static size_t g_cap[RL_CU_WS_COUNT];
static unsigned g_gen; /* bumped whenever a buffer moves: graphs holding it are stale */

int rl_cu_attn_ws(int which, size_t bytes, void **ptr) {
    if (bytes == 0) bytes = 256;
    if (g_cap[which] < bytes) {
        if (g_ws[which]) {
            /* kernels still queued may read the old buffer */
            RL_CU_TRY(cudaDeviceSynchronize());
            RL_CU_TRY(cudaFree(g_ws[which]));
            g_ws[which] = NULL;
            g_cap[which] = 0;
        }
        size_t cap = bytes + bytes / 4;
        RL_CU_TRY(cudaMalloc(&g_ws[which], cap));
        g_cap[which] = cap;
        g_gen++;
    }
    *ptr = g_ws[which];
    return 0;
}

int rl_cu_sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            n = 132;
    }
    return n;
}

extern "C" unsigned rl_cu_attn_ws_gen(void) { return g_gen; }

extern "C" void rl_cu_attn_release(void) {
    g_gen++;
    for (int i = 0; i < RL_CU_WS_COUNT; i++) {
        if (g_ws[i]) {
            cudaDeviceSynchronize();
            cudaFree(g_ws[i]);
        }
        g_ws[i] = NULL;
        g_cap[i] = 0;
    }
}
