/* Writes byte-level BPE tokenizers in the Hugging Face tokenizer.json format
 * (GPT-2 byte-to-unicode alphabet, ByteLevel pre-tokenizer/decoder), for
 * random-weight checkpoints and for tokenizer training. */
#ifndef RL_TOKENIZER_TOKENIZER_WRITE_H
#define RL_TOKENIZER_TOKENIZER_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* GPT-2's byte-to-unicode map: the code point that stands for byte b. */
uint32_t rl_bytelevel_char(uint8_t b);

typedef struct rl_bpe_spec {
    /* The vocabulary after the 256 byte tokens (ids 256..): each token as
     * its raw bytes, and merges as pairs of token ids (left, right), in rank
     * order. Either may be empty. */
    const char *const *tokens;
    const size_t *token_lens;
    int n_tokens;
    const int32_t (*merges)[2];
    int n_merges;
    /* Special tokens get the ids after the vocabulary, in this order. */
    const char *const *specials;
    int n_specials;
    /* Split pre-tokenizer regex applied before ByteLevel (NULL: ByteLevel's
     * own GPT-2 regex). */
    const char *split_regex;
} rl_bpe_spec;

/* Writes tokenizer.json to path. */
int rl_write_bytelevel_tokenizer(const char *path, const rl_bpe_spec *s, rl_err *e);

#endif
