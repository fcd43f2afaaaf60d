/* Backward ops: plain versions (and the per-row ops used as they are). */
#include <math.h>
#include <string.h>

#include "train/backward_ops.h"

void rl_bwd_wrow(const rl_wmat *W, int o, float *out) {
    size_t base = (size_t)o * (size_t)W->cols;
    int C = W->cols;
    switch (W->dtype) {
    case RL_F32: memcpy(out, (const float *)W->data + base, sizeof(float) * C); break;
    case RL_F16:
        for (int c = 0; c < C; c++) out[c] = rl_f16_to_f32(((const uint16_t *)W->data)[base + c]);
        break;
    case RL_BF16:
        for (int c = 0; c < C; c++) out[c] = rl_bf16_to_f32(((const uint16_t *)W->data)[base + c]);
        break;
    case RL_F8_E4M3: {
        int ncb = W->scale ? (W->cols + W->sbc - 1) / W->sbc : 0;
        for (int c = 0; c < C; c++) {
            float q = rl_f8e4m3_to_f32(((const uint8_t *)W->data)[base + c]);
            if (W->scale) q *= W->scale[(size_t)(o / W->sbr) * (size_t)ncb + (size_t)(c / W->sbc)];
            out[c] = q;
        }
        break;
    }
    default:
        for (int c = 0; c < C; c++) out[c] = NAN;
    }
}

void rl_bwd_matmul_ref(const rl_wmat *W, const float *x, int ldx, int n, const float *dy,
                       int lddy, float *dx, int lddx, float *dw) {
    int O = W->rows, C = W->cols;
    float row[C > 0 ? C : 1];
    for (int o = 0; o < O; o++) {
        rl_bwd_wrow(W, o, row);
        for (int r = 0; r < n; r++) {
            float a = dy[(size_t)r * lddy + o];
            const float *xr = x + (size_t)r * ldx;
            for (int c = 0; c < C; c++) {
                if (dx) dx[(size_t)r * lddx + c] += a * row[c];
                if (dw) dw[(size_t)o * C + c] += a * xr[c];
            }
        }
    }
}

void rl_bwd_rmsnorm(const float *x, int n, int dim, const float *w, float eps, const float *dy,
                    float *dx, float *dw) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim, *g = dy + (size_t)r * dim;
        float *d = dx + (size_t)r * dim;
        float ss = 0.0f;
        for (int i = 0; i < dim; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)dim + eps);
        float dot = 0.0f; /* sum (w dy) x */
        for (int i = 0; i < dim; i++) dot += w[i] * g[i] * xr[i];
        float k = dot * inv * inv * inv / (float)dim;
        for (int i = 0; i < dim; i++) {
            d[i] += inv * w[i] * g[i] - k * xr[i];
            if (dw) dw[i] += g[i] * xr[i] * inv;
        }
    }
}

void rl_bwd_rope(float *dy, int n_heads, int head_dim, int rot, const float *cos_sin) {
    int half = rot / 2;
    const float *cs = cos_sin, *sn = cos_sin + half;
    for (int h = 0; h < n_heads; h++) {
        float *x = dy + (size_t)h * head_dim;
        for (int j = 0; j < half; j++) {
            float a = x[j], b = x[j + half];
            x[j] = a * cs[j] + b * sn[j];
            x[j + half] = b * cs[j] - a * sn[j];
        }
    }
}

static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

void rl_bwd_group_norm_gate(const float *o, const float *gate, int dim, int groups, const float *w,
                            float eps, const float *dy, float *dout, float *dgate, float *dw) {
    int gs = dim / groups;
    for (int g = 0; g < groups; g++) {
        int c0 = g * gs;
        float ss = 0.0f;
        for (int i = 0; i < gs; i++) ss += o[c0 + i] * o[c0 + i];
        float inv = 1.0f / sqrtf(ss / (float)gs + eps);
        float dot = 0.0f;
        for (int i = 0; i < gs; i++) {
            int c = c0 + i;
            float sg = sigm(gate[c]);
            float nrm = o[c] * inv;
            dgate[c] += dy[c] * nrm * w[c] * sg * (1.0f - sg);
            if (dw) dw[c] += dy[c] * nrm * sg;
            dot += dy[c] * w[c] * sg * o[c];
        }
        float k = dot * inv * inv * inv / (float)gs;
        for (int i = 0; i < gs; i++) {
            int c = c0 + i;
            dout[c] += inv * dy[c] * w[c] * sigm(gate[c]) - k * o[c];
        }
    }
}

void rl_bwd_swiglu(const float *g, const float *u, int n, const float *dh, float *dg, float *du) {
    for (int i = 0; i < n; i++) {
        float s = sigm(g[i]);
        du[i] += dh[i] * g[i] * s;
        dg[i] += dh[i] * u[i] * (s + g[i] * s * (1.0f - s));
    }
}

void rl_bwd_silu(const float *x, int n, const float *dy, float *dx) {
    for (int i = 0; i < n; i++) {
        float s = sigm(x[i]);
        dx[i] += dy[i] * (s + x[i] * s * (1.0f - s));
    }
}

void rl_bwd_lightning_ref(const float *q, const float *k, const float *v, int ld, int T, int D,
                          const float *pw, float scale, const float *do_, int lddo, float *dq,
                          float *dk, float *dv, float *scratch) {
    int nC = (T + RL_CHUNK - 1) / RL_CHUNK;
    size_t DD = (size_t)D * D;
    float *S = scratch;              /* [nC][D][D]: state at each chunk start */
    float *dS = scratch + (size_t)nC * DD; /* [D][D]: gradient of the next chunk's start state */
    float g[D > 0 ? D : 1];
    memset(S, 0, sizeof(float) * DD);
    for (int c = 0; c + 1 < nC; c++) { /* every chunk but the last is full and folded */
        const float *Sc = S + (size_t)c * DD;
        float *Sn = S + (size_t)(c + 1) * DD;
        int b = RL_CHUNK, base = c * RL_CHUNK;
        for (int d = 0; d < D; d++)
            for (int e = 0; e < D; e++) {
                float acc = pw[b] * Sc[(size_t)d * D + e];
                for (int j = 0; j < b; j++)
                    acc += pw[b - 1 - j] * k[(size_t)(base + j) * ld + d] * v[(size_t)(base + j) * ld + e];
                Sn[(size_t)d * D + e] = acc;
            }
    }
    memset(dS, 0, sizeof(float) * DD);
    for (int c = nC - 1; c >= 0; c--) {
        int base = c * RL_CHUNK, b = T - base < RL_CHUNK ? T - base : RL_CHUNK;
        const float *Sc = S + (size_t)c * DD;
        /* through the fold into the next chunk's state (dS is 0 after the last chunk) */
        if (c + 1 < nC)
            for (int j = 0; j < b; j++) {
                const float *kj = k + (size_t)(base + j) * ld, *vj = v + (size_t)(base + j) * ld;
                float *dkj = dk + (size_t)(base + j) * ld, *dvj = dv + (size_t)(base + j) * ld;
                float p = pw[b - 1 - j];
                for (int d = 0; d < D; d++) {
                    float a = 0.0f;
                    for (int e = 0; e < D; e++) a += dS[(size_t)d * D + e] * vj[e];
                    dkj[d] += p * a;
                }
                for (int e = 0; e < D; e++) {
                    float a = 0.0f;
                    for (int d = 0; d < D; d++) a += kj[d] * dS[(size_t)d * D + e];
                    dvj[e] += p * a;
                }
            }
        /* intra-chunk and inter (chunk-start state) terms */
        for (int i = 0; i < b; i++) {
            const float *qi = q + (size_t)(base + i) * ld;
            float *dqi = dq + (size_t)(base + i) * ld;
            for (int e = 0; e < D; e++) g[e] = scale * do_[(size_t)(base + i) * lddo + e];
            for (int j = 0; j <= i; j++) {
                const float *kj = k + (size_t)(base + j) * ld, *vj = v + (size_t)(base + j) * ld;
                float *dkj = dk + (size_t)(base + j) * ld, *dvj = dv + (size_t)(base + j) * ld;
                float a = 0.0f, s = 0.0f;
                for (int e = 0; e < D; e++) a += g[e] * vj[e];
                for (int d = 0; d < D; d++) s += qi[d] * kj[d];
                float w = pw[i - j];
                for (int d = 0; d < D; d++) {
                    dqi[d] += w * a * kj[d];
                    dkj[d] += w * a * qi[d];
                }
                for (int e = 0; e < D; e++) dvj[e] += w * s * g[e];
            }
            float p = pw[i + 1];
            if (c > 0)
                for (int d = 0; d < D; d++) {
                    float a = 0.0f;
                    for (int e = 0; e < D; e++) a += Sc[(size_t)d * D + e] * g[e];
                    dqi[d] += p * a;
                }
        }
        /* gradient of this chunk's start state: decay of the next one's + the inter terms */
        if (c > 0) {
            for (size_t x = 0; x < DD; x++) dS[x] *= pw[b];
            for (int i = 0; i < b; i++) {
                const float *qi = q + (size_t)(base + i) * ld;
                float p = pw[i + 1];
                for (int d = 0; d < D; d++) {
                    float pq = p * qi[d] * scale;
                    for (int e = 0; e < D; e++)
                        dS[(size_t)d * D + e] += pq * do_[(size_t)(base + i) * lddo + e];
                }
            }
        }
    }
}

void rl_bwd_gqa_head_ref(const float *q, const float *k, const float *v, int ld, int T, int D,
                         float scale, const float *do_, int lddo, float *dq, float *dk,
                         float *dv, float *scratch) {
    float *p = scratch;
    for (int t = 0; t < T; t++) {
        const float *qt = q + (size_t)t * ld, *g = do_ + (size_t)t * lddo;
        float mx = -INFINITY;
        for (int j = 0; j <= t; j++) {
            const float *kj = k + (size_t)j * ld;
            float s = 0.0f;
            for (int d = 0; d < D; d++) s += qt[d] * kj[d];
            p[j] = s * scale;
            if (p[j] > mx) mx = p[j];
        }
        float sum = 0.0f;
        for (int j = 0; j <= t; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float inv = 1.0f / sum, delta = 0.0f;
        for (int j = 0; j <= t; j++) {
            p[j] *= inv;
            const float *vj = v + (size_t)j * ld;
            float a = 0.0f;
            for (int e = 0; e < D; e++) a += g[e] * vj[e];
            delta += p[j] * a;
        }
        float *dqt = dq + (size_t)t * ld;
        for (int j = 0; j <= t; j++) {
            const float *kj = k + (size_t)j * ld, *vj = v + (size_t)j * ld;
            float a = 0.0f;
            for (int e = 0; e < D; e++) a += g[e] * vj[e];
            float ds = p[j] * (a - delta) * scale;
            float *dkj = dk + (size_t)j * ld, *dvj = dv + (size_t)j * ld;
            for (int d = 0; d < D; d++) {
                dqt[d] += ds * kj[d];
                dkj[d] += ds * qt[d];
            }
            for (int e = 0; e < D; e++) dvj[e] += p[j] * g[e];
        }
    }
}
