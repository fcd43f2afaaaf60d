/* The batched forward (SPEC §3) over spans of many sequences.
 *
 * Layout of the work: every weight matmul runs once over all T tokens of the
 * step (rows are independent and the matmul is row-invariant), then the
 * sequence-dependent parts (Lightning chunks, KV pages) run per span. Each
 * MoE expert runs once over the tokens routed to it. A token's arithmetic is
 * the same whatever else is in the step: see DESIGN.md §2.4. */
#include "engine/step.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model/router.h"

enum {
    B_X, B_A, B_QKV, B_G, B_O, B_U, B_Y, B_M1, B_M2, B_R, B_WT, B_YK, B_XE, B_YE,
    B_YS, B_ROPE, B_LOG, B_SCR, B_ROUTE, B_LOGITS, B_COUNT
};

struct rl_workspace {
    float *buf[B_COUNT];
    size_t cap[B_COUNT];
    int *tok_id, *tok_pos, *tok_span, *sel, *elist;
    size_t icap, selcap;
    const float **pg; /* KV page pointer tables of the spans, k then v */
    size_t pgcap;
};

static float *ws_get(rl_workspace *ws, int i, size_t n, rl_err *e) {
    if (n == 0) n = 1;
    if (ws->cap[i] < n) {
        float *p = realloc(ws->buf[i], n * sizeof(float));
        if (!p) {
            rl_errf(e, RL_E_NOMEM, "out of memory (step workspace, %zu bytes)", n * sizeof(float));
            return NULL;
        }
        ws->buf[i] = p;
        ws->cap[i] = n;
    }
    return ws->buf[i];
}

int rl_engine_init(rl_engine *eng, rl_model *m, int max_kv_pages, rl_err *e) {
    memset(eng, 0, sizeof *eng);
    eng->m = m;
    eng->max_ctx = m->cfg.max_position_embeddings;
    eng->ws = calloc(1, sizeof(rl_workspace));
    if (!eng->ws) return rl_errf(e, RL_E_NOMEM, "out of memory");
    return rl_kv_pool_init(&eng->pool, m->n_softmax,
                           m->cfg.num_key_value_heads * m->cfg.head_dim, max_kv_pages, e);
}

void rl_engine_free(rl_engine *eng) {
    if (eng->ws) {
        for (int i = 0; i < B_COUNT; i++) free(eng->ws->buf[i]);
        free(eng->ws->tok_id); free(eng->ws->tok_pos); free(eng->ws->tok_span);
        free(eng->ws->sel); free(eng->ws->elist); free(eng->ws->pg);
        free(eng->ws);
    }
    rl_kv_pool_free(&eng->pool);
    memset(eng, 0, sizeof *eng);
}

/* ---- per-token helpers ------------------------------------------------ */

/* cos/sin of every rotary frequency at each token's position, computed once
 * per step and shared by all layers (same angles in prefill and decode). */
static void rope_tables(const rl_model *m, const int *pos, int T, float *cs) {
    int R = m->cfg.rotary_dim / 2;
    for (int t = 0; t < T; t++) {
        float *c = cs + (size_t)t * 2 * R;
        for (int j = 0; j < R; j++) {
            float a = (float)pos[t] * m->inv_freq[j];
            c[j] = cosf(a);
            c[R + j] = sinf(a);
        }
    }
}

static void qk_norm_rope(const rl_model *m, const rl_layer *ly, float *q, int nq, float *k, int nk,
                         const float *cs) {
    const rl_config *c = &m->cfg;
    int D = c->head_dim;
    if (ly->q_norm) {
        m->ops->rmsnorm(q, nq, D, ly->q_norm, c->rms_norm_eps, q);
        m->ops->rmsnorm(k, nk, D, ly->k_norm, c->rms_norm_eps, k);
    }
    if (c->rotary_dim > 0) {
        m->ops->rope(q, nq, D, c->rotary_dim, cs);
        m->ops->rope(k, nk, D, c->rotary_dim, cs);
    }
}

/* ---- attention layers -------------------------------------------------- */

/* Activation tape: copies of intermediate values for the trainer's backward.
 * Recording never changes the arithmetic (rl_step passes tl = NULL). */
#define TAPE(dst, src, count)                                                   \
    do {                                                                        \
        if (tl && tl->dst) memcpy(tl->dst, (src), sizeof(*(src)) * (size_t)(count)); \
    } while (0)

static void linear_attention(rl_engine *eng, const rl_layer *ly, const rl_span *spans,
                             int n_spans, int T, const float *cs, const rl_tape_layer *tl) {
    rl_model *m = eng->m;
    rl_workspace *ws = eng->ws;
    const rl_config *c = &m->cfg;
    int H = c->num_attention_heads, D = c->head_dim, HD = H * D;
    float *A = ws->buf[B_A], *QKV = ws->buf[B_QKV], *Gt = ws->buf[B_G], *O = ws->buf[B_O];
    float *U = ws->buf[B_U], *Y = ws->buf[B_Y], *X = ws->buf[B_X];
    m->ops->matmul(&ly->qkv, A, c->hidden_size, T, QKV, 3 * HD);
    m->ops->matmul(&ly->g_proj, A, c->hidden_size, T, Gt, HD);
    TAPE(qkv_raw, QKV, (size_t)T * 3 * HD);
    TAPE(gate, Gt, (size_t)T * HD);
    int R2 = c->rotary_dim;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *q = QKV + (size_t)t * 3 * HD;
        if (c->linear_silu)
            for (int i = 0; i < 3 * HD; i++) q[i] = q[i] / (1.0f + expf(-q[i]));
        qk_norm_rope(m, ly, q, H, q + HD, H, cs + (size_t)t * R2);
    }
    TAPE(qkv, QKV, (size_t)T * 3 * HD);
    float scale = 1.0f / sqrtf((float)D);
    int li = ly->kind_index;
    int t0 = 0;
    for (int s = 0; s < n_spans; s++) {
        const rl_span *sp = &spans[s];
        rl_slot *sl = sp->slot;
        float *S = rl_slot_S(sl, li), *kst = rl_slot_k(sl, li), *vst = rl_slot_v(sl, li);
        int j = 0;
        while (j < sp->n) { /* one chunk-aligned segment at a time */
            int i0 = (sp->first_pos + j) % RL_CHUNK;
            int len = RL_CHUNK - i0 < sp->n - j ? RL_CHUNK - i0 : sp->n - j;
            for (int r = 0; r < len; r++) {
                const float *qkv = QKV + (size_t)(t0 + j + r) * 3 * HD;
                memcpy(kst + (size_t)(i0 + r) * HD, qkv + HD, sizeof(float) * HD);
                memcpy(vst + (size_t)(i0 + r) * HD, qkv + 2 * HD, sizeof(float) * HD);
            }
            /* round-robin: the intra-chunk term grows with r, a contiguous
             * split would give one thread all the long rows */
#pragma omp parallel for schedule(static, 1) collapse(2)
            for (int r = 0; r < len; r++)
                for (int h = 0; h < H; h++) {
                    int t = t0 + j + r;
                    m->ops->lightning_attend(QKV + (size_t)t * 3 * HD + h * D, kst + h * D, HD,
                                             vst + h * D, HD, i0 + r, S + (size_t)h * D * D,
                                             ly->decay_pw + h * (RL_CHUNK + 1), D, scale,
                                             O + (size_t)t * HD + h * D);
                }
            if (i0 + len == RL_CHUNK) {
#pragma omp parallel for schedule(static)
                for (int h = 0; h < H; h++)
                    m->ops->lightning_fold(S + (size_t)h * D * D, kst + h * D, HD, vst + h * D, HD,
                                           RL_CHUNK, ly->decay_pw + h * (RL_CHUNK + 1), D);
            }
            j += len;
        }
        t0 += sp->n;
    }
    TAPE(att, O, (size_t)T * HD);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        m->ops->group_norm_gate(O + (size_t)t * HD, Gt + (size_t)t * HD, HD, c->group_norm_size,
                                ly->g_norm, c->rms_norm_eps, U + (size_t)t * HD);
    TAPE(u, U, (size_t)T * HD);
    m->ops->matmul(&ly->dense, U, HD, T, Y, c->hidden_size);
    size_t n = (size_t)T * c->hidden_size;
    for (size_t i = 0; i < n; i++) X[i] += Y[i];
}

static void softmax_attention(rl_engine *eng, const rl_layer *ly, const rl_span *spans,
                              int n_spans, int T, const float *cs, const float **pgk,
                              const float **pgv, const rl_tape_layer *tl) {
    rl_model *m = eng->m;
    rl_workspace *ws = eng->ws;
    const rl_config *c = &m->cfg;
    int H = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    int HD = H * D, KD = Hkv * D, W = (H + 2 * Hkv) * D, gq = H / Hkv;
    float *A = ws->buf[B_A], *QKV = ws->buf[B_QKV], *O = ws->buf[B_O];
    float *Y = ws->buf[B_Y], *X = ws->buf[B_X], *scr = ws->buf[B_SCR];
    int li = ly->kind_index;
    m->ops->matmul(&ly->qkv, A, c->hidden_size, T, QKV, W);
    TAPE(qkv_raw, QKV, (size_t)T * W);
    int R2 = c->rotary_dim;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *q = QKV + (size_t)t * W;
        qk_norm_rope(m, ly, q, H, q + HD, Hkv, cs + (size_t)t * R2);
    }
    TAPE(qkv, QKV, (size_t)T * W);
    /* write this step's keys and values into the pages first: a query sees
     * every key up to its own position (layout: rl_kv_view in ops.h) */
    const rl_kv_pool *pool = &eng->pool;
    int t0 = 0;
    for (int s = 0; s < n_spans; s++) {
        const rl_span *sp = &spans[s];
        for (int j = 0; j < sp->n; j++) {
            int p = sp->first_pos + j, pg = sp->slot->pages[p / RL_KV_PAGE], r = p % RL_KV_PAGE;
            const float *k = QKV + (size_t)(t0 + j) * W + HD, *v = k + KD;
            float *kb = rl_kv_k(pool, pg, li), *vb = rl_kv_v(pool, pg, li);
            for (int c = 0; c < KD; c++) kb[(size_t)c * RL_KV_PAGE + r] = k[c];
            for (int h = 0; h < Hkv; h++)
                memcpy(vb + ((size_t)h * RL_KV_PAGE + r) * D, v + (size_t)h * D, sizeof(float) * D);
        }
        t0 += sp->n;
    }
    /* page pointer tables, per span (pgk/pgv hold every span's pages back to back) */
    int off = 0;
    for (int s = 0; s < n_spans; s++) {
        const rl_slot *sl = spans[s].slot;
        for (int i = 0; i < sl->n_pages; i++) {
            pgk[off + i] = rl_kv_k(pool, sl->pages[i], li);
            pgv[off + i] = rl_kv_v(pool, sl->pages[i], li);
        }
        off += sl->n_pages;
    }
    float scale = 1.0f / sqrtf((float)D);
    size_t scr_stride = (size_t)eng->ws->cap[B_SCR] / (size_t)omp_get_max_threads();
#pragma omp parallel for schedule(static, 1) collapse(2)
    for (int t = 0; t < T; t++)
        for (int g = 0; g < Hkv; g++) {
            int s = ws->tok_span[t], po = 0;
            for (int i = 0; i < s; i++) po += spans[i].slot->n_pages;
            rl_kv_view kv = {pgk + po, pgv + po, RL_KV_PAGE};
            float *mys = scr + (size_t)omp_get_thread_num() * scr_stride;
            m->ops->gqa_attend(QKV + (size_t)t * W + (size_t)g * gq * D, gq, &kv, g,
                               ws->tok_pos[t] + 1, D, scale, mys, O + (size_t)t * HD + g * gq * D);
        }
    TAPE(att, O, (size_t)T * HD);
    m->ops->matmul(&ly->dense, O, HD, T, Y, c->hidden_size);
    size_t n = (size_t)T * c->hidden_size;
    for (size_t i = 0; i < n; i++) X[i] += Y[i];
}

/* ---- MLPs ---------------------------------------------------------------- */

/* tap1/tap2 (tape, or NULL): the gate and up projections before the SwiGLU,
 * row i stored at row tap_rows[i] (or i when tap_rows is NULL). */
static void swiglu_mlp(const rl_model *m, const rl_wmat *g, const rl_wmat *u, const rl_wmat *d,
                       const float *x, int ldx, int n, float *h1, float *h2, float *y, int ldy,
                       float *tap1, float *tap2, const int *tap_rows) {
    int I = g->rows;
    m->ops->matmul(g, x, ldx, n, h1, I);
    m->ops->matmul(u, x, ldx, n, h2, I);
    if (tap1)
        for (int r = 0; r < n; r++) {
            size_t dst = (size_t)(tap_rows ? tap_rows[r] : r) * I;
            memcpy(tap1 + dst, h1 + (size_t)r * I, sizeof(float) * I);
            memcpy(tap2 + dst, h2 + (size_t)r * I, sizeof(float) * I);
        }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) m->ops->swiglu(h1 + (size_t)r * I, h2 + (size_t)r * I, I, h1 + (size_t)r * I);
    m->ops->matmul(d, h1, I, n, y, ldy);
}

static void moe_mlp(rl_engine *eng, const rl_layer *ly, int T, const rl_tape_layer *tl) {
    rl_model *m = eng->m;
    rl_workspace *ws = eng->ws;
    const rl_config *c = &m->cfg;
    int E = c->num_experts, K = c->num_experts_per_tok, hid = c->hidden_size;
    float *A = ws->buf[B_A], *R = ws->buf[B_R], *WT = ws->buf[B_WT], *YK = ws->buf[B_YK];
    float *XE = ws->buf[B_XE], *YE = ws->buf[B_YE], *YS = ws->buf[B_YS], *X = ws->buf[B_X];
    int *sel = ws->sel, *elist = ws->elist;
    m->ops->matmul(&ly->router, A, hid, T, R, E);
    float *rscr = ws->buf[B_ROUTE];
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        rl_route(c, R + (size_t)t * E, ly->expert_bias, rscr + (size_t)omp_get_thread_num() * 2 * E,
                 sel + (size_t)t * K, WT + (size_t)t * K);
    TAPE(router, R, (size_t)T * E);
    TAPE(sel, sel, (size_t)T * K);
    TAPE(wt, WT, (size_t)T * K);
    /* each expert runs once over all the tokens routed to it */
    for (int e = 0; e < E; e++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            for (int r = 0; r < K; r++)
                if (sel[t * K + r] == e) elist[n++] = t * K + r;
        if (!n) continue;
        for (int i = 0; i < n; i++)
            memcpy(XE + (size_t)i * hid, A + (size_t)(elist[i] / K) * hid, sizeof(float) * hid);
        swiglu_mlp(m, &ly->e_gate[e], &ly->e_up[e], &ly->e_down[e], XE, hid, n, ws->buf[B_M1],
                   ws->buf[B_M2], YE, hid, tl ? tl->h1 : NULL, tl ? tl->h2 : NULL, elist);
        for (int i = 0; i < n; i++)
            memcpy(YK + (size_t)elist[i] * hid, YE + (size_t)i * hid, sizeof(float) * hid);
    }
    if (ly->has_shared)
        swiglu_mlp(m, &ly->s_gate, &ly->s_up, &ly->s_down, A, hid, T, ws->buf[B_M1], ws->buf[B_M2],
                   YS, hid, tl ? tl->sh1 : NULL, tl ? tl->sh2 : NULL, NULL);
    TAPE(yk, YK, (size_t)T * K * hid);
    /* combine in selection order, then the shared expert, then the residual */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *x = X + (size_t)t * hid;
        const float *w = WT + (size_t)t * K;
        for (int d = 0; d < hid; d++) {
            float acc = 0.0f;
            for (int r = 0; r < K; r++) acc += w[r] * YK[((size_t)t * K + r) * hid + d];
            if (ly->has_shared) acc += YS[(size_t)t * hid + d];
            x[d] += acc;
        }
    }
}

/* ---- the step ------------------------------------------------------------- */

static int prepare(rl_engine *eng, const rl_span *spans, int n_spans, int *T_out, int *maxkeys,
                   int *total_pages, rl_err *e) {
    const rl_config *c = &eng->m->cfg;
    int T = 0, mk = 1;
    if (n_spans <= 0) return rl_errf(e, RL_E_ARG, "rl_step: no spans");
    for (int s = 0; s < n_spans; s++) {
        const rl_span *sp = &spans[s];
        if (!sp->slot || !sp->tokens || sp->n <= 0)
            return rl_errf(e, RL_E_ARG, "rl_step: span %d is empty or has no slot", s);
        if (sp->first_pos != sp->slot->pos)
            return rl_errf(e, RL_E_ARG, "rl_step: span %d starts at position %d but its sequence is at %d",
                           s, sp->first_pos, sp->slot->pos);
        if (sp->want != RL_LOGITS_NONE && !sp->logits)
            return rl_errf(e, RL_E_ARG, "rl_step: span %d wants logits but has no buffer", s);
        for (int r = 0; r < s; r++)
            if (spans[r].slot == sp->slot)
                return rl_errf(e, RL_E_ARG, "rl_step: spans %d and %d use the same slot", r, s);
        if ((long long)sp->first_pos + sp->n > eng->max_ctx)
            return rl_errf(e, RL_E_CAPACITY,
                           "sequence would reach %lld tokens, above the context length %d",
                           (long long)sp->first_pos + sp->n, eng->max_ctx);
        for (int j = 0; j < sp->n; j++)
            if (sp->tokens[j] < 0 || sp->tokens[j] >= c->vocab_size)
                return rl_errf(e, RL_E_ARG, "token id %d at index %d is outside the vocabulary [0, %d)",
                               sp->tokens[j], j, c->vocab_size);
        if (sp->first_pos + sp->n > mk) mk = sp->first_pos + sp->n;
        T += sp->n;
    }
    for (int s = 0; s < n_spans; s++) {
        int rc = rl_slot_reserve(spans[s].slot, &eng->pool, spans[s].n, e);
        if (rc) return rc;
    }
    int tp = 0;
    for (int s = 0; s < n_spans; s++) tp += spans[s].slot->n_pages;
    *T_out = T;
    *maxkeys = mk;
    *total_pages = tp;
    return RL_OK;
}

/* Checks the spans and sizes the workspace for them (everything that can
 * fail), then fills the per-token tables and the KV page tables' storage.
 * Nothing is touched on error. */
static int setup(rl_engine *eng, const rl_span *spans, int n_spans, int cap_T, int *T_out,
                 int *pages_out, rl_err *e) {
    rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    rl_workspace *ws = eng->ws;
    int T = 0, maxkeys = 1, total_pages = 0;
    if (cap_T >= 0) {
        int nt = 0;
        for (int s = 0; s < n_spans; s++) nt += spans[s].n > 0 ? spans[s].n : 0;
        if (nt > cap_T)
            return rl_errf(e, RL_E_ARG, "rl_step_train: %d tokens but the tape holds %d", nt, cap_T);
    }
    int rc = prepare(eng, spans, n_spans, &T, &maxkeys, &total_pages, e);
    if (rc) return rc;
    int hid = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int D = c->head_dim, HD = H * D, E = c->num_experts, K = c->num_experts_per_tok;
    int nth = omp_get_max_threads();
    size_t qkvw = (size_t)(3 * HD > (H + 2 * Hkv) * D ? 3 * HD : (H + 2 * Hkv) * D);
    size_t inter = (size_t)c->intermediate_size;
    int max_shared = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (m->layers[l].has_shared && m->layers[l].s_gate.rows > max_shared)
            max_shared = m->layers[l].s_gate.rows;
    if ((size_t)c->moe_intermediate_size > inter) inter = (size_t)c->moe_intermediate_size;
    if ((size_t)max_shared > inter) inter = (size_t)max_shared;
    int n_logit_rows = 0, n_logit_spans = 0;
    for (int s = 0; s < n_spans; s++) {
        n_logit_rows += spans[s].want == RL_LOGITS_ALL ? spans[s].n : spans[s].want == RL_LOGITS_LAST;
        n_logit_spans += spans[s].want != RL_LOGITS_NONE;
    }
    struct { int i; size_t n; } need[] = {
        {B_X, (size_t)T * hid}, {B_A, (size_t)T * hid}, {B_QKV, (size_t)T * qkvw},
        {B_G, (size_t)T * HD}, {B_O, (size_t)T * HD}, {B_U, (size_t)T * HD},
        {B_Y, (size_t)T * hid}, {B_M1, (size_t)T * inter}, {B_M2, (size_t)T * inter}, {B_R, (size_t)T * E},
        {B_WT, (size_t)T * K}, {B_YK, (size_t)T * K * hid}, {B_XE, (size_t)T * hid},
        {B_YE, (size_t)T * hid}, {B_YS, (size_t)T * hid}, {B_ROPE, (size_t)T * c->rotary_dim},
        {B_LOG, (size_t)(n_logit_rows ? n_logit_rows : 1) * hid}, {B_SCR, (size_t)nth * (H / Hkv) * maxkeys},
        {B_ROUTE, (size_t)nth * 2 * (E ? E : 1)},
        {B_LOGITS, n_logit_spans > 1 ? (size_t)n_logit_rows * c->vocab_size : 1},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!ws_get(ws, need[i].i, need[i].n, e)) return e ? e->code : RL_E_NOMEM;
    if (ws->icap < (size_t)T) {
        int *a = realloc(ws->tok_id, sizeof(int) * T), *b = NULL, *cc = NULL;
        if (a) ws->tok_id = a;
        b = realloc(ws->tok_pos, sizeof(int) * T);
        if (b) ws->tok_pos = b;
        cc = realloc(ws->tok_span, sizeof(int) * T);
        if (cc) ws->tok_span = cc;
        if (!a || !b || !cc) return rl_errf(e, RL_E_NOMEM, "out of memory");
        ws->icap = (size_t)T;
    }
    if (ws->selcap < (size_t)T * (K ? K : 1)) {
        int *a = realloc(ws->sel, sizeof(int) * T * (K ? K : 1));
        if (a) ws->sel = a;
        int *b = realloc(ws->elist, sizeof(int) * T * (K ? K : 1));
        if (b) ws->elist = b;
        if (!a || !b) return rl_errf(e, RL_E_NOMEM, "out of memory");
        ws->selcap = (size_t)T * (K ? K : 1);
    }
    if (ws->pgcap < (size_t)2 * total_pages + 2) {
        const float **p = realloc(ws->pg, sizeof(float *) * (2 * (size_t)total_pages + 2));
        if (!p) return rl_errf(e, RL_E_NOMEM, "out of memory");
        ws->pg = p;
        ws->pgcap = 2 * (size_t)total_pages + 2;
    }
    /* ---- from here on nothing can fail ---- */
    int t = 0;
    for (int s = 0; s < n_spans; s++)
        for (int j = 0; j < spans[s].n; j++, t++) {
            ws->tok_id[t] = spans[s].tokens[j];
            ws->tok_pos[t] = spans[s].first_pos + j;
            ws->tok_span[t] = s;
        }
    *T_out = T;
    *pages_out = total_pages;
    return RL_OK;
}

/* One decoder layer over the step's T tokens: the residual ws->buf[B_X] in,
 * the residual out in place. The layer reads and advances only its own state
 * in the spans' slots (its Lightning state and stash, or its KV pages). */
static void run_layer(rl_engine *eng, int l, const rl_span *spans, int n_spans, int T,
                      const float *cs, int total_pages, const rl_tape_layer *tl) {
    rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    rl_workspace *ws = eng->ws;
    const rl_layer *ly = &m->layers[l];
    int hid = c->hidden_size;
    float *X = ws->buf[B_X], *A = ws->buf[B_A];
    const float **pgk = ws->pg, **pgv = ws->pg + total_pages;
    m->ops->rmsnorm(X, T, hid, ly->in_norm, c->rms_norm_eps, A);
    TAPE(a_in, A, (size_t)T * hid);
    if (ly->softmax)
        softmax_attention(eng, ly, spans, n_spans, T, cs, pgk, pgv, tl);
    else
        linear_attention(eng, ly, spans, n_spans, T, cs, tl);
    TAPE(x_mid, X, (size_t)T * hid);
    m->ops->rmsnorm(X, T, hid, ly->post_norm, c->rms_norm_eps, A);
    TAPE(a_mlp, A, (size_t)T * hid);
    if (ly->moe) {
        moe_mlp(eng, ly, T, tl);
    } else {
        float *Y = ws->buf[B_Y];
        swiglu_mlp(m, &ly->gate, &ly->up, &ly->down, A, hid, T, ws->buf[B_M1], ws->buf[B_M2],
                   Y, hid, tl ? tl->h1 : NULL, tl ? tl->h2 : NULL, NULL);
        size_t n = (size_t)T * hid;
        for (size_t i = 0; i < n; i++) X[i] += Y[i];
    }
}

static int step(rl_engine *eng, const rl_span *spans, int n_spans, rl_tape *tape, rl_err *e) {
    rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    rl_workspace *ws = eng->ws;
    int T = 0, total_pages = 0;
    int rc = setup(eng, spans, n_spans, tape ? tape->cap_T : -1, &T, &total_pages, e);
    if (rc) return rc;
    int hid = c->hidden_size;
    int n_logit_rows = 0, n_logit_spans = 0;
    for (int s = 0; s < n_spans; s++) {
        n_logit_rows += spans[s].want == RL_LOGITS_ALL ? spans[s].n : spans[s].want == RL_LOGITS_LAST;
        n_logit_spans += spans[s].want != RL_LOGITS_NONE;
    }
    float *X = ws->buf[B_X], *cs = ws->buf[B_ROPE];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < T; i++) m->ops->embed(&m->embed, ws->tok_id[i], X + (size_t)i * hid);
    rope_tables(m, ws->tok_pos, T, cs);
    if (tape && tape->cs) memcpy(tape->cs, cs, sizeof(float) * (size_t)T * c->rotary_dim);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rl_tape_layer *tl = tape ? &tape->layers[l] : NULL;
        TAPE(x_in, X, (size_t)T * hid);
        run_layer(eng, l, spans, n_spans, T, cs, total_pages, tl);
    }
    if (tape && tape->x_final) memcpy(tape->x_final, X, sizeof(float) * (size_t)T * hid);
    /* final norm and LM head, only for the rows that want logits */
    float *L = ws->buf[B_LOG];
    int r = 0, t = 0;
    for (int s = 0; s < n_spans; s++) {
        const rl_span *sp = &spans[s];
        if (sp->want == RL_LOGITS_ALL) {
            memcpy(L + (size_t)r * hid, X + (size_t)t * hid, sizeof(float) * hid * sp->n);
            r += sp->n;
        } else if (sp->want == RL_LOGITS_LAST) {
            memcpy(L + (size_t)r * hid, X + (size_t)(t + sp->n - 1) * hid, sizeof(float) * hid);
            r += 1;
        }
        t += sp->n;
    }
    if (n_logit_rows) {
        m->ops->rmsnorm(L, n_logit_rows, hid, m->final_norm, c->rms_norm_eps, L);
        /* one LM-head pass over all rows (the head is the largest matrix) */
        float *out = ws->buf[B_LOGITS];
        for (int s = 0; s < n_spans && n_logit_spans == 1; s++)
            if (spans[s].want != RL_LOGITS_NONE) out = spans[s].logits;
        m->ops->matmul(&m->lm_head, L, hid, n_logit_rows, out, c->vocab_size);
        if (n_logit_spans > 1) {
            r = 0;
            for (int s = 0; s < n_spans; s++) {
                const rl_span *sp = &spans[s];
                int rows = sp->want == RL_LOGITS_ALL ? sp->n : sp->want == RL_LOGITS_LAST;
                if (!rows) continue;
                memcpy(sp->logits, out + (size_t)r * c->vocab_size,
                       sizeof(float) * (size_t)rows * c->vocab_size);
                r += rows;
            }
        }
    }
    for (int s = 0; s < n_spans; s++) spans[s].slot->pos += spans[s].n;
    return RL_OK;
}

int rl_step(rl_engine *eng, const rl_span *spans, int n_spans, rl_err *e) {
    return step(eng, spans, n_spans, NULL, e);
}

int rl_step_train(rl_engine *eng, const rl_span *spans, int n_spans, rl_tape *tape, rl_err *e) {
    return step(eng, spans, n_spans, tape, e);
}

int rl_step_train_layer(rl_engine *eng, const rl_span *spans, int n_spans, int layer,
                        const float *x_in, rl_tape_layer *tl, rl_err *e) {
    const rl_config *c = &eng->m->cfg;
    if (layer < 0 || layer >= c->num_hidden_layers)
        return rl_errf(e, RL_E_ARG, "rl_step_train_layer: no layer %d", layer);
    int T = 0, total_pages = 0;
    int rc = setup(eng, spans, n_spans, -1, &T, &total_pages, e);
    if (rc) return rc;
    rl_workspace *ws = eng->ws;
    memcpy(ws->buf[B_X], x_in, sizeof(float) * (size_t)T * c->hidden_size);
    rope_tables(eng->m, ws->tok_pos, T, ws->buf[B_ROPE]);
    run_layer(eng, layer, spans, n_spans, T, ws->buf[B_ROPE], total_pages, tl);
    return RL_OK;
}
