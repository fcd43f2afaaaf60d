#include "model/model_skeleton.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void shape(rl_wmat *w, int rows, int cols) {
    memset(w, 0, sizeof *w);
    w->dtype = RL_BF16;
    w->rows = rows;
    w->cols = cols;
}

static float *ones(int n) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; v && i < n; i++) v[i] = 1.0f;
    return v;
}

int rl_model_skeleton(const rl_config *c, rl_model *m, rl_err *e) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->ops = rl_ops_cpu();
    int hid = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int D = c->head_dim, HD = H * D, E = c->num_experts, L = c->num_hidden_layers;
    shape(&m->embed, c->vocab_size, hid);
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    else shape(&m->lm_head, c->vocab_size, hid);
    m->final_norm = ones(hid);
    m->layers = calloc((size_t)L, sizeof(rl_layer));
    int R = c->rotary_dim / 2;
    m->inv_freq = malloc(sizeof(float) * (size_t)(R > 0 ? R : 1));
    if (!m->final_norm || !m->layers || !m->inv_freq) goto nomem;
    for (int j = 0; j < R; j++)
        m->inv_freq[j] = (float)(1.0 / pow((double)c->rope_theta, (2.0 * j) / c->rotary_dim));
    for (int l = 0; l < L; l++) {
        rl_layer *ly = &m->layers[l];
        ly->softmax = c->layer_softmax[l];
        ly->moe = c->layer_moe[l];
        ly->kind_index = ly->softmax ? m->n_softmax++ : m->n_linear++;
        ly->in_norm = ones(hid);
        ly->post_norm = ones(hid);
        if (!ly->in_norm || !ly->post_norm) goto nomem;
        if (c->use_qk_norm) {
            ly->q_norm = ones(D);
            ly->k_norm = ones(D);
            if (!ly->q_norm || !ly->k_norm) goto nomem;
        }
        shape(&ly->qkv, ly->softmax ? (H + 2 * Hkv) * D : 3 * HD, hid);
        shape(&ly->dense, hid, HD);
        if (!ly->softmax) {
            shape(&ly->g_proj, HD, hid);
            ly->g_norm = ones(HD);
            ly->decay_pw = malloc(sizeof(float) * (size_t)H * (RL_CHUNK + 1));
            if (!ly->g_norm || !ly->decay_pw) goto nomem;
            for (int h = 0; h < H; h++) {
                float g = rl_config_decay(c, l, h);
                for (int k = 0; k <= RL_CHUNK; k++) ly->decay_pw[h * (RL_CHUNK + 1) + k] = expf(g * (float)k);
            }
        }
        if (!ly->moe) {
            shape(&ly->gate, c->intermediate_size, hid);
            shape(&ly->up, c->intermediate_size, hid);
            shape(&ly->down, hid, c->intermediate_size);
            continue;
        }
        int I = c->moe_intermediate_size;
        shape(&ly->router, E, hid);
        ly->router.dtype = RL_F32;
        ly->expert_bias = calloc((size_t)E, sizeof(float));
        ly->e_gate = calloc((size_t)E, sizeof(rl_wmat));
        ly->e_up = calloc((size_t)E, sizeof(rl_wmat));
        ly->e_down = calloc((size_t)E, sizeof(rl_wmat));
        if (!ly->expert_bias || !ly->e_gate || !ly->e_up || !ly->e_down) goto nomem;
        for (int x = 0; x < E; x++) {
            shape(&ly->e_gate[x], I, hid);
            shape(&ly->e_up[x], I, hid);
            shape(&ly->e_down[x], hid, I);
        }
        if (c->num_shared_experts > 0) {
            int sI = c->moe_shared_expert_intermediate_size * c->num_shared_experts;
            ly->has_shared = true;
            shape(&ly->s_gate, sI, hid);
            shape(&ly->s_up, sI, hid);
            shape(&ly->s_down, hid, sI);
        }
    }
    return RL_OK;
nomem:
    rl_model_free(m);
    return rl_errf(e, RL_E_NOMEM, "out of memory");
}
