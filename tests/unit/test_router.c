/* MoE routing (SPEC §3.7) against a sort-based restatement, plus the tie
 * rule of SPEC §0.3 on constructed exact ties. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/router.h"
#include "testutil.h"

static const float *g_key;
static int by_key_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_key[i] != g_key[j]) return g_key[i] > g_key[j] ? -1 : 1;
    return i - j;
}

/* Sort-based statement of the same rule. */
static void route_sorted(const rl_config *c, const float *z, const float *bias, int *sel, float *w) {
    int E = c->num_experts, G = c->n_group, gs = E / G, K = c->num_experts_per_tok;
    float sig[512], b[512], gscore[64];
    int idx[512], gidx[64];
    for (int e = 0; e < E; e++) { sig[e] = 1.0f / (1.0f + expf(-z[e])); b[e] = sig[e] + bias[e]; }
    bool keep[512];
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < gs; i++) idx[i] = g * gs + i;
        g_key = b;
        qsort(idx, (size_t)gs, sizeof(int), by_key_desc);
        gscore[g] = gs >= 2 ? b[idx[0]] + b[idx[1]] : b[idx[0]];
        gidx[g] = g;
    }
    g_key = gscore;
    qsort(gidx, (size_t)G, sizeof(int), by_key_desc);
    for (int e = 0; e < E; e++) keep[e] = G == 1;
    for (int r = 0; r < c->topk_group && G > 1; r++)
        for (int i = 0; i < gs; i++) keep[gidx[r] * gs + i] = true;
    int n = 0;
    for (int e = 0; e < E; e++) if (keep[e]) idx[n++] = e;
    g_key = b;
    qsort(idx, (size_t)n, sizeof(int), by_key_desc);
    double s = 0;
    for (int r = 0; r < K; r++) { sel[r] = idx[r]; s += sig[idx[r]]; }
    for (int r = 0; r < K; r++) w[r] = (float)(K > 1 ? sig[sel[r]] / s : sig[sel[r]]) * c->routed_scaling_factor;
}

int main(void) {
    uint64_t rs = 7;
    int shapes[][4] = {{8, 2, 4, 2}, {16, 4, 4, 2}, {64, 8, 8, 4}, {256, 8, 8, 4}, {12, 1, 1, 1}, {6, 3, 3, 2}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        rl_config c = {0};
        c.num_experts = shapes[si][0];
        c.num_experts_per_tok = shapes[si][1];
        c.n_group = shapes[si][2];
        c.topk_group = shapes[si][3];
        c.routed_scaling_factor = 2.5f;
        int E = c.num_experts, K = c.num_experts_per_tok;
        for (int trial = 0; trial < 200; trial++) {
            float z[512], bias[512], scr[1024], w1[64], w2[64];
            int s1[64], s2[64];
            for (int e = 0; e < E; e++) {
                /* quantized values make exact ties frequent */
                z[e] = trial % 3 == 0 ? (float)(int)rl_t_uniform(&rs, -3, 3) : rl_t_uniform(&rs, -4, 4);
                bias[e] = trial % 2 ? 0.0f : rl_t_uniform(&rs, -0.1f, 0.1f);
            }
            rl_route(&c, z, bias, scr, s1, w1);
            route_sorted(&c, z, bias, s2, w2);
            bool same = true;
            for (int r = 0; r < K; r++) same &= s1[r] == s2[r] && fabsf(w1[r] - w2[r]) <= 1e-6f * fabsf(w2[r]);
            CHECK(same, "E=%d K=%d G=%d trial %d: selection or weights differ (%d vs %d)", E, K,
                  c.n_group, trial, s1[0], s2[0]);
            float sum = 0;
            for (int r = 0; r < K; r++) sum += w1[r];
            CHECK(K == 1 || fabsf(sum - 2.5f) < 1e-5f, "weights sum to the scaling factor: %g", sum);
        }
    }
    /* all-equal scores: the lowest indices win, in order */
    rl_config c = {.num_experts = 8, .num_experts_per_tok = 3, .n_group = 1, .topk_group = 1,
                   .routed_scaling_factor = 1.0f};
    float z[8] = {0}, bias[8] = {0}, scr[16], w[3];
    int sel[3];
    rl_route(&c, z, bias, scr, sel, w);
    CHECK(sel[0] == 0 && sel[1] == 1 && sel[2] == 2, "ties -> lower index: %d %d %d", sel[0], sel[1], sel[2]);
    /* bias changes selection, not weights */
    bias[5] = 1.0f;
    rl_route(&c, z, bias, scr, sel, w);
    CHECK(sel[0] == 5 && fabsf(w[0] - 1.0f / 3) < 1e-6f, "bias selects only: sel %d w %g", sel[0], w[0]);
    return rl_test_done();
}
