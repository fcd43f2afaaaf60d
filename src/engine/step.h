/* The step: ONE batched forward over spans of many sequences (DESIGN.md §1).
 * generate, bench, logits, the server and the trainer's forward all call it;
 * there is no second forward path. */
#ifndef RL_ENGINE_STEP_H
#define RL_ENGINE_STEP_H

#include "model/model.h"
#include "state/kv_pages.h"
#include "state/slot.h"

enum { RL_LOGITS_NONE = 0, RL_LOGITS_LAST = 1, RL_LOGITS_ALL = 2 };

typedef struct rl_span {
    rl_slot *slot;
    const int *tokens;
    int n;         /* >= 1 */
    int first_pos; /* must equal slot->pos: a span continues its sequence */
    int want;      /* RL_LOGITS_* */
    float *logits; /* [n or 1][vocab_size] when want != NONE */
} rl_span;

typedef struct rl_workspace rl_workspace;

typedef struct rl_engine {
    rl_model *m;
    rl_kv_pool pool;
    rl_workspace *ws;
    int max_ctx; /* positions per sequence (max_position_embeddings unless lowered) */
} rl_engine;

int rl_engine_init(rl_engine *eng, rl_model *m, int max_kv_pages, rl_err *e);
void rl_engine_free(rl_engine *eng);

/* Runs the model over all spans together and advances each slot by its n.
 * Spans must name distinct slots. Outputs of a token never depend on the
 * other spans, on how its sequence was split into steps, or on the thread
 * count (bitwise). Every check (token ids, positions, context length, KV
 * capacity, memory) happens before any state is touched: on error no slot
 * has changed. */
int rl_step(rl_engine *eng, const rl_span *spans, int n_spans, rl_err *e);

#endif
