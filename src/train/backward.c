/* The backward pass over the tape of rl_step_train: gradients of the mean
 * next-token cross-entropy w.r.t. every parameter (fp32).
 *
 * Order, per layer from the last: MLP (dense SwiGLU or MoE with its router),
 * post-attention RMSNorm, attention (Lightning through its chunked form, or
 * GQA softmax), input RMSNorm; then the embedding rows. The residual
 * gradient dX is carried across layers. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "train/backward_ops.h"
#include "train/grad.h"
#include "train/loss.h"
#include "train/tape.h"

typedef struct bctx {
    const rl_model *m;
    rl_engine *eng;
    int T;
    rl_tape *tape;
    /* recomputation: the work layer and the fresh-slot span its layers rerun
     * over (NULL: the tape is whole) */
    const rl_tape_layer *work;
    const rl_span *span;
    rl_grads *g;
    float *dX, *dA; /* [T][hid] */
    int fail;
} bctx;

/* (may run on several threads at once: the flag is only ever set to 1) */
static float *zalloc(bctx *b, size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) __atomic_store_n(&b->fail, 1, __ATOMIC_RELAXED);
    return p;
}

/* SwiGLU MLP backward over n rows: x [n][hid] input rows, h1/h2 [n][I] the
 * gate/up projections, dy [n][hid] output gradient; adds dx [n][hid]. */
static void swiglu_bwd(bctx *b, const rl_wmat *Wg, const rl_wmat *Wu, const rl_wmat *Wd,
                       float *dWg, float *dWu, float *dWd, const float *x, const float *h1,
                       const float *h2, int n, const float *dy, float *dx) {
    const rl_model *m = b->m;
    int I = Wg->rows, hid = m->cfg.hidden_size;
    size_t nI = (size_t)n * I;
    float *act = zalloc(b, nI), *dH = zalloc(b, nI), *d1 = zalloc(b, nI), *d2 = zalloc(b, nI);
    if (act && dH && d1 && d2) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++)
            m->ops->swiglu(h1 + (size_t)r * I, h2 + (size_t)r * I, I, act + (size_t)r * I);
        rl_bwd_matmul(Wd, act, I, n, dy, hid, dH, I, dWd);
        rl_bwd_swiglu_par(h1, h2, nI, dH, d1, d2);
        rl_bwd_matmul(Wg, x, hid, n, d1, I, dx, hid, dWg);
        rl_bwd_matmul(Wu, x, hid, n, d2, I, dx, hid, dWu);
    }
    free(act); free(dH); free(d1); free(d2);
}

static void moe_bwd(bctx *b, int l) {
    const rl_model *m = b->m;
    const rl_config *c = &m->cfg;
    const rl_layer *ly = &m->layers[l];
    const rl_tape_layer *tl = &b->tape->layers[l];
    rl_layer_grads *lg = &b->g->layers[l];
    int T = b->T, hid = c->hidden_size, E = c->num_experts, K = c->num_experts_per_tok;
    int I = ly->e_gate[0].rows, TK = T * K;
    float *dX = b->dX, *dA = b->dA;
    float *dwt = zalloc(b, (size_t)TK), *dR = zalloc(b, (size_t)T * E);
    float *xe = zalloc(b, (size_t)TK * hid), *dy = zalloc(b, (size_t)TK * hid);
    float *h1 = zalloc(b, (size_t)TK * I), *h2 = zalloc(b, (size_t)TK * I);
    float *dxe = zalloc(b, (size_t)TK * hid);
    /* the (token, choice) rows packed expert by expert, each expert's rows in
     * (t, r) order as the forward ran them: order[i] = t*K + r, pos = inverse */
    int *order = malloc(sizeof(int) * (size_t)TK), *pos = malloc(sizeof(int) * (size_t)TK);
    int *start = calloc((size_t)E + 1, sizeof(int));
    if (!order || !pos || !start) b->fail = 1;
    if (b->fail) goto out;
    /* routed weights: y = sum_r w_r Y_r  ->  dw_r = dX . Y_r */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int r = 0; r < K; r++) {
            const float *yk = tl->yk + ((size_t)t * K + r) * hid, *d = dX + (size_t)t * hid;
            float a = 0.0f;
            for (int i = 0; i < hid; i++) a += d[i] * yk[i];
            dwt[t * K + r] = a;
        }
    int *load = b->g->expert_load + (size_t)l * E;
    for (int i = 0; i < TK; i++) start[tl->sel[i] + 1]++;
    for (int x = 0; x < E; x++) {
        load[x] += start[x + 1];
        start[x + 1] += start[x];
    }
    {
        int fill[E];
        for (int x = 0; x < E; x++) fill[x] = start[x];
        for (int i = 0; i < TK; i++) {
            int p = fill[tl->sel[i]]++;
            order[p] = i;
            pos[i] = p;
        }
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < TK; i++) {
        int t = order[i] / K;
        float w = tl->wt[order[i]];
        memcpy(xe + (size_t)i * hid, tl->a_mlp + (size_t)t * hid, sizeof(float) * hid);
        for (int d = 0; d < hid; d++) dy[(size_t)i * hid + d] = w * dX[(size_t)t * hid + d];
        memcpy(h1 + (size_t)i * I, tl->h1 + (size_t)order[i] * I, sizeof(float) * I);
        memcpy(h2 + (size_t)i * I, tl->h2 + (size_t)order[i] * I, sizeof(float) * I);
    }
    /* each expert over its tokens, in the forward's order; threads take
     * whole experts (disjoint gradients and rows; the ops inside run on the
     * one thread, whose results do not depend on the split): one fork and
     * join per layer instead of eight per expert, which matters most when
     * other processes share the cores */
#pragma omp parallel for schedule(dynamic, 1)
    for (int x = 0; x < E; x++) {
        int s0 = start[x], n = start[x + 1] - s0;
        if (!n) continue;
        swiglu_bwd(b, &ly->e_gate[x], &ly->e_up[x], &ly->e_down[x], lg->e_gate[x], lg->e_up[x],
                   lg->e_down[x], xe + (size_t)s0 * hid, h1 + (size_t)s0 * I, h2 + (size_t)s0 * I, n,
                   dy + (size_t)s0 * hid, dxe + (size_t)s0 * hid);
    }
    /* back to the tokens: a token's experts added in expert order (the
     * serial expert loop's order), threads over tokens */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const int *sel = tl->sel + (size_t)t * K;
        int rs[K]; /* the token's choices by expert id (insertion sort, K is small) */
        for (int r = 0; r < K; r++) {
            int j = r;
            for (; j > 0 && sel[rs[j - 1]] > sel[r]; j--) rs[j] = rs[j - 1];
            rs[j] = r;
        }
        float *d = dA + (size_t)t * hid;
        for (int q = 0; q < K; q++) {
            const float *src = dxe + (size_t)pos[t * K + rs[q]] * hid;
            for (int j = 0; j < hid; j++) d[j] += src[j];
        }
    }
    if (ly->has_shared)
        swiglu_bwd(b, &ly->s_gate, &ly->s_up, &ly->s_down, lg->s_gate, lg->s_up, lg->s_down,
                   tl->a_mlp, tl->sh1, tl->sh2, T, dX, dA);
    /* through the normalized weights w_r = f * s_r / (sum s + 1e-20) (K > 1)
     * or f * s_r, s = sigmoid(logit); the selection is not differentiated */
    float f = c->routed_scaling_factor;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const int *sel = tl->sel + (size_t)t * K;
        const float *R = tl->router + (size_t)t * E;
        float s[K], ds[K];
        float sum = 0.0f;
        for (int r = 0; r < K; r++) {
            s[r] = 1.0f / (1.0f + expf(-R[sel[r]]));
            sum += s[r];
        }
        if (K > 1) {
            float Z = sum + 1e-20f, cross = 0.0f;
            for (int r = 0; r < K; r++) cross += dwt[t * K + r] * s[r];
            for (int r = 0; r < K; r++) ds[r] = f * (dwt[t * K + r] / Z - cross / (Z * Z));
        } else {
            ds[0] = f * dwt[t * K];
        }
        for (int r = 0; r < K; r++) dR[(size_t)t * E + sel[r]] += ds[r] * s[r] * (1.0f - s[r]);
    }
    rl_bwd_matmul(&ly->router, tl->a_mlp, hid, T, dR, E, dA, hid, lg->router);
out:
    free(dwt); free(dR); free(xe); free(dy); free(h1); free(h2); free(dxe);
    free(order); free(pos); free(start);
}

/* dQKV of the q/k heads: back through RoPE, QK-norm and (Lightning) SiLU, in
 * place on dqkv rows [T][W]; raw = the projection output. */
static void qk_bwd(bctx *b, int l, int nq, int nk, int W, float *dqkv) {
    const rl_model *m = b->m;
    const rl_config *c = &m->cfg;
    const rl_layer *ly = &m->layers[l];
    const rl_tape_layer *tl = &b->tape->layers[l];
    rl_layer_grads *lg = &b->g->layers[l];
    int T = b->T, D = c->head_dim, R2 = c->rotary_dim;
    bool silu = !ly->softmax && c->linear_silu;
    /* the QK-norm weight gradients: one contribution row per (token, head),
     * summed in that order after the parallel loop (backward_rows.c) */
    float *qrows = NULL, *krows = NULL;
    if (ly->q_norm) {
        qrows = zalloc(b, (size_t)T * nq * D);
        krows = zalloc(b, (size_t)T * nk * D);
        if (b->fail) goto out;
    }
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float tmp[(nq + nk) * D], pre[W];
        float *d = dqkv + (size_t)t * W;
        const float *raw = tl->qkv_raw + (size_t)t * W;
        if (R2 > 0) {
            rl_bwd_rope(d, nq, D, R2, b->tape->cs + (size_t)t * R2);
            rl_bwd_rope(d + nq * D, nk, D, R2, b->tape->cs + (size_t)t * R2);
        }
        if (ly->q_norm || silu) {
            for (int i = 0; i < W; i++) pre[i] = silu ? raw[i] / (1.0f + expf(-raw[i])) : raw[i];
        }
        if (ly->q_norm) {
            memset(tmp, 0, sizeof tmp);
            for (int h = 0; h < nq + nk; h++) {
                bool q = h < nq;
                float *row = q ? qrows + ((size_t)t * nq + h) * D : krows + ((size_t)t * nk + h - nq) * D;
                rl_bwd_rmsnorm(pre + (size_t)h * D, 1, D, q ? ly->q_norm : ly->k_norm, c->rms_norm_eps,
                               d + (size_t)h * D, tmp + (size_t)h * D, row);
            }
            memcpy(d, tmp, sizeof tmp);
        }
        if (silu) {
            memcpy(pre, d, sizeof(float) * W);
            memset(d, 0, sizeof(float) * W);
            rl_bwd_silu(raw, W, pre, d);
        }
    }
    if (ly->q_norm) {
        rl_bwd_sum_rows(qrows, T * nq, D, lg->q_norm);
        rl_bwd_sum_rows(krows, T * nk, D, lg->k_norm);
    }
out:
    free(qrows);
    free(krows);
}

static void linear_bwd(bctx *b, int l) {
    const rl_model *m = b->m;
    const rl_config *c = &m->cfg;
    const rl_layer *ly = &m->layers[l];
    const rl_tape_layer *tl = &b->tape->layers[l];
    rl_layer_grads *lg = &b->g->layers[l];
    int T = b->T, hid = c->hidden_size, H = c->num_attention_heads, D = c->head_dim;
    int HD = H * D, W = 3 * HD;
    float *dU = zalloc(b, (size_t)T * HD), *dO = zalloc(b, (size_t)T * HD);
    float *dG = zalloc(b, (size_t)T * HD), *dQ = zalloc(b, (size_t)T * W);
    int nC = (T + RL_CHUNK - 1) / RL_CHUNK, nth = omp_get_max_threads();
    size_t scr = (size_t)(nC + 1) * D * D;
    float *scratch = zalloc(b, scr * nth);
    if (b->fail) goto out;
    rl_bwd_matmul(&ly->dense, tl->u, HD, T, b->dX, hid, dU, HD, lg->dense);
    rl_bwd_group_norm_gate_rows(tl->att, tl->gate, T, HD, c->group_norm_size, ly->g_norm,
                                c->rms_norm_eps, dU, dO, dG, lg->g_norm);
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < H; h++) {
        const float *q = tl->qkv + h * D;
        rl_bwd_lightning(q, q + HD, q + 2 * HD, W, T, D, ly->decay_pw + h * (RL_CHUNK + 1), scale,
                         dO + h * D, HD, dQ + h * D, dQ + HD + h * D, dQ + 2 * HD + h * D,
                         scratch + scr * omp_get_thread_num());
    }
    qk_bwd(b, l, H, H, W, dQ);
    rl_bwd_matmul(&ly->qkv, tl->a_in, hid, T, dQ, W, b->dA, hid, lg->qkv);
    rl_bwd_matmul(&ly->g_proj, tl->a_in, hid, T, dG, HD, b->dA, hid, lg->g_proj);
out:
    free(dU); free(dO); free(dG); free(dQ); free(scratch);
}

static void softmax_bwd(bctx *b, int l) {
    const rl_model *m = b->m;
    const rl_config *c = &m->cfg;
    const rl_layer *ly = &m->layers[l];
    const rl_tape_layer *tl = &b->tape->layers[l];
    rl_layer_grads *lg = &b->g->layers[l];
    int T = b->T, hid = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int D = c->head_dim, HD = H * D, KD = Hkv * D, W = HD + 2 * KD, gq = H / Hkv;
    int nth = omp_get_max_threads();
    float *dO = zalloc(b, (size_t)T * HD), *dQ = zalloc(b, (size_t)T * W);
    float *scratch = zalloc(b, (size_t)2 * T * nth);
    if (b->fail) goto out;
    rl_bwd_matmul(&ly->dense, tl->att, HD, T, b->dX, hid, dO, HD, lg->dense);
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < Hkv; g++)
        for (int h = g * gq; h < (g + 1) * gq; h++) {
            const float *q = tl->qkv;
            rl_bwd_gqa_head(q + h * D, q + HD + g * D, q + HD + KD + g * D, W, T, D, scale,
                            dO + h * D, HD, dQ + h * D, dQ + HD + g * D, dQ + HD + KD + g * D,
                            scratch + (size_t)2 * T * omp_get_thread_num());
        }
    qk_bwd(b, l, H, Hkv, W, dQ);
    rl_bwd_matmul(&ly->qkv, tl->a_in, hid, T, dQ, W, b->dA, hid, lg->qkv);
out:
    free(dO); free(dQ); free(scratch);
}

static int backward(bctx *b, const int *ids, rl_err *e) {
    const rl_model *m = b->m;
    const rl_config *c = &m->cfg;
    int T = b->T, hid = c->hidden_size;
    size_t n = (size_t)T * hid;
    for (int l = c->num_hidden_layers - 1; l >= 0 && !b->fail; l--) {
        const rl_layer *ly = &m->layers[l];
        rl_tape_layer *tl = &b->tape->layers[l], saved = *tl;
        rl_layer_grads *lg = &b->g->layers[l];
        if (b->work) {
            /* this layer's full tape, recomputed from its checkpoint: the
             * forward's own code, so bitwise the values a whole tape holds */
            *tl = *b->work;
            tl->x_in = saved.x_in;
            int rc = rl_step_train_layer(b->eng, b->span, 1, l, saved.x_in, tl, e);
            if (rc) {
                *tl = saved;
                return rc;
            }
        }
        memset(b->dA, 0, sizeof(float) * n);
        if (ly->moe)
            moe_bwd(b, l);
        else
            swiglu_bwd(b, &ly->gate, &ly->up, &ly->down, lg->gate, lg->up, lg->down, tl->a_mlp,
                       tl->h1, tl->h2, T, b->dX, b->dA);
        rl_bwd_rmsnorm_rows(tl->x_mid, T, hid, ly->post_norm, c->rms_norm_eps, b->dA, b->dX,
                            lg->post_norm);
        memset(b->dA, 0, sizeof(float) * n);
        if (ly->softmax)
            softmax_bwd(b, l);
        else
            linear_bwd(b, l);
        rl_bwd_rmsnorm_rows(tl->x_in, T, hid, ly->in_norm, c->rms_norm_eps, b->dA, b->dX,
                            lg->in_norm);
        *tl = saved;
    }
    if (b->fail) return rl_errf(e, RL_E_NOMEM, "out of memory (backward, %d tokens)", T);
    /* embedding rows: a token id may repeat, so threads split the columns
     * and each element adds its tokens in order */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < hid; i++)
        for (int t = 0; t < T; t++) b->g->embed[(size_t)ids[t] * hid + i] += b->dX[(size_t)t * hid + i];
    return RL_OK;
}

/* One fresh sequence through rl_step_train. */
static int forward(rl_engine *eng, const int *ids, int n, rl_tape *tape, rl_err *e) {
    rl_slot slot;
    int rc = rl_slot_init(&slot, eng->m, e);
    if (rc) return rc;
    rl_span sp = {&slot, ids, n, 0, RL_LOGITS_NONE, NULL};
    rc = rl_step_train(eng, &sp, 1, tape, e);
    rl_slot_free(&slot, &eng->pool);
    return rc;
}

int rl_train_grad(rl_engine *eng, const int *ids, int n, rl_recompute mode, rl_grads *g,
                  float *loss, rl_err *e) {
    const rl_model *m = eng->m;
    if (n < 2) return rl_errf(e, RL_E_ARG, "rl_train_grad: need at least 2 tokens, got %d", n);
    if (m->cfg.num_experts > 0 && m->cfg.num_experts_per_tok > 64)
        return rl_errf(e, RL_E_ARG, "rl_train_grad: at most 64 experts per token");
    bool rec = rl_recompute_resolve(mode, m, n);
    rl_tape tape;
    rl_tape_layer work = {0};
    rl_slot slot = {0};
    bool have_slot = false;
    int rc = rec ? rl_tape_alloc_checkpoints(&tape, m, n, e) : rl_tape_alloc(&tape, m, n, e);
    if (rc) return rc;
    float *dX = NULL, *dA = NULL;
    if (rec) {
        if ((rc = rl_tape_layer_alloc(&work, m, n, e))) goto out;
        if ((rc = rl_slot_init(&slot, m, e))) goto out;
        have_slot = true;
    }
    rc = forward(eng, ids, n, &tape, e);
    if (rc) goto out;
    dX = calloc((size_t)n * m->cfg.hidden_size, sizeof(float));
    dA = calloc((size_t)n * m->cfg.hidden_size, sizeof(float));
    if (!dX || !dA) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory (backward)");
        goto out;
    }
    rc = rl_loss_head(m, tape.x_final, ids, n, NULL, g, dX, loss, e);
    if (rc) goto out;
    /* the layers rerun over a fresh slot (each layer's state in it starts
     * empty, as in the forward's own fresh slot) */
    rl_span sp = {&slot, ids, n, 0, RL_LOGITS_NONE, NULL};
    bctx b = {.m = m, .eng = eng, .T = n, .tape = &tape, .g = g, .dX = dX, .dA = dA,
              .work = rec ? &work : NULL, .span = &sp};
    rc = backward(&b, ids, e);
out:
    free(dX);
    free(dA);
    if (have_slot) rl_slot_free(&slot, &eng->pool);
    rl_tape_layer_free(&work);
    rl_tape_free(&tape, m);
    return rc;
}

int rl_train_logprobs(rl_engine *eng, const int *ids, int n, float *out, rl_err *e) {
    const rl_model *m = eng->m;
    if (n < 2) return rl_errf(e, RL_E_ARG, "scoring needs at least 2 tokens, got %d", n);
    rl_tape tape;
    int rc = rl_tape_alloc_final(&tape, m, n, e);
    if (rc) return rc;
    rc = forward(eng, ids, n, &tape, e);
    if (!rc) rc = rl_loss_head(m, tape.x_final, ids, n, out, NULL, NULL, NULL, e);
    rl_tape_free(&tape, m);
    return rc;
}
