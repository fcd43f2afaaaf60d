/* The MoE router's group score, shared by the CPU router (router.c) and the
 * device routings that must choose the same experts (src/ops/cuda/moe_cuda.cu,
 * route_warp.cuh): the sum of the two largest of x[0..gs), gs >= 2, taken as
 * the first maximum and then the first maximum of the others (duplicates
 * count twice), so every routing adds the same two floats. */
#ifndef RL_MODEL_ROUTE_GROUP_H
#define RL_MODEL_ROUTE_GROUP_H

#ifdef __CUDACC__
#define RL_ROUTE_HD __host__ __device__
#else
#define RL_ROUTE_HD
#endif

static inline RL_ROUTE_HD float rl_route_group_score(const float *x, int gs) {
    int i1 = 0;
    for (int i = 1; i < gs; i++)
        if (x[i] > x[i1]) i1 = i;
    int i2 = i1 == 0 ? 1 : 0;
    for (int i = 0; i < gs; i++)
        if (i != i1 && x[i] > x[i2]) i2 = i;
    return x[i1] + x[i2];
}

#endif
