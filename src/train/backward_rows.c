/* Per-row backward ops over many rows at once, threads over rows. A norm's
 * weight gradient is a sum over rows: each row's contribution goes to its own
 * row of a scratch matrix, then the rows are added column by column in row
 * order, which is the serial loop's order of additions, so the result is
 * bitwise that of the serial op whatever the thread count. */
#include <stdlib.h>

#include "train/backward_ops.h"

void rl_bwd_sum_rows(const float *rows, int n, int dim, float *dw) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < dim; i++) {
        float a = dw[i];
        for (int r = 0; r < n; r++) a += rows[(size_t)r * dim + i];
        dw[i] = a;
    }
}

void rl_bwd_rmsnorm_rows(const float *x, int n, int dim, const float *w, float eps, const float *dy,
                         float *dx, float *dw) {
    float *rows = dw ? calloc((size_t)n * dim, sizeof(float)) : NULL;
    if (dw && !rows) { /* no memory for the contributions: the serial op, same result */
        rl_bwd_rmsnorm(x, n, dim, w, eps, dy, dx, dw);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        size_t o = (size_t)r * dim;
        rl_bwd_rmsnorm(x + o, 1, dim, w, eps, dy + o, dx + o, rows ? rows + o : NULL);
    }
    if (rows) rl_bwd_sum_rows(rows, n, dim, dw);
    free(rows);
}

void rl_bwd_group_norm_gate_rows(const float *o, const float *gate, int n, int dim, int groups,
                                 const float *w, float eps, const float *dy, float *dout,
                                 float *dgate, float *dw) {
    float *rows = dw ? calloc((size_t)n * dim, sizeof(float)) : NULL;
    if (dw && !rows) {
        for (int r = 0; r < n; r++) {
            size_t k = (size_t)r * dim;
            rl_bwd_group_norm_gate(o + k, gate + k, dim, groups, w, eps, dy + k, dout + k, dgate + k, dw);
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        size_t k = (size_t)r * dim;
        rl_bwd_group_norm_gate(o + k, gate + k, dim, groups, w, eps, dy + k, dout + k, dgate + k,
                               rows ? rows + k : NULL);
    }
    if (rows) rl_bwd_sum_rows(rows, n, dim, dw);
    free(rows);
}

void rl_bwd_swiglu_par(const float *g, const float *u, size_t n, const float *dh, float *dg,
                       float *du) {
    enum { BLK = 4096 };
    long nb = (long)((n + BLK - 1) / BLK);
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        size_t o = (size_t)b * BLK, len = n - o < BLK ? n - o : BLK;
        rl_bwd_swiglu(g + o, u + o, (int)len, dh + o, dg + o, du + o);
    }
}
