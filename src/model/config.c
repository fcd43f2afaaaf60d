#include "model/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an integer key. Missing: default when !required. */
static int get_int(json_t *root, const char *key, bool required, int def, int *out,
                   const char *label, rl_err *e) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return rl_errf(e, RL_E_CONFIG, "%s: missing required key '%s'", label, key);
        *out = def;
        return RL_OK;
    }
    if (!json_is_integer(v))
        return rl_errf(e, RL_E_CONFIG, "%s: key '%s' must be an integer", label, key);
    json_int_t x = json_integer_value(v);
    if (x < -1 || x > 1000000000)
        return rl_errf(e, RL_E_CONFIG, "%s: key '%s' = %lld is out of range", label, key,
                       (long long)x);
    *out = (int)x;
    return RL_OK;
}

static int get_float(json_t *root, const char *key, float def, float *out, const char *label,
                     rl_err *e) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return RL_OK;
    }
    if (!json_is_number(v))
        return rl_errf(e, RL_E_CONFIG, "%s: key '%s' must be a number", label, key);
    double x = json_number_value(v);
    if (!isfinite(x))
        return rl_errf(e, RL_E_CONFIG, "%s: key '%s' is not finite", label, key);
    *out = (float)x;
    return RL_OK;
}

static int get_bool(json_t *root, const char *key, bool def, bool *out, const char *label,
                    rl_err *e) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return RL_OK;
    }
    if (!json_is_boolean(v))
        return rl_errf(e, RL_E_CONFIG, "%s: key '%s' must be true or false", label, key);
    *out = json_is_true(v);
    return RL_OK;
}

static const char *get_str(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

#define TRY(x)                       \
    do {                             \
        int rc_ = (x);               \
        if (rc_) {                   \
            rc = rc_;                \
            goto fail;               \
        }                            \
    } while (0)

int rl_config_parse(const char *text, const char *label, rl_config *c, rl_err *e) {
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return rl_errf(e, RL_E_CONFIG, "%s: invalid JSON at line %d column %d: %s", label,
                       je.line, je.column, je.text);
    int rc = RL_E_CONFIG;
    if (!json_is_object(root)) {
        rl_errf(e, RL_E_CONFIG, "%s: top level must be a JSON object", label);
        goto fail;
    }
    TRY(get_int(root, "vocab_size", true, 0, &c->vocab_size, label, e));
    TRY(get_int(root, "hidden_size", true, 0, &c->hidden_size, label, e));
    TRY(get_int(root, "num_hidden_layers", true, 0, &c->num_hidden_layers, label, e));
    TRY(get_int(root, "num_attention_heads", true, 0, &c->num_attention_heads, label, e));
    TRY(get_int(root, "num_key_value_heads", true, 0, &c->num_key_value_heads, label, e));
    TRY(get_int(root, "intermediate_size", true, 0, &c->intermediate_size, label, e));
    TRY(get_int(root, "layer_group_size", true, 0, &c->layer_group_size, label, e));
    int hd_def = c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
    TRY(get_int(root, "head_dim", false, hd_def, &c->head_dim, label, e));
    TRY(get_int(root, "moe_intermediate_size", false, 0, &c->moe_intermediate_size, label, e));
    TRY(get_int(root, "moe_shared_expert_intermediate_size", false, c->moe_intermediate_size,
                &c->moe_shared_expert_intermediate_size, label, e));
    TRY(get_int(root, "num_experts", false, 0, &c->num_experts, label, e));
    TRY(get_int(root, "num_experts_per_tok", false, 1, &c->num_experts_per_tok, label, e));
    TRY(get_int(root, "num_shared_experts", false, 0, &c->num_shared_experts, label, e));
    TRY(get_int(root, "first_k_dense_replace", false, 0, &c->first_k_dense_replace, label, e));
    TRY(get_int(root, "n_group", false, 1, &c->n_group, label, e));
    TRY(get_int(root, "topk_group", false, 1, &c->topk_group, label, e));
    TRY(get_float(root, "routed_scaling_factor", 1.0f, &c->routed_scaling_factor, label, e));
    TRY(get_bool(root, "norm_topk_prob", true, &c->norm_topk_prob, label, e));
    TRY(get_bool(root, "moe_router_enable_expert_bias", true, &c->moe_router_enable_expert_bias,
                 label, e));
    TRY(get_bool(root, "use_qk_norm", true, &c->use_qk_norm, label, e));
    TRY(get_float(root, "rms_norm_eps", 1e-6f, &c->rms_norm_eps, label, e));
    TRY(get_float(root, "rope_theta", 10000.0f, &c->rope_theta, label, e));
    TRY(get_float(root, "partial_rotary_factor", 1.0f, &c->partial_rotary_factor, label, e));
    TRY(get_int(root, "max_position_embeddings", false, 131072, &c->max_position_embeddings,
                label, e));
    TRY(get_int(root, "group_norm_size", false, 1, &c->group_norm_size, label, e));
    TRY(get_bool(root, "linear_silu", false, &c->linear_silu, label, e));
    TRY(get_int(root, "num_nextn_predict_layers", false, 0, &c->num_nextn_predict_layers, label,
                e));
    TRY(get_bool(root, "tie_word_embeddings", false, &c->tie_word_embeddings, label, e));
    TRY(get_int(root, "bos_token_id", false, -1, &c->bos_token_id, label, e));
    TRY(get_int(root, "pad_token_id", false, -1, &c->pad_token_id, label, e));

    const char *rd = get_str(root, "router_dtype");
    c->router_fp32 = rd && (strcmp(rd, "fp32") == 0 || strcmp(rd, "float32") == 0);

    json_t *eos = json_object_get(root, "eos_token_id");
    c->n_eos = 0;
    if (json_is_integer(eos)) {
        c->eos_token_ids[c->n_eos++] = (int)json_integer_value(eos);
    } else if (json_is_array(eos)) {
        size_t i;
        json_t *v;
        json_array_foreach(eos, i, v) {
            if (!json_is_integer(v)) {
                rl_errf(e, RL_E_CONFIG, "%s: eos_token_id[%zu] must be an integer", label, i);
                goto fail;
            }
            if (c->n_eos < 8) c->eos_token_ids[c->n_eos++] = (int)json_integer_value(v);
        }
    } else if (eos && !json_is_null(eos)) {
        rl_errf(e, RL_E_CONFIG, "%s: eos_token_id must be an integer or a list", label);
        goto fail;
    }

    /* Values that would change the math and that ringlm does not implement
     * are refused, never silently ignored. */
    const char *act = get_str(root, "hidden_act");
    if (act && strcmp(act, "silu") != 0) {
        rc = rl_errf(e, RL_E_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only 'silu')", label, act);
        goto fail;
    }
    const char *sf = get_str(root, "score_function");
    if (sf && strcmp(sf, "sigmoid") != 0) {
        rc = rl_errf(e, RL_E_UNSUPPORTED, "%s: score_function '%s' is not supported (only 'sigmoid')",
                label, sf);
        goto fail;
    }
    const char *bools_false[] = {"use_qkv_bias", "use_bias"};
    for (size_t i = 0; i < 2; i++) {
        bool b;
        TRY(get_bool(root, bools_false[i], false, &b, label, e));
        if (b) {
            rc = rl_errf(e, RL_E_UNSUPPORTED, "%s: %s = true is not supported (no biases)", label,
                    bools_false[i]);
            goto fail;
        }
    }
    bool rms;
    TRY(get_bool(root, "use_rmsnorm", true, &rms, label, e));
    if (!rms) {
        rc = rl_errf(e, RL_E_UNSUPPORTED, "%s: use_rmsnorm = false is not supported", label);
        goto fail;
    }
    json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        rc = rl_errf(e, RL_E_UNSUPPORTED, "%s: rope_scaling is not supported yet (must be null)", label);
        goto fail;
    }
    const char *dc = get_str(root, "ringlm_decay_convention");
    c->decay_conv = RL_DECAY_ENGINE;
    if (dc) {
        if (strcmp(dc, "hf") == 0) c->decay_conv = RL_DECAY_HF;
        else if (strcmp(dc, "engine") != 0) {
            rl_errf(e, RL_E_CONFIG, "%s: ringlm_decay_convention must be \"engine\" or \"hf\", not \"%s\"",
                    label, dc);
            goto fail;
        }
    }
    rc = rl_config_finish(c, label, e);
fail:
    json_decref(root);
    return rc;
}

int rl_config_finish(rl_config *c, const char *label, rl_err *e) {
#define NEED(cond, ...)                                             \
    do {                                                            \
        if (!(cond)) {                                              \
            char m_[512];                                           \
            snprintf(m_, sizeof m_, __VA_ARGS__);                   \
            return rl_errf(e, RL_E_CONFIG, "%s: %s", label, m_);    \
        }                                                           \
    } while (0)
    NEED(c->vocab_size > 0, "vocab_size must be > 0");
    NEED(c->hidden_size > 0, "hidden_size must be > 0");
    NEED(c->num_hidden_layers > 0 && c->num_hidden_layers <= RL_MAX_LAYERS,
         "num_hidden_layers must be in 1..%d", RL_MAX_LAYERS);
    NEED(c->num_attention_heads > 0, "num_attention_heads must be > 0");
    NEED(c->num_key_value_heads > 0 && c->num_attention_heads % c->num_key_value_heads == 0,
         "num_key_value_heads (%d) must divide num_attention_heads (%d)", c->num_key_value_heads,
         c->num_attention_heads);
    NEED(c->num_attention_heads / c->num_key_value_heads <= 64,
         "at most 64 query heads per kv head are supported");
    NEED(c->head_dim > 0 && c->head_dim % 2 == 0, "head_dim (%d) must be even and > 0", c->head_dim);
    NEED(c->intermediate_size > 0, "intermediate_size must be > 0");
    NEED(c->layer_group_size > 0, "layer_group_size must be > 0");
    NEED(c->group_norm_size > 0 &&
             (c->num_attention_heads * c->head_dim) % c->group_norm_size == 0,
         "group_norm_size (%d) must divide num_attention_heads*head_dim (%d)", c->group_norm_size,
         c->num_attention_heads * c->head_dim);
    NEED(c->partial_rotary_factor > 0 && c->partial_rotary_factor <= 1,
         "partial_rotary_factor must be in (0, 1]");
    NEED(c->rms_norm_eps > 0, "rms_norm_eps must be > 0");
    NEED(c->rope_theta > 0, "rope_theta must be > 0");
    NEED(c->first_k_dense_replace >= 0, "first_k_dense_replace must be >= 0");
    if (c->num_experts > 0) {
        NEED(c->moe_intermediate_size > 0, "moe_intermediate_size must be > 0 with experts");
        NEED(c->num_experts_per_tok >= 1 && c->num_experts_per_tok <= c->num_experts &&
                 c->num_experts_per_tok <= 64,
             "num_experts_per_tok must be in 1..min(num_experts, 64)");
        NEED(c->num_experts <= 4096, "num_experts (%d) above the supported 4096", c->num_experts);
        NEED(c->n_group >= 1 && c->n_group <= 256 && c->num_experts % c->n_group == 0,
             "n_group (%d) must be in 1..256 and divide num_experts (%d)", c->n_group, c->num_experts);
        NEED(c->topk_group >= 1 && c->topk_group <= c->n_group, "topk_group must be in 1..n_group");
        NEED(c->num_experts / c->n_group >= 2 || c->n_group == 1,
             "each expert group needs at least 2 experts (group score = top-2 sum)");
        NEED(c->topk_group * (c->num_experts / c->n_group) >= c->num_experts_per_tok,
             "topk_group groups hold fewer experts than num_experts_per_tok");
        NEED(c->num_shared_experts >= 0, "num_shared_experts must be >= 0");
    }
    int rot = (int)(c->head_dim * c->partial_rotary_factor);
    rot &= ~1;
    c->rotary_dim = rot;
    int L = c->num_hidden_layers, G = c->layer_group_size;
    for (int l = 0; l < L; l++) {
        c->layer_softmax[l] = ((l + 1) % G == 0) || (l >= (L / G) * G);
        c->layer_moe[l] = c->num_experts > 0 && l >= c->first_k_dense_replace;
    }
    return RL_OK;
#undef NEED
}

double rl_alibi_slope(int n, int h) {
    /* Power of two n: s_i = r^(i+1), r = 2^(-8/n). Otherwise slopes(p) for the
     * largest power of two p < n, then the even-indexed slopes of 2p. */
    int p = 1;
    while (p * 2 <= n) p *= 2;
    if (p == n) return pow(2.0, -8.0 / n * (h + 1));
    if (h < p) return pow(2.0, -8.0 / p * (h + 1));
    int k = h - p; /* k-th entry of slopes(2p)[0::2] = slopes(2p)[2k] */
    return pow(2.0, -8.0 / (2 * p) * (2 * k + 1));
}

float rl_config_decay(const rl_config *c, int layer, int head) {
    int L = c->num_hidden_layers;
    double lf = c->decay_conv == RL_DECAY_HF ? layer - 1 : layer;
    double f = L > 1 ? 1.0 - lf / (L - 1) + 1e-5 : 1.0 + 1e-5;
    return (float)(-rl_alibi_slope(c->num_attention_heads, head) * f);
}

char *rl_config_to_json(const rl_config *c) {
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", "BailingMoeLinearV2ForCausalLM"));
    json_object_set_new(o, "model_type", json_string("bailing_moe_linear"));
#define I(k) json_object_set_new(o, #k, json_integer(c->k))
#define F(k) json_object_set_new(o, #k, json_real(c->k))
#define B(k) json_object_set_new(o, #k, json_boolean(c->k))
    I(vocab_size); I(hidden_size); I(num_hidden_layers); I(num_attention_heads);
    I(num_key_value_heads); I(head_dim); I(intermediate_size); I(moe_intermediate_size);
    I(moe_shared_expert_intermediate_size); I(num_experts); I(num_experts_per_tok);
    I(num_shared_experts); I(first_k_dense_replace); I(n_group); I(topk_group);
    F(routed_scaling_factor); B(norm_topk_prob); B(moe_router_enable_expert_bias);
    B(use_qk_norm); F(rms_norm_eps); F(rope_theta); F(partial_rotary_factor);
    I(max_position_embeddings); I(layer_group_size); I(group_norm_size); B(linear_silu);
    I(num_nextn_predict_layers); B(tie_word_embeddings);
#undef I
#undef F
#undef B
    json_object_set_new(o, "score_function", json_string("sigmoid"));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "router_dtype", json_string(c->router_fp32 ? "fp32" : "bf16"));
    json_object_set_new(o, "use_qkv_bias", json_false());
    json_object_set_new(o, "use_bias", json_false());
    json_object_set_new(o, "use_rmsnorm", json_true());
    json_object_set_new(o, "rope_scaling", json_null());
    json_object_set_new(o, "torch_dtype", json_string("bfloat16"));
    if (c->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_token_id));
    if (c->pad_token_id >= 0) json_object_set_new(o, "pad_token_id", json_integer(c->pad_token_id));
    if (c->n_eos == 1) json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_ids[0]));
    else if (c->n_eos > 1) {
        json_t *a = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(a, json_integer(c->eos_token_ids[i]));
        json_object_set_new(o, "eos_token_id", a);
    }
    if (c->decay_conv == RL_DECAY_HF)
        json_object_set_new(o, "ringlm_decay_convention", json_string("hf"));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}
