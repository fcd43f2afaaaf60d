/* ringlm info: what a checkpoint is and what it costs to run. */
#include <string.h>

#include "apps/app.h"
#include "apps/app_engine.h"

static void human(char *b, size_t n, double x) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (x >= 1024 && i < 4) { x /= 1024; i++; }
    snprintf(b, n, "%.2f %s", x, u[i]);
}

int cmd_info(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1, .cuda_ok = true};
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: ringlm info -m DIR\nConfig summary, layer schedule, parameters (total and "
                   "active), weight bytes,\nlinear-state bytes per sequence, KV bytes per token.\n%s",
                   app_model_opts_help);
            return 0;
        }
        return app_fail("info: unknown option '%s'", argv[i]);
    }
    rl_model m;
    if (app_load(&mo, &m)) return 1;
    const rl_config *c = &m.cfg;
    printf("model:            %s (%d shard%s)\n", mo.dir, m.ckpt.n_shards, m.ckpt.n_shards > 1 ? "s" : "");
    printf("hidden:           %d, heads %d (kv %d in softmax layers), head_dim %d, rotary %d\n",
           c->hidden_size, c->num_attention_heads, c->num_key_value_heads, c->head_dim, c->rotary_dim);
    printf("vocab:            %d, tied embeddings: %s\n", c->vocab_size, c->tie_word_embeddings ? "yes" : "no");
    printf("layers:           %d: %d Lightning (linear) + %d softmax GQA, group size %d\n",
           c->num_hidden_layers, m.n_linear, m.n_softmax, c->layer_group_size);
    printf("schedule:         ");
    for (int l = 0; l < c->num_hidden_layers; l++)
        printf("%c%s", c->layer_softmax[l] ? 'S' : 'L', c->layer_moe[l] ? "" : "d");
    printf("   (L linear, S softmax, d dense MLP, otherwise MoE)\n");
    if (c->num_experts)
        printf("moe:              %d experts, top-%d, %d groups keep %d, %d shared, inter %d, "
               "scaling %.3g\n",
               c->num_experts, c->num_experts_per_tok, c->n_group, c->topk_group,
               c->num_shared_experts, c->moe_intermediate_size, c->routed_scaling_factor);
    printf("decay convention: %s\n", c->decay_conv == RL_DECAY_HF ? "hf (f(l)=1-(l-1)/(L-1))" : "engine (f(l)=1-l/(L-1))");
    printf("parameters:       %.4g B total, %.4g B active per token\n", (double)m.n_params / 1e9,
           (double)m.n_params_active / 1e9);
    char b1[32], b2[32], b3[32];
    human(b1, sizeof b1, (double)m.weight_bytes);
    human(b2, sizeof b2, (double)rl_model_linear_state_bytes(&m));
    human(b3, sizeof b3, (double)rl_model_kv_bytes_per_token(&m));
    printf("weight bytes:     %s\n", b1);
    printf("linear state:     %s per sequence (constant in context length)\n", b2);
    printf("kv cache:         %s per token\n", b3);
    printf("context:          %d positions\n", c->max_position_embeddings);
    printf("cpu kernels:      %s\n", rl_ops_cpu_isa());
    if (mo.device == APP_CUDA) {
        char d[600];
        app_device_describe(&mo, d, sizeof d);
        printf("device:           %s\n", d);
    }
    rl_model_free(&m);
    return 0;
}
