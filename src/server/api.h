/* The OpenAI-compatible request bodies: field validation (wrong types are
 * errors naming the field; unknown fields are ignored) into generation
 * parameters, and the error object. No I/O, no model: fuzzed directly
 * (tests/fuzz/fuzz_http_request.c). */
#ifndef RL_SERVER_API_H
#define RL_SERVER_API_H

#include <jansson.h>
#include <stdbool.h>

#include "server/sched.h"

enum { RL_API_CHAT, RL_API_COMPLETION };

typedef struct rl_api_req {
    int kind;
    bool stream, include_usage;
    rl_gen_params gp;
    /* chat: borrowed from the body */
    json_t *messages; /* normalized copy (owned): content parts joined into strings */
    const json_t *tools, *template_kwargs;
    /* completion: text or ids */
    const char *prompt_text;
    size_t prompt_len;
    int32_t *prompt_ids; /* owned */
    int n_prompt_ids;
    int legacy_logprobs; /* completions: logprobs = N */
} rl_api_req;

/* Parses a request body (already a JSON value). On error returns non-zero
 * and writes a message naming the field into err (and the field into
 * *param, or NULL). defaults: the server's sampling defaults (NULL:
 * llama.cpp's). */
int rl_api_parse(const json_t *body, int kind, const rl_sampler_params *defaults, rl_api_req *out, char *err,
                 size_t errlen, const char **param);
void rl_api_req_free(rl_api_req *r);

/* {"error": {"message", "type", "param", "code"}} as a malloc'd string. */
char *rl_api_error(int status, const char *message, const char *param);

#endif
