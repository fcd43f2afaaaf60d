/* ringlm serve: the OpenAI-compatible HTTP server (src/server/). Listens
 * first (GET /health is 503 while the model loads), then serves until
 * SIGINT/SIGTERM: new requests get 503, running ones may finish within
 * --shutdown-grace seconds, the rest are cancelled. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "apps/app.h"
#include "apps/app_text.h"
#include "server/http.h"
#include "server/sched.h"

static const char *const help =
    "usage: ringlm serve -m DIR [options]\n"
    "OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions (stream with SSE),\n"
    "/tokenize, /detokenize; GET /v1/models, /health, /metrics.\n"
    "  --host H                 address to listen on (default 127.0.0.1)\n"
    "  --port P                 (default 8080; 0: any free port, printed)\n"
    "  -np, --parallel N        slots: requests computed together (default 4)\n"
    "  -c, --ctx-size N         positions per sequence (default: the model's)\n"
    "  -b, --batch-tokens N     tokens per step: decode tokens + prefill pieces (default 512)\n"
    "  --queue N                requests waiting for a slot before 429 (default 64)\n"
    "  --kv-pages N             KV budget of the softmax layers, in pages of 64 positions, shared by\n"
    "                           running requests and prefix-cache snapshots (default: parallel x ctx);\n"
    "                           a request waits in the queue until its prompt + max_tokens fit\n"
    "  --kv-mib N               the same budget in MiB\n"
    "  --cache-mib N            prefix-cache memory (default 1024; 0 = off)\n"
    "  --no-prefix-cache        same as --cache-mib 0\n"
    "  --max-body BYTES         largest request body (default 16777216; larger: 413)\n"
    "  --max-connections N      (default 512)\n"
    "  -to, --timeout S         idle connection timeout (default 600)\n"
    "  --shutdown-grace S       on SIGINT/SIGTERM, seconds running requests may finish (default 10)\n"
    "  -a, --alias NAME         model name in responses (default: the directory's name)\n"
    "  --api-key KEY            require 'Authorization: Bearer KEY' on /v1/ endpoints\n"
    "Sampling options set the defaults of the request fields.\n";

int cmd_serve(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1};
    rl_http_opts ho = {.host = "127.0.0.1", .port = 8080, .max_body = 16u << 20, .max_conns = 512, .timeout_s = 600};
    rl_sampler_defaults(&ho.sampling);
    rl_sched_opts so = {.n_slots = 4, .batch_tokens = 512, .queue_cap = 64, .n_ctx = 0, .cache_bytes = (size_t)1024 << 20};
    const char *alias = NULL;
    int grace = 10, cache_mib = 1024, max_body = (int)ho.max_body, kv_pages = 0, kv_mib = 0;
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r == 0) r = app_sampler_opt(&ho.sampling, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s%s", help, app_sampler_opts_help, app_model_opts_help);
            return 0;
        } else if (!strcmp(a, "--no-prefix-cache")) { cache_mib = 0; continue; }
        else if (!v) return app_fail("serve: unknown option or missing value: '%s'", a);
        else if (!strcmp(a, "--host")) ho.host = v;
        else if (!strcmp(a, "--port")) ok = app_int(a, v, 0, 65535, &ho.port);
        else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) ok = app_int(a, v, 1, 1024, &so.n_slots);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) ok = app_int(a, v, 0, INT_MAX, &so.n_ctx);
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-tokens") || !strcmp(a, "--batch-size"))
            ok = app_int(a, v, 1, 1 << 20, &so.batch_tokens);
        else if (!strcmp(a, "--queue")) ok = app_int(a, v, 1, 1 << 20, &so.queue_cap);
        else if (!strcmp(a, "--cache-mib")) ok = app_int(a, v, 0, 1 << 30, &cache_mib);
        else if (!strcmp(a, "--kv-pages")) ok = app_int(a, v, 1, INT_MAX, &kv_pages), kv_mib = 0;
        else if (!strcmp(a, "--kv-mib")) ok = app_int(a, v, 1, 1 << 30, &kv_mib), kv_pages = 0;
        else if (!strcmp(a, "--max-body")) ok = app_int(a, v, 1, INT_MAX, &max_body);
        else if (!strcmp(a, "--max-connections")) ok = app_int(a, v, 1, 1 << 20, &ho.max_conns);
        else if (!strcmp(a, "-to") || !strcmp(a, "--timeout")) ok = app_int(a, v, 1, 1 << 24, &ho.timeout_s);
        else if (!strcmp(a, "--shutdown-grace")) ok = app_int(a, v, 0, 1 << 20, &grace);
        else if (!strcmp(a, "-a") || !strcmp(a, "--alias")) alias = v;
        else if (!strcmp(a, "--api-key")) ho.api_key = v;
        else return app_fail("serve: unknown option '%s' (see ringlm serve --help)", a);
        if (!ok) return 1;
        i++;
    }
    if (!mo.dir) return app_fail("serve: no model: pass -m DIR");
    if (so.batch_tokens < so.n_slots)
        return app_fail("--batch-tokens (%d) must be at least --parallel (%d): every slot decodes each step",
                        so.batch_tokens, so.n_slots);
    ho.max_body = (size_t)max_body;
    so.cache_bytes = (size_t)cache_mib << 20;

    /* signals are taken by sigwait below; every thread started from here on
     * inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    rl_metrics mx;
    rl_metrics_init(&mx);
    rl_server *srv = NULL;
    rl_err e = {0};
    if (rl_server_start(&ho, &mx, &srv, &e)) {
        rl_metrics_free(&mx);
        return app_fail("%s", e.msg);
    }
    fprintf(stderr, "ringlm serve: listening on http://%s:%d\n", ho.host, rl_server_port(srv));
    int rc = 1;
    rl_model m;
    bool have_model = false;
    app_text tx = {0};
    rl_engine eng = {0};
    rl_sched *sched = NULL;
    if (app_load(&mo, &m)) goto out;
    have_model = true;
    if (app_text_load(mo.dir, &m.cfg, false, &tx)) goto out;
    {
        rl_err te = {0};
        if (rl_chat_template_load_dir(mo.dir, &tx.tpl, &te)) {
            fprintf(stderr, "warning: no chat template (%s); /v1/chat/completions will refuse requests\n", te.msg);
            tx.tpl = NULL;
        } else {
            const char *eos = rl_chat_template_eos(tx.tpl);
            int32_t id = eos ? rl_tok_token_to_id(tx.tok, eos, strlen(eos)) : -1;
            if (id >= 0 && !app_text_is_stop(&tx, id) && tx.n_stop < 32) tx.stop[tx.n_stop++] = id;
        }
    }
    if (rl_engine_init(&eng, &m, 0, &e)) { app_fail("%s", e.msg); goto out; }
    if (so.n_ctx == 0 || so.n_ctx > eng.max_ctx) {
        if (so.n_ctx > eng.max_ctx)
            fprintf(stderr, "warning: -c %d is above the model's %d positions; using %d\n", so.n_ctx, eng.max_ctx, eng.max_ctx);
        so.n_ctx = eng.max_ctx;
    }
    eng.max_ctx = so.n_ctx;
    {
        /* llama-server sizes its KV cache as parallel x ctx; so does the
         * default here, which is the bound memory had before the budget */
        size_t page_bytes = eng.pool.page_floats * sizeof(float);
        long long pages = kv_pages ? kv_pages
                          : kv_mib && page_bytes ? (long long)(((size_t)kv_mib << 20) / page_bytes)
                                                 : (long long)so.n_slots * ((so.n_ctx + RL_KV_PAGE - 1) / RL_KV_PAGE);
        if (kv_mib && page_bytes && pages < 1) {
            app_fail("--kv-mib %d holds no KV page (%zu bytes each)", kv_mib, page_bytes);
            goto out;
        }
        so.kv_pages = pages > INT_MAX ? INT_MAX : (int)pages;
    }
    if (rl_sched_start(&eng, tx.tok, tx.stop, tx.n_stop, &so, &mx, &sched, &e)) { app_fail("%s", e.msg); goto out; }
    {
        const char *name = alias;
        if (!name) {
            size_t L = strlen(mo.dir);
            while (L > 1 && mo.dir[L - 1] == '/') L--;
            const char *p = mo.dir + L;
            while (p > mo.dir && p[-1] != '/') p--;
            static char buf[256];
            snprintf(buf, sizeof buf, "%.*s", (int)(mo.dir + L - p), p);
            name = buf;
        }
        rl_server_ready(srv, tx.tok, tx.tpl, sched, name, so.n_ctx, m.cfg.vocab_size);
        fprintf(stderr, "ringlm serve: model %s ready (%d slots, context %d, %d tokens per step, prefix cache %d MiB)\n",
                name, so.n_slots, so.n_ctx, so.batch_tokens, cache_mib);
        if (eng.pool.n_layers)
            fprintf(stderr, "ringlm serve: KV budget %d pages of %d positions (%.1f MiB)\n", so.kv_pages, RL_KV_PAGE,
                    (double)so.kv_pages * (double)(eng.pool.page_floats * sizeof(float)) / 1048576.0);
    }
    rc = 0;
out:;
    int sig = 0;
    if (rc == 0) {
        sigwait(&sigs, &sig);
        fprintf(stderr, "ringlm serve: signal %d: finishing running requests (up to %d s)\n", sig, grace);
    }
    rl_server_drain(srv);
    if (sched) rl_sched_stop(sched, grace);
    rl_server_stop(srv);
    if (sched) fprintf(stderr, "ringlm serve: stopped\n");
    rl_engine_free(&eng);
    app_text_free(&tx);
    if (have_model) rl_model_free(&m);
    rl_metrics_free(&mx);
    return rc;
}
