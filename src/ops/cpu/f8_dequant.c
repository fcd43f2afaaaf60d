/* F8_E4M3 rows to fp32 with their block scales, through a 256-entry table of
 * the exact conversions of base/dtype.h (same values as the reference). */
#include <pthread.h>

#include "ops/cpu/cpu_ops.h"

static float lut[256];
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void) {
    for (int i = 0; i < 256; i++) lut[i] = rl_f8e4m3_to_f32((uint8_t)i);
}

void rl_f8_dequant_rows(const rl_wmat *W, int r0, int nr, float *dst) {
    pthread_once(&lut_once, lut_init);
    int K = W->cols;
    const uint8_t *q = (const uint8_t *)W->data + (size_t)r0 * (size_t)K;
    int ncb = W->scale ? (K + W->sbc - 1) / W->sbc : 0;
    for (int r = 0; r < nr; r++) {
        const uint8_t *qr = q + (size_t)r * (size_t)K;
        float *d = dst + (size_t)r * (size_t)K;
        if (!W->scale) {
            for (int c = 0; c < K; c++) d[c] = lut[qr[c]];
            continue;
        }
        const float *sr = W->scale + (size_t)((r0 + r) / W->sbr) * (size_t)ncb;
        for (int c0 = 0, cb = 0; c0 < K; c0 += W->sbc, cb++) {
            int c1 = c0 + W->sbc < K ? c0 + W->sbc : K;
            float s = sr[cb];
            for (int c = c0; c < c1; c++) d[c] = lut[qr[c]] * s;
        }
    }
}
