#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rl_sampler_defaults(rl_sampler_params *p) {
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = RL_SEED_RANDOM;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static uint64_t next_u64(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

int rl_sampler_init(rl_sampler *s, const rl_sampler_params *p, int n_vocab) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    if (s->p.seed == RL_SEED_RANDOM) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->p.seed = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec;
        s->p.seed &= 0x7fffffffffffffffull;
    }
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix(&x);
    s->hist_cap = p->repeat_last_n < 0 ? 1 << 20 : (p->repeat_last_n > 0 ? p->repeat_last_n : 1);
    s->hist = malloc(sizeof(int) * (size_t)s->hist_cap);
    s->idx = malloc(sizeof(int) * (size_t)n_vocab);
    s->val = malloc(sizeof(float) * (size_t)n_vocab);
    s->n_vocab = n_vocab;
    if (!s->hist || !s->idx || !s->val) {
        rl_sampler_free(s);
        return -1;
    }
    return 0;
}

void rl_sampler_free(rl_sampler *s) {
    free(s->hist);
    free(s->idx);
    free(s->val);
    free(s->pen_tok);
    free(s->pen_cnt);
    memset(s, 0, sizeof *s);
}

uint64_t rl_sampler_seed(const rl_sampler *s) { return s->p.seed; }

void rl_sampler_accept(rl_sampler *s, int token) {
    s->hist[s->hist_head] = token;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    if (s->hist_len < s->hist_cap) s->hist_len++;
}

/* Sort candidates by value descending, ties by id ascending (deterministic). */
static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *v = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (v[i] > v[j]) return -1;
    if (v[i] < v[j]) return 1;
    return (i > j) - (i < j);
}

void rl_sampler_prepare(rl_sampler *s, rl_sampler_draw *d) {
    const rl_sampler_params *p = &s->p;
    d->temperature = p->temperature;
    d->top_p = p->top_p;
    d->min_p = p->min_p;
    d->repeat_penalty = p->repeat_penalty;
    d->presence_penalty = p->presence_penalty;
    d->frequency_penalty = p->frequency_penalty;
    d->top_k = p->top_k;
    d->penalize = s->hist_len > 0 && (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
                                      p->frequency_penalty != 0.0f);
    d->n_pen = 0;
    if (d->penalize && s->pen_cap < s->hist_len) { /* grown to the window as it fills */
        int *t = realloc(s->pen_tok, sizeof(int) * (size_t)s->hist_len);
        if (t) s->pen_tok = t;
        int *c = t ? realloc(s->pen_cnt, sizeof(int) * (size_t)s->hist_len) : NULL;
        if (c) {
            s->pen_cnt = c;
            s->pen_cap = s->hist_len;
        } else {
            d->penalize = 0; /* out of memory: no penalties this draw (as before) */
        }
    }
    if (d->penalize) {
        /* the window's distinct tokens and counts: sort a copy (windows are short) */
        int m = s->hist_len, *w = s->pen_tok;
        for (int i = 0; i < m; i++) w[i] = s->hist[i];
        for (int i = 1; i < m; i++) {
            int x = w[i], j = i - 1;
            while (j >= 0 && w[j] > x) { w[j + 1] = w[j]; j--; }
            w[j + 1] = x;
        }
        int n = 0;
        for (int i = 0; i < m;) {
            int j = i;
            while (j < m && w[j] == w[i]) j++;
            w[n] = w[i]; /* n <= i: in place */
            s->pen_cnt[n++] = j - i;
            i = j;
        }
        d->n_pen = n;
    }
    d->pen_tok = s->pen_tok;
    d->pen_cnt = s->pen_cnt;
    d->u01 = p->temperature > 0.0f ? (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0)
                                   : 0.0;
}

int rl_sampler_sample(rl_sampler *s, const float *logits, int n_valid) {
    rl_sampler_draw d;
    rl_sampler_prepare(s, &d);
    return rl_sampler_pick(s, &d, logits, n_valid);
}

int rl_sampler_pick(rl_sampler *s, const rl_sampler_draw *p, const float *logits, int n_valid) {
    int n = n_valid < s->n_vocab ? n_valid : s->n_vocab;
    float *v = s->val;
    memcpy(v, logits, sizeof(float) * (size_t)n);
    if (p->penalize)
        for (int i = 0; i < p->n_pen; i++) {
            int tok = p->pen_tok[i], cnt = p->pen_cnt[i];
            if (tok >= 0 && tok < n) {
                float x = v[tok];
                x = x <= 0 ? x * p->repeat_penalty : x / p->repeat_penalty;
                x -= (float)cnt * p->frequency_penalty + p->presence_penalty;
                v[tok] = x;
            }
        }
    if (p->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (v[i] > v[best]) best = i;
        return best;
    }
    int *idx = s->idx;
    int k = 0;
    if (p->top_k > 0 && p->top_k < n) {
        /* keep the top_k in a min-heap ordered by (value, -id) so the result
         * equals a full sort's first top_k: O(n log k) instead of O(n log n) */
        k = p->top_k;
        for (int i = 0; i < n; i++) {
            if (i < k) {
                int c = i;
                idx[c] = i;
                while (c > 0) {
                    int par = (c - 1) / 2;
                    if (cmp_desc(&idx[par], &idx[c], v) < 0) { int t = idx[par]; idx[par] = idx[c]; idx[c] = t; c = par; }
                    else break;
                }
            } else if (cmp_desc(&i, &idx[0], v) < 0) {
                idx[0] = i;
                int c = 0;
                for (;;) {
                    int l = 2 * c + 1, r = l + 1, w = c;
                    if (l < k && cmp_desc(&idx[l], &idx[w], v) > 0) w = l;
                    if (r < k && cmp_desc(&idx[r], &idx[w], v) > 0) w = r;
                    if (w == c) break;
                    int t = idx[w]; idx[w] = idx[c]; idx[c] = t; c = w;
                }
            }
        }
    } else {
        k = n;
        for (int i = 0; i < n; i++) idx[i] = i;
    }
    qsort_r(idx, (size_t)k, sizeof(int), cmp_desc, v);
    /* softmax (temperature 1) over the kept candidates, in sorted order */
    double mx = v[idx[0]], sum = 0;
    double *pr = malloc(sizeof(double) * (size_t)k);
    if (!pr) return idx[0];
    for (int i = 0; i < k; i++) sum += (pr[i] = exp((double)v[idx[i]] - mx));
    for (int i = 0; i < k; i++) pr[i] /= sum;
    if (p->top_p < 1.0f) {
        double c = 0;
        int keep = k;
        for (int i = 0; i < k; i++) {
            c += pr[i];
            if (c >= p->top_p) { keep = i + 1; break; }
        }
        k = keep;
    }
    if (p->min_p > 0.0f) {
        int keep = 1;
        while (keep < k && pr[keep] >= p->min_p * pr[0]) keep++;
        k = keep;
    }
    /* temperature, then draw */
    sum = 0;
    for (int i = 0; i < k; i++) sum += (pr[i] = exp(((double)v[idx[i]] - mx) / p->temperature));
    double u = p->u01 * sum;
    int pick = idx[k - 1];
    double c = 0;
    for (int i = 0; i < k; i++) {
        c += pr[i];
        if (u < c) { pick = idx[i]; break; }
    }
    free(pr);
    return pick;
}
