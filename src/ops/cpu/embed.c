/* Embedding lookup: one row of the table converted to fp32 (any ISA). */
#include "ops/cpu/cpu_ops.h"

void rl_embed_cpu(const rl_wmat *E, int id, float *y) {
    if (E->dtype == RL_F8_E4M3) {
        rl_f8_dequant_rows(E, id, 1, y);
        return;
    }
    size_t K = (size_t)E->cols;
    rl_convert_to_f32(E->dtype, (const char *)E->data + (size_t)id * K * rl_dtype_size(E->dtype),
                      y, K);
}
