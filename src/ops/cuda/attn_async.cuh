/* Asynchronous-copy, ldmatrix, mbarrier and exp2 helpers (sm_80+) shared by
 * the paged GQA kernels (gqa_cuda.cu, gqa_dec_cuda.cu). Internal to
 * src/ops/cuda. */
#ifndef RL_OPS_CUDA_ATTN_ASYNC_CUH
#define RL_OPS_CUDA_ATTN_ASYNC_CUH

#include <cuda_runtime.h>
#include <stdint.h>

static __device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
static __device__ __forceinline__ void cp_async16(uint32_t s, const void *g) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(g) : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
static __device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }
/* all but the newest group of this thread's copies have landed */
static __device__ __forceinline__ void cp_async_wait_1() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }
/* shared-memory mbarriers (sm_80): split arrive / wait, release / acquire */
static __device__ __forceinline__ void mbar_init(uint32_t a, int count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(a), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_arrive(uint32_t a) {
    asm volatile("{\n\t.reg .b64 st;\n\tmbarrier.arrive.shared.b64 st, [%0];\n\t}" ::"r"(a) : "memory");
}
/* ends the barrier's life: the PTX ISA asks for it before the memory serves
 * any other purpose, and the next block on the SM reuses the same shared
 * memory (compute-sanitizer racecheck reports the reuse as a hazard on the
 * barrier words otherwise) */
static __device__ __forceinline__ void mbar_inval(uint32_t a) {
    asm volatile("mbarrier.inval.shared.b64 [%0];" ::"r"(a) : "memory");
}
/* waits for the completion of the phase of parity `par` */
static __device__ __forceinline__ void mbar_wait(uint32_t a, uint32_t par) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define RL_MBAR_WAIT "mbarrier.try_wait.parity.shared.b64" /* suspends a while: less spinning */
#else
#define RL_MBAR_WAIT "mbarrier.test_wait.parity.shared.b64"
#endif
    asm volatile("{\n\t.reg .pred P;\n"
                 "WAIT_%=:\n\t" RL_MBAR_WAIT " P, [%0], %1;\n\t"
                 "@!P bra WAIT_%=;\n\t}" ::"r"(a), "r"(par) : "memory");
}
static __device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

#endif
