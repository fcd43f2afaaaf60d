#include "server/stopstr.h"

#include <stdlib.h>
#include <string.h>

int rl_stopstr_init(rl_stopstr *s, char **stop, int n) {
    memset(s, 0, sizeof *s);
    s->stop = stop;
    s->n = n;
    if (n > 0) {
        s->len = malloc(sizeof(size_t) * (size_t)n);
        if (!s->len) return -1;
        for (int i = 0; i < n; i++) s->len[i] = strlen(stop[i]);
    }
    return 0;
}

void rl_stopstr_free(rl_stopstr *s) {
    free(s->len);
    free(s->pend);
    free(s->out);
    memset(s, 0, sizeof *s);
}

static int grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = need * 2;
    char *q = realloc(*p, c);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Moves the first k bytes of pend to out. */
static int emit(rl_stopstr *s, size_t k, const char **out, size_t *out_len) {
    if (grow(&s->out, &s->cap_out, k + 1)) return -1;
    memcpy(s->out, s->pend, k);
    memmove(s->pend, s->pend + k, s->n_pend - k);
    s->n_pend -= k;
    *out = s->out;
    *out_len = k;
    return 0;
}

int rl_stopstr_feed(rl_stopstr *s, const char *text, size_t n, const char **out, size_t *out_len) {
    *out = "";
    *out_len = 0;
    if (s->hit) return 1;
    if (grow(&s->pend, &s->cap_pend, s->n_pend + n + 1)) return -1;
    memcpy(s->pend + s->n_pend, text, n);
    size_t old = s->n_pend;
    s->n_pend += n;
    /* the earliest stop string occurrence that ends in the new text (held
     * text was checked before and contains no whole stop string) */
    size_t best = (size_t)-1;
    for (int i = 0; i < s->n; i++) {
        size_t L = s->len[i];
        if (L == 0 || L > s->n_pend) continue;
        size_t from = old + 1 > L ? old + 1 - L : 0;
        for (size_t p = from; p + L <= s->n_pend && p < best; p++)
            if (!memcmp(s->pend + p, s->stop[i], L)) {
                best = p;
                break;
            }
    }
    if (best != (size_t)-1) {
        s->hit = true;
        if (emit(s, best, out, out_len)) return -1;
        s->n_pend = 0;
        return 1;
    }
    /* hold back the longest tail that is a proper prefix of a stop string */
    size_t hold = 0;
    for (int i = 0; i < s->n; i++) {
        size_t L = s->len[i];
        if (L == 0) continue;
        size_t k = L - 1 < s->n_pend ? L - 1 : s->n_pend;
        for (; k > hold; k--)
            if (!memcmp(s->pend + s->n_pend - k, s->stop[i], k)) break;
        if (k > hold) hold = k;
    }
    return emit(s, s->n_pend - hold, out, out_len);
}

void rl_stopstr_finish(rl_stopstr *s, const char **out, size_t *out_len) {
    *out = "";
    *out_len = 0;
    if (s->hit || s->n_pend == 0) return;
    if (emit(s, s->n_pend, out, out_len)) { /* out of memory: the held text is dropped */
        *out = "";
        *out_len = 0;
        s->n_pend = 0;
    }
}
