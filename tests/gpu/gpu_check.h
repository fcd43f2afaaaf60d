/* CK(call): a CUDA runtime call or an rl_cu_* op (both return a cudaError_t
 * as int) that must succeed; otherwise the GPU test stops with exit 2 and
 * names the call. Shared by the GPU test programs. */
#ifndef RL_TESTS_GPU_CHECK_H
#define RL_TESTS_GPU_CHECK_H

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(call)                                                                           \
    do {                                                                                   \
        int rc_ = (int)(call);                                                             \
        if (rc_) {                                                                         \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_,      \
                    cudaGetErrorString((cudaError_t)rc_));                                 \
            exit(2);                                                                       \
        }                                                                                  \
    } while (0)

#endif
