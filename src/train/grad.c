/* rl_grads: one fp32 buffer per parameter, named as in the checkpoint. */
#include "train/grad.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct builder {
    rl_grads *g;
    int cap, fail;
} builder;

static float *add(builder *b, const rl_wmat *w, float *vec, int64_t rows, int64_t cols,
                  const char *fmt, ...) {
    if (b->fail) return NULL;
    if (b->g->n == b->cap) {
        int nc = b->cap ? 2 * b->cap : 64;
        rl_grad_param *p = realloc(b->g->p, sizeof(rl_grad_param) * (size_t)nc);
        if (!p) { b->fail = 1; return NULL; }
        b->g->p = p;
        b->cap = nc;
    }
    rl_grad_param *p = &b->g->p[b->g->n];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 0;
    p->numel = rows * (cols > 0 ? cols : 1);
    p->w = w;
    p->vec = vec;
    p->g = calloc((size_t)p->numel, sizeof(float));
    if (!p->g) { b->fail = 1; return NULL; }
    b->g->n++;
    return p->g;
}

static float *mat(builder *b, const rl_wmat *w, const char *name) {
    return add(b, w, NULL, w->rows, w->cols, "%s", name);
}

int rl_grads_init(rl_grads *g, const rl_model *m, rl_err *e) {
    memset(g, 0, sizeof *g);
    const rl_config *c = &m->cfg;
    int L = c->num_hidden_layers, hid = c->hidden_size, D = c->head_dim;
    int HD = c->num_attention_heads * D, E = c->num_experts;
    builder b = {.g = g};
    g->layers = calloc((size_t)L, sizeof(rl_layer_grads));
    g->n_layers = L;
    g->n_experts = E;
    g->expert_load = calloc((size_t)L * (size_t)(E > 0 ? E : 1), sizeof(int));
    if (!g->layers || !g->expert_load) b.fail = 1;
    g->embed = mat(&b, &m->embed, "model.word_embeddings.weight");
    char n[160];
    for (int l = 0; l < L && !b.fail; l++) {
        const rl_layer *ly = &m->layers[l];
        rl_layer_grads *lg = &g->layers[l];
#define P(s) (snprintf(n, sizeof n, "model.layers.%d.%s", l, s), n)
        lg->in_norm = add(&b, NULL, ly->in_norm, hid, 0, "%s", P("input_layernorm.weight"));
        lg->qkv = mat(&b, &ly->qkv, P("attention.query_key_value.weight"));
        if (ly->q_norm) {
            lg->q_norm = add(&b, NULL, ly->q_norm, D, 0, "%s", P("attention.query_layernorm.weight"));
            lg->k_norm = add(&b, NULL, ly->k_norm, D, 0, "%s", P("attention.key_layernorm.weight"));
        }
        if (!ly->softmax) {
            lg->g_proj = mat(&b, &ly->g_proj, P("attention.g_proj.weight"));
            lg->g_norm = add(&b, NULL, ly->g_norm, HD, 0, "%s", P("attention.g_norm.weight"));
        }
        lg->dense = mat(&b, &ly->dense, P("attention.dense.weight"));
        lg->post_norm = add(&b, NULL, ly->post_norm, hid, 0, "%s",
                            P("post_attention_layernorm.weight"));
        if (!ly->moe) {
            lg->gate = mat(&b, &ly->gate, P("mlp.gate_proj.weight"));
            lg->up = mat(&b, &ly->up, P("mlp.up_proj.weight"));
            lg->down = mat(&b, &ly->down, P("mlp.down_proj.weight"));
            continue;
        }
        lg->router = mat(&b, &ly->router, P("mlp.gate.weight"));
        lg->e_gate = calloc((size_t)E, sizeof(float *));
        lg->e_up = calloc((size_t)E, sizeof(float *));
        lg->e_down = calloc((size_t)E, sizeof(float *));
        if (!lg->e_gate || !lg->e_up || !lg->e_down) { b.fail = 1; break; }
        for (int x = 0; x < E; x++) {
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, x);
            lg->e_gate[x] = mat(&b, &ly->e_gate[x], n);
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, x);
            lg->e_up[x] = mat(&b, &ly->e_up[x], n);
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, x);
            lg->e_down[x] = mat(&b, &ly->e_down[x], n);
        }
        if (ly->has_shared) {
            lg->s_gate = mat(&b, &ly->s_gate, P("mlp.shared_experts.gate_proj.weight"));
            lg->s_up = mat(&b, &ly->s_up, P("mlp.shared_experts.up_proj.weight"));
            lg->s_down = mat(&b, &ly->s_down, P("mlp.shared_experts.down_proj.weight"));
        }
#undef P
    }
    g->final_norm = add(&b, NULL, m->final_norm, hid, 0, "model.norm.weight");
    if (c->tie_word_embeddings)
        g->lm_head = g->embed;
    else
        g->lm_head = mat(&b, &m->lm_head, "lm_head.weight");
    if (b.fail) {
        rl_grads_free(g);
        return rl_errf(e, RL_E_NOMEM, "out of memory (gradient buffers)");
    }
    return RL_OK;
}

void rl_grads_zero(rl_grads *g) {
    for (int i = 0; i < g->n; i++) memset(g->p[i].g, 0, sizeof(float) * (size_t)g->p[i].numel);
    if (g->expert_load)
        memset(g->expert_load, 0, sizeof(int) * (size_t)g->n_layers * (g->n_experts > 0 ? g->n_experts : 1));
}

double rl_grads_sqnorm(const rl_grads *g) {
    double s = 0;
    for (int i = 0; i < g->n; i++)
        for (int64_t j = 0; j < g->p[i].numel; j++) s += (double)g->p[i].g[j] * g->p[i].g[j];
    return s;
}

void rl_grads_free(rl_grads *g) {
    for (int i = 0; i < g->n; i++) free(g->p[i].g);
    free(g->p);
    for (int l = 0; g->layers && l < g->n_layers; l++) {
        free(g->layers[l].e_gate);
        free(g->layers[l].e_up);
        free(g->layers[l].e_down);
    }
    free(g->layers);
    free(g->expert_load);
    memset(g, 0, sizeof *g);
}
