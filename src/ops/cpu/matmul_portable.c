/* y = x W^T in plain C: weight rows converted to fp32 a block at a time, each
 * output one scalar chain over c ascending (the reference's order), threads
 * over blocks of weight rows. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "ops/cpu/cpu_ops.h"

#define MB 16

void rl_matmul_portable(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy) {
    int rows = W->rows, K = W->cols;
    if (n <= 0 || rows <= 0) return;
    int nb = (rows + MB - 1) / MB;
    size_t esz = rl_dtype_size(W->dtype);
#pragma omp parallel num_threads(rl_get_threads())
    {
        float *buf = malloc((size_t)MB * (size_t)(K > 0 ? K : 1) * sizeof(float));
#pragma omp for schedule(static)
        for (int b = 0; b < nb; b++) {
            int o0 = b * MB, o1 = o0 + MB < rows ? o0 + MB : rows;
            if (!buf) { /* out of memory: no status to return; make it visible */
                for (int r = 0; r < n; r++)
                    for (int o = o0; o < o1; o++) y[(size_t)r * (size_t)ldy + (size_t)o] = NAN;
                continue;
            }
            if (W->dtype == RL_F8_E4M3)
                rl_f8_dequant_rows(W, o0, o1 - o0, buf);
            else
                rl_convert_to_f32(W->dtype, (const char *)W->data + (size_t)o0 * (size_t)K * esz,
                                  buf, (size_t)(o1 - o0) * (size_t)K);
            for (int r = 0; r < n; r++) {
                const float *xr = x + (size_t)r * (size_t)ldx;
                for (int o = o0; o < o1; o++) {
                    const float *wr = buf + (size_t)(o - o0) * (size_t)K;
                    float acc = 0.0f;
                    for (int c = 0; c < K; c++) acc += xr[c] * wr[c];
                    y[(size_t)r * (size_t)ldy + (size_t)o] = acc;
                }
            }
        }
        free(buf);
    }
}
