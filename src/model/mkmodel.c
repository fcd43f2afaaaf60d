#include "model/mkmodel.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "tokenizer/tokenizer_write.h"

static void base_mini(rl_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 157184; c->hidden_size = 2048; c->num_hidden_layers = 20;
    c->num_attention_heads = 16; c->num_key_value_heads = 4; c->head_dim = 128;
    c->intermediate_size = 5120; c->moe_intermediate_size = 512;
    c->moe_shared_expert_intermediate_size = 512; c->num_experts = 256;
    c->num_experts_per_tok = 8; c->num_shared_experts = 1; c->first_k_dense_replace = 1;
    c->n_group = 8; c->topk_group = 4; c->routed_scaling_factor = 2.5f; c->norm_topk_prob = true;
    c->moe_router_enable_expert_bias = true; c->router_fp32 = true; c->use_qk_norm = true;
    c->rms_norm_eps = 1e-6f; c->rope_theta = 1e6f; c->partial_rotary_factor = 0.5f;
    c->max_position_embeddings = 131072; c->layer_group_size = 5; c->group_norm_size = 4;
    c->tie_word_embeddings = false; c->bos_token_id = 156891; c->pad_token_id = 156892;
    c->eos_token_ids[0] = 156892; c->n_eos = 1;
}

static const char *const preset_names =
    "ring-mini-linear-2.0, ring-flash-linear-2.0, ring-mini-linear-2.0-e64, "
    "ring-mini-linear-2.0-softmax-e64, tiny, test";

const char *rl_config_preset_names(void) { return preset_names; }

int rl_config_preset(const char *name, rl_config *c, rl_err *e) {
    base_mini(c);
    if (strcmp(name, "ring-mini-linear-2.0") == 0) {
    } else if (strcmp(name, "ring-flash-linear-2.0") == 0) {
        /* SPEC §1.2; rope_theta and group_norm_size are unknown there: the
         * values below are placeholders for a random-weight checkpoint */
        c->hidden_size = 4096; c->num_hidden_layers = 32; c->num_attention_heads = 32;
        c->intermediate_size = 9216; c->moe_intermediate_size = 1024;
        c->moe_shared_expert_intermediate_size = 1024; c->layer_group_size = 8;
        c->group_norm_size = 8;
    } else if (strcmp(name, "ring-mini-linear-2.0-e64") == 0) {
        c->num_experts = 64;
    } else if (strcmp(name, "ring-mini-linear-2.0-softmax-e64") == 0) {
        c->num_experts = 64;
        c->layer_group_size = 1;
    } else if (strcmp(name, "tiny") == 0) {
        c->vocab_size = 4096; c->hidden_size = 256; c->num_hidden_layers = 6;
        c->num_attention_heads = 4; c->num_key_value_heads = 2; c->head_dim = 64;
        c->intermediate_size = 768; c->moe_intermediate_size = 128;
        c->moe_shared_expert_intermediate_size = 128; c->num_experts = 16;
        c->num_experts_per_tok = 4; c->n_group = 4; c->topk_group = 2; c->layer_group_size = 3;
        c->group_norm_size = 2; c->max_position_embeddings = 8192;
        c->bos_token_id = -1; c->pad_token_id = 0; c->eos_token_ids[0] = 1;
    } else if (strcmp(name, "test") == 0) {
        c->vocab_size = 512; c->hidden_size = 64; c->num_hidden_layers = 4;
        c->num_attention_heads = 4; c->num_key_value_heads = 2; c->head_dim = 16;
        c->intermediate_size = 128; c->moe_intermediate_size = 32;
        c->moe_shared_expert_intermediate_size = 32; c->num_experts = 8;
        c->num_experts_per_tok = 2; c->n_group = 4; c->topk_group = 2; c->layer_group_size = 2;
        c->group_norm_size = 2; c->max_position_embeddings = 4096;
        c->bos_token_id = -1; c->pad_token_id = 0; c->eos_token_ids[0] = 1;
    } else {
        return rl_errf(e, RL_E_ARG, "unknown preset '%s' (known: %s)", name, preset_names);
    }
    return rl_config_finish(c, name, e);
}

/* ---- tensor list ------------------------------------------------------- */

enum { K_MAT, K_EMBED, K_NORM, K_BIAS, K_SCALE };

typedef struct gen_tensor {
    char name[160];
    int kind;
    rl_dtype dtype;
    int64_t rows, cols; /* cols = 0: vector */
    int fan_in;
    float bound;        /* uniform(-bound, bound) */
} gen_tensor;

typedef struct gen_list {
    gen_tensor *t;
    int n, cap;
} gen_list;

static int add(gen_list *g, int kind, rl_dtype dt, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int add(gen_list *g, int kind, rl_dtype dt, int64_t rows, int64_t cols, const char *fmt, ...) {
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 256;
        gen_tensor *p = realloc(g->t, sizeof *p * (size_t)cap);
        if (!p) return -1;
        g->t = p;
        g->cap = cap;
    }
    gen_tensor *t = &g->t[g->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->kind = kind;
    t->dtype = dt;
    t->rows = rows;
    t->cols = cols;
    t->fan_in = (int)cols;
    t->bound = kind == K_MAT ? sqrtf(3.0f / (float)cols) : kind == K_EMBED ? 1.0f : 0.1f;
    return 0;
}

static int add_mat(gen_list *g, rl_dtype dt, int64_t rows, int64_t cols, const char *name) {
    if (add(g, K_MAT, dt, rows, cols, "%s", name)) return -1;
    if (dt == RL_F8_E4M3) {
        if (add(g, K_SCALE, RL_F32, (rows + 127) / 128, (cols + 127) / 128, "%s_scale_inv", name))
            return -1;
        g->t[g->n - 1].bound = sqrtf(3.0f / (float)cols); /* of the matrix it scales */
    }
    return 0;
}

static int build_list(const rl_config *c, const rl_mkmodel_opts *o, gen_list *g) {
    int hid = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int D = c->head_dim, HD = H * D;
    rl_dtype md = o->dtype, vd = md == RL_F8_E4M3 ? RL_BF16 : md;
    rl_dtype ed = md == RL_F8_E4M3 ? RL_BF16 : md; /* embeddings and head stay high precision */
    char n[160];
    int r = 0;
    r |= add(g, K_EMBED, ed, c->vocab_size, hid, "model.word_embeddings.weight");
    for (int l = 0; l < c->num_hidden_layers; l++) {
#define P(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
        r |= add(g, K_NORM, vd, hid, 0, "model.layers.%d.input_layernorm.weight", l);
        r |= add(g, K_NORM, vd, hid, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        int qkv = c->layer_softmax[l] ? (H + 2 * Hkv) * D : 3 * HD;
        r |= add_mat(g, md, qkv, hid, P("model.layers.%d.attention.query_key_value.weight", l));
        if (!c->layer_softmax[l]) {
            r |= add_mat(g, md, HD, hid, P("model.layers.%d.attention.g_proj.weight", l));
            r |= add(g, K_NORM, vd, HD, 0, "model.layers.%d.attention.g_norm.weight", l);
        }
        if (c->use_qk_norm) {
            r |= add(g, K_NORM, vd, D, 0, "model.layers.%d.attention.query_layernorm.weight", l);
            r |= add(g, K_NORM, vd, D, 0, "model.layers.%d.attention.key_layernorm.weight", l);
        }
        r |= add_mat(g, md, hid, HD, P("model.layers.%d.attention.dense.weight", l));
        if (!c->layer_moe[l]) {
            int I = c->intermediate_size;
            r |= add_mat(g, md, I, hid, P("model.layers.%d.mlp.gate_proj.weight", l));
            r |= add_mat(g, md, I, hid, P("model.layers.%d.mlp.up_proj.weight", l));
            r |= add_mat(g, md, hid, I, P("model.layers.%d.mlp.down_proj.weight", l));
            continue;
        }
        int E = c->num_experts, I = c->moe_intermediate_size;
        r |= add(g, K_MAT, o->router_dtype, E, hid, "model.layers.%d.mlp.gate.weight", l);
        if (c->moe_router_enable_expert_bias)
            r |= add(g, K_BIAS, RL_F32, E, 0, "model.layers.%d.mlp.gate.expert_bias", l);
        for (int x = 0; x < E; x++) {
            r |= add_mat(g, md, I, hid, P("model.layers.%d.mlp.experts.%d.gate_proj.weight", l, x));
            r |= add_mat(g, md, I, hid, P("model.layers.%d.mlp.experts.%d.up_proj.weight", l, x));
            r |= add_mat(g, md, hid, I, P("model.layers.%d.mlp.experts.%d.down_proj.weight", l, x));
        }
        if (c->num_shared_experts > 0) {
            int S = c->moe_shared_expert_intermediate_size * c->num_shared_experts;
            r |= add_mat(g, md, S, hid, P("model.layers.%d.mlp.shared_experts.gate_proj.weight", l));
            r |= add_mat(g, md, S, hid, P("model.layers.%d.mlp.shared_experts.up_proj.weight", l));
            r |= add_mat(g, md, hid, S, P("model.layers.%d.mlp.shared_experts.down_proj.weight", l));
        }
#undef P
    }
    r |= add(g, K_NORM, vd, hid, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) r |= add(g, K_MAT, ed, c->vocab_size, hid, "lm_head.weight");
    return r;
}

/* ---- filling ------------------------------------------------------------ */

typedef struct fill_ctx {
    const gen_tensor *t; /* this shard's tensors */
    uint64_t seed;
    int cur;
    uint64_t rng;
} fill_ctx;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float unif(uint64_t *s) { /* uniform in [-1, 1) */
    return (float)((double)(splitmix(s) >> 40) * (2.0 / 16777216.0) - 1.0);
}

static int fill(void *vctx, int index, void *buf, size_t nbytes, rl_err *e) {
    (void)e;
    fill_ctx *f = vctx;
    const gen_tensor *t = &f->t[index];
    if (f->cur != index) { /* a tensor's values depend only on (seed, name) */
        f->cur = index;
        uint64_t h = 1469598103934665603ull;
        for (const char *p = t->name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
        f->rng = h ^ (f->seed * 0x9e3779b97f4a7c15ull);
    }
    size_t n = nbytes / rl_dtype_size(t->dtype);
    for (size_t i = 0; i < n; i++) {
        float v;
        switch (t->kind) {
        case K_NORM: v = 1.0f + 0.2f * unif(&f->rng); break;
        case K_BIAS: v = 0.05f * unif(&f->rng); break;
        case K_SCALE: v = t->bound / 224.0f * (1.0f + 0.25f * unif(&f->rng)); break;
        default: v = t->bound * unif(&f->rng); break;
        }
        switch (t->dtype) {
        case RL_F32: ((float *)buf)[i] = v; break;
        case RL_BF16: ((uint16_t *)buf)[i] = rl_f32_to_bf16(v); break;
        case RL_F16: ((uint16_t *)buf)[i] = rl_f32_to_f16(v); break;
        case RL_F8_E4M3: /* codes spread over the E4M3 range; the block scales set the size */
            ((uint8_t *)buf)[i] = rl_f32_to_f8e4m3(224.0f * v / t->bound);
            break;
        default: break;
        }
    }
    return RL_OK;
}

static int write_text(const char *path, const char *text, rl_err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return rl_errf(e, RL_E_IO, "%s: cannot write: %s", path, strerror(errno));
    fputs(text, f);
    fputc('\n', f);
    if (fclose(f) != 0) return rl_errf(e, RL_E_IO, "%s: write failed", path);
    return RL_OK;
}

typedef struct prog_sum {
    const rl_mkmodel_opts *o;
    size_t base, total;
} prog_sum;

static void shard_progress(void *ctx, size_t done, size_t total) {
    (void)total;
    prog_sum *p = ctx;
    if (p->o->progress) p->o->progress(p->o->progress_ctx, p->base + done, p->total);
}

/* Special tokens of the byte tokenizer, after the 256 byte ids. */
static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>", "<|role_end|>", "<role>",
                                       "</role>", "<think>", "</think>", "<tool_call>",
                                       "</tool_call>"};
enum { SP_BOS = 256, SP_EOS = 257, SP_ROLE_END = 258, N_SPECIALS = 9 };

/* A chat template in the Ring family's format (SPEC §4), written for ringlm. */
static const char *const ring_style_template =
    "{%- set roles = {'system': 'SYSTEM', 'user': 'HUMAN', 'assistant': 'ASSISTANT', "
    "'tool': 'OBSERVATION'} -%}"
    "{%- for m in messages -%}"
    "<role>{{ roles[m.role] }}</role>"
    "{%- if m.role == 'assistant' and m.reasoning_content is defined and m.reasoning_content -%}"
    "<think>\n{{ m.reasoning_content }}\n</think>\n"
    "{%- endif -%}"
    "{{ m.content }}<|role_end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<role>ASSISTANT</role>{%- endif -%}";

static int write_byte_tokenizer(const char *dir, rl_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    rl_bpe_spec spec = {.specials = specials, .n_specials = N_SPECIALS};
    int rc = rl_write_bytelevel_tokenizer(path, &spec, e);
    if (rc) return rc;
    json_t *tc = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s}", "tokenizer_class",
                           "PreTrainedTokenizerFast", "bos_token", specials[0], "eos_token", specials[1],
                           "pad_token", specials[1], "add_bos_token", 0, "add_eos_token", 0,
                           "chat_template", ring_style_template);
    json_t *gc = json_pack("{s:i, s:[i,i], s:i}", "bos_token_id", SP_BOS, "eos_token_id", SP_EOS,
                           SP_ROLE_END, "pad_token_id", SP_EOS);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    rc = !tc || json_dump_file(tc, path, JSON_INDENT(2)) ? rl_errf(e, RL_E_IO, "%s: cannot write", path) : 0;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (!rc && (!gc || json_dump_file(gc, path, JSON_INDENT(2))))
        rc = rl_errf(e, RL_E_IO, "%s: cannot write", path);
    json_decref(tc);
    json_decref(gc);
    return rc;
}

int rl_mkmodel(const rl_config *cfg_in, const char *dir, const rl_mkmodel_opts *o, rl_err *e) {
    rl_config cfg = *cfg_in;
    const rl_config *c = &cfg;
    if (o->byte_tokenizer) {
        if (cfg.vocab_size < 256 + N_SPECIALS)
            return rl_errf(e, RL_E_ARG, "a byte tokenizer needs vocab_size >= %d (config has %d)",
                           256 + N_SPECIALS, cfg.vocab_size);
        cfg.bos_token_id = SP_BOS;
        cfg.pad_token_id = SP_EOS;
        cfg.eos_token_ids[0] = SP_EOS;
        cfg.n_eos = 1;
    }
    if (o->shards < 1 || o->shards > 9999) return rl_errf(e, RL_E_ARG, "shards must be in 1..9999");
    if (o->router_dtype != RL_F32 && o->router_dtype != RL_BF16)
        return rl_errf(e, RL_E_ARG, "router dtype must be F32 or BF16");
    int rc = rl_mkdir_p(dir, e);
    if (rc) return rc;
    gen_list g = {0};
    if (build_list(c, o, &g)) {
        free(g.t);
        return rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    size_t *bytes = calloc((size_t)g.n, sizeof(size_t));
    rl_st_entry *ent = calloc((size_t)g.n, sizeof(rl_st_entry));
    json_t *wmap = json_object();
    if (!bytes || !ent || !wmap) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        goto out;
    }
    size_t total = 0;
    for (int i = 0; i < g.n; i++) {
        gen_tensor *t = &g.t[i];
        ent[i].name = t->name;
        ent[i].dtype = t->dtype;
        ent[i].ndim = t->cols ? 2 : 1;
        ent[i].shape[0] = t->rows;
        ent[i].shape[1] = t->cols;
        bytes[i] = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1) * rl_dtype_size(t->dtype);
        total += bytes[i];
    }
    int S = o->shards < g.n ? o->shards : g.n;
    prog_sum ps = {o, 0, total};
    int first = 0;
    size_t acc = 0;
    for (int s = 0; s < S; s++) {
        /* shard s takes tensors until the running total passes (s+1)/S */
        int last = first;
        size_t goal = (size_t)((double)total * (s + 1) / S);
        while (last < g.n && (last == first || acc + bytes[last] <= goal || s == S - 1)) acc += bytes[last++];
        if (s < S - 1 && g.n - last < S - 1 - s) { /* leave one tensor per remaining shard */
            while (g.n - last < S - 1 - s) acc -= bytes[--last];
        }
        char fname[64], path[4096];
        if (S == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, S);
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        fill_ctx fc = {.t = g.t + first, .seed = o->seed, .cur = -1};
        rc = rl_st_write(path, ent + first, last - first, "{\"format\": \"pt\"}", fill, &fc,
                         shard_progress, &ps, e);
        if (rc) goto out;
        for (int i = first; i < last; i++) json_object_set_new(wmap, g.t[i].name, json_string(fname));
        ps.base = acc;
        first = last;
    }
    if (S > 1) {
        json_t *idx = json_pack("{s:{s:I},s:O}", "metadata", "total_size", (json_int_t)total,
                                "weight_map", wmap);
        char *txt = json_dumps(idx, JSON_INDENT(2));
        json_decref(idx);
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        rc = txt ? write_text(path, txt, e) : rl_errf(e, RL_E_NOMEM, "out of memory");
        free(txt);
        if (rc) goto out;
    }
    char *cj = rl_config_to_json(c), path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc = cj ? write_text(path, cj, e) : rl_errf(e, RL_E_NOMEM, "out of memory");
    free(cj);
    if (!rc && o->byte_tokenizer) rc = write_byte_tokenizer(dir, e);
out:
    json_decref(wmap);
    free(bytes);
    free(ent);
    free(g.t);
    return rc;
}
