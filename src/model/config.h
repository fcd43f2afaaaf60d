/* config.json of a Ring-linear-2.0 checkpoint (SPEC.md §1) and the layer
 * schedule derived from it (SPEC §1.3). */
#ifndef RL_MODEL_CONFIG_H
#define RL_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"

#define RL_MAX_LAYERS 256

/* Decay layer factor convention (SPEC §0.1). */
typedef enum rl_decay_conv {
    RL_DECAY_ENGINE = 0, /* f(l) = 1 - l/(L-1) + 1e-5      (default) */
    RL_DECAY_HF = 1,     /* f(l) = 1 - (l-1)/(L-1) + 1e-5 */
} rl_decay_conv;

typedef struct rl_config {
    /* required */
    int vocab_size, hidden_size, num_hidden_layers, num_attention_heads;
    int num_key_value_heads, intermediate_size, layer_group_size;
    /* optional (defaults in config.c and docs/ARCHITECTURE.md) */
    int head_dim;                  /* hidden_size / num_attention_heads */
    int moe_intermediate_size;     /* 0 */
    int moe_shared_expert_intermediate_size; /* moe_intermediate_size */
    int num_experts;               /* 0: every layer dense */
    int num_experts_per_tok;       /* 1 */
    int num_shared_experts;        /* 0 */
    int first_k_dense_replace;     /* 0 */
    int n_group, topk_group;       /* 1, 1 */
    float routed_scaling_factor;   /* 1.0 */
    bool norm_topk_prob;           /* true */
    bool moe_router_enable_expert_bias; /* true */
    bool router_fp32;              /* router_dtype == "fp32" (informational) */
    bool use_qk_norm;              /* true */
    float rms_norm_eps;            /* 1e-6 */
    float rope_theta;              /* 10000 */
    float partial_rotary_factor;   /* 1.0 */
    int rotary_dim;                /* derived: head_dim * partial_rotary_factor, even */
    int max_position_embeddings;   /* 131072 */
    int group_norm_size;           /* 1 */
    bool linear_silu;              /* false */
    int num_nextn_predict_layers;  /* 0 (MTP tensors are ignored) */
    bool tie_word_embeddings;      /* false */
    int bos_token_id, pad_token_id;/* -1 when absent */
    int eos_token_ids[8];          /* eos_token_id: int or list */
    int n_eos;
    rl_decay_conv decay_conv;      /* "ringlm_decay_convention": "engine" | "hf" */
    /* derived schedule */
    bool layer_softmax[RL_MAX_LAYERS]; /* true: GQA softmax layer, false: Lightning */
    bool layer_moe[RL_MAX_LAYERS];     /* true: MoE MLP, false: dense SwiGLU */
} rl_config;

/* Parses config.json text. `label` names the file in messages. Unknown keys
 * are ignored; a missing required key or an unsupported value is an error
 * naming the key. */
int rl_config_parse(const char *json_text, const char *label, rl_config *c, rl_err *e);

/* Serializes c as a config.json (the keys above, plus HF's identification
 * keys). Returns a malloc'd string. */
char *rl_config_to_json(const rl_config *c);

/* Fills the derived fields (schedule, rotary_dim) and checks consistency. */
int rl_config_finish(rl_config *c, const char *label, rl_err *e);

/* Lightning decay log-rate g_{l,h} = -s_h * f(l) (SPEC §3.5.1), in fp32. */
float rl_config_decay(const rl_config *c, int layer, int head);

/* ALiBi slope s_h for n heads (SPEC §3.5.1), computed in double. */
double rl_alibi_slope(int n_heads, int head);

#endif
