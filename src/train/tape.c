/* The activation tape: plain buffers sized from the model. (Memory is
 * O(T x layers x widths); the trainer keeps sequences short enough.) */
#include "train/tape.h"

#include <stdlib.h>
#include <string.h>

static int take(float **p, size_t n, int *fail) {
    *p = calloc(n ? n : 1, sizeof(float));
    if (!*p) *fail = 1;
    return 0;
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

int rl_tape_alloc(rl_tape *t, const rl_model *m, int T, rl_err *e) {
    int rc = rl_tape_alloc_final(t, m, T, e);
    if (rc) return rc;
    const rl_config *c = &m->cfg;
    size_t hid = (size_t)c->hidden_size, H = (size_t)c->num_attention_heads;
    size_t Hkv = (size_t)c->num_key_value_heads, D = (size_t)c->head_dim, HD = H * D;
    size_t K = (size_t)(c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1);
    size_t E = (size_t)(c->num_experts > 0 ? c->num_experts : 1), TT = (size_t)T;
    int fail = 0;
    take(&t->cs, TT * (size_t)c->rotary_dim, &fail);
    for (int l = 0; l < c->num_hidden_layers && !fail; l++) {
        const rl_layer *ly = &m->layers[l];
        rl_tape_layer *tl = &t->layers[l];
        size_t W = ly->softmax ? (H + 2 * Hkv) * D : 3 * HD;
        take(&tl->x_in, TT * hid, &fail);
        take(&tl->a_in, TT * hid, &fail);
        take(&tl->x_mid, TT * hid, &fail);
        take(&tl->a_mlp, TT * hid, &fail);
        take(&tl->qkv_raw, TT * W, &fail);
        take(&tl->qkv, TT * W, &fail);
        take(&tl->att, TT * HD, &fail);
        if (!ly->softmax) {
            take(&tl->gate, TT * HD, &fail);
            take(&tl->u, TT * HD, &fail);
        }
        if (ly->moe) {
            size_t I = (size_t)ly->e_gate[0].rows;
            take(&tl->router, TT * E, &fail);
            take(&tl->wt, TT * K, &fail);
            take(&tl->yk, TT * K * hid, &fail);
            take(&tl->h1, TT * K * I, &fail);
            take(&tl->h2, TT * K * I, &fail);
            tl->sel = calloc(TT * K, sizeof(int));
            if (!tl->sel) fail = 1;
            if (ly->has_shared) {
                take(&tl->sh1, TT * (size_t)ly->s_gate.rows, &fail);
                take(&tl->sh2, TT * (size_t)ly->s_gate.rows, &fail);
            }
        } else {
            take(&tl->h1, TT * (size_t)ly->gate.rows, &fail);
            take(&tl->h2, TT * (size_t)ly->gate.rows, &fail);
        }
    }
    if (fail) {
        rl_tape_free(t, m);
        return rl_errf(e, RL_E_NOMEM, "out of memory (activation tape, %d tokens)", T);
    }
    return RL_OK;
}

void rl_tape_free(rl_tape *t, const rl_model *m) {
    if (t->layers)
        for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
            rl_tape_layer *tl = &t->layers[l];
            float *bufs[] = {tl->x_in, tl->a_in, tl->qkv_raw, tl->qkv, tl->gate, tl->att, tl->u,
                             tl->x_mid, tl->a_mlp, tl->h1, tl->h2, tl->sh1, tl->sh2, tl->router,
                             tl->wt, tl->yk};
            for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
            free(tl->sel);
        }
    free(t->layers);
    free(t->cs);
    free(t->x_final);
    memset(t, 0, sizeof *t);
}
