/* Correctness of the CUDA attention kernels (src/ops/cuda/attn_cuda.h)
 * against the plain CPU reference ops (rl_ops_ref), driven span by span and
 * chunk segment by chunk segment exactly as src/engine/step.c drives them.
 *
 * Every token's q/k/v is a fixed random function of (case, sequence,
 * position), so the same sequences can be fed under different step splits:
 *   - accuracy (default mode): random splits with several spans per step,
 *     and token-by-token decode batches; relative error per row (the token's
 *     whole output row, in double) against the reference must be < 1e-2;
 *   - determinism (deterministic = 1): one whole-prefill step, random splits
 *     and token by token give bitwise equal outputs and final states.
 * Outputs are poisoned with NaN before every step and every element of every
 * row is checked written (and the row padding untouched). Sequences start
 * mid-chunk from random states/stashes/KV history. Exit status 0 = all pass. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "ops/cuda/attn_cuda.h"
#include "ops/ops.h"
#include "state/kv_pages.h"
#include "gpu_check.h"

static int g_fail = 0;
static double g_worst_lin = 0.0, g_worst_gqa = 0.0;

/* ---- deterministic random data ------------------------------------------------ */

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
/* uniform in [-1, 1), never exactly 0 */
static float urand(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = mix(mix(mix(a) ^ b) ^ c);
    float f = (float)((h >> 40) + 0.5) / (float)(1ull << 24);
    return 2.0f * f - 1.0f;
}

/* the plans' and page permutations' random stream, reseeded per case (case_seed)
 * so that --case NAME draws what the full run draws for that case */
static uint64_t g_rng = 12345;
static void case_seed(int kind, int ci) { g_rng = mix(12345u + 1000u * (uint64_t)kind + (uint64_t)ci); }
static int irand(int n) { /* 0..n-1 */
    g_rng = mix(g_rng);
    return (int)(g_rng % (uint64_t)n);
}

static void *dmalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}

/* ---- step plans ------------------------------------------------------------------ */

typedef struct { int seq, n; } piece;
typedef struct { piece *p; int *step_start; int n_steps, n_pieces; } plan;

enum { PLAN_WHOLE, PLAN_RANDOM, PLAN_TOKENS };

static int rand_len(void) {
    static const int L[] = {1, 1, 2, 5, 16, 63, 64, 65, 100, 130, 200, 333};
    return L[irand((int)(sizeof L / sizeof L[0]))];
}

static plan make_plan(int kind, int n_seq, const int *ntot) {
    plan pl = {0};
    int cap = 0;
    for (int s = 0; s < n_seq; s++) cap += ntot[s];
    pl.p = malloc(sizeof(piece) * (size_t)cap);
    pl.step_start = malloc(sizeof(int) * (size_t)(cap + 2));
    int *done = calloc((size_t)n_seq, sizeof(int));
    for (;;) {
        int any = 0;
        for (int s = 0; s < n_seq; s++) any |= done[s] < ntot[s];
        if (!any) break;
        pl.step_start[pl.n_steps++] = pl.n_pieces;
        int added = 0;
        for (int s = 0; s < n_seq; s++) {
            int left = ntot[s] - done[s];
            if (!left) continue;
            int n = kind == PLAN_WHOLE ? left : kind == PLAN_TOKENS ? 1 : rand_len();
            if (kind == PLAN_RANDOM && irand(4) == 0 && added) continue; /* sit this step out */
            if (n > left) n = left;
            pl.p[pl.n_pieces++] = (piece){s, n};
            done[s] += n;
            added++;
        }
    }
    pl.step_start[pl.n_steps] = pl.n_pieces;
    free(done);
    return pl;
}

static void free_plan(plan *pl) {
    free(pl->p);
    free(pl->step_start);
}

/* relative error of one row, in double */
static double row_err(const float *a, const float *ref, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* checks a step's output rows: all written and finite, padding still poison */
static int check_written(const float *o, int T, int width, int ldo, const char *what) {
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < width; c++)
            if (!isfinite(o[(size_t)t * ldo + c])) {
                fprintf(stderr, "FAIL %s: row %d col %d not written (%g)\n", what, t, c,
                        o[(size_t)t * ldo + c]);
                return 1;
            }
        for (int c = width; c < ldo; c++) {
            uint32_t u;
            memcpy(&u, &o[(size_t)t * ldo + c], 4);
            if (u != 0xffffffffu) {
                fprintf(stderr, "FAIL %s: row %d padding col %d overwritten\n", what, t, c);
                return 1;
            }
        }
    }
    return 0;
}

/* ---- Lightning --------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int H, D, n_seq;
    int pos0[8], ntot[8];
} lin_case;

typedef struct {
    int H, D, HD, ld, n_seq, ci;
    const int *pos0, *ntot;
    float *pw;                  /* host [H][65] */
    float *S0, *k0, *v0;        /* initial states, per sequence */
    /* device */
    float *dpw, *dqkv, *do_;
    float **dS, **dk, **dv;
    rl_cu_lin_state *dstates;
    rl_cu_span *dspans;
} lin_ctx;

static float lin_val(const lin_ctx *c, int seq, int pos, int col) {
    /* q, k in [-0.5, 0.5), v in [-1, 1) */
    float u = urand((uint64_t)c->ci * 1000 + (uint64_t)seq, (uint64_t)pos, (uint64_t)col);
    return col < 2 * c->HD ? 0.5f * u : u;
}

/* Runs a plan; records outputs out[seq][pos - pos0][HD]; final states in
 * fS/fk/fv (host). With ref != 0 also runs the CPU reference and checks. */
static void lin_run(lin_ctx *c, const plan *pl, int det, int ref, float **out, float **fS,
                    float **fk, float **fv, const char *tag) {
    int H = c->H, D = c->D, HD = c->HD, ld = c->ld, ldo = HD + 8;
    size_t SN = (size_t)H * D * D, KN = (size_t)RL_CHUNK * HD;
    float **hS = malloc(sizeof(float *) * c->n_seq), **hk = malloc(sizeof(float *) * c->n_seq),
          **hv = malloc(sizeof(float *) * c->n_seq);
    int *pos = malloc(sizeof(int) * c->n_seq);
    for (int s = 0; s < c->n_seq; s++) {
        hS[s] = malloc(SN * 4);
        hk[s] = malloc(KN * 4);
        hv[s] = malloc(KN * 4);
        memcpy(hS[s], c->S0 + s * SN, SN * 4);
        memcpy(hk[s], c->k0 + s * KN, KN * 4);
        memcpy(hv[s], c->v0 + s * KN, KN * 4);
        CK(cudaMemcpy(c->dS[s], hS[s], SN * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(c->dk[s], hk[s], KN * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(c->dv[s], hv[s], KN * 4, cudaMemcpyHostToDevice));
        pos[s] = c->pos0[s];
    }
    int Tmax = 0;
    for (int s = 0; s < c->n_seq; s++) Tmax += c->ntot[s];
    float *qkv = malloc((size_t)Tmax * ld * 4), *o = malloc((size_t)Tmax * ldo * 4),
          *ro = malloc((size_t)Tmax * HD * 4);
    rl_cu_span *sp = malloc(sizeof(rl_cu_span) * c->n_seq);
    double worst = 0;
    for (int st = 0; st < pl->n_steps; st++) {
        int T = 0, ns = 0, max_n = 0;
        for (int i = pl->step_start[st]; i < pl->step_start[st + 1]; i++) {
            piece pc = pl->p[i];
            sp[ns] = (rl_cu_span){T, pc.n, pos[pc.seq], pc.seq};
            for (int j = 0; j < pc.n; j++)
                for (int col = 0; col < ld; col++)
                    qkv[(size_t)(T + j) * ld + col] =
                        col < 3 * HD ? lin_val(c, pc.seq, pos[pc.seq] + j, col) : 7.0f;
            T += pc.n;
            if (pc.n > max_n) max_n = pc.n;
            ns++;
        }
        CK(cudaMemcpy(c->dqkv, qkv, (size_t)T * ld * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(c->dspans, sp, sizeof(rl_cu_span) * ns, cudaMemcpyHostToDevice));
        CK(cudaMemset(c->do_, 0xff, (size_t)T * ldo * 4));
        CK(rl_cu_lightning(c->dqkv, ld, c->do_, ldo, c->dspans, ns, max_n, c->dstates, H, D, c->dpw,
                           1.0f / sqrtf((float)D), det, NULL));
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(o, c->do_, (size_t)T * ldo * 4, cudaMemcpyDeviceToHost));
        if (check_written(o, T, HD, ldo, tag)) g_fail++;
        for (int i = 0; i < ns; i++)
            for (int j = 0; j < sp[i].n; j++)
                memcpy(out[sp[i].seq] + (size_t)(sp[i].pos0 + j - c->pos0[sp[i].seq]) * HD,
                       o + (size_t)(sp[i].row0 + j) * ldo, (size_t)HD * 4);
        if (ref) { /* the CPU engine's loop (step.c linear_attention) */
            for (int i = 0; i < ns; i++) {
                int s = sp[i].seq, j = 0;
                float *S = hS[s], *kst = hk[s], *vst = hv[s];
                while (j < sp[i].n) {
                    int i0 = (sp[i].pos0 + j) % RL_CHUNK;
                    int len = RL_CHUNK - i0 < sp[i].n - j ? RL_CHUNK - i0 : sp[i].n - j;
                    for (int r = 0; r < len; r++) {
                        const float *row = qkv + (size_t)(sp[i].row0 + j + r) * ld;
                        memcpy(kst + (size_t)(i0 + r) * HD, row + HD, 4 * (size_t)HD);
                        memcpy(vst + (size_t)(i0 + r) * HD, row + 2 * HD, 4 * (size_t)HD);
                    }
                    for (int r = 0; r < len; r++)
                        for (int h = 0; h < H; h++) {
                            int t = sp[i].row0 + j + r;
                            rl_ops_ref.lightning_attend(qkv + (size_t)t * ld + h * D, kst + h * D, HD,
                                                        vst + h * D, HD, i0 + r, S + (size_t)h * D * D,
                                                        c->pw + h * (RL_CHUNK + 1), D,
                                                        1.0f / sqrtf((float)D), ro + (size_t)t * HD + h * D);
                        }
                    if (i0 + len == RL_CHUNK)
                        for (int h = 0; h < H; h++)
                            rl_ops_ref.lightning_fold(S + (size_t)h * D * D, kst + h * D, HD, vst + h * D,
                                                      HD, RL_CHUNK, c->pw + h * (RL_CHUNK + 1), D);
                    j += len;
                }
            }
            for (int t = 0; t < T; t++) {
                double e = row_err(o + (size_t)t * ldo, ro + (size_t)t * HD, HD);
                if (!(e < 1e-2)) {
                    if (g_fail < 20) fprintf(stderr, "FAIL %s step %d row %d: rel err %.3g\n", tag, st, t, e);
                    g_fail++;
                }
                if (e > worst) worst = e;
            }
        }
        for (int i = 0; i < ns; i++) pos[sp[i].seq] += sp[i].n;
    }
    for (int s = 0; s < c->n_seq; s++) {
        CK(cudaMemcpy(fS[s], c->dS[s], SN * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(fk[s], c->dk[s], KN * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(fv[s], c->dv[s], KN * 4, cudaMemcpyDeviceToHost));
        if (ref) {
            double e = row_err(fS[s], hS[s], (int)SN);
            int valid = pos[s] % RL_CHUNK; /* stash rows that hold the open chunk */
            int bad = memcmp(fk[s], hk[s], (size_t)valid * HD * 4) ||
                      memcmp(fv[s], hv[s], (size_t)valid * HD * 4);
            if (!(e < 5e-3) || bad) {
                fprintf(stderr, "FAIL %s seq %d: final state rel err %.3g, stash %s\n", tag, s, e,
                        bad ? "differs" : "ok");
                g_fail++;
            }
        }
    }
    if (ref) {
        printf("  %-34s %-8s worst row rel err %.2e\n", tag, "", worst);
        if (worst > g_worst_lin) g_worst_lin = worst;
    }
    for (int s = 0; s < c->n_seq; s++) {
        free(hS[s]);
        free(hk[s]);
        free(hv[s]);
    }
    free(hS); free(hk); free(hv); free(pos); free(qkv); free(o); free(ro); free(sp);
}

static void lin_test(const lin_case *lc, int ci) {
    lin_ctx c = {0};
    c.H = lc->H;
    c.D = lc->D;
    c.HD = c.H * c.D;
    c.ld = 3 * c.HD + 4; /* padding (rows stay 16-byte aligned): the kernels must use the stride */
    c.n_seq = lc->n_seq;
    c.ci = ci;
    case_seed(0, ci);
    c.pos0 = lc->pos0;
    c.ntot = lc->ntot;
    int H = c.H, D = c.D, HD = c.HD, ns = c.n_seq;
    size_t SN = (size_t)H * D * D, KN = (size_t)RL_CHUNK * HD;
    c.pw = malloc(sizeof(float) * H * (RL_CHUNK + 1));
    for (int h = 0; h < H; h++) {
        float gdec = -0.002f - 0.25f * (float)h / (float)H; /* slow to fast decay */
        for (int n = 0; n <= RL_CHUNK; n++) c.pw[h * (RL_CHUNK + 1) + n] = expf(gdec * (float)n);
    }
    c.S0 = malloc(SN * ns * 4);
    c.k0 = malloc(KN * ns * 4);
    c.v0 = malloc(KN * ns * 4);
    for (size_t i = 0; i < SN * ns; i++) c.S0[i] = 0.3f * urand(77, (uint64_t)ci, i);
    for (size_t i = 0; i < KN * ns; i++) {
        c.k0[i] = 0.5f * urand(78, (uint64_t)ci, i);
        c.v0[i] = urand(79, (uint64_t)ci, i);
    }
    int Tmax = 0;
    for (int s = 0; s < ns; s++) Tmax += lc->ntot[s];
    c.dpw = dmalloc(sizeof(float) * H * (RL_CHUNK + 1));
    CK(cudaMemcpy(c.dpw, c.pw, sizeof(float) * H * (RL_CHUNK + 1), cudaMemcpyHostToDevice));
    c.dqkv = dmalloc((size_t)Tmax * c.ld * 4);
    c.do_ = dmalloc((size_t)Tmax * (HD + 8) * 4);
    c.dS = malloc(sizeof(float *) * ns);
    c.dk = malloc(sizeof(float *) * ns);
    c.dv = malloc(sizeof(float *) * ns);
    rl_cu_lin_state *hst = malloc(sizeof(rl_cu_lin_state) * ns);
    for (int s = 0; s < ns; s++) {
        c.dS[s] = dmalloc(SN * 4);
        c.dk[s] = dmalloc(KN * 4);
        c.dv[s] = dmalloc(KN * 4);
        hst[s] = (rl_cu_lin_state){c.dS[s], c.dk[s], c.dv[s]};
    }
    c.dstates = dmalloc(sizeof(rl_cu_lin_state) * ns);
    CK(cudaMemcpy(c.dstates, hst, sizeof(rl_cu_lin_state) * ns, cudaMemcpyHostToDevice));
    c.dspans = dmalloc(sizeof(rl_cu_span) * ns);

    /* outputs and final states of 5 runs: acc-random, acc-tokens, det-whole, det-random, det-tokens */
    enum { NR = 5 };
    float **out[NR], **fS[NR], **fk[NR], **fv[NR];
    for (int r = 0; r < NR; r++) {
        out[r] = malloc(sizeof(float *) * ns);
        fS[r] = malloc(sizeof(float *) * ns);
        fk[r] = malloc(sizeof(float *) * ns);
        fv[r] = malloc(sizeof(float *) * ns);
        for (int s = 0; s < ns; s++) {
            out[r][s] = malloc((size_t)lc->ntot[s] * HD * 4);
            fS[r][s] = malloc(SN * 4);
            fk[r][s] = malloc(KN * 4);
            fv[r][s] = malloc(KN * 4);
        }
    }
    printf("lightning %s: H=%d D=%d, %d sequences\n", lc->name, H, D, ns);
    char tag[96];
    const int kinds[NR] = {PLAN_RANDOM, PLAN_TOKENS, PLAN_WHOLE, PLAN_RANDOM, PLAN_TOKENS};
    for (int r = 0; r < NR; r++) {
        plan pl = make_plan(kinds[r], ns, lc->ntot);
        snprintf(tag, sizeof tag, "%s/%s%s", lc->name, r < 2 ? "" : "det-",
                 kinds[r] == PLAN_WHOLE ? "whole" : kinds[r] == PLAN_TOKENS ? "tokens" : "random");
        lin_run(&c, &pl, r >= 2, r < 2, out[r], fS[r], fk[r], fv[r], tag);
        free_plan(&pl);
    }
    /* bitwise: det runs agree with each other (the default mode's decode
     * steps take an fp32 kernel: checked against the reference only) */
    for (int r = 3; r < NR; r++) {
        int diff = 0;
        for (int s = 0; s < ns; s++) {
            int valid = (lc->pos0[s] + lc->ntot[s]) % RL_CHUNK;
            diff |= memcmp(out[r][s], out[2][s], (size_t)lc->ntot[s] * HD * 4) != 0;
            diff |= memcmp(fS[r][s], fS[2][s], SN * 4) != 0;
            diff |= memcmp(fk[r][s], fk[2][s], (size_t)valid * HD * 4) != 0;
            diff |= memcmp(fv[r][s], fv[2][s], (size_t)valid * HD * 4) != 0;
        }
        printf("  bitwise run %d vs det-whole: %s\n", r, diff ? "DIFFERENT" : "equal");
        if (diff) g_fail++;
    }
    for (int r = 0; r < NR; r++) {
        for (int s = 0; s < ns; s++) {
            free(out[r][s]);
            free(fS[r][s]);
            free(fk[r][s]);
            free(fv[r][s]);
        }
        free(out[r]); free(fS[r]); free(fk[r]); free(fv[r]);
    }
    for (int s = 0; s < ns; s++) {
        CK(cudaFree(c.dS[s]));
        CK(cudaFree(c.dk[s]));
        CK(cudaFree(c.dv[s]));
    }
    CK(cudaFree(c.dstates)); CK(cudaFree(c.dspans)); CK(cudaFree(c.dqkv)); CK(cudaFree(c.do_));
    CK(cudaFree(c.dpw));
    free(c.dS); free(c.dk); free(c.dv); free(hst); free(c.pw); free(c.S0); free(c.k0); free(c.v0);
}

/* ---- GQA ------------------------------------------------------------------------------ */

enum { GQA_MAX_SEQ = 80 };

typedef struct {
    const char *name;
    int H, Hkv, D, n_seq;
    int pos0[GQA_MAX_SEQ], ntot[GQA_MAX_SEQ];
} gqa_case;

enum { NLAYERS = 2, LAYER = 1 };

typedef struct {
    int H, Hkv, D, HD, KD, W, ld, n_seq, ci, n_pages;
    const int *pos0, *ntot;
    size_t pf;
    float *pool0;          /* initial pool (history), host, fp32 as the CPU's */
    int **pages;           /* per sequence, host */
    uint16_t *dpool;       /* the device pool: bf16 (attn_cuda.h) */
    float *dqkv, *do_;
    int **dpages;
    const int **dtables;
    rl_cu_span *dspans;
} gqa_ctx;

static float gqa_val(const gqa_ctx *c, int seq, int pos, int col) {
    float u = urand(5000 + (uint64_t)c->ci * 1000 + (uint64_t)seq, (uint64_t)pos, (uint64_t)col);
    return col < c->HD + c->KD ? 2.0f * u : u; /* q, k sharper than plain uniform */
}

/* the device pool's image of a CPU pool: every element rounded to bf16 */
static void to_bf16(const float *x, uint16_t *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = rl_f32_to_bf16(x[i]);
}

static void gqa_run(gqa_ctx *c, const plan *pl, int det, int ref, float **out, uint16_t *fpool,
                    const char *tag) {
    int H = c->H, Hkv = c->Hkv, D = c->D, HD = c->HD, KD = c->KD, ld = c->ld, ldo = HD + 8;
    int gq = H / Hkv;
    size_t PB = c->pf * (size_t)c->n_pages;
    float *pool = malloc(PB * 4);
    uint16_t *pb16 = malloc(PB * 2);
    memcpy(pool, c->pool0, PB * 4);
    to_bf16(pool, pb16, PB);
    CK(cudaMemcpy(c->dpool, pb16, PB * 2, cudaMemcpyHostToDevice));
    int *pos = malloc(sizeof(int) * c->n_seq), Tmax = 0, maxctx = 0;
    for (int s = 0; s < c->n_seq; s++) {
        pos[s] = c->pos0[s];
        Tmax += c->ntot[s];
        if (c->pos0[s] + c->ntot[s] > maxctx) maxctx = c->pos0[s] + c->ntot[s];
    }
    float *qkv = malloc((size_t)Tmax * ld * 4), *o = malloc((size_t)Tmax * ldo * 4),
          *ro = malloc((size_t)Tmax * HD * 4), *scr = malloc(sizeof(float) * gq * (maxctx + 1));
    const float **kp = malloc(sizeof(float *) * (maxctx / RL_KV_PAGE + 2)),
                **vp = malloc(sizeof(float *) * (maxctx / RL_KV_PAGE + 2));
    rl_cu_span *sp = malloc(sizeof(rl_cu_span) * c->n_seq);
    double worst = 0;
    for (int st = 0; st < pl->n_steps; st++) {
        int T = 0, ns = 0, max_n = 0;
        for (int i = pl->step_start[st]; i < pl->step_start[st + 1]; i++) {
            piece pc = pl->p[i];
            sp[ns] = (rl_cu_span){T, pc.n, pos[pc.seq], pc.seq};
            for (int j = 0; j < pc.n; j++)
                for (int col = 0; col < ld; col++)
                    qkv[(size_t)(T + j) * ld + col] =
                        col < c->W ? gqa_val(c, pc.seq, pos[pc.seq] + j, col) : 7.0f;
            T += pc.n;
            if (pc.n > max_n) max_n = pc.n;
            ns++;
        }
        CK(cudaMemcpy(c->dqkv, qkv, (size_t)T * ld * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(c->dspans, sp, sizeof(rl_cu_span) * ns, cudaMemcpyHostToDevice));
        CK(cudaMemset(c->do_, 0xff, (size_t)T * ldo * 4));
        float scale = 1.0f / sqrtf((float)D);
        CK(rl_cu_kv_append(c->dqkv, ld, c->dspans, ns, max_n, (const int *const *)c->dtables,
                           c->dpool, c->pf, LAYER, H, Hkv, D, NULL));
        CK(rl_cu_gqa(c->dqkv, ld, c->do_, ldo, c->dspans, ns, max_n, (const int *const *)c->dtables,
                     c->dpool, c->pf, LAYER, H, Hkv, D, scale, det, NULL));
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(o, c->do_, (size_t)T * ldo * 4, cudaMemcpyDeviceToHost));
        if (check_written(o, T, HD, ldo, tag)) g_fail++;
        for (int i = 0; i < ns; i++)
            for (int j = 0; j < sp[i].n; j++)
                memcpy(out[sp[i].seq] + (size_t)(sp[i].pos0 + j - c->pos0[sp[i].seq]) * HD,
                       o + (size_t)(sp[i].row0 + j) * ldo, (size_t)HD * 4);
        if (ref) { /* step.c softmax_attention: append, then attend */
            for (int i = 0; i < ns; i++)
                for (int j = 0; j < sp[i].n; j++) {
                    int p = sp[i].pos0 + j, r = p % RL_KV_PAGE;
                    float *kb = pool + (size_t)c->pages[sp[i].seq][p / RL_KV_PAGE] * c->pf +
                                (size_t)LAYER * 2 * RL_KV_PAGE * KD;
                    float *vb = kb + (size_t)RL_KV_PAGE * KD;
                    const float *k = qkv + (size_t)(sp[i].row0 + j) * ld + HD, *v = k + KD;
                    for (int cc = 0; cc < KD; cc++) kb[(size_t)cc * RL_KV_PAGE + r] = k[cc];
                    for (int h = 0; h < Hkv; h++)
                        memcpy(vb + ((size_t)h * RL_KV_PAGE + r) * D, v + (size_t)h * D, 4 * (size_t)D);
                }
            for (int i = 0; i < ns; i++) {
                int s = sp[i].seq, np = (sp[i].pos0 + sp[i].n + RL_KV_PAGE - 1) / RL_KV_PAGE;
                for (int q = 0; q < np; q++) {
                    kp[q] = pool + (size_t)c->pages[s][q] * c->pf + (size_t)LAYER * 2 * RL_KV_PAGE * KD;
                    vp[q] = kp[q] + (size_t)RL_KV_PAGE * KD;
                }
                rl_kv_view kv = {kp, vp, RL_KV_PAGE};
                for (int j = 0; j < sp[i].n; j++)
                    for (int gg = 0; gg < Hkv; gg++) {
                        int t = sp[i].row0 + j;
                        rl_ops_ref.gqa_attend(qkv + (size_t)t * ld + (size_t)gg * gq * D, gq, &kv, gg,
                                              sp[i].pos0 + j + 1, D, scale, scr,
                                              ro + (size_t)t * HD + (size_t)gg * gq * D);
                    }
            }
            for (int t = 0; t < T; t++) {
                double e = row_err(o + (size_t)t * ldo, ro + (size_t)t * HD, HD);
                if (!(e < 1e-2)) {
                    if (g_fail < 20) fprintf(stderr, "FAIL %s step %d row %d: rel err %.3g\n", tag, st, t, e);
                    g_fail++;
                }
                if (e > worst) worst = e;
            }
        }
        for (int i = 0; i < ns; i++) pos[sp[i].seq] += sp[i].n;
    }
    CK(cudaMemcpy(fpool, c->dpool, PB * 2, cudaMemcpyDeviceToHost));
    if (ref) { /* the pages equal the CPU's, rounded to bf16, bit for bit */
        to_bf16(pool, pb16, PB);
        if (memcmp(fpool, pb16, PB * 2)) {
            fprintf(stderr, "FAIL %s: KV pool after append differs from the CPU's (bf16)\n", tag);
            g_fail++;
        }
        printf("  %-34s %-8s worst row rel err %.2e\n", tag, "", worst);
        if (worst > g_worst_gqa) g_worst_gqa = worst;
    }
    free(pool); free(pb16); free(pos); free(qkv); free(o); free(ro); free(scr); free(kp); free(vp); free(sp);
}

static void gqa_test(const gqa_case *gc, int ci) {
    gqa_ctx c = {0};
    c.H = gc->H;
    c.Hkv = gc->Hkv;
    c.D = gc->D;
    c.HD = c.H * c.D;
    c.KD = c.Hkv * c.D;
    c.W = c.HD + 2 * c.KD;
    c.ld = c.W + 3;
    c.n_seq = gc->n_seq;
    c.ci = ci;
    case_seed(1, ci);
    c.pos0 = gc->pos0;
    c.ntot = gc->ntot;
    c.pf = (size_t)NLAYERS * 2 * RL_KV_PAGE * c.KD;
    int ns = c.n_seq, HD = c.HD;
    int total = 0;
    for (int s = 0; s < ns; s++) total += (gc->pos0[s] + gc->ntot[s] + RL_KV_PAGE - 1) / RL_KV_PAGE;
    c.n_pages = total + 3; /* a few pages nobody owns */
    int *perm = malloc(sizeof(int) * c.n_pages);
    for (int i = 0; i < c.n_pages; i++) perm[i] = i;
    for (int i = c.n_pages - 1; i > 0; i--) {
        int j = irand(i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    c.pages = malloc(sizeof(int *) * ns);
    c.dpages = malloc(sizeof(int *) * ns);
    int used = 0;
    for (int s = 0; s < ns; s++) {
        int np = (gc->pos0[s] + gc->ntot[s] + RL_KV_PAGE - 1) / RL_KV_PAGE;
        c.pages[s] = perm + used;
        used += np;
        c.dpages[s] = dmalloc(sizeof(int) * np);
        CK(cudaMemcpy(c.dpages[s], c.pages[s], sizeof(int) * np, cudaMemcpyHostToDevice));
    }
    c.dtables = dmalloc(sizeof(int *) * ns);
    CK(cudaMemcpy(c.dtables, c.dpages, sizeof(int *) * ns, cudaMemcpyHostToDevice));
    size_t PB = c.pf * (size_t)c.n_pages;
    c.pool0 = malloc(PB * 4);
    for (size_t i = 0; i < PB; i++) {
        /* history keys in the same range as the new ones; the layout is not
         * needed here since every element is drawn alike */
        c.pool0[i] = 2.0f * urand(91, (uint64_t)ci, i);
    }
    c.dpool = dmalloc(PB * 2);
    int Tmax = 0;
    for (int s = 0; s < ns; s++) Tmax += gc->ntot[s];
    c.dqkv = dmalloc((size_t)Tmax * c.ld * 4);
    c.do_ = dmalloc((size_t)Tmax * (HD + 8) * 4);
    c.dspans = dmalloc(sizeof(rl_cu_span) * ns);
    printf("gqa %s: H=%d Hkv=%d D=%d, %d sequences\n", gc->name, c.H, c.Hkv, c.D, ns);
    enum { NR = 5 };
    float **out[NR];
    uint16_t *fpool[NR];
    for (int r = 0; r < NR; r++) {
        out[r] = malloc(sizeof(float *) * ns);
        for (int s = 0; s < ns; s++) out[r][s] = malloc((size_t)gc->ntot[s] * HD * 4);
        fpool[r] = malloc(PB * 2);
    }
    const int kinds[NR] = {PLAN_RANDOM, PLAN_TOKENS, PLAN_WHOLE, PLAN_RANDOM, PLAN_TOKENS};
    char tag[96];
    for (int r = 0; r < NR; r++) {
        plan pl = make_plan(kinds[r], ns, gc->ntot);
        snprintf(tag, sizeof tag, "%s/%s%s", gc->name, r < 2 ? "" : "det-",
                 kinds[r] == PLAN_WHOLE ? "whole" : kinds[r] == PLAN_TOKENS ? "tokens" : "random");
        gqa_run(&c, &pl, r >= 2, r < 2, out[r], fpool[r], tag);
        free_plan(&pl);
    }
    for (int r = 3; r < NR; r++) {
        int diff = memcmp(fpool[r], fpool[2], PB * 2) != 0;
        for (int s = 0; s < ns; s++)
            diff |= memcmp(out[r][s], out[2][s], (size_t)gc->ntot[s] * HD * 4) != 0;
        printf("  bitwise det run %d vs det-whole: %s\n", r, diff ? "DIFFERENT" : "equal");
        if (diff) g_fail++;
    }
    for (int r = 0; r < NR; r++) {
        for (int s = 0; s < ns; s++) free(out[r][s]);
        free(out[r]);
        free(fpool[r]);
    }
    for (int s = 0; s < ns; s++) CK(cudaFree(c.dpages[s]));
    CK(cudaFree(c.dtables)); CK(cudaFree(c.dpool)); CK(cudaFree(c.dqkv)); CK(cudaFree(c.do_));
    CK(cudaFree(c.dspans));
    free(c.pages); free(c.dpages); free(perm); free(c.pool0);
}

int main(int argc, char **argv) {
    /* --quick: the first case of each kind; --case NAME: only that case (the
     * sanitizer runs pick cases so that they finish) */
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--case") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--case NAME]\n", argv[0]);
            return 2;
        }
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
    static const lin_case LC[] = {
        {"odd-spans-d64", 2, 64, 5, {0, 37, 63, 5, 100}, {1100, 200, 65, 64, 1}},
        {"d128", 3, 128, 4, {0, 17, 64, 130}, {1030, 63, 65, 300}},
        {"mini-heads", 16, 128, 2, {0, 50}, {200, 100}},
    };
    static gqa_case GC[] = {
        {"gq4-kv1-d64", 4, 1, 64, 4, {0, 37, 63, 200}, {1100, 200, 65, 1}},
        {"gq2-kv2-d128", 4, 2, 128, 3, {0, 17, 64}, {700, 63, 130}},
        {"gq1-kv3-d128", 3, 3, 128, 3, {5, 0, 70}, {64, 300, 1}},
        {"gq2-kv4-d128", 8, 4, 128, 2, {0, 100}, {400, 65}},
        {"gq4-kv4-d128", 16, 4, 128, 2, {0, 33}, {300, 64}},
        {"gq8-kv1-d64", 8, 1, 64, 3, {0, 10, 127}, {500, 200, 2}},
        {"gq16-kv1-d64", 16, 1, 64, 2, {0, 3}, {150, 40}},
        /* a group size that does not divide a tile's rows (gqa_fa: 42 tokens, 252 rows) */
        {"gq6-kv2-d64", 12, 2, 64, 2, {0, 70}, {300, 90}},
        /* 16 sequences x 4 kv heads: 64 (span, kv head) pairs, where the default
         * mode's decode steps took gqa_fa unsplit before gqa_dec (RL_CUDA_GQA_DEC=0
         * still does: gqa_cuda.cu) */
        {"many-seqs-gq4-kv4", 16, 4, 128, 16,
         {0, 5, 63, 64, 100, 127, 128, 200, 3, 17, 33, 64, 90, 150, 255, 256},
         {40, 20, 10, 70, 30, 5, 66, 12, 50, 8, 60, 2, 25, 33, 3, 64}},
        /* long histories: the default mode's decode steps (gqa_dec) split ~63 pages
         * over many blocks and merge them; Ring-mini's and Ring-flash's groups */
        {"long-gq4-kv4", 16, 4, 128, 2, {4000, 9}, {24, 40}},
        {"long-gq8-kv4", 32, 4, 128, 2, {3000, 70}, {12, 5}},
        /* 72 sequences x 4 kv heads = 288 (span, kv head) pairs in a token-by-token
         * step, at least two per SM on a 132-SM card: gqa_dec's one-split path, which
         * writes the output directly (no partials, no gqa_dec_merge); filled below */
        {"many-pairs-gq4-kv4", 16, 4, 128, 72, {0}, {0}},
    };
    {
        gqa_case *mp = &GC[sizeof GC / sizeof GC[0] - 1];
        for (int s = 0; s < mp->n_seq; s++) {
            mp->pos0[s] = (s * 97) % 700; /* histories of 0-699 keys, odd offsets in pages */
            mp->ntot[s] = 3 + s % 5;      /* 3-7 new tokens: several all-sequence decode steps */
        }
    }
    int nl = (int)(sizeof LC / sizeof LC[0]), ng = (int)(sizeof GC / sizeof GC[0]);
    if (quick) nl = ng = 1;
    int ran = 0;
    for (int i = 0; i < nl; i++)
        if (!only || !strcmp(only, LC[i].name)) lin_test(&LC[i], i), ran++;
    for (int i = 0; i < ng; i++)
        if (!only || !strcmp(only, GC[i].name)) gqa_test(&GC[i], i), ran++;
    if (!ran) {
        fprintf(stderr, "no case named '%s'\n", only);
        return 2;
    }
    rl_cu_attn_release();
    printf("summary: lightning worst row rel err %.2e, gqa worst row rel err %.2e (bound 1e-2); %s (%d failures)\n",
           g_worst_lin, g_worst_gqa, g_fail ? "FAIL" : "PASS", g_fail);
    return g_fail ? 1 : 0;
}
