#include "model/router.h"

#include <math.h>

#include "model/route_group.h"

/* Index of the largest v[i] over allowed i; ties go to the lower index. */
static int argmax_allowed(const float *v, const unsigned char *allowed, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (allowed[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

void rl_route(const rl_config *c, const float *logits, const float *bias, float *scratch,
              int *sel, float *w) {
    int E = c->num_experts, K = c->num_experts_per_tok;
    int G = c->n_group, gs = E / G;
    float *sig = scratch, *b = scratch + E;
    unsigned char allowed[4096];
    unsigned char gallowed[256];
    float gscore[256];
    for (int e = 0; e < E; e++) {
        sig[e] = 1.0f / (1.0f + expf(-logits[e]));
        b[e] = sig[e] + bias[e];
    }
    if (G > 1) {
        for (int g = 0; g < G; g++) {
            gscore[g] = rl_route_group_score(b + g * gs, gs);
            gallowed[g] = 1;
        }
        unsigned char gkeep[256] = {0};
        for (int r = 0; r < c->topk_group; r++) {
            int g = argmax_allowed(gscore, gallowed, G);
            gkeep[g] = 1;
            gallowed[g] = 0;
        }
        for (int e = 0; e < E; e++) allowed[e] = gkeep[e / gs];
    } else {
        for (int e = 0; e < E; e++) allowed[e] = 1;
    }
    float sum = 0.0f;
    for (int r = 0; r < K; r++) {
        int e = argmax_allowed(b, allowed, E);
        sel[r] = e;
        allowed[e] = 0;
        sum += sig[e];
    }
    for (int r = 0; r < K; r++) {
        float x = sig[sel[r]];
        if (K > 1) x = x / (sum + 1e-20f);
        w[r] = x * c->routed_scaling_factor;
    }
}
