/* CPU ops against the reference, at every ISA level this processor supports,
 * on random inputs of odd sizes with poisoned outputs; plus the bitwise
 * determinism properties of the fast kernels (row invariance of matmul over
 * n / row position / thread count; repeatable attention).
 *
 * Tolerances: |fast - ref| <= tol * max(|ref|, mag), tol = 1e-5 (1e-4 for
 * exp-based ops), where mag is the natural magnitude of the computation: for
 * a dot product sum_c |x_c w_c| (two correct fp32 summation orders differ by
 * up to ~K*2^-24 of it, not of the possibly cancelled result), for vector
 * outputs the largest |ref| of the vector. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_ops.h"
#include "ops/ops.h"
#include "testutil.h"

static uint64_t seed = 12345;

static float *rnd(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) p[i] = rl_t_uniform(&seed, lo, hi);
    return p;
}

static float *poisoned(size_t n) {
    float *p = malloc(n * sizeof(float) + 4);
    rl_t_poison(p, n);
    return p;
}

static int close_to(float a, float b, double tol, double mag) {
    if (isnan(a) || isnan(b)) return 0;
    double m = fabs((double)b) > mag ? fabs((double)b) : mag;
    return fabs((double)a - (double)b) <= tol * m + 1e-30;
}

static double vmax_abs(const float *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

/* Checks n outputs against the reference; one CHECK per call. */
static void cmp_vec(const char *what, const char *lvl, const float *a, const float *b, size_t n,
                    double tol) {
    double mag = vmax_abs(b, n);
    size_t bad = n;
    for (size_t i = 0; i < n; i++)
        if (!close_to(a[i], b[i], tol, mag)) { bad = i; break; }
    CHECK(bad == n, "%s [%s]: element %zu: %.9g vs ref %.9g (n=%zu)", what, lvl, bad,
          bad < n ? a[bad] : 0.0, bad < n ? b[bad] : 0.0, n);
}

/* ---- weights ---- */

typedef struct {
    rl_wmat W;
    void *data;
    float *scale;
} wbuf;

static wbuf make_w(rl_dtype t, int rows, int cols, int sbr, int sbc) {
    wbuf b = {0};
    size_t n = (size_t)rows * (size_t)cols;
    b.data = malloc(n * rl_dtype_size(t) + 8);
    for (size_t i = 0; i < n; i++) {
        float v = rl_t_uniform(&seed, -1.0f, 1.0f);
        switch (t) {
        case RL_F32: ((float *)b.data)[i] = v; break;
        case RL_F16: ((uint16_t *)b.data)[i] = rl_f32_to_f16(v); break;
        case RL_BF16: ((uint16_t *)b.data)[i] = rl_f32_to_bf16(v); break;
        case RL_F8_E4M3: {
            uint8_t q = (uint8_t)(rl_t_rand(&seed) & 0xff);
            if ((q & 0x7f) == 0x7f) q ^= 1; /* no NaN codes */
            ((uint8_t *)b.data)[i] = q;
            break;
        }
        default: break;
        }
    }
    b.W = (rl_wmat){.dtype = t, .rows = rows, .cols = cols, .data = b.data};
    if (t == RL_F8_E4M3) {
        int nrb = (rows + sbr - 1) / sbr, ncb = (cols + sbc - 1) / sbc;
        b.scale = rnd((size_t)nrb * (size_t)ncb, 0.001f, 0.01f);
        b.W.scale = b.scale;
        b.W.sbr = sbr;
        b.W.sbc = sbc;
    }
    return b;
}

static void free_w(wbuf *b) {
    free(b->data);
    free(b->scale);
}

static const rl_dtype dtypes[] = {RL_F32, RL_F16, RL_BF16, RL_F8_E4M3};

static void test_matmul(const rl_ops *ops, const char *lvl) {
    static const int shapes[][2] = {{1, 1},   {3, 17},  {17, 31}, {31, 33}, {33, 63},
                                    {65, 130}, {130, 257}, {257, 65}, {70, 16}, {9, 64}};
    static const int ns[] = {1, 3, 7};
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            int rows = shapes[s][0], cols = shapes[s][1];
            wbuf wb = make_w(dtypes[d], rows, cols, 8, s % 2 ? 16 : 5);
            /* dequantized copy for the magnitude bound */
            float *wf = malloc((size_t)rows * (size_t)cols * sizeof(float));
            for (int o = 0; o < rows; o++) rl_ops_ref.embed(&wb.W, o, wf + (size_t)o * (size_t)cols);
            for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
                int n = ns[k], ldx = cols + 3, ldy = rows + 2;
                float *x = rnd((size_t)n * (size_t)ldx, -1, 1);
                float *y = poisoned((size_t)n * (size_t)ldy), *yr = poisoned((size_t)n * (size_t)ldy);
                ops->matmul(&wb.W, x, ldx, n, y, ldy);
                rl_ops_ref.matmul(&wb.W, x, ldx, n, yr, ldy);
                int bad = -1;
                for (int r = 0; r < n && bad < 0; r++)
                    for (int o = 0; o < rows; o++) {
                        double mag = 0;
                        for (int c = 0; c < cols; c++)
                            mag += fabs((double)x[(size_t)r * ldx + c] * wf[(size_t)o * cols + c]);
                        if (!close_to(y[(size_t)r * ldy + o], yr[(size_t)r * ldy + o], 1e-5, mag)) {
                            bad = r * rows + o;
                            break;
                        }
                    }
                CHECK(bad < 0, "matmul [%s] %s %dx%d n=%d: output %d: %.9g vs ref %.9g", lvl,
                      rl_dtype_name(dtypes[d]), rows, cols, n, bad,
                      bad >= 0 ? y[(size_t)(bad / rows) * ldy + bad % rows] : 0.0,
                      bad >= 0 ? yr[(size_t)(bad / rows) * ldy + bad % rows] : 0.0);
                free(x); free(y); free(yr);
            }
            free(wf);
            free_w(&wb);
        }
}

/* Row r of an n-row call == the row computed alone and at other positions;
 * 1 thread == 2 threads. Bitwise. */
static void test_matmul_bitwise(const rl_ops *ops, const char *lvl) {
    static const int ns[] = {1, 2, 3, 5, 8, 17, 64};
    enum { NX = 80 };
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++) {
        int rows = 203, cols = 131; /* several thread blocks, odd tails */
        wbuf wb = make_w(dtypes[d], rows, cols, 16, 32);
        int ldx = cols + 1, ldy = rows;
        float *x = rnd((size_t)NX * (size_t)ldx, -1, 1);
        float *single = poisoned((size_t)NX * (size_t)ldy);
        for (int r = 0; r < NX; r++)
            ops->matmul(&wb.W, x + (size_t)r * ldx, ldx, 1, single + (size_t)r * ldy, ldy);
        float *y = poisoned((size_t)NX * (size_t)ldy);
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            int n = ns[k];
            int offs[3] = {0, 7, NX - n};
            for (int oi = 0; oi < 3; oi++) {
                int off = offs[oi];
                rl_t_poison(y, (size_t)NX * (size_t)ldy);
                ops->matmul(&wb.W, x + (size_t)off * ldx, ldx, n, y, ldy);
                int same = memcmp(y, single + (size_t)off * ldy, (size_t)n * (size_t)ldy * 4) == 0;
                CHECK(same, "matmul [%s] %s: rows of an n=%d call at offset %d differ bitwise "
                            "from single-row calls", lvl, rl_dtype_name(dtypes[d]), n, off);
            }
        }
        /* thread count */
        int saved = rl_get_threads();
        float *y1 = poisoned((size_t)NX * (size_t)ldy), *y2 = poisoned((size_t)NX * (size_t)ldy);
        rl_set_threads(1);
        ops->matmul(&wb.W, x, ldx, NX, y1, ldy);
        rl_set_threads(2);
        ops->matmul(&wb.W, x, ldx, NX, y2, ldy);
        rl_set_threads(3);
        ops->matmul(&wb.W, x, ldx, NX, y, ldy);
        rl_set_threads(saved);
        CHECK(memcmp(y1, y2, (size_t)NX * (size_t)ldy * 4) == 0 &&
                  memcmp(y1, y, (size_t)NX * (size_t)ldy * 4) == 0,
              "matmul [%s] %s: 1, 2 and 3 threads differ bitwise", lvl, rl_dtype_name(dtypes[d]));
        CHECK(memcmp(y1, single, (size_t)NX * (size_t)ldy * 4) == 0,
              "matmul [%s] %s: n=%d call differs from single rows", lvl, rl_dtype_name(dtypes[d]), NX);
        free(y1); free(y2); free(y); free(single); free(x);
        free_w(&wb);
    }
}

static const int dims[] = {1, 3, 8, 17, 24, 31, 33, 63, 64, 65, 128, 130, 257};

static void test_rmsnorm(const rl_ops *ops, const char *lvl) {
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        int dim = dims[i], n = 3;
        float *x = rnd((size_t)n * dim, -2, 2), *w = rnd((size_t)dim, 0.5f, 1.5f);
        float *y = poisoned((size_t)n * dim), *yr = poisoned((size_t)n * dim);
        ops->rmsnorm(x, n, dim, w, 1e-6f, y);
        rl_ops_ref.rmsnorm(x, n, dim, w, 1e-6f, yr);
        cmp_vec("rmsnorm", lvl, y, yr, (size_t)n * dim, 1e-5);
        ops->rmsnorm(x, n, dim, w, 1e-6f, x); /* in place */
        CHECK(memcmp(x, y, (size_t)n * dim * 4) == 0, "rmsnorm [%s] in place differs, dim %d", lvl, dim);
        free(x); free(w); free(y); free(yr);
    }
}

static void test_rope(const rl_ops *ops, const char *lvl) {
    static const int hds[] = {8, 24, 64, 128};
    for (size_t i = 0; i < 4; i++)
        for (int half_rot = 0; half_rot < 2; half_rot++) {
            int hd = hds[i], rot = half_rot ? hd / 2 : hd, nh = 3;
            if (rot % 2) rot--;
            float *x = rnd((size_t)nh * hd, -2, 2), *cs = malloc((size_t)rot * 4 + 4);
            for (int j = 0; j < rot / 2; j++) {
                float a = 37.0f * powf(10000.0f, -2.0f * j / rot);
                cs[j] = cosf(a);
                cs[rot / 2 + j] = sinf(a);
            }
            float *xr = malloc((size_t)nh * hd * 4);
            memcpy(xr, x, (size_t)nh * hd * 4);
            ops->rope(x, nh, hd, rot, cs);
            rl_ops_ref.rope(xr, nh, hd, rot, cs);
            cmp_vec("rope", lvl, x, xr, (size_t)nh * hd, 1e-5);
            free(x); free(cs); free(xr);
        }
}

static void test_group_norm_gate(const rl_ops *ops, const char *lvl) {
    static const int cfg[][2] = {{8, 1}, {24, 3}, {64, 4}, {128, 8}, {130, 2}, {255, 5}, {2048, 4}, {17, 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        int dim = cfg[i][0], g = cfg[i][1];
        float *o = rnd((size_t)dim, -2, 2), *gate = rnd((size_t)dim, -8, 8), *w = rnd((size_t)dim, 0.5f, 1.5f);
        float *y = poisoned((size_t)dim), *yr = poisoned((size_t)dim);
        ops->group_norm_gate(o, gate, dim, g, w, 1e-5f, y);
        rl_ops_ref.group_norm_gate(o, gate, dim, g, w, 1e-5f, yr);
        cmp_vec("group_norm_gate", lvl, y, yr, (size_t)dim, 1e-4);
        free(o); free(gate); free(w); free(y); free(yr);
    }
}

static void test_swiglu(const rl_ops *ops, const char *lvl) {
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        int n = dims[i];
        float *g = rnd((size_t)n, -20, 20), *u = rnd((size_t)n, -2, 2);
        float *h = poisoned((size_t)n), *hr = poisoned((size_t)n);
        ops->swiglu(g, u, n, h);
        rl_ops_ref.swiglu(g, u, n, hr);
        cmp_vec("swiglu", lvl, h, hr, (size_t)n, 1e-4);
        free(g); free(u); free(h); free(hr);
    }
}

static float *decay_powers(float g) {
    float *pw = malloc((RL_CHUNK + 1) * sizeof(float));
    for (int n = 0; n <= RL_CHUNK; n++) pw[n] = expf(g * (float)n);
    return pw;
}

static const int heads[] = {8, 24, 64, 128};

static void test_lightning(const rl_ops *ops, const char *lvl) {
    static const int is[] = {0, 1, 5, 31, 63};
    for (size_t hi = 0; hi < 4; hi++) {
        int D = heads[hi], ldk = D + 3, ldv = 2 * D + 1;
        float *pw = decay_powers(-0.05f * (float)(hi + 1));
        float *k = rnd((size_t)RL_CHUNK * ldk, -1, 1), *v = rnd((size_t)RL_CHUNK * ldv, -1, 1);
        float *q = rnd((size_t)D, -1, 1), *S = rnd((size_t)D * D, -1, 1);
        for (size_t ii = 0; ii < sizeof is / sizeof *is; ii++) {
            int i = is[ii];
            float *o = poisoned((size_t)D), *o2 = poisoned((size_t)D), *orf = poisoned((size_t)D);
            ops->lightning_attend(q, k, ldk, v, ldv, i, S, pw, D, 0.125f, o);
            ops->lightning_attend(q, k, ldk, v, ldv, i, S, pw, D, 0.125f, o2);
            rl_ops_ref.lightning_attend(q, k, ldk, v, ldv, i, S, pw, D, 0.125f, orf);
            cmp_vec("lightning_attend", lvl, o, orf, (size_t)D, 1e-5);
            CHECK(memcmp(o, o2, (size_t)D * 4) == 0, "lightning_attend [%s] not repeatable, D %d i %d", lvl, D, i);
            free(o); free(o2); free(orf);
        }
        static const int bs[] = {1, 17, 64};
        for (int bi = 0; bi < 3; bi++) {
            int b = bs[bi];
            float *S1 = malloc((size_t)D * D * 4), *S2 = malloc((size_t)D * D * 4);
            memcpy(S1, S, (size_t)D * D * 4);
            memcpy(S2, S, (size_t)D * D * 4);
            ops->lightning_fold(S1, k, ldk, v, ldv, b, pw, D);
            rl_ops_ref.lightning_fold(S2, k, ldk, v, ldv, b, pw, D);
            cmp_vec("lightning_fold", lvl, S1, S2, (size_t)D * D, 1e-5);
            free(S1); free(S2);
        }
        free(pw); free(k); free(v); free(q); free(S);
    }
}

static void test_gqa(const rl_ops *ops, const char *lvl) {
    static const int nks[] = {1, 5, 33, 130};
    static const int gqs[] = {1, 3, 4, 5, 8}; /* heads are summed 4 at a time: cover >4 */
    for (size_t hi = 0; hi < 4; hi++)
        for (size_t gi = 0; gi < sizeof gqs / sizeof *gqs; gi++)
            for (size_t ki = 0; ki < 4; ki++) {
                int gq = gqs[gi];
                int D = heads[hi], nkv = 2, kvh = 1, ld = nkv * D, ps = 16, nk = nks[ki];
                int npages = (nk + ps - 1) / ps;
                float **kp = malloc((size_t)npages * sizeof *kp), **vp = malloc((size_t)npages * sizeof *vp);
                for (int p = 0; p < npages; p++) {
                    kp[p] = rnd((size_t)ps * ld, -1, 1);
                    vp[p] = rnd((size_t)ps * ld, -1, 1);
                }
                rl_kv_view kv = {(const float *const *)kp, (const float *const *)vp, ps};
                float *q = rnd((size_t)gq * D, -3, 3), *scr = malloc((size_t)gq * (size_t)nk * 4 + 4);
                float *o = poisoned((size_t)gq * D), *o2 = poisoned((size_t)gq * D), *orf = poisoned((size_t)gq * D);
                float scale = 1.0f / sqrtf((float)D);
                ops->gqa_attend(q, gq, &kv, kvh, nk, D, scale, scr, o);
                ops->gqa_attend(q, gq, &kv, kvh, nk, D, scale, scr, o2);
                rl_ops_ref.gqa_attend(q, gq, &kv, kvh, nk, D, scale, scr, orf);
                cmp_vec("gqa_attend", lvl, o, orf, (size_t)gq * D, 1e-4);
                CHECK(memcmp(o, o2, (size_t)gq * D * 4) == 0, "gqa_attend [%s] not repeatable", lvl);
                for (int p = 0; p < npages; p++) { free(kp[p]); free(vp[p]); }
                free(kp); free(vp); free(q); free(scr); free(o); free(o2); free(orf);
            }
}

static void test_embed(const rl_ops *ops, const char *lvl) {
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++) {
        wbuf wb = make_w(dtypes[d], 37, 65, 8, 16);
        float *y = poisoned(65), *yr = poisoned(65);
        ops->embed(&wb.W, 29, y);
        rl_ops_ref.embed(&wb.W, 29, yr);
        CHECK(memcmp(y, yr, 65 * 4) == 0, "embed [%s] %s differs", lvl, rl_dtype_name(dtypes[d]));
        free(y); free(yr);
        free_w(&wb);
    }
}

static void test_exp_range(void) {
    /* the vector exp through swiglu at extreme inputs: no NaN, right limits */
    const rl_ops *ops = rl_ops_cpu_level(RL_ISA_AVX512);
    if (!ops) return;
    float g[6] = {-1000.0f, -100.0f, -87.0f, 0.0f, 88.0f, 1000.0f}, u[6] = {1, 1, 1, 1, 1, 1}, h[6];
    ops->swiglu(g, u, 6, h);
    CHECK(h[0] == 0.0f || h[0] == -0.0f, "silu(-1000) = %g", h[0]);
    CHECK(fabsf(h[1]) < 1e-30f && !isnan(h[1]), "silu(-100) = %g", h[1]);
    CHECK(h[3] == 0.0f, "silu(0) = %g", h[3]);
    CHECK(h[4] == 88.0f && h[5] == 1000.0f, "silu(88) = %g, silu(1000) = %g", h[4], h[5]);
}

/* A backend's packed layout gives bitwise the same outputs as the weights
 * as stored, and the padding (rows to 4, columns to 16) is never written. */
static void test_matmul_packed(const rl_ops *ops, const char *lvl) {
    if (!ops->pack || !ops->pack_size) return;
    static const int shapes[][2] = {{1, 1}, {3, 17}, {5, 31}, {67, 33}, {130, 257}, {203, 131}};
    static const int ns[] = {1, 2, 6, 7, 13};
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            int rows = shapes[s][0], cols = shapes[s][1];
            wbuf wb = make_w(dtypes[d], rows, cols, 8, 16);
            size_t sz = ops->pack_size(&wb.W);
            if (sz == 0) { free_w(&wb); continue; }
            void *pk = aligned_alloc(64, (sz + 63) & ~(size_t)63);
            ops->pack(&wb.W, pk);
            rl_wmat P = wb.W;
            P.packed = pk;
            for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
                int n = ns[k], ldx = cols + 1, ldy = rows + 3;
                float *x = rnd((size_t)n * (size_t)ldx, -1, 1);
                float *y1 = poisoned((size_t)n * (size_t)ldy), *y2 = poisoned((size_t)n * (size_t)ldy);
                ops->matmul(&wb.W, x, ldx, n, y1, ldy);
                ops->matmul(&P, x, ldx, n, y2, ldy);
                bool same = true;
                for (int r = 0; r < n; r++) {
                    same &= memcmp(y1 + (size_t)r * ldy, y2 + (size_t)r * ldy, (size_t)rows * 4) == 0;
                    for (int o = rows; o < ldy; o++) same &= isnan(y2[(size_t)r * ldy + o]);
                }
                CHECK(same, "matmul [%s] %s %dx%d n=%d: packed layout differs from stored", lvl,
                      rl_dtype_name(dtypes[d]), rows, cols, n);
                free(x); free(y1); free(y2);
            }
            free(pk);
            free_w(&wb);
        }
}

int main(void) {
    const rl_ops *def = rl_ops_cpu();
    CHECK(def != NULL && rl_ops_cpu_isa() != NULL, "rl_ops_cpu() chose nothing");
    printf("cpu ops default: %s (%s)\n", def ? def->name : "?", rl_ops_cpu_isa());
    for (int l = 0; l < RL_ISA_COUNT; l++) {
        const rl_ops *ops = rl_ops_cpu_level((rl_isa)l);
        const char *lvl = rl_cpu_isa_name((rl_isa)l);
        if (!ops) {
            printf("level %s: not supported here, skipped\n", lvl);
            continue;
        }
        int f0 = rl_t_fail;
        test_matmul(ops, lvl);
        test_matmul_bitwise(ops, lvl);
        test_matmul_packed(ops, lvl);
        test_rmsnorm(ops, lvl);
        test_rope(ops, lvl);
        test_group_norm_gate(ops, lvl);
        test_swiglu(ops, lvl);
        test_lightning(ops, lvl);
        test_gqa(ops, lvl);
        test_embed(ops, lvl);
        printf("level %s: %s\n", lvl, rl_t_fail == f0 ? "ok" : "FAILURES");
    }
    test_exp_range();
    return rl_test_done();
}
