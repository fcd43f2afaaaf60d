/* ringlm — the public C API.
 *
 * Load a Ring-linear checkpoint (a Hugging Face directory: config.json,
 * *.safetensors, tokenizer.json, tokenizer_config.json), tokenize, render
 * chat templates, run the model over sequences, and compute log-probs —
 * with the same code the ringlm command uses, so results are bitwise those
 * of `ringlm generate`, `ringlm score` and the server (DESIGN.md §2.4).
 *
 * Handles are opaque. Every fallible call returns RINGLM_OK (0) or a status
 * code and, when `err` is non-NULL, fills it with a message naming the file,
 * field or argument at fault. Nothing here exits or aborts on bad input.
 *
 * Threading: a model and its sequences are used by one thread at a time
 * (the step itself runs on the model's worker threads). Strings and arrays
 * that the API returns are freed with ringlm_free().
 *
 *   ringlm_model *m; ringlm_error err;
 *   if (ringlm_model_load("models/tiny", NULL, &m, &err)) { puts(err.message); ... }
 *   ringlm_seq *s; ringlm_seq_new(m, &s, &err);
 *   int32_t *ids; size_t n; ringlm_tokenize(m, "In the beginning", 16, 1, &ids, &n, &err);
 *   float *logits = malloc(sizeof(float) * ringlm_n_vocab(m));
 *   ringlm_span sp = {s, ids, (int)n, RINGLM_LOGITS_LAST, logits};
 *   ringlm_step(m, &sp, 1, &err);        // logits of the next token
 */
#ifndef RINGLM_H
#define RINGLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RINGLM_API_VERSION 1

typedef enum ringlm_status {
    RINGLM_OK = 0,
    RINGLM_E_IO = 1,          /* open/read/write failed */
    RINGLM_E_FORMAT = 2,      /* a file violates its format */
    RINGLM_E_CONFIG = 3,      /* config.json: missing key or unsupported value */
    RINGLM_E_SHAPE = 4,       /* tensor missing, wrong shape or dtype */
    RINGLM_E_ARG = 5,         /* bad argument */
    RINGLM_E_NOMEM = 6,       /* allocation failed */
    RINGLM_E_UNSUPPORTED = 7, /* e.g. no tokenizer.json in the checkpoint */
    RINGLM_E_CAPACITY = 8,    /* out of context or KV pages */
} ringlm_status;

typedef struct ringlm_error {
    int code;
    char message[1024];
} ringlm_error;

typedef struct ringlm_model ringlm_model;
typedef struct ringlm_seq ringlm_seq;

/* ---- loading ------------------------------------------------------------ */

typedef struct ringlm_load_params {
    int threads;          /* worker threads for the step; 0: all cores */
    int max_kv_pages;     /* KV pages (64 positions each) for all sequences; 0: unbounded */
    int max_context;      /* positions per sequence; 0: the config's max_position_embeddings */
    int decay_convention; /* -1: config.json's; 0: the serving engines' f(l) = 1 - l/(L-1) + 1e-5,
                             1: Hugging Face's f(l) = 1 - (l-1)/(L-1) + 1e-5 (SPEC §3.5.1) */
} ringlm_load_params;

/* The defaults: threads 0, max_kv_pages 0, max_context 0, decay_convention -1. */
ringlm_load_params ringlm_load_params_default(void);

/* Loads a checkpoint directory. params NULL = defaults. The tokenizer and chat
 * template are loaded when the directory has them (see ringlm_has_tokenizer). */
int ringlm_model_load(const char *dir, const ringlm_load_params *params, ringlm_model **out,
                      ringlm_error *err);
void ringlm_model_free(ringlm_model *m);

/* Width of a logits row (the LM head's rows, padding included). */
int ringlm_n_vocab(const ringlm_model *m);
/* Positions a sequence may hold. */
int ringlm_n_ctx(const ringlm_model *m);
/* Hidden size, layers, and how many of them are Lightning (linear) layers. */
int ringlm_n_embd(const ringlm_model *m);
int ringlm_n_layer(const ringlm_model *m);
int ringlm_n_layer_linear(const ringlm_model *m);

/* ---- text ----------------------------------------------------------------- */

int ringlm_has_tokenizer(const ringlm_model *m);
int ringlm_has_chat_template(const ringlm_model *m);

/* UTF-8 text -> ids (*ids malloc'd, free with ringlm_free). add_special: let
 * the post-processor add its tokens (BOS etc.), as Hugging Face does by default.
 * Invalid UTF-8 is refused with the byte offset. */
int ringlm_tokenize(const ringlm_model *m, const char *text, size_t len, int add_special,
                    int32_t **ids, size_t *n_ids, ringlm_error *err);
/* ids -> UTF-8 text (*text malloc'd and NUL-terminated; *len without the NUL). */
int ringlm_detokenize(const ringlm_model *m, const int32_t *ids, size_t n_ids, int skip_special,
                      char **text, size_t *len, ringlm_error *err);
/* Renders a JSON array of {"role","content"} messages with the checkpoint's
 * chat template (*out malloc'd, NUL-terminated). */
int ringlm_chat_apply(const ringlm_model *m, const char *messages_json, int add_generation_prompt,
                      char **out, ringlm_error *err);

/* Whether id ends a generation: the eos ids of config.json and
 * generation_config.json, and the chat template's eos token. */
int ringlm_is_eog(const ringlm_model *m, int32_t id);

void ringlm_free(void *p);

/* ---- sequences and the step --------------------------------------------- */

/* A sequence: Lightning state per linear layer (constant size) and KV pages
 * per softmax layer. */
int ringlm_seq_new(ringlm_model *m, ringlm_seq **out, ringlm_error *err);
void ringlm_seq_free(ringlm_seq *s);
/* Tokens consumed so far (the position of the next token). */
int ringlm_seq_pos(const ringlm_seq *s);
/* Back to empty. */
void ringlm_seq_reset(ringlm_seq *s);
/* A new sequence equal to src at its position (KV pages shared copy-on-write):
 * continuing both from here computes what two independent runs would. */
int ringlm_seq_fork(const ringlm_seq *src, ringlm_seq **out, ringlm_error *err);

enum { RINGLM_LOGITS_NONE = 0, RINGLM_LOGITS_LAST = 1, RINGLM_LOGITS_ALL = 2 };

typedef struct ringlm_span {
    ringlm_seq *seq;
    const int32_t *tokens;
    int n;         /* >= 1 tokens appended to seq */
    int logits;    /* RINGLM_LOGITS_*: none, last token's, or every token's */
    float *out;    /* [1 or n][ringlm_n_vocab] when logits != NONE */
} ringlm_span;

/* Runs the model over all spans together (distinct sequences of one model)
 * and advances each by its n. A token's logits never depend on the other
 * spans, on how its sequence was split into steps, or on the thread count:
 * bitwise. Checks (ids, context, KV pages) come first: on error no sequence
 * has changed. */
int ringlm_step(ringlm_model *m, const ringlm_span *spans, int n_spans, ringlm_error *err);

/* log softmax(logits)[id] over n logits: the value `ringlm generate
 * --logprobs-out` and `ringlm score` write. */
float ringlm_logprob(const float *logits, int n, int id);

#ifdef __cplusplus
}
#endif

#endif
