/* The HTTP front of `ringlm serve` (libmicrohttpd, one thread per
 * connection): routing, bodies, JSON and server-sent-event responses. It
 * listens before the model is loaded (GET /health answers 503 until
 * rl_server_ready). */
#ifndef RL_SERVER_HTTP_H
#define RL_SERVER_HTTP_H

#include <stddef.h>

#include "base/status.h"
#include "engine/sampler.h"
#include "server/metrics.h"
#include "server/sched.h"
#include "tokenizer/template.h"
#include "tokenizer/tokenizer.h"

typedef struct rl_http_opts {
    const char *host; /* 127.0.0.1 */
    int port;         /* 8080; 0: any free port */
    size_t max_body;  /* bytes; larger bodies get 413 */
    int max_conns;
    int timeout_s;    /* idle connection timeout */
    const char *api_key; /* NULL: none */
    rl_sampler_params sampling; /* defaults of request fields */
} rl_http_opts;

typedef struct rl_server rl_server;

int rl_server_start(const rl_http_opts *o, rl_metrics *mx, rl_server **out, rl_err *e);
/* The port actually bound. */
int rl_server_port(const rl_server *s);
/* Model ready: completion endpoints open. n_ctx: positions per sequence;
 * n_vocab: the model's logits (prompt ids must be below it and the tokenizer's). */
void rl_server_ready(rl_server *s, const rl_tok *tok, const rl_chat_template *tpl, rl_sched *sched,
                     const char *model_name, int n_ctx, int n_vocab);
/* New completion requests get 503 from now on; the scheduler may be
 * stopped after this returns. */
void rl_server_drain(rl_server *s);
void rl_server_stop(rl_server *s);

#endif
