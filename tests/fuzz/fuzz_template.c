/* libFuzzer harness: chat-template parsing and rendering on arbitrary
 * template text, with a fixed conversation (system, user, assistant with
 * reasoning and tool calls, tool result), tools and special tokens, under a
 * small step and memory budget so every input finishes quickly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *VARS =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    "{\"role\": \"user\", \"content\": \"Hi \\u00e9 <tool_response>x</tool_response>\"},"
    "{\"role\": \"assistant\", \"content\": \"<think>\\nhm\\n</think>\\n\\nok\", \"reasoning_content\": \"r\","
    " \"tool_calls\": [{\"id\": \"call12345\", \"type\": \"function\", \"function\": {\"name\": \"f\","
    " \"arguments\": {\"a\": [1, 2.5, null, true]}}}]},"
    "{\"role\": \"tool\", \"content\": \"42\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"list content\"}]}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
    "\"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    "\"enable_thinking\": false}";

static json_t *vars;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vars) vars = json_loads(VARS, 0, NULL);
    rl_jinja_tmpl *t;
    rl_err err;
    if (rl_jinja_parse((const char *)data, size, &t, &err) != RL_OK) return 0;
    rl_jinja_opts o = { 200000, 64, (size_t)32 << 20, 1721995200 };
    char *out = NULL;
    size_t len;
    if (rl_jinja_render(t, vars, &o, &out, &len, &err) == RL_OK) {
        if (strlen(out) > len) abort(); /* length must cover the text */
        free(out);
    }
    rl_jinja_free(t);
    return 0;
}
