/* The activation tape: plain buffers sized from the model, whole or
 * checkpointed (tape.h). */
#include "train/tape.h"

#include <stdlib.h>
#include <string.h>

/* The buffers of one layer's tape and their sizes in elements (sel is int,
 * the others float); unused fields get 0. */
enum { F_X_IN, F_A_IN, F_X_MID, F_A_MLP, F_QKV_RAW, F_QKV, F_ATT, F_GATE, F_U, F_ROUTER, F_WT,
       F_YK, F_H1, F_H2, F_SH1, F_SH2, F_SEL, F_COUNT };

static void layer_sizes(const rl_model *m, int l, size_t T, size_t n[F_COUNT]) {
    const rl_config *c = &m->cfg;
    const rl_layer *ly = &m->layers[l];
    size_t hid = (size_t)c->hidden_size, H = (size_t)c->num_attention_heads;
    size_t Hkv = (size_t)c->num_key_value_heads, D = (size_t)c->head_dim, HD = H * D;
    size_t K = (size_t)(c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1);
    size_t E = (size_t)(c->num_experts > 0 ? c->num_experts : 1);
    size_t W = ly->softmax ? (H + 2 * Hkv) * D : 3 * HD;
    memset(n, 0, sizeof(size_t) * F_COUNT);
    n[F_X_IN] = n[F_A_IN] = n[F_X_MID] = n[F_A_MLP] = T * hid;
    n[F_QKV_RAW] = n[F_QKV] = T * W;
    n[F_ATT] = T * HD;
    if (!ly->softmax) n[F_GATE] = n[F_U] = T * HD;
    if (ly->moe) {
        size_t I = (size_t)ly->e_gate[0].rows;
        n[F_ROUTER] = T * E;
        n[F_WT] = n[F_SEL] = T * K;
        n[F_YK] = T * K * hid;
        n[F_H1] = n[F_H2] = T * K * I;
        if (ly->has_shared) n[F_SH1] = n[F_SH2] = T * (size_t)ly->s_gate.rows;
    } else {
        n[F_H1] = n[F_H2] = T * (size_t)ly->gate.rows;
    }
}

static float **field(rl_tape_layer *tl, int f) {
    float **p[F_COUNT] = {&tl->x_in, &tl->a_in, &tl->x_mid, &tl->a_mlp, &tl->qkv_raw, &tl->qkv,
                          &tl->att, &tl->gate, &tl->u, &tl->router, &tl->wt, &tl->yk, &tl->h1,
                          &tl->h2, &tl->sh1, &tl->sh2, NULL};
    return p[f];
}

/* Allocates the fields f0..F_COUNT-1 that n asks for (sizeof float == int). */
static int alloc_fields(rl_tape_layer *tl, const size_t n[F_COUNT], int f0) {
    for (int f = f0; f < F_COUNT; f++) {
        if (!n[f]) continue;
        void *p = calloc(n[f], sizeof(float));
        if (!p) return -1;
        if (f == F_SEL) tl->sel = p;
        else *field(tl, f) = p;
    }
    return 0;
}

void rl_tape_layer_free(rl_tape_layer *tl) {
    for (int f = 0; f < F_SEL; f++) free(*field(tl, f));
    free(tl->sel);
    memset(tl, 0, sizeof *tl);
}

int rl_recompute_parse(const char *s) {
    if (!strcmp(s, "auto")) return RL_RECOMPUTE_AUTO;
    if (!strcmp(s, "on")) return RL_RECOMPUTE_ON;
    if (!strcmp(s, "off")) return RL_RECOMPUTE_OFF;
    return -1;
}

const char *rl_recompute_name(rl_recompute mode) {
    return mode == RL_RECOMPUTE_ON ? "on" : mode == RL_RECOMPUTE_OFF ? "off" : "auto";
}

/* Per field, the largest size over the layers (the work layer's sizes). */
static void max_sizes(const rl_model *m, size_t T, size_t mx[F_COUNT]) {
    memset(mx, 0, sizeof(size_t) * F_COUNT);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        size_t n[F_COUNT];
        layer_sizes(m, l, T, n);
        for (int f = 0; f < F_COUNT; f++) mx[f] = n[f] > mx[f] ? n[f] : mx[f];
    }
}

size_t rl_tape_bytes(const rl_model *m, int T, bool recompute) {
    const rl_config *c = &m->cfg;
    size_t total = (size_t)T * ((size_t)c->rotary_dim + (size_t)c->hidden_size), n[F_COUNT];
    for (int l = 0; l < c->num_hidden_layers; l++) {
        layer_sizes(m, l, (size_t)T, n);
        for (int f = 0; f < (recompute ? 1 : F_COUNT); f++) total += n[f];
    }
    if (recompute) {
        max_sizes(m, (size_t)T, n);
        for (int f = F_A_IN; f < F_COUNT; f++) total += n[f];
    }
    return total * sizeof(float);
}

bool rl_recompute_resolve(rl_recompute mode, const rl_model *m, int T) {
    if (mode == RL_RECOMPUTE_AUTO) return rl_tape_bytes(m, T, false) > RL_RECOMPUTE_AUTO_BYTES;
    return mode == RL_RECOMPUTE_ON;
}

int rl_tape_alloc_final(rl_tape *t, const rl_model *m, int T, rl_err *e) {
    memset(t, 0, sizeof *t);
    t->cap_T = T;
    t->layers = calloc((size_t)m->cfg.num_hidden_layers, sizeof(rl_tape_layer));
    t->x_final = calloc((size_t)T * m->cfg.hidden_size, sizeof(float));
    if (!t->layers || !t->x_final) {
        rl_tape_free(t, m);
        return rl_errf(e, RL_E_NOMEM, "out of memory (activation tape, %d tokens)", T);
    }
    return RL_OK;
}

static int alloc(rl_tape *t, const rl_model *m, int T, bool whole, rl_err *e) {
    int rc = rl_tape_alloc_final(t, m, T, e);
    if (rc) return rc;
    const rl_config *c = &m->cfg;
    int fail = 0;
    t->cs = calloc((size_t)T * (size_t)(c->rotary_dim > 0 ? c->rotary_dim : 1), sizeof(float));
    if (!t->cs) fail = 1;
    for (int l = 0; l < c->num_hidden_layers && !fail; l++) {
        size_t n[F_COUNT];
        layer_sizes(m, l, (size_t)T, n);
        if (!whole)
            for (int f = F_A_IN; f < F_COUNT; f++) n[f] = 0;
        if (alloc_fields(&t->layers[l], n, 0)) fail = 1;
    }
    if (fail) {
        rl_tape_free(t, m);
        return rl_errf(e, RL_E_NOMEM, "out of memory (activation tape, %d tokens)", T);
    }
    return RL_OK;
}

int rl_tape_alloc(rl_tape *t, const rl_model *m, int T, rl_err *e) {
    return alloc(t, m, T, true, e);
}

int rl_tape_alloc_checkpoints(rl_tape *t, const rl_model *m, int T, rl_err *e) {
    return alloc(t, m, T, false, e);
}

int rl_tape_layer_alloc(rl_tape_layer *tl, const rl_model *m, int T, rl_err *e) {
    memset(tl, 0, sizeof *tl);
    size_t mx[F_COUNT];
    max_sizes(m, (size_t)T, mx);
    if (alloc_fields(tl, mx, F_A_IN)) {
        rl_tape_layer_free(tl);
        return rl_errf(e, RL_E_NOMEM, "out of memory (activation tape, one layer of %d tokens)", T);
    }
    return RL_OK;
}

void rl_tape_free(rl_tape *t, const rl_model *m) {
    if (t->layers)
        for (int l = 0; l < m->cfg.num_hidden_layers; l++) rl_tape_layer_free(&t->layers[l]);
    free(t->layers);
    free(t->cs);
    free(t->x_final);
    memset(t, 0, sizeof *t);
}
