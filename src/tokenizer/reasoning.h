/* Splitting model output into reasoning, content and tool calls.
 *
 *   [ws] <think> REASONING </think> CONTENT <tool_call>{json}</tool_call> ...
 *
 * - Reasoning: the text between <think> and </think> when the output starts
 *   with <think> (after optional whitespace), or from the start up to
 *   </think> when the prompt already opened it (start_in_reasoning; the
 *   Ring/Qwen3/DeepSeek-R1 generation prompts do). Newlines right after
 *   <think> and right before </think> are dropped, as are newlines right
 *   after </think>: the chat templates put them back when re-rendering
 *   (reasoning.strip('\n'), content.lstrip('\n')). Output that ends inside
 *   the reasoning (no </think>) is all reasoning.
 * - Tool calls: each <tool_call>{"name": ..., "arguments": ...}</tool_call>
 *   block becomes a call shaped as OpenAI does: id "call_<index>", name,
 *   arguments as a JSON string (a string "arguments" is kept verbatim,
 *   anything else is serialized like Python's json.dumps(ensure_ascii=False);
 *   "parameters" is accepted for "arguments"). Whitespace around a block is
 *   dropped. A block whose body is not such JSON stays in the content,
 *   tags included. An unterminated block at the end is a call if its body
 *   parses, content otherwise.
 * - Streaming: a parser gets text deltas in any chunking and emits reasoning
 *   and content deltas and completed tool calls; it never emits a partial
 *   tag (or held-back whitespace that may yet be dropped). The concatenated
 *   deltas equal the one-shot result for every chunking. */
#ifndef RL_TOKENIZER_REASONING_H
#define RL_TOKENIZER_REASONING_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

typedef struct rl_tool_call {
    char *id, *name, *arguments;
} rl_tool_call;

typedef struct rl_output_opts {
    const char *think_open, *think_close; /* NULL: "<think>", "</think>" */
    const char *tool_open, *tool_close;   /* NULL: "<tool_call>", "</tool_call>" */
    bool start_in_reasoning;
    bool no_reasoning; /* don't look for <think> at all */
    bool no_tools;     /* don't look for tool calls */
} rl_output_opts;

/* One-shot result; strings malloc'd and NUL-terminated. */
typedef struct rl_output {
    char *reasoning, *content;
    size_t reasoning_len, content_len;
    bool has_reasoning; /* a reasoning section was present (may be empty) */
    rl_tool_call *calls;
    size_t n_calls;
} rl_output;

int rl_output_parse(const char *text, size_t n, const rl_output_opts *o, rl_output *out, rl_err *err);
void rl_output_free(rl_output *out);

/* Streaming. The delta's pointers stay valid until the next feed/finish. */
typedef struct rl_output_delta {
    const char *reasoning, *content;
    size_t reasoning_len, content_len;
    const rl_tool_call *calls; /* calls completed by this delta */
    size_t n_calls, first_call_index;
} rl_output_delta;

typedef struct rl_output_parser rl_output_parser;
rl_output_parser *rl_output_parser_new(const rl_output_opts *o);
int rl_output_parser_feed(rl_output_parser *p, const char *text, size_t n, rl_output_delta *d, rl_err *err);
/* Flushes what was held back (end of generation). */
int rl_output_parser_finish(rl_output_parser *p, rl_output_delta *d, rl_err *err);
void rl_output_parser_free(rl_output_parser *p);

#endif
