/* Grid tiles of the grouped expert GEMMs (gemm_cuda.cu, moe_mma_cuda.cu):
 * rl_cu_moe_bucket sorts the routed rows by expert and gives expert e the
 * tiles [tile_off[e], tile_off[e+1]) of `rows` rows each, so a block finds its
 * expert and rows from its tile index alone, on the device (no count goes to
 * the host; the grid is an upper bound of tiles). Internal to src/ops/cuda. */
#ifndef RL_OPS_CUDA_MOE_TILES_CUH
#define RL_OPS_CUDA_MOE_TILES_CUH

/* Expert *e, first row *r0 and row count *nt (<= rows) of grid tile `tile`;
 * false when the tile is past the last expert's (the block has no work). */
__device__ __forceinline__ bool rl_cu_moe_tile(const int *tile_off, const int *offsets, int E,
                                               int tile, int rows, int *e, int *r0, int *nt) {
    if (tile >= tile_off[E]) return false;
    int lo = 0, hi = E - 1; /* the last expert whose first tile <= tile */
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (tile_off[mid] <= tile) lo = mid;
        else hi = mid - 1;
    }
    *e = lo;
    *r0 = offsets[lo] + (tile - tile_off[lo]) * rows;
    int n = offsets[lo + 1] - *r0;
    *nt = n < rows ? n : rows;
    return true;
}

#endif
