/* Byte-level BPE training: words from the Ring pre-tokenizer regex (SPEC
 * §4), merges learned by pair frequency, written as a Hugging Face
 * tokenizer.json (tokenizer/tokenizer_write.h) that ringlm and the HF crate
 * load and agree on.
 *
 * Determinism: the result depends only on the text fed, in order. The pair
 * merged next is the one with the highest count; ties go to the smaller
 * (left id, right id). A merge whose bytes equal an existing token reuses
 * that token's id (only the merge rule is added). */
#ifndef RL_TRAIN_TOKENIZER_TRAIN_H
#define RL_TRAIN_TOKENIZER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* The Ring family's pre-tokenizer regex (Oniguruma syntax, as written into
 * tokenizer.json's Split pre-tokenizer). */
extern const char rl_ring_pretok_regex[];

typedef struct rl_bpe_trainer rl_bpe_trainer;

typedef struct rl_bpe_train_opts {
    /* The final vocabulary size: 256 byte tokens + learned tokens + the
     * special tokens. Training stops earlier when no pair occurs at least
     * min_frequency times. */
    int vocab_size;
    int min_frequency; /* >= 1 (the command's default is 2) */
    const char *const *specials;
    int n_specials;
    /* Called after each merge (may be NULL). */
    void (*progress)(void *ctx, int done, int total);
    void *progress_ctx;
} rl_bpe_train_opts;

/* Special tokens are cut out of fed text (their content never takes part
 * in merges). */
int rl_bpe_trainer_new(const char *const *specials, int n_specials, rl_bpe_trainer **out,
                       rl_err *e);
/* Pre-tokenizes n bytes of UTF-8 text and counts its words. Invalid UTF-8
 * is refused naming label and the byte offset. */
int rl_bpe_trainer_feed(rl_bpe_trainer *t, const char *text, size_t n, const char *label,
                        rl_err *e);
/* Distinct words and total words fed so far. */
void rl_bpe_trainer_counts(const rl_bpe_trainer *t, int64_t *distinct, int64_t *total);
/* Learns the merges and writes tokenizer.json to path. *n_merges (may be
 * NULL) receives the number of merge rules, *n_vocab the final vocabulary
 * size including the special tokens. */
int rl_bpe_trainer_train(rl_bpe_trainer *t, const rl_bpe_train_opts *o, const char *path,
                         int *n_merges, int *n_vocab, rl_err *e);
void rl_bpe_trainer_free(rl_bpe_trainer *t);

#endif
