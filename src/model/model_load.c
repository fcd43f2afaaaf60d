/* Binds checkpoint tensors to the model's typed views, checking every name,
 * shape and dtype against the config (DESIGN.md §2.1). */
#include <math.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

typedef struct binder {
    rl_model *m;
    rl_err *e;
    int64_t params, bytes;
} binder;

static const rl_tensor *find(binder *b, const char *name) {
    return rl_checkpoint_find(&b->m->ckpt, name);
}

static void shape_str(const rl_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* A 2-D weight [rows, cols]; F8_E4M3 needs its "<name>_scale_inv" block scales. */
static int bind_mat(binder *b, const char *name, int rows, int cols, rl_wmat *w) {
    const rl_tensor *t = find(b, name);
    if (!t)
        return rl_errf(b->e, RL_E_SHAPE, "%s: missing tensor '%s' (expected shape [%d, %d])",
                       b->m->ckpt.dir, name, rows, cols);
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char s[128];
        shape_str(t, s, sizeof s);
        return rl_errf(b->e, RL_E_SHAPE, "%s: tensor '%s' has shape %s, expected [%d, %d]",
                       b->m->ckpt.dir, name, s, rows, cols);
    }
    memset(w, 0, sizeof *w);
    w->dtype = t->dtype;
    w->rows = rows;
    w->cols = cols;
    w->data = t->data;
    b->params += (int64_t)rows * cols;
    b->bytes += (int64_t)t->nbytes;
    if (t->dtype == RL_F8_E4M3) {
        char sn[512];
        snprintf(sn, sizeof sn, "%s_scale_inv", name);
        const rl_tensor *s = find(b, sn);
        if (!s)
            return rl_errf(b->e, RL_E_SHAPE, "%s: F8_E4M3 tensor '%s' has no scale tensor '%s'",
                           b->m->ckpt.dir, name, sn);
        /* The Hugging Face FP8 layout (DeepSeek-V3, Qwen3-FP8): 128 x 128 blocks,
         * scales [ceil(rows/128), ceil(cols/128)]; a single value is per-tensor. */
        int rb = (rows + 127) / 128, cb = (cols + 127) / 128;
        if (s->dtype != RL_F32)
            return rl_errf(b->e, RL_E_SHAPE, "%s: scale tensor '%s' must be F32, not %s",
                           b->m->ckpt.dir, sn, rl_dtype_name(s->dtype));
        if (s->numel == 1) {
            w->sbr = rows;
            w->sbc = cols;
        } else if (s->ndim == 2 && s->shape[0] == rb && s->shape[1] == cb) {
            w->sbr = 128;
            w->sbc = 128;
        } else {
            return rl_errf(b->e, RL_E_SHAPE,
                           "%s: scale tensor '%s' must have shape [%d, %d] (128x128 blocks) or one "
                           "element", b->m->ckpt.dir, sn, rb, cb);
        }
        w->scale = s->data;
        b->bytes += (int64_t)s->nbytes;
    }
    return RL_OK;
}

/* A 1-D vector, converted once to fp32 (norm weights, expert bias). */
static int bind_vec(binder *b, const char *name, int n, float **out) {
    const rl_tensor *t = find(b, name);
    if (!t)
        return rl_errf(b->e, RL_E_SHAPE, "%s: missing tensor '%s' (expected shape [%d])",
                       b->m->ckpt.dir, name, n);
    if (t->ndim != 1 || t->shape[0] != n) {
        char s[128];
        shape_str(t, s, sizeof s);
        return rl_errf(b->e, RL_E_SHAPE, "%s: tensor '%s' has shape %s, expected [%d]",
                       b->m->ckpt.dir, name, s, n);
    }
    if (t->dtype == RL_F8_E4M3)
        return rl_errf(b->e, RL_E_SHAPE, "%s: tensor '%s': F8_E4M3 is only supported for matrices",
                       b->m->ckpt.dir, name);
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v) return rl_errf(b->e, RL_E_NOMEM, "out of memory binding '%s'", name);
    rl_convert_to_f32(t->dtype, t->data, v, (size_t)n);
    *out = v;
    b->params += n;
    b->bytes += (int64_t)t->nbytes;
    return RL_OK;
}

static int bind_swiglu(binder *b, const char *pfx, int inter, int hidden, rl_wmat *g,
                       rl_wmat *u, rl_wmat *d) {
    char n[512];
    snprintf(n, sizeof n, "%s.gate_proj.weight", pfx);
    RL_TRY(bind_mat(b, n, inter, hidden, g));
    snprintf(n, sizeof n, "%s.up_proj.weight", pfx);
    RL_TRY(bind_mat(b, n, inter, hidden, u));
    snprintf(n, sizeof n, "%s.down_proj.weight", pfx);
    RL_TRY(bind_mat(b, n, hidden, inter, d));
    return RL_OK;
}

static int bind_layer(binder *b, int l, rl_layer *L) {
    const rl_config *c = &b->m->cfg;
    int hid = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int D = c->head_dim, HD = H * D;
    char n[512];
#define NAME(...) snprintf(n, sizeof n, __VA_ARGS__)
    NAME("model.layers.%d.input_layernorm.weight", l);
    RL_TRY(bind_vec(b, n, hid, &L->in_norm));
    NAME("model.layers.%d.post_attention_layernorm.weight", l);
    RL_TRY(bind_vec(b, n, hid, &L->post_norm));
    int qkv_rows = L->softmax ? (H + 2 * Hkv) * D : 3 * HD;
    NAME("model.layers.%d.attention.query_key_value.weight", l);
    RL_TRY(bind_mat(b, n, qkv_rows, hid, &L->qkv));
    NAME("model.layers.%d.attention.dense.weight", l);
    RL_TRY(bind_mat(b, n, hid, HD, &L->dense));
    if (c->use_qk_norm) {
        NAME("model.layers.%d.attention.query_layernorm.weight", l);
        RL_TRY(bind_vec(b, n, D, &L->q_norm));
        NAME("model.layers.%d.attention.key_layernorm.weight", l);
        RL_TRY(bind_vec(b, n, D, &L->k_norm));
    }
    if (!L->softmax) {
        NAME("model.layers.%d.attention.g_proj.weight", l);
        RL_TRY(bind_mat(b, n, HD, hid, &L->g_proj));
        NAME("model.layers.%d.attention.g_norm.weight", l);
        RL_TRY(bind_vec(b, n, HD, &L->g_norm));
        L->decay_pw = malloc(sizeof(float) * (size_t)H * (RL_CHUNK + 1));
        if (!L->decay_pw) return rl_errf(b->e, RL_E_NOMEM, "out of memory");
        for (int h = 0; h < H; h++) {
            float g = rl_config_decay(c, l, h);
            for (int k = 0; k <= RL_CHUNK; k++)
                L->decay_pw[h * (RL_CHUNK + 1) + k] = expf(g * (float)k);
        }
    }
    if (!L->moe) {
        NAME("model.layers.%d.mlp", l);
        char pfx[512];
        memcpy(pfx, n, sizeof pfx);
        RL_TRY(bind_swiglu(b, pfx, c->intermediate_size, hid, &L->gate, &L->up, &L->down));
        return RL_OK;
    }
    int E = c->num_experts, I = c->moe_intermediate_size;
    NAME("model.layers.%d.mlp.gate.weight", l);
    RL_TRY(bind_mat(b, n, E, hid, &L->router));
    if (L->router.dtype == RL_F8_E4M3)
        return rl_errf(b->e, RL_E_SHAPE, "%s: router '%s' must not be F8_E4M3", b->m->ckpt.dir, n);
    NAME("model.layers.%d.mlp.gate.expert_bias", l);
    if (c->moe_router_enable_expert_bias) {
        RL_TRY(bind_vec(b, n, E, &L->expert_bias));
    } else {
        L->expert_bias = calloc((size_t)E, sizeof(float));
        if (!L->expert_bias) return rl_errf(b->e, RL_E_NOMEM, "out of memory");
    }
    L->e_gate = calloc((size_t)E, sizeof(rl_wmat));
    L->e_up = calloc((size_t)E, sizeof(rl_wmat));
    L->e_down = calloc((size_t)E, sizeof(rl_wmat));
    if (!L->e_gate || !L->e_up || !L->e_down) return rl_errf(b->e, RL_E_NOMEM, "out of memory");
    for (int x = 0; x < E; x++) {
        char pfx[512];
        snprintf(pfx, sizeof pfx, "model.layers.%d.mlp.experts.%d", l, x);
        RL_TRY(bind_swiglu(b, pfx, I, hid, &L->e_gate[x], &L->e_up[x], &L->e_down[x]));
    }
    if (c->num_shared_experts > 0) {
        /* The shared expert's width is read from its tensor (SPEC §2). */
        NAME("model.layers.%d.mlp.shared_experts.gate_proj.weight", l);
        const rl_tensor *t = find(b, n);
        if (!t)
            return rl_errf(b->e, RL_E_SHAPE, "%s: missing tensor '%s' (num_shared_experts = %d)",
                           b->m->ckpt.dir, n, c->num_shared_experts);
        if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > (1 << 20))
            return rl_errf(b->e, RL_E_SHAPE, "%s: tensor '%s' must be 2-D [inter, %d]",
                           b->m->ckpt.dir, n, hid);
        L->has_shared = true;
        char pfx[512];
        snprintf(pfx, sizeof pfx, "model.layers.%d.mlp.shared_experts", l);
        RL_TRY(bind_swiglu(b, pfx, (int)t->shape[0], hid, &L->s_gate, &L->s_up, &L->s_down));
    }
    return RL_OK;
#undef NAME
}

static int64_t mat_params(const rl_wmat *w) { return (int64_t)w->rows * w->cols; }

/* Collects every matrix the matmul reads (the embedding table is only
 * gathered from, so it stays as stored; a tied head is its own view). */
static int collect_mats(rl_model *m, rl_wmat **out) {
    int n = 0;
#define ADD(w) do { if ((w)->data) { if (out) out[n] = (w); n++; } } while (0)
    ADD(&m->lm_head);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        rl_layer *ly = &m->layers[l];
        ADD(&ly->qkv); ADD(&ly->dense); ADD(&ly->g_proj); ADD(&ly->gate); ADD(&ly->up);
        ADD(&ly->down); ADD(&ly->router); ADD(&ly->s_gate); ADD(&ly->s_up); ADD(&ly->s_down);
        if (ly->moe)
            for (int x = 0; x < m->cfg.num_experts; x++) {
                ADD(&ly->e_gate[x]); ADD(&ly->e_up[x]); ADD(&ly->e_down[x]);
            }
    }
#undef ADD
    return n;
}

/* The stored copy of a packed matrix is not read again: unmap its pages so
 * that the resident size is the packed weights, not twice them (the data
 * stays valid and would fault back in if read). */
static void drop_stored_pages(const rl_wmat *w) {
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)w->data;
    uintptr_t b = a + (size_t)w->rows * (size_t)w->cols * rl_dtype_size(w->dtype);
    a = (a + pg - 1) & ~(pg - 1);
    b &= ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* MemAvailable of /proc/meminfo in bytes, or -1 when unknown. */
static double mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024.0;
}

/* Copies the matrices once into the backend's matmul layout (for the AVX-512
 * backend: 4-row tiles that decode streams sequentially; measured ~1.5x the
 * bandwidth of reading 4 separate rows of the mmap). One anonymous mapping,
 * huge pages where the kernel grants them. */
static int pack_weights(rl_model *m, const rl_load_opts *opts, rl_err *e) {
    if (!m->ops->pack || !m->ops->pack_size) return RL_OK;
    int n = collect_mats(m, NULL);
    rl_wmat **ws = malloc(sizeof(rl_wmat *) * (size_t)(n ? n : 1));
    size_t *off = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    if (!ws || !off) {
        free(ws);
        free(off);
        return rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    collect_mats(m, ws);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        off[i] = total;
        total += (m->ops->pack_size(ws[i]) + 63) & ~(size_t)63;
    }
    if (total == 0) {
        free(ws);
        free(off);
        return RL_OK;
    }
    size_t sz = (total + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    /* A copy that does not fit would end in the OOM killer, not an error:
     * run from the mmap instead (slower decode, same results bitwise). */
    double avail = mem_available_bytes();
    if (avail > 0 && (double)sz > 0.85 * avail) {
        free(ws);
        free(off);
        if (opts && opts->progress)
            fprintf(stderr, "note: weights stay in the mmap (layout copy of %.2f GB > 85%% of "
                            "the %.2f GB available)\n", (double)sz / 1e9, avail / 1e9);
        return RL_OK;
    }
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(ws);
        free(off);
        return rl_errf(e, RL_E_NOMEM,
                       "cannot allocate %.2f GB to lay out the weights for the matmul (set "
                       "RINGLM_NO_PACK=1 to run from the mmap)", (double)sz / 1e9);
    }
    madvise(p, sz, MADV_HUGEPAGE);
    int done = 0;
#pragma omp parallel for schedule(dynamic, 8)
    for (int i = 0; i < n; i++) {
        if (m->ops->pack_size(ws[i]) == 0) continue;
        m->ops->pack(ws[i], (char *)p + off[i]);
        ws[i]->packed = (char *)p + off[i];
        drop_stored_pages(ws[i]);
        if (opts && opts->progress) {
#pragma omp atomic
            done++;
            if ((done & 255) == 0 || done == n) {
#pragma omp critical
                opts->progress(opts->progress_ctx, -done, n);
            }
        }
    }
    m->packed = p;
    m->packed_size = sz;
    free(ws);
    free(off);
    return RL_OK;
}

int rl_model_load(const char *dir, const rl_load_opts *opts, rl_model *m, rl_err *e) {
    memset(m, 0, sizeof *m);
    int rc = rl_checkpoint_open(dir, &m->ckpt, e);
    if (rc) return rc;
    char label[4096];
    snprintf(label, sizeof label, "%s/config.json", dir);
    rc = rl_config_parse(m->ckpt.config_json, label, &m->cfg, e);
    if (rc) goto fail;
    if (opts && opts->decay_conv >= 0) m->cfg.decay_conv = (rl_decay_conv)opts->decay_conv;
    m->ops = opts && opts->ops ? opts->ops : rl_ops_cpu();
    const rl_config *c = &m->cfg;
    binder b = {.m = m, .e = e};
    int hid = c->hidden_size;
    rc = bind_mat(&b, "model.word_embeddings.weight", c->vocab_size, hid, &m->embed);
    if (rc) goto fail;
    if (c->tie_word_embeddings) {
        m->lm_head = m->embed;
    } else {
        rc = bind_mat(&b, "lm_head.weight", c->vocab_size, hid, &m->lm_head);
        if (rc) goto fail;
    }
    rc = bind_vec(&b, "model.norm.weight", hid, &m->final_norm);
    if (rc) goto fail;
    int L = c->num_hidden_layers;
    m->layers = calloc((size_t)L, sizeof(rl_layer));
    if (!m->layers) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        goto fail;
    }
    int64_t active = 0;
    for (int l = 0; l < L; l++) {
        rl_layer *ly = &m->layers[l];
        ly->softmax = c->layer_softmax[l];
        ly->moe = c->layer_moe[l];
        ly->kind_index = ly->softmax ? m->n_softmax++ : m->n_linear++;
        int64_t before = b.params;
        rc = bind_layer(&b, l, ly);
        if (rc) goto fail;
        int64_t lp = b.params - before;
        if (ly->moe) { /* only top-k experts are active */
            int64_t per_expert = mat_params(&ly->e_gate[0]) * 3;
            lp -= per_expert * (c->num_experts - c->num_experts_per_tok);
        }
        active += lp;
        if (opts && opts->progress) opts->progress(opts->progress_ctx, l + 1, L);
    }
    int R = c->rotary_dim / 2;
    m->inv_freq = malloc(sizeof(float) * (size_t)(R > 0 ? R : 1));
    if (!m->inv_freq) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int j = 0; j < R; j++)
        m->inv_freq[j] = (float)(1.0 / pow((double)c->rope_theta, (2.0 * j) / c->rotary_dim));
    m->n_params = b.params;
    /* Active: everything but unrouted experts; the embedding counts one row. */
    m->n_params_active = active + mat_params(&m->lm_head) + hid;
    m->weight_bytes = b.bytes;
    if (!(opts && opts->no_pack) && !getenv("RINGLM_NO_PACK")) {
        rc = pack_weights(m, opts, e);
        if (rc) goto fail;
    }
    return RL_OK;
fail:
    rl_model_free(m);
    return rc;
}

void rl_model_free(rl_model *m) {
    if (m->layers) {
        for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
            rl_layer *ly = &m->layers[l];
            free(ly->in_norm); free(ly->post_norm); free(ly->q_norm); free(ly->k_norm);
            free(ly->g_norm); free(ly->decay_pw); free(ly->expert_bias);
            free(ly->e_gate); free(ly->e_up); free(ly->e_down);
        }
        free(m->layers);
    }
    free(m->final_norm);
    free(m->inv_freq);
    if (m->packed) munmap(m->packed, m->packed_size);
    rl_checkpoint_close(&m->ckpt);
    memset(m, 0, sizeof *m);
}

int64_t rl_model_linear_state_bytes(const rl_model *m) {
    const rl_config *c = &m->cfg;
    int64_t HD = (int64_t)c->num_attention_heads * c->head_dim;
    /* chunk-start state [H][D][D] + stashed keys and values of a partial chunk */
    return (int64_t)m->n_linear *
           ((int64_t)c->num_attention_heads * c->head_dim * c->head_dim + 2 * RL_CHUNK * HD) * 4;
}

int64_t rl_model_kv_bytes_per_token(const rl_model *m) {
    const rl_config *c = &m->cfg;
    return (int64_t)m->n_softmax * 2 * c->num_key_value_heads * c->head_dim * 4;
}
