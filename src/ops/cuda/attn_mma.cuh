/* Warp-level tensor-core helpers shared by the attention kernels
 * (lightning_cuda.cu, gqa_cuda.cu): mma.sync wrappers and operand
 * conversions, plus the launch check. Internal to src/ops/cuda.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k8 tf32 / m16n8k16 bf16), with
 * g = lane / 4 and t = lane % 4:
 *   C/D (16x8, fp32): c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
 *   tf32 A (16x8):    a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
 *   tf32 B (8x8):     b0 (k=t, n=g), b1 (k=t+4, n=g)
 *   bf16 A (16x16):   a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
 *   bf16 B (16x8):    b0 (k=2t..2t+1, n=g), b1 (k=2t+8..2t+9, n=g)
 * (a pair's lower column sits in the low 16 bits).
 *
 * Every output element of an mma is a function of its own row of A, its own
 * column of B and its own C: what other rows hold never changes it. The
 * deterministic paths rely on this to compute one token the same way in a
 * 64-row prefill tile and in a one-row decode tile. */
#ifndef RL_OPS_CUDA_ATTN_MMA_CUH
#define RL_OPS_CUDA_ATTN_MMA_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* fp32 -> tf32 (round to nearest, ties away), kept in a 32-bit register */
__device__ __forceinline__ uint32_t rl_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

/* two fp32 -> packed bf16x2 (lo in the low half), round to nearest even */
__device__ __forceinline__ uint32_t rl_bf2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/* c += A(16x8 tf32) * B(8x8 tf32) */
__device__ __forceinline__ void rl_mma_tf32(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                            uint32_t a3, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* c += A(16x16 bf16) * B(16x8 bf16) */
__device__ __forceinline__ void rl_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                            uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Returns the launch error (or an earlier sticky one) as an int. */
#define RL_CU_LAUNCHED()                                    \
    do {                                                    \
        cudaError_t e_ = cudaGetLastError();                \
        if (e_ != cudaSuccess) return (int)e_;              \
    } while (0)

#define RL_CU_TRY(call)                                     \
    do {                                                    \
        int e_ = (int)(call);                               \
        if (e_ != 0) return e_;                             \
    } while (0)

/* A device scratch buffer of at least `bytes`, grown (never shrunk) on demand
 * and shared by the attention kernels of one process (attn_workspace.cu).
 * `which` picks one of a few independent buffers. Growing synchronizes the
 * device (cudaFree/cudaMalloc): size it once before capturing graphs. */
enum { RL_CU_WS_LIN = 0, RL_CU_WS_GQA = 1, RL_CU_WS_COUNT = 2 };
int rl_cu_attn_ws(int which, size_t bytes, void **ptr);
/* Multiprocessors of the current device (cached). */
int rl_cu_sm_count(void);

#endif
