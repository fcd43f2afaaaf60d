/* Hugging Face tokenizer.json: load, encode, decode, stream-decode.
 *
 * The semantics are those of the Rust `tokenizers` crate (the library behind
 * transformers' fast tokenizers): the same ids for the same text, the same
 * text for the same ids. Supported: the BPE model; normalizers Sequence,
 * NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, StripAccents,
 * ByteLevel; pre-tokenizers ByteLevel, Split, Sequence, Digits, Metaspace,
 * Whitespace, WhitespaceSplit, Punctuation; added tokens with all their
 * flags; post-processors TemplateProcessing, ByteLevel, Bert, Roberta,
 * Sequence; decoders ByteLevel, Metaspace, ByteFallback, Fuse, Strip,
 * Replace, Sequence. Any other construct is refused at load with an error
 * naming its JSON path ("tokenizer.json: pre_tokenizer.pretokenizers[1].type:
 * unsupported \"Foo\""); nothing is silently ignored except BPE dropout
 * (inference never samples merges) and truncation/padding (batch options).
 *
 * Threads: a loaded rl_tok is immutable except for the BPE cache, which is
 * guarded by a lock, so encode/decode may run concurrently on one handle.
 * Nothing here prints or exits; failures fill an rl_err. */
#ifndef RL_TOKENIZER_TOKENIZER_H
#define RL_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct rl_tok rl_tok;

/* Loads tokenizer.json from a file. Messages name the file. */
int rl_tok_load_file(const char *path, rl_tok **out, rl_err *e);
/* Loads from JSON text (len bytes, need not be NUL-terminated); label names
 * it in messages (e.g. "ring/tokenizer.json"). */
int rl_tok_load_string(const char *json, size_t len, const char *label, rl_tok **out,
                       rl_err *e);
void rl_tok_free(rl_tok *t);

/* Encodes len bytes of UTF-8 text (invalid UTF-8 is refused, naming the byte
 * offset). With add_special_tokens the post-processor adds its tokens (BOS
 * etc.), as the HF default does. *ids is malloc'd (free it); *n its count. */
int rl_tok_encode(const rl_tok *t, const char *text, size_t len, bool add_special_tokens,
                  int32_t **ids, size_t *n, rl_err *e);

/* Decodes ids to UTF-8 text (malloc'd, NUL-terminated, *len without the
 * NUL). Unknown ids are skipped, as HF does; skip_special_tokens drops
 * special added tokens. Invalid byte sequences become U+FFFD as HF does. */
int rl_tok_decode(const rl_tok *t, const int32_t *ids, size_t n, bool skip_special_tokens,
                  char **text, size_t *len, rl_err *e);

/* One past the largest id of the model vocabulary or of an added token. */
int32_t rl_tok_vocab_size(const rl_tok *t);
/* The token string of an id (an added token's content or the model's
 * vocabulary entry; NUL-terminated, owned by t), or NULL. */
const char *rl_tok_id_to_token(const rl_tok *t, int32_t id);
/* The id of a token string (added tokens first, then the model), or -1. */
int32_t rl_tok_token_to_id(const rl_tok *t, const char *tok, size_t len);
/* Whether an id decodes to a special added token (what skip_special drops). */
bool rl_tok_is_special(const rl_tok *t, int32_t id);
/* The id of an added token with this exact content, or -1 (e.g. "<|role_end|>"). */
int32_t rl_tok_added_id(const rl_tok *t, const char *content);

/* Streaming decoder: feed ids one at a time (as a model generates them);
 * each call appends only complete UTF-8 text, and the concatenation of all
 * output after rl_tok_stream_finish equals rl_tok_decode of all ids. */
typedef struct rl_tok_stream rl_tok_stream;
rl_tok_stream *rl_tok_stream_new(const rl_tok *t, bool skip_special_tokens);
void rl_tok_stream_free(rl_tok_stream *s);
/* Appends id; on success *out (owned by the stream, valid until the next
 * call) holds the new text (possibly empty) and *out_len its length. */
int rl_tok_stream_feed(rl_tok_stream *s, int32_t id, const char **out, size_t *out_len,
                       rl_err *e);
/* Flushes what is still held back (an incomplete sequence at the end is
 * emitted as the full decode renders it, i.e. U+FFFD). */
int rl_tok_stream_finish(rl_tok_stream *s, const char **out, size_t *out_len, rl_err *e);

/* UTF-8 helpers (shared with tests): the length of the valid UTF-8 prefix of
 * s (== n when all of s is valid; never splits a sequence). */
size_t rl_utf8_valid_prefix(const char *s, size_t n);
/* Decodes one code point at s[*i] (advancing *i), or returns -1 and advances
 * by one byte on an invalid or truncated sequence. */
int32_t rl_utf8_next(const char *s, size_t n, size_t *i);
/* Encodes cp into out (4 bytes room); returns the byte count. */
int rl_utf8_put(uint32_t cp, char *out);

#endif
