/* The sampler against its definition: greedy is argmax, filters never let
 * an excluded token through, draws follow the softmax, seeds reproduce; the
 * draw handed to the GPU sampler (rl_sampler_prepare) carries the penalty
 * window's histogram and consumes a random number only when random; each
 * penalty, the tie rules and the temperature against their definitions. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "testutil.h"

static rl_sampler_params off(void) {
    rl_sampler_params p;
    rl_sampler_defaults(&p);
    p.temperature = 1.0f; p.top_k = 0; p.top_p = 1.0f; p.min_p = 0.0f; p.seed = 5;
    return p;
}

int main(void) {
    enum { V = 50 };
    float lg[V];
    uint64_t rs = 3;
    for (int i = 0; i < V; i++) lg[i] = rl_t_uniform(&rs, -2, 2);
    lg[17] = 3.0f;
    rl_sampler s;
    rl_sampler_params p = off();
    p.temperature = 0;
    rl_sampler_init(&s, &p, V);
    CHECK(rl_sampler_sample(&s, lg, V) == 17, "greedy = argmax");
    CHECK(rl_sampler_sample(&s, lg, 10) != 17, "ids >= n_valid are never picked");
    rl_sampler_free(&s);

    /* empirical distribution at temperature 1 with no filters = softmax */
    p = off();
    rl_sampler_init(&s, &p, V);
    static int cnt[V];
    int N = 200000;
    for (int i = 0; i < N; i++) cnt[rl_sampler_sample(&s, lg, V)]++;
    double z = 0, worst = 0;
    for (int i = 0; i < V; i++) z += exp(lg[i]);
    for (int i = 0; i < V; i++) {
        double pr = exp(lg[i]) / z, sd = sqrt(pr * (1 - pr) / N);
        double dev = fabs(cnt[i] / (double)N - pr) / sd;
        if (dev > worst) worst = dev;
    }
    CHECK(worst < 5.0, "frequencies within 5 sd of softmax (worst %.2f sd)", worst);
    rl_sampler_free(&s);

    /* top-k / top-p / min-p exclude what they must */
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++) /* selection sort by logit desc */
        for (int j = i + 1; j < V; j++)
            if (lg[order[j]] > lg[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    p = off(); p.top_k = 5;
    rl_sampler_init(&s, &p, V);
    bool ok = true;
    for (int i = 0; i < 5000; i++) {
        int t = rl_sampler_sample(&s, lg, V), in = 0;
        for (int k = 0; k < 5; k++) in |= order[k] == t;
        ok &= in;
    }
    CHECK(ok, "top-k=5 never samples outside the 5 best");
    rl_sampler_free(&s);
    p = off(); p.min_p = 0.2f;
    rl_sampler_init(&s, &p, V);
    ok = true;
    for (int i = 0; i < 5000; i++) {
        int t = rl_sampler_sample(&s, lg, V);
        ok &= exp(lg[t] - lg[17]) >= 0.2 - 1e-6;
    }
    CHECK(ok, "min-p=0.2 never samples a token under 0.2 x the best probability");
    rl_sampler_free(&s);
    p = off(); p.top_p = 0.5f;
    rl_sampler_init(&s, &p, V);
    double cum = 0;
    int nucleus = 0;
    while (cum < 0.5) cum += exp(lg[order[nucleus++]]) / z;
    ok = true;
    for (int i = 0; i < 5000; i++) {
        int t = rl_sampler_sample(&s, lg, V), in = 0;
        for (int k = 0; k < nucleus; k++) in |= order[k] == t;
        ok &= in;
    }
    CHECK(ok, "top-p=0.5 stays inside the nucleus of %d tokens", nucleus);
    rl_sampler_free(&s);

    /* same seed, same draws; different seed, different draws */
    int a[64], b[64], c[64];
    for (int r = 0; r < 3; r++) {
        p = off();
        p.seed = r == 2 ? 99 : 5;
        rl_sampler_init(&s, &p, V);
        for (int i = 0; i < 64; i++) (r == 0 ? a : r == 1 ? b : c)[i] = rl_sampler_sample(&s, lg, V);
        rl_sampler_free(&s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "seeded draws reproduce");
    CHECK(memcmp(a, c, sizeof a) != 0, "another seed draws differently");

    /* repeat penalty divides a positive logit: greedy flips to the runner-up */
    p = off();
    p.temperature = 0; p.repeat_penalty = 10.0f;
    rl_sampler_init(&s, &p, V);
    rl_sampler_accept(&s, 17);
    CHECK(rl_sampler_sample(&s, lg, V) == order[1], "penalized best token loses to the runner-up");
    rl_sampler_free(&s);

    /* rl_sampler_prepare (what the GPU sampler receives): the penalty window as
     * distinct ascending tokens with their counts over the last repeat_last_n
     * accepted tokens, against a plain histogram; the RNG advances only for a
     * random draw (a greedy prepare leaves the next random draw unchanged) */
    p = off();
    p.repeat_penalty = 1.1f; p.repeat_last_n = 24;
    rl_sampler_init(&s, &p, V);
    uint64_t ws = 11;
    int hist[200], nh = 0;
    bool win_ok = true;
    for (int round = 0; round < 20 && win_ok; round++) {
        int add = 1 + (int)rl_t_uniform(&ws, 0, 9);
        for (int i = 0; i < add; i++) {
            int t = (int)rl_t_uniform(&ws, 0, 12); /* few distinct: many repeats */
            rl_sampler_accept(&s, t);
            hist[nh++] = t;
        }
        int want[V] = {0};
        for (int i = nh > 24 ? nh - 24 : 0; i < nh; i++) want[hist[i]]++;
        rl_sampler_draw d;
        rl_sampler_prepare(&s, &d);
        int k = 0;
        for (int t = 0; t < V; t++) {
            if (!want[t]) continue;
            if (k >= d.n_pen || d.pen_tok[k] != t || d.pen_cnt[k] != want[t]) win_ok = false;
            k++;
        }
        if (k != d.n_pen || !d.penalize) win_ok = false;
    }
    CHECK(win_ok, "prepare's penalty window = the histogram of the last 24 tokens, ascending");
    rl_sampler_free(&s);
    p = off();
    rl_sampler r1, r2;
    rl_sampler_init(&r1, &p, V);
    rl_sampler_init(&r2, &p, V);
    rl_sampler_params g = p;
    g.temperature = 0;
    rl_sampler_draw d1, d2;
    r2.p = g; /* one greedy prepare on r2 between the random ones */
    rl_sampler_prepare(&r2, &d2);
    r2.p = p;
    rl_sampler_prepare(&r1, &d1);
    rl_sampler_prepare(&r2, &d2);
    CHECK(d1.u01 == d2.u01 && d1.u01 >= 0.0 && d1.u01 < 1.0,
          "a greedy draw consumes no random number (u %.17g vs %.17g)", d1.u01, d2.u01);
    rl_sampler_free(&r1);
    rl_sampler_free(&r2);

    /* each penalty against llama.cpp's formula on two tokens, A (id 2, the best)
     * and B (id 5): a repeated A loses to B exactly when its penalized logit
     * falls below B's. Presence subtracts once, frequency once per occurrence,
     * repeat divides a positive logit and multiplies a negative one. */
    {
        struct { float la, lb, rep, pres, freq; int times, expect; const char *what; } pc[] = {
            {1.0f, 0.9f, 1.0f, 0.2f, 0.0f, 1, 5, "presence 0.2: 1.0 - 0.2 < 0.9"},
            {1.0f, 0.9f, 1.0f, 0.05f, 0.0f, 3, 2, "presence 0.05 once, whatever the count"},
            {1.0f, 0.9f, 1.0f, 0.0f, 0.05f, 3, 5, "frequency 0.05 x 3: 1.0 - 0.15 < 0.9"},
            {1.0f, 0.9f, 1.0f, 0.0f, 0.05f, 1, 2, "frequency 0.05 x 1: 1.0 - 0.05 > 0.9"},
            {-0.1f, -0.2f, 3.0f, 0.0f, 0.0f, 1, 5, "repeat 3 on a negative logit: -0.3 < -0.2"},
            {0.5f, 0.2f, 2.0f, 0.0f, 0.0f, 1, 2, "repeat 2 on a positive logit: 0.25 > 0.2"},
        };
        for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
            float l2[8] = {-5, -5, pc[i].la, -5, -5, pc[i].lb, -5, -5};
            p = off();
            p.temperature = 0;
            p.repeat_penalty = pc[i].rep;
            p.presence_penalty = pc[i].pres;
            p.frequency_penalty = pc[i].freq;
            rl_sampler_init(&s, &p, 8);
            for (int t = 0; t < pc[i].times; t++) rl_sampler_accept(&s, 2);
            rl_sampler_draw d;
            rl_sampler_prepare(&s, &d);
            CHECK(d.penalize, "prepare sees the penalty (%s)", pc[i].what);
            int got = rl_sampler_pick(&s, &d, l2, 8);
            CHECK(got == pc[i].expect, "%s: picked %d", pc[i].what, got);
            rl_sampler_free(&s);
        }
    }

    /* exact ties: greedy and top-k keep the lower id */
    {
        float l3[8] = {0, 1, 0, 2, 0, 0, 0, 2};
        p = off();
        p.temperature = 0;
        rl_sampler_init(&s, &p, 8);
        CHECK(rl_sampler_sample(&s, l3, 8) == 3, "greedy tie: the lower id");
        rl_sampler_free(&s);
        p = off();
        p.top_k = 1;
        rl_sampler_init(&s, &p, 8);
        bool low = true;
        for (int i = 0; i < 200; i++) low &= rl_sampler_sample(&s, l3, 8) == 3;
        CHECK(low, "top-k = 1 over a tie keeps the lower id");
        rl_sampler_free(&s);
    }

    /* temperature 0.5 draws from softmax(logits / 0.5) */
    {
        float l4[3] = {1.0f, 0.0f, -1.0f};
        p = off();
        p.temperature = 0.5f;
        rl_sampler_init(&s, &p, 3);
        int c3[3] = {0};
        int n3 = 60000;
        for (int i = 0; i < n3; i++) c3[rl_sampler_sample(&s, l4, 3)]++;
        double z3 = 0, worst3 = 0;
        for (int i = 0; i < 3; i++) z3 += exp(l4[i] / 0.5);
        for (int i = 0; i < 3; i++) {
            double pr = exp(l4[i] / 0.5) / z3, sd = sqrt(pr * (1 - pr) / n3);
            double dev = fabs(c3[i] / (double)n3 - pr) / sd;
            if (dev > worst3) worst3 = dev;
        }
        CHECK(worst3 < 5.0, "temperature 0.5: frequencies within 5 sd (worst %.2f sd)", worst3);
        rl_sampler_free(&s);
    }

    /* rl_sampler_sample == prepare + pick, draw for draw, with every filter and
     * penalty on (twin samplers, same seed, same accepted tokens) */
    {
        p = off();
        p.temperature = 0.9f; p.top_k = 20; p.top_p = 0.9f; p.min_p = 0.02f;
        p.repeat_penalty = 1.3f; p.presence_penalty = 0.1f; p.frequency_penalty = 0.05f;
        p.repeat_last_n = 16;
        rl_sampler_init(&r1, &p, V);
        rl_sampler_init(&r2, &p, V);
        bool same = true;
        for (int i = 0; i < 300; i++) {
            int t1 = rl_sampler_sample(&r1, lg, V);
            rl_sampler_draw d;
            rl_sampler_prepare(&r2, &d);
            int t2 = rl_sampler_pick(&r2, &d, lg, V);
            same &= t1 == t2;
            rl_sampler_accept(&r1, t1);
            rl_sampler_accept(&r2, t2);
        }
        CHECK(same, "sample equals prepare + pick over 300 draws");
        rl_sampler_free(&r1);
        rl_sampler_free(&r2);
    }
    return rl_test_done();
}
