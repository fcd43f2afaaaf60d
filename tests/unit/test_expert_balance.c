/* The aux-loss-free expert-bias update (train/optim.h, the DeepSeek-V3 /
 * Ling 2.0 recipe: bias_e += rate * sign(mean load - load_e), bias used for
 * the selection only) in closed loop with the engine's router (rl_route) on a
 * synthetic router whose logits favour low expert ids: the update must drive
 * the loads together (max/mean from > 2 to < 1.3), the favoured experts must
 * end with the lowest bias, the routing weights must not see the bias, and
 * without the update (rate 0) the imbalance must stay. */
#include <math.h>
#include <string.h>

#include "model/router.h"
#include "train/optim.h"
#include "testutil.h"

enum { E = 8, K = 2, T = 1024 };

/* One step's batch routed with the current bias: loads per expert. */
static void route_batch(const rl_config *c, uint64_t *seed, const float *bias, int *load) {
    memset(load, 0, sizeof(int) * E);
    float z[E], scr[2 * E], w[K];
    int sel[K];
    for (int t = 0; t < T; t++) {
        for (int e = 0; e < E; e++) z[e] = 1.5f - 0.4f * (float)e + rl_t_uniform(seed, -1.0f, 1.0f);
        rl_route(c, z, bias, scr, sel, w);
        for (int r = 0; r < K; r++) load[sel[r]]++;
    }
}

/* Mean max/mean load over the last `tail` of `steps` steps at this rate. */
static double run(const rl_config *c, float rate, int steps, int tail, float *bias, double *first) {
    uint64_t seed = 11;
    int load[E];
    double acc = 0;
    memset(bias, 0, sizeof(float) * E);
    for (int s = 0; s < steps; s++) {
        route_batch(c, &seed, bias, load);
        rl_expert_stats st;
        rl_expert_stats_of(load, E, &st);
        if (s == 0) *first = st.max_over_mean;
        if (s >= steps - tail) acc += st.max_over_mean;
        rl_expert_bias_update(bias, load, E, rate);
    }
    return acc / tail;
}

int main(void) {
    rl_config c = {0};
    c.num_experts = E;
    c.num_experts_per_tok = K;
    c.n_group = 4;
    c.topk_group = 2;
    c.routed_scaling_factor = 2.5f;
    float bias[E];
    double first = 0;
    double end = run(&c, 1e-2f, 300, 20, bias, &first);
    CHECK(first > 2.0, "the synthetic router starts imbalanced (max/mean %.2f)", first);
    CHECK(end < 1.3, "bias update at rate 1e-2: max/mean load %.2f after 300 steps (from %.2f)", end, first);
    for (int e = 0; e + 1 < E; e++)
        CHECK(bias[e] < bias[e + 1], "favoured experts end with lower bias: bias[%d] %.3f, bias[%d] %.3f",
              e, bias[e], e + 1, bias[e + 1]);
    double off = run(&c, 0.0f, 40, 20, bias, &first);
    CHECK(off > 2.0, "without the update the imbalance stays (max/mean %.2f)", off);
    /* the bias steers the selection only: weights are those of the unbiased sigmoids */
    float z[E], b[E], scr[2 * E], w[K];
    int sel[K];
    for (int e = 0; e < E; e++) {
        z[e] = 0.1f * (float)e;
        b[e] = e == 0 ? 5.0f : 0.0f; /* forces expert 0 into the selection */
    }
    rl_route(&c, z, b, scr, sel, w);
    float s0 = 1.0f / (1.0f + expf(-z[sel[0]])), s1 = 1.0f / (1.0f + expf(-z[sel[1]]));
    CHECK(sel[0] == 0, "bias forces the selection");
    CHECK(fabsf(w[0] - 2.5f * s0 / (s0 + s1)) < 1e-6f && fabsf(w[1] - 2.5f * s1 / (s0 + s1)) < 1e-6f,
          "weights from the unbiased sigmoids: %g %g", w[0], w[1]);
    return rl_test_done();
}
