/* Stop strings over a stream of generated text: text is held back while it
 * could still become the start of a stop string, so a stop string split
 * across tokens is found and never emitted (the text before it is). */
#ifndef RL_SERVER_STOPSTR_H
#define RL_SERVER_STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rl_stopstr {
    char **stop; /* borrowed; non-empty strings */
    size_t *len;
    int n;
    char *pend; /* text not yet emitted */
    size_t n_pend, cap_pend;
    char *out; /* what the last call emits */
    size_t cap_out;
    bool hit;
} rl_stopstr;

/* stop[n] must outlive the matcher. Returns non-zero on allocation failure. */
int rl_stopstr_init(rl_stopstr *s, char **stop, int n);
void rl_stopstr_free(rl_stopstr *s);
/* Adds text; sets *out and *out_len (pointer into the matcher, valid until the
 * next call) to what may be emitted now. Returns 1 when a stop string was
 * found (the output is the text before it; feed no more), 0 otherwise, -1 on
 * allocation failure. */
int rl_stopstr_feed(rl_stopstr *s, const char *text, size_t n, const char **out, size_t *out_len);
/* End of generation: the held-back text (it cannot match any more). */
void rl_stopstr_finish(rl_stopstr *s, const char **out, size_t *out_len);

#endif
