/* config.json parsing, the layer schedule and the decay slopes, checked
 * against the numbers SPEC.md gives (§1.3, §3.5.1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "model/mkmodel.h"
#include "testutil.h"

static const char *base =
    "{\"vocab_size\": 1000, \"hidden_size\": 64, \"num_hidden_layers\": %d, "
    "\"num_attention_heads\": %d, \"num_key_value_heads\": 2, \"intermediate_size\": 128, "
    "\"layer_group_size\": %d %s}";

static int parse(int L, int H, int G, const char *extra, rl_config *c, rl_err *e) {
    char buf[2048];
    snprintf(buf, sizeof buf, base, L, H, G, extra);
    return rl_config_parse(buf, "config.json", c, e);
}

static void test_schedules(void) {
    rl_config c;
    rl_err e = {0};
    CHECK(rl_config_preset("ring-mini-linear-2.0", &c, &e) == 0, "%s", e.msg);
    int soft[32] = {0}, ns = 0;
    for (int l = 0; l < c.num_hidden_layers; l++)
        if (c.layer_softmax[l]) soft[ns++] = l;
    CHECK(ns == 4 && soft[0] == 4 && soft[1] == 9 && soft[2] == 14 && soft[3] == 19,
          "mini softmax layers must be 4,9,14,19 (SPEC §1.3)");
    CHECK(!c.layer_moe[0] && c.layer_moe[1] && c.layer_moe[19], "mini: layer 0 dense, others MoE");
    CHECK(rl_config_preset("ring-flash-linear-2.0", &c, &e) == 0, "%s", e.msg);
    ns = 0;
    for (int l = 0; l < c.num_hidden_layers; l++)
        if (c.layer_softmax[l]) soft[ns++] = l;
    CHECK(ns == 4 && soft[0] == 7 && soft[3] == 31, "flash softmax layers must be 7,15,23,31");
    /* tail rule: 7 layers, group 3 -> 2, 5 by the modulus, 6 by the tail clause */
    CHECK(parse(7, 4, 3, "", &c, &e) == 0, "%s", e.msg);
    bool want[7] = {0, 0, 1, 0, 0, 1, 1};
    for (int l = 0; l < 7; l++) CHECK(c.layer_softmax[l] == want[l], "tail rule at layer %d", l);
}

static void test_slopes(void) {
    /* SPEC §3.5.1: n=16 -> 0.707107, 0.5, 0.353553, 0.25, ..., 2^-8 */
    CHECK(fabs(rl_alibi_slope(16, 0) - 0.70710678) < 1e-7, "s0");
    CHECK(fabs(rl_alibi_slope(16, 1) - 0.5) < 1e-12, "s1");
    CHECK(fabs(rl_alibi_slope(16, 15) - 1.0 / 256) < 1e-12, "s15");
    CHECK(fabs(rl_alibi_slope(32, 0) - 0.840896) < 1e-6, "n=32 s0");
    /* n = 6: slopes(4) = 2^-2..2^-8, then slopes(8)[0::2][:2] = 2^-1, 2^-3 */
    double want6[6] = {0.25, 0.0625, 1.0 / 64, 1.0 / 256, 0.5, 0.125};
    for (int h = 0; h < 6; h++)
        CHECK(fabs(rl_alibi_slope(6, h) - want6[h]) < 1e-12, "n=6 head %d: %g", h, rl_alibi_slope(6, h));
    /* layer factors of SPEC §3.5.1 (mini, L = 20) */
    rl_config c;
    rl_err e = {0};
    rl_config_preset("ring-mini-linear-2.0", &c, &e);
    double s0 = rl_alibi_slope(16, 0);
    CHECK(fabs(-rl_config_decay(&c, 0, 0) / s0 - 1.000010) < 1e-5, "engine f(0)");
    CHECK(fabs(-rl_config_decay(&c, 18, 0) / s0 - 0.052642) < 1e-5, "engine f(18)");
    c.decay_conv = RL_DECAY_HF;
    CHECK(fabs(-rl_config_decay(&c, 0, 0) / s0 - 1.052642) < 1e-5, "hf f(0)");
    CHECK(fabs(-rl_config_decay(&c, 18, 0) / s0 - 0.105273) < 1e-5, "hf f(18)");
}

static void test_errors(void) {
    rl_config c;
    rl_err e = {0};
    CHECK(rl_config_parse("{\"vocab_size\": 5", "cfg.json", &c, &e) == RL_E_CONFIG &&
              strstr(e.msg, "cfg.json: invalid JSON at line 1"), "bad json: %s", e.msg);
    CHECK(rl_config_parse("{\"vocab_size\": 5}", "cfg.json", &c, &e) == RL_E_CONFIG &&
              strstr(e.msg, "missing required key 'hidden_size'"), "missing key: %s", e.msg);
    CHECK(parse(4, 4, 2, ", \"head_dim\": \"16\"", &c, &e) == RL_E_CONFIG &&
              strstr(e.msg, "'head_dim' must be an integer"), "type: %s", e.msg);
    CHECK(parse(4, 4, 2, ", \"some_future_key\": [1, 2]", &c, &e) == 0, "unknown keys are ignored");
    CHECK(parse(4, 4, 2, ", \"hidden_size\": 32", &c, &e) == RL_E_CONFIG &&
              strstr(e.msg, "duplicate"), "duplicate key: %s", e.msg);
    CHECK(parse(4, 3, 2, "", &c, &e) == RL_E_CONFIG && strstr(e.msg, "num_key_value_heads"),
          "kv heads must divide heads: %s", e.msg);
    CHECK(parse(4, 4, 2, ", \"hidden_act\": \"gelu\"", &c, &e) == RL_E_UNSUPPORTED &&
              strstr(e.msg, "gelu"), "act: %s", e.msg);
    CHECK(parse(4, 4, 2, ", \"rope_scaling\": {\"type\": \"yarn\"}", &c, &e) == RL_E_UNSUPPORTED,
          "rope_scaling refused: %s", e.msg);
    CHECK(parse(4, 4, 2, ", \"ringlm_decay_convention\": \"hf\"", &c, &e) == 0 &&
              c.decay_conv == RL_DECAY_HF, "decay convention key");
    CHECK(parse(4, 4, 2, ", \"ringlm_decay_convention\": \"x\"", &c, &e) == RL_E_CONFIG,
          "bad decay convention");
    CHECK(parse(4, 4, 2, ", \"eos_token_id\": [3, 9]", &c, &e) == 0 && c.n_eos == 2 &&
              c.eos_token_ids[1] == 9, "eos list");
    CHECK(parse(4, 4, 2, ", \"num_experts\": 8, \"moe_intermediate_size\": 16, \"n_group\": 3", &c,
                &e) == RL_E_CONFIG && strstr(e.msg, "n_group"), "n_group: %s", e.msg);
    CHECK(parse(4, 4, 2, ", \"group_norm_size\": 3", &c, &e) == RL_E_CONFIG &&
              strstr(e.msg, "group_norm_size"), "group_norm_size: %s", e.msg);
}

static void test_roundtrip(void) {
    rl_config a, b;
    rl_err e = {0};
    CHECK(rl_config_preset("ring-mini-linear-2.0", &a, &e) == 0, "%s", e.msg);
    char *s = rl_config_to_json(&a);
    CHECK(s && rl_config_parse(s, "rt", &b, &e) == 0, "reparse: %s", e.msg);
    CHECK(memcmp(&a, &b, sizeof a) == 0 || (a.hidden_size == b.hidden_size &&
          a.num_experts == b.num_experts && a.rope_theta == b.rope_theta &&
          a.rms_norm_eps == b.rms_norm_eps && a.routed_scaling_factor == b.routed_scaling_factor &&
          a.group_norm_size == b.group_norm_size && a.n_eos == b.n_eos),
          "config survives to_json -> parse");
    free(s);
}

int main(void) {
    test_schedules();
    test_slopes();
    test_errors();
    test_roundtrip();
    return rl_test_done();
}
