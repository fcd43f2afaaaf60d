/* Reference ops: obvious scalar loops, single-threaded, fp32 accumulation in
 * the natural order. The yardstick of the unit tests, not meant to be fast. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

/* Dequantized weight W[o][c] (scale applied for F8_E4M3). */
static float wat(const rl_wmat *W, int o, int c) {
    size_t i = (size_t)o * (size_t)W->cols + (size_t)c;
    switch (W->dtype) {
    case RL_F32: return ((const float *)W->data)[i];
    case RL_F16: return rl_f16_to_f32(((const uint16_t *)W->data)[i]);
    case RL_BF16: return rl_bf16_to_f32(((const uint16_t *)W->data)[i]);
    case RL_F8_E4M3: {
        float q = rl_f8e4m3_to_f32(((const uint8_t *)W->data)[i]);
        if (!W->scale) return q;
        int ncb = (W->cols + W->sbc - 1) / W->sbc;
        return q * W->scale[(size_t)(o / W->sbr) * (size_t)ncb + (size_t)(c / W->sbc)];
    }
    default: return NAN;
    }
}

static void ref_matmul(const rl_wmat *W, const float *x, int ldx, int n, float *y, int ldy) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * (size_t)ldx;
        for (int o = 0; o < W->rows; o++) {
            float acc = 0.0f;
            for (int c = 0; c < W->cols; c++) acc += xr[c] * wat(W, o, c);
            y[(size_t)r * (size_t)ldy + (size_t)o] = acc;
        }
    }
}

static void ref_rmsnorm(const float *x, int n, int dim, const float *w, float eps, float *y) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        float *yr = y + (size_t)r * (size_t)dim;
        float ss = 0.0f;
        for (int i = 0; i < dim; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}

static void ref_rope(float *x, int n_heads, int head_dim, int rot, const float *cos_sin) {
    int half = rot / 2;
    const float *cs = cos_sin, *sn = cos_sin + half;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * (size_t)head_dim;
        for (int j = 0; j < half; j++) {
            float a = xh[j], b = xh[j + half];
            xh[j] = a * cs[j] - b * sn[j];
            xh[j + half] = b * cs[j] + a * sn[j];
        }
    }
}

static float sigmoidf_ref(float v) { return 1.0f / (1.0f + expf(-v)); }

static void ref_group_norm_gate(const float *o, const float *gate, int dim, int groups,
                                const float *w, float eps, float *y) {
    int gs = dim / groups;
    for (int g = 0; g < groups; g++) {
        const float *og = o + (size_t)g * (size_t)gs;
        float ss = 0.0f;
        for (int i = 0; i < gs; i++) ss += og[i] * og[i];
        float inv = 1.0f / sqrtf(ss / (float)gs + eps);
        for (int i = 0; i < gs; i++) {
            int c = g * gs + i;
            y[c] = o[c] * inv * w[c] * sigmoidf_ref(gate[c]);
        }
    }
}

static void ref_swiglu(const float *g, const float *u, int n, float *h) {
    for (int i = 0; i < n; i++) h[i] = g[i] * sigmoidf_ref(g[i]) * u[i];
}

static void ref_lightning_attend(const float *q, const float *k, int ldk, const float *v,
                                 int ldv, int i, const float *S, const float *pw, int D,
                                 float scale, float *o) {
    for (int e = 0; e < D; e++) o[e] = 0.0f;
    for (int j = 0; j <= i; j++) {
        const float *kj = k + (size_t)j * (size_t)ldk, *vj = v + (size_t)j * (size_t)ldv;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += q[d] * kj[d];
        s *= pw[i - j];
        for (int e = 0; e < D; e++) o[e] += s * vj[e];
    }
    float p = pw[i + 1];
    for (int e = 0; e < D; e++) {
        float qs = 0.0f;
        for (int d = 0; d < D; d++) qs += q[d] * S[(size_t)d * (size_t)D + (size_t)e];
        o[e] = scale * (o[e] + p * qs);
    }
}

static void ref_lightning_fold(float *S, const float *k, int ldk, const float *v, int ldv,
                               int b, const float *pw, int D) {
    for (int d = 0; d < D; d++) {
        for (int e = 0; e < D; e++) {
            float acc = pw[b] * S[(size_t)d * (size_t)D + (size_t)e];
            for (int j = 0; j < b; j++)
                acc += pw[b - 1 - j] * k[(size_t)j * (size_t)ldk + (size_t)d] *
                       v[(size_t)j * (size_t)ldv + (size_t)e];
            S[(size_t)d * (size_t)D + (size_t)e] = acc;
        }
    }
}

static void ref_gqa_attend(const float *q, int gq, const rl_kv_view *kv, int kvh, int n_keys,
                           int D, float scale, float *scratch, float *o) {
    for (int h = 0; h < gq; h++) {
        const float *qh = q + (size_t)h * (size_t)D;
        float *oh = o + (size_t)h * (size_t)D;
        float m = -INFINITY;
        for (int j = 0; j < n_keys; j++) {
            size_t P = (size_t)kv->page_size;
            const float *kj = kv->k_pages[j / kv->page_size] + (size_t)kvh * (size_t)D * P +
                              (size_t)(j % kv->page_size);
            float s = 0.0f;
            for (int d = 0; d < D; d++) s += qh[d] * kj[(size_t)d * P];
            s *= scale;
            scratch[j] = s;
            if (s > m) m = s;
        }
        float sum = 0.0f;
        for (int j = 0; j < n_keys; j++) {
            scratch[j] = expf(scratch[j] - m);
            sum += scratch[j];
        }
        for (int e = 0; e < D; e++) oh[e] = 0.0f;
        for (int j = 0; j < n_keys; j++) {
            const float *vj = kv->v_pages[j / kv->page_size] +
                              ((size_t)kvh * (size_t)kv->page_size + (size_t)(j % kv->page_size)) *
                                  (size_t)D;
            for (int e = 0; e < D; e++) oh[e] += scratch[j] * vj[e];
        }
        float inv = n_keys > 0 ? 1.0f / sum : 0.0f;
        for (int e = 0; e < D; e++) oh[e] *= inv;
    }
}

static void ref_embed(const rl_wmat *E, int id, float *y) {
    for (int c = 0; c < E->cols; c++) y[c] = wat(E, id, c);
}

const rl_ops rl_ops_ref = {
    .name = "ref",
    .matmul = ref_matmul,
    .rmsnorm = ref_rmsnorm,
    .rope = ref_rope,
    .group_norm_gate = ref_group_norm_gate,
    .swiglu = ref_swiglu,
    .lightning_attend = ref_lightning_attend,
    .lightning_fold = ref_lightning_fold,
    .gqa_attend = ref_gqa_attend,
    .embed = ref_embed,
};
