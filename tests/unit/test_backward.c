/* Backward ops (src/train/backward_ops.h) against central finite differences
 * of the forward reference ops (rl_ops_ref), on the loss L = sum(dy * f(x)),
 * the fast matmul and attention backwards against the plain ones, and the
 * row-parallel ops bitwise against the serial ones at several thread counts. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "train/backward_ops.h"
#include "testutil.h"

static uint64_t seed = 42;

static void fill(float *p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = rl_t_uniform(&seed, lo, hi);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double relerr(const double *a, const double *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        r += b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* f(ctx, x, y): the forward; numerical gradient of sum(dy * y) w.r.t. x[0..nx) */
typedef void (*fwd_fn)(void *ctx, const float *x, float *y);

static void numgrad(fwd_fn f, void *ctx, float *x, size_t nx, const float *dy, size_t ny,
                    double *g) {
    float *y = malloc(sizeof(float) * ny);
    for (size_t i = 0; i < nx; i++) {
        float x0 = x[i], h = 1e-2f * (fabsf(x0) > 1 ? fabsf(x0) : 1);
        x[i] = x0 + h;
        f(ctx, x, y);
        double lp = dot(dy, y, ny);
        x[i] = x0 - h;
        f(ctx, x, y);
        double lm = dot(dy, y, ny);
        x[i] = x0;
        g[i] = (lp - lm) / (2.0 * (double)h);
    }
    free(y);
}

static void check_grad(const char *what, fwd_fn f, void *ctx, float *x, size_t nx,
                       const float *dy, size_t ny, const float *analytic) {
    double *num = malloc(sizeof(double) * nx), *an = malloc(sizeof(double) * nx);
    numgrad(f, ctx, x, nx, dy, ny, num);
    for (size_t i = 0; i < nx; i++) an[i] = analytic[i];
    double e = relerr(an, num, nx);
    CHECK(e < 3e-3, "%s: relative error %.2e vs finite differences", what, e);
    free(num);
    free(an);
}

/* ---- rmsnorm: x and w ---- */
typedef struct { int n, dim; float *x, *w; int wrt_w; } norm_ctx;
static void norm_fwd(void *c_, const float *v, float *y) {
    norm_ctx *c = c_;
    rl_ops_ref.rmsnorm(c->wrt_w ? c->x : v, c->n, c->dim, c->wrt_w ? v : c->w, 1e-5f, y);
}
static void test_rmsnorm(void) {
    int n = 3, dim = 24;
    float x[72], w[24], dy[72], dx[72] = {0}, dw[24] = {0};
    fill(x, 72, -2, 2); fill(w, 24, 0.5f, 1.5f); fill(dy, 72, -1, 1);
    rl_bwd_rmsnorm(x, n, dim, w, 1e-5f, dy, dx, dw);
    norm_ctx c = {n, dim, x, w, 0};
    check_grad("rmsnorm dx", norm_fwd, &c, x, 72, dy, 72, dx);
    c.wrt_w = 1;
    check_grad("rmsnorm dw", norm_fwd, &c, w, 24, dy, 72, dw);
}

/* ---- rope ---- */
typedef struct { int H, D, rot; const float *cs; } rope_ctx;
static void rope_fwd(void *c_, const float *v, float *y) {
    rope_ctx *c = c_;
    memcpy(y, v, sizeof(float) * c->H * c->D);
    rl_ops_ref.rope(y, c->H, c->D, c->rot, c->cs);
}
static void test_rope(void) {
    int H = 3, D = 8, rot = 4;
    float x[24], dy[24], d[24], cs[4];
    fill(x, 24, -1, 1); fill(dy, 24, -1, 1);
    for (int j = 0; j < 2; j++) { cs[j] = cosf(0.7f * (j + 1)); cs[2 + j] = sinf(0.7f * (j + 1)); }
    memcpy(d, dy, sizeof d);
    rl_bwd_rope(d, H, D, rot, cs);
    rope_ctx c = {H, D, rot, cs};
    check_grad("rope", rope_fwd, &c, x, 24, dy, 24, d);
}

/* ---- group norm + gate: o, gate, w ---- */
typedef struct { int dim, G; float *o, *gate, *w; int which; } gng_ctx;
static void gng_fwd(void *c_, const float *v, float *y) {
    gng_ctx *c = c_;
    rl_ops_ref.group_norm_gate(c->which == 0 ? v : c->o, c->which == 1 ? v : c->gate, c->dim, c->G,
                               c->which == 2 ? v : c->w, 1e-5f, y);
}
static void test_group_norm_gate(void) {
    int dim = 16, G = 4;
    float o[16], gate[16], w[16], dy[16], dO[16] = {0}, dG[16] = {0}, dW[16] = {0};
    fill(o, 16, -2, 2); fill(gate, 16, -3, 3); fill(w, 16, 0.5f, 1.5f); fill(dy, 16, -1, 1);
    rl_bwd_group_norm_gate(o, gate, dim, G, w, 1e-5f, dy, dO, dG, dW);
    gng_ctx c = {dim, G, o, gate, w, 0};
    check_grad("group_norm_gate do", gng_fwd, &c, o, 16, dy, 16, dO);
    c.which = 1;
    check_grad("group_norm_gate dgate", gng_fwd, &c, gate, 16, dy, 16, dG);
    c.which = 2;
    check_grad("group_norm_gate dw", gng_fwd, &c, w, 16, dy, 16, dW);
}

/* ---- swiglu ---- */
typedef struct { int n; float *g, *u; int which; } sw_ctx;
static void sw_fwd(void *c_, const float *v, float *y) {
    sw_ctx *c = c_;
    rl_ops_ref.swiglu(c->which ? c->g : v, c->which ? v : c->u, c->n, y);
}
static void test_swiglu(void) {
    float g[20], u[20], dy[20], dg[20] = {0}, du[20] = {0};
    fill(g, 20, -4, 4); fill(u, 20, -2, 2); fill(dy, 20, -1, 1);
    rl_bwd_swiglu(g, u, 20, dy, dg, du);
    sw_ctx c = {20, g, u, 0};
    check_grad("swiglu dg", sw_fwd, &c, g, 20, dy, 20, dg);
    c.which = 1;
    check_grad("swiglu du", sw_fwd, &c, u, 20, dy, 20, du);
}

/* ---- Lightning over a sequence crossing chunks ---- */
typedef struct { int T, D; float *q, *k, *v; const float *pw; int which; } lt_ctx;
static void lt_fwd(void *c_, const float *x, float *y) {
    lt_ctx *c = c_;
    int T = c->T, D = c->D;
    const float *q = c->which == 0 ? x : c->q, *k = c->which == 1 ? x : c->k,
                *v = c->which == 2 ? x : c->v;
    float *S = calloc((size_t)D * D, sizeof(float));
    float scale = 1.0f / sqrtf((float)D);
    for (int base = 0; base < T; base += RL_CHUNK) {
        int b = T - base < RL_CHUNK ? T - base : RL_CHUNK;
        for (int i = 0; i < b; i++)
            rl_ops_ref.lightning_attend(q + (size_t)(base + i) * D, k + (size_t)base * D, D,
                                        v + (size_t)base * D, D, i, S, c->pw, D, scale,
                                        y + (size_t)(base + i) * D);
        if (b == RL_CHUNK)
            rl_ops_ref.lightning_fold(S, k + (size_t)base * D, D, v + (size_t)base * D, D, b, c->pw, D);
    }
    free(S);
}
static void test_lightning(void) {
    int T = 150, D = 4;
    size_t n = (size_t)T * D;
    float *q = malloc(4 * n), *k = malloc(4 * n), *v = malloc(4 * n), *dy = malloc(4 * n);
    float *dq = calloc(n, 4), *dk = calloc(n, 4), *dv = calloc(n, 4);
    float pw[RL_CHUNK + 1];
    for (int i = 0; i <= RL_CHUNK; i++) pw[i] = expf(-0.02f * i);
    fill(q, n, -1, 1); fill(k, n, -1, 1); fill(v, n, -1, 1); fill(dy, n, -1, 1);
    float *scr = malloc(sizeof(float) * (size_t)(T / RL_CHUNK + 2) * D * D);
    rl_bwd_lightning(q, k, v, D, T, D, pw, 0.5f, dy, D, dq, dk, dv, scr);
    lt_ctx c = {T, D, q, k, v, pw, 0};
    check_grad("lightning dq", lt_fwd, &c, q, n, dy, n, dq);
    c.which = 1;
    check_grad("lightning dk", lt_fwd, &c, k, n, dy, n, dk);
    c.which = 2;
    check_grad("lightning dv", lt_fwd, &c, v, n, dy, n, dv);
    free(q); free(k); free(v); free(dy); free(dq); free(dk); free(dv); free(scr);
}

/* ---- GQA (one kv head, 2 query heads) ---- */
typedef struct { int T, D; float *qkv; int off; } gq_ctx;
static void gq_fwd(void *c_, const float *x, float *y) {
    gq_ctx *c = c_;
    int T = c->T, D = c->D, W = 4 * D; /* rows: q0 q1 k v */
    float *qkv = malloc(sizeof(float) * (size_t)T * W);
    memcpy(qkv, c->qkv, sizeof(float) * (size_t)T * W);
    for (int t = 0; t < T; t++) memcpy(qkv + (size_t)t * W + c->off, x + (size_t)t * D, sizeof(float) * D);
    float *kp = malloc(sizeof(float) * (size_t)T * D), *vp = malloc(sizeof(float) * (size_t)T * D);
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) {
            kp[(size_t)d * T + t] = qkv[(size_t)t * W + 2 * D + d];
            vp[(size_t)t * D + d] = qkv[(size_t)t * W + 3 * D + d];
        }
    const float *kpp[1] = {kp}, *vpp[1] = {vp};
    rl_kv_view kv = {kpp, vpp, T};
    float *scr = malloc(sizeof(float) * 2 * T);
    for (int t = 0; t < T; t++)
        rl_ops_ref.gqa_attend(qkv + (size_t)t * W, 2, &kv, 0, t + 1, D, 0.4f, scr, y + (size_t)t * 2 * D);
    free(qkv); free(kp); free(vp); free(scr);
}
static void test_gqa(void) {
    int T = 20, D = 4, W = 16;
    float qkv[20 * 16], dy[20 * 8], dq[20 * 16] = {0}, x[20 * 4], scr[40];
    fill(qkv, sizeof qkv / 4, -1.5f, 1.5f); fill(dy, sizeof dy / 4, -1, 1);
    for (int h = 0; h < 2; h++)
        rl_bwd_gqa_head(qkv + h * D, qkv + 2 * D, qkv + 3 * D, W, T, D, 0.4f, dy + h * D, 2 * D,
                        dq + h * D, dq + 2 * D, dq + 3 * D, scr);
    const char *names[4] = {"gqa dq head0", "gqa dq head1", "gqa dk", "gqa dv"};
    for (int part = 0; part < 4; part++) {
        float an[20 * 4];
        for (int t = 0; t < T; t++) {
            memcpy(x + t * D, qkv + t * W + part * D, sizeof(float) * D);
            memcpy(an + t * D, dq + t * W + part * D, sizeof(float) * D);
        }
        gq_ctx c = {T, D, qkv, part * D};
        check_grad(names[part], gq_fwd, &c, x, (size_t)T * D, dy, (size_t)T * 2 * D, an);
    }
}

/* ---- matmul: finite differences (ref) and fast == ref ---- */
typedef struct { rl_wmat W; float *x; int n; int which; } mm_ctx;
static void mm_fwd(void *c_, const float *v, float *y) {
    mm_ctx *c = c_;
    rl_wmat W = c->W;
    if (c->which) W.data = v;
    rl_ops_ref.matmul(&W, c->which ? c->x : v, W.cols, c->n, y, W.rows);
}
static void test_matmul(void) {
    int O = 7, C = 13, n = 11;
    float w[7 * 13], x[11 * 13], dy[11 * 7], dx[11 * 13] = {0}, dw[7 * 13] = {0};
    fill(w, sizeof w / 4, -1, 1); fill(x, sizeof x / 4, -1, 1); fill(dy, sizeof dy / 4, -1, 1);
    rl_wmat W = {.dtype = RL_F32, .rows = O, .cols = C, .data = w};
    rl_bwd_matmul_ref(&W, x, C, n, dy, O, dx, C, dw);
    mm_ctx c = {W, x, n, 0};
    check_grad("matmul dx", mm_fwd, &c, x, sizeof x / 4, dy, sizeof dy / 4, dx);
    c.which = 1;
    check_grad("matmul dw", mm_fwd, &c, w, sizeof w / 4, dy, sizeof dy / 4, dw);
    /* fast vs plain, f32 and bf16 weights, with zero rows of dy (skipped by the fast one) */
    int O2 = 37, C2 = 70, n2 = 21;
    float *w2 = malloc(4 * O2 * C2), *x2 = malloc(4 * n2 * C2), *dy2 = malloc(4 * n2 * O2);
    uint16_t *wb = malloc(2 * O2 * C2);
    fill(w2, (size_t)O2 * C2, -1, 1); fill(x2, (size_t)n2 * C2, -1, 1); fill(dy2, (size_t)n2 * O2, -1, 1);
    for (int o = 0; o < n2 * O2; o += 5) dy2[o] = 0;
    for (int i = 0; i < O2 * C2; i++) wb[i] = rl_f32_to_bf16(w2[i]);
    for (int bf = 0; bf < 2; bf++) {
        rl_wmat W2 = {.dtype = bf ? RL_BF16 : RL_F32, .rows = O2, .cols = C2,
                      .data = bf ? (const void *)wb : (const void *)w2};
        float *a = calloc((size_t)n2 * C2, 4), *b = calloc((size_t)n2 * C2, 4);
        float *ga = calloc((size_t)O2 * C2, 4), *gb = calloc((size_t)O2 * C2, 4);
        rl_bwd_matmul_ref(&W2, x2, C2, n2, dy2, O2, a, C2, ga);
        rl_bwd_matmul(&W2, x2, C2, n2, dy2, O2, b, C2, gb);
        double ex = 0, ew = 0;
        for (int i = 0; i < n2 * C2; i++) ex = fmax(ex, fabs(a[i] - b[i]));
        for (int i = 0; i < O2 * C2; i++) ew = fmax(ew, fabs(ga[i] - gb[i]));
        CHECK(ex < 1e-5 && ew < 1e-5, "fast matmul backward (%s): max |dx| diff %.2e, |dw| %.2e",
              bf ? "bf16" : "f32", ex, ew);
        free(a); free(b); free(ga); free(gb);
    }
    free(w2); free(x2); free(dy2); free(wb);
}

/* ---- fast attention backwards vs the plain loops (odd head dims: masks) ---- */
static double maxrel(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

static void test_attn_fast(void) {
    int shapes[][2] = {{150, 64}, {70, 16}, {130, 20}, {64, 8}, {1, 64}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int T = shapes[si][0], D = shapes[si][1], ld = 3 * D + 5;
        size_t n = (size_t)T * ld;
        float *qkv = malloc(4 * n), *dy = malloc(4 * (size_t)T * D);
        float *ga = calloc(n, 4), *gb = calloc(n, 4);
        float *scr = malloc(sizeof(float) * ((size_t)(T / RL_CHUNK + 2) * D * D + 2 * (size_t)T));
        float pw[RL_CHUNK + 1];
        for (int i = 0; i <= RL_CHUNK; i++) pw[i] = expf(-0.03f * i);
        fill(qkv, n, -1, 1); fill(dy, (size_t)T * D, -1, 1);
        float sc = 1.0f / sqrtf((float)D);
        rl_bwd_lightning_ref(qkv, qkv + D, qkv + 2 * D, ld, T, D, pw, sc, dy, D, ga, ga + D, ga + 2 * D, scr);
        rl_bwd_lightning(qkv, qkv + D, qkv + 2 * D, ld, T, D, pw, sc, dy, D, gb, gb + D, gb + 2 * D, scr);
        double e = maxrel(gb, ga, n);
        CHECK(e < 1e-5, "fast lightning backward T=%d D=%d: max rel diff %.2e", T, D, e);
        memset(ga, 0, 4 * n); memset(gb, 0, 4 * n);
        rl_bwd_gqa_head_ref(qkv, qkv + D, qkv + 2 * D, ld, T, D, sc, dy, D, ga, ga + D, ga + 2 * D, scr);
        rl_bwd_gqa_head(qkv, qkv + D, qkv + 2 * D, ld, T, D, sc, dy, D, gb, gb + D, gb + 2 * D, scr);
        e = maxrel(gb, ga, n);
        CHECK(e < 1e-5, "fast gqa backward T=%d D=%d: max rel diff %.2e", T, D, e);
        /* the padding columns between rows are never written */
        for (int t = 0; t < T; t++)
            for (int c = 3 * D; c < ld; c++) CHECK(gb[(size_t)t * ld + c] == 0.0f, "gqa wrote padding");
        free(qkv); free(dy); free(ga); free(gb); free(scr);
    }
}

/* ---- row-parallel ops == serial ops, bitwise, at 1..3 threads ---- */
static void test_rows_bitwise(void) {
    int n = 37, dim = 52, G = 4;
    size_t N = (size_t)n * dim;
    float *x = malloc(4 * N), *g = malloc(4 * N), *dy = malloc(4 * N), *w = malloc(4 * dim);
    fill(x, N, -2, 2); fill(g, N, -2, 2); fill(dy, N, -1, 1); fill(w, dim, 0.5f, 1.5f);
    float *dxa = calloc(N, 4), *dga = calloc(N, 4), *dwa = calloc(dim, 4);
    for (int r = 0; r < n; r++) dwa[r % dim] = 0.25f * r; /* start from non-zero sums */
    float *dwa2 = malloc(4 * dim);
    memcpy(dwa2, dwa, 4 * dim);
    rl_bwd_rmsnorm(x, n, dim, w, 1e-5f, dy, dxa, dwa);
    for (int r = 0; r < n; r++)
        rl_bwd_group_norm_gate(x + (size_t)r * dim, g + (size_t)r * dim, dim, G, w, 1e-5f,
                               dy + (size_t)r * dim, dga + (size_t)r * dim, dga + (size_t)r * dim, dwa2);
    float *sa = calloc(N, 4), *sb = calloc(N, 4);
    rl_bwd_swiglu(x, g, (int)N, dy, sa, sb);
    int saved = omp_get_max_threads();
    for (int th = 1; th <= 3; th++) {
        omp_set_num_threads(th);
        float *dx = calloc(N, 4), *dg = calloc(N, 4), *dw = calloc(dim, 4), *dw2 = malloc(4 * dim);
        for (int r = 0; r < n; r++) dw[r % dim] = 0.25f * r;
        memcpy(dw2, dw, 4 * dim);
        rl_bwd_rmsnorm_rows(x, n, dim, w, 1e-5f, dy, dx, dw);
        CHECK(!memcmp(dx, dxa, 4 * N) && !memcmp(dw, dwa, 4 * dim), "rmsnorm_rows != serial at %d threads", th);
        rl_bwd_group_norm_gate_rows(x, g, n, dim, G, w, 1e-5f, dy, dg, dg, dw2);
        CHECK(!memcmp(dg, dga, 4 * N) && !memcmp(dw2, dwa2, 4 * dim),
              "group_norm_gate_rows != serial at %d threads", th);
        float *ta = calloc(N, 4), *tb = calloc(N, 4);
        rl_bwd_swiglu_par(x, g, N, dy, ta, tb);
        CHECK(!memcmp(ta, sa, 4 * N) && !memcmp(tb, sb, 4 * N), "swiglu_par != serial at %d threads", th);
        free(dx); free(dg); free(dw); free(dw2); free(ta); free(tb);
    }
    /* the fast matmul backward: the same bits at every thread count */
    int O = 45, C = 83, m = 29;
    float *W = malloc(4 * O * C), *xm = malloc(4 * m * C), *dym = malloc(4 * m * O);
    fill(W, (size_t)O * C, -1, 1); fill(xm, (size_t)m * C, -1, 1); fill(dym, (size_t)m * O, -1, 1);
    rl_wmat Wm = {.dtype = RL_F32, .rows = O, .cols = C, .data = W};
    float *dx1 = NULL, *dw1 = NULL;
    for (int th = 1; th <= 3; th++) {
        omp_set_num_threads(th);
        float *dxm = calloc((size_t)m * C, 4), *dwm = calloc((size_t)O * C, 4);
        rl_bwd_matmul(&Wm, xm, C, m, dym, O, dxm, C, dwm);
        if (th == 1) {
            dx1 = dxm;
            dw1 = dwm;
            continue;
        }
        CHECK(!memcmp(dxm, dx1, 4 * (size_t)m * C) && !memcmp(dwm, dw1, 4 * (size_t)O * C),
              "fast matmul backward differs at %d threads", th);
        free(dxm); free(dwm);
    }
    omp_set_num_threads(saved);
    free(dx1); free(dw1); free(W); free(xm); free(dym);
    free(x); free(g); free(dy); free(w); free(dxa); free(dga); free(dwa); free(dwa2); free(sa); free(sb);
}

int main(void) {
    test_rmsnorm();
    test_rope();
    test_group_norm_gate();
    test_swiglu();
    test_lightning();
    test_gqa();
    test_matmul();
    test_attn_fast();
    test_rows_bitwise();
    return rl_test_done();
}
