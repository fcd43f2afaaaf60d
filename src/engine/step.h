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

/* Activation tape of the trainer (src/train/tape.c allocates it): copies of
 * the values the backward needs, recorded by rl_step_train while it runs the
 * very same forward as rl_step (same ops, same order: outputs are bitwise
 * those of rl_step). Rows are the step's tokens, spans in order. A NULL
 * buffer is not recorded. Shapes per layer (W = qkv width, I = MLP width):
 *   x_in, a_in, x_mid, a_mlp [T][hidden]: residual in, input-norm output,
 *     residual after attention, post-attention-norm output;
 *   qkv_raw [T][W] projection output, qkv [T][W] after SiLU/QK-norm/RoPE;
 *   gate [T][H*D] g_proj output (Lightning); att [T][H*D] attention output
 *     (before the group norm in Lightning); u [T][H*D] Lightning dense input;
 *   dense MLP: h1, h2 [T][I] gate/up projections before the SwiGLU;
 *   MoE: router [T][E] logits, sel/wt [T][K] routing, h1/h2 [T*K][I] per
 *     (token, choice) row t*K + r, yk [T*K][hidden] expert outputs,
 *     sh1/sh2 [T][I_shared] shared expert. */
typedef struct rl_tape_layer {
    float *x_in, *a_in, *qkv_raw, *qkv, *gate, *att, *u, *x_mid, *a_mlp;
    float *h1, *h2, *sh1, *sh2, *router, *wt, *yk;
    int *sel;
} rl_tape_layer;

typedef struct rl_tape {
    int cap_T;             /* rows every buffer holds */
    float *cs;             /* [T][rotary_dim] cos/sin per token (RoPE) */
    rl_tape_layer *layers; /* [num_hidden_layers] */
    float *x_final;        /* [T][hidden] residual before the final norm */
} rl_tape;

/* rl_step, recording the tape (tape->cap_T >= the step's tokens). */
int rl_step_train(rl_engine *eng, const rl_span *spans, int n_spans, rl_tape *tape, rl_err *e);

/* Recomputation for activation checkpointing: runs decoder layer `layer`
 * alone over the spans, from its residual input x_in [T][hidden] (what the
 * tape's x_in of that layer held), recording tl (tl->x_in is not written).
 * It is the code of rl_step's layer loop, so the recorded values are
 * bitwise those of rl_step_train, provided the layer's state in the slots is
 * what it was when that step ran (for a window from position 0: fresh
 * slots; layers read and advance only their own state, so one fresh slot
 * serves every layer once). Slot positions are not advanced. */
int rl_step_train_layer(rl_engine *eng, const rl_span *spans, int n_spans, int layer,
                        const float *x_in, rl_tape_layer *tl, rl_err *e);

#endif
