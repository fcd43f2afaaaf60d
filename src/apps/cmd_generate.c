/* ringlm generate: prefill a prompt, then sample tokens one step at a time. */
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "apps/app_engine.h"
#include "apps/app_text.h"
#include "engine/logprob.h"
#include "engine/sampler.h"

static const char *const help =
    "usage: ringlm generate -m DIR (-p TEXT | --ids 1,2,3) [-n N] [sampling options]\n"
    "Streams the generated text (with -p) or token ids (with --ids) to stdout and\n"
    "reports speed on stderr. Stops at the model's end-of-sequence tokens.\n"
    "  -p, --prompt TEXT        prompt text, tokenized with DIR/tokenizer.json\n"
    "  --ids LIST               prompt token ids\n"
    "  --special                print special tokens in the text (default: hidden)\n"
    "  --ids-out FILE           write the generated ids as a JSON array\n"
    "  --logprobs-out FILE      write, per generated token, its float32 log-prob under the\n"
    "                           model's raw distribution (little-endian)\n"
    "  -n, --n-predict N        tokens to generate (default 32)\n"
    "  --ignore-eos             do not stop at end-of-sequence tokens\n";

int cmd_generate(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1, .cuda_ok = true};
    rl_sampler_params sp;
    rl_sampler_defaults(&sp);
    const char *ids_s = NULL, *prompt = NULL, *ids_out = NULL, *lp_out = NULL;
    int n_predict = 32;
    bool ignore_eos = false, special = false;
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r == 0) r = app_sampler_opt(&sp, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s%s", help, app_sampler_opts_help, app_model_opts_help);
            return 0;
        } else if (!strcmp(a, "--ignore-eos")) { ignore_eos = true; continue; }
        else if (!strcmp(a, "--special")) { special = true; continue; }
        else if (!v) return app_fail("generate: unknown option or missing value: '%s'", a);
        else if (!strcmp(a, "--ids")) ids_s = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--ids-out")) ids_out = v;
        else if (!strcmp(a, "--logprobs-out")) lp_out = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) ok = app_int(a, v, 0, 1 << 30, &n_predict);
        else return app_fail("generate: unknown option '%s' (see ringlm generate --help)", a);
        if (!ok) return 1;
        i++;
    }
    if (!ids_s == !prompt) return app_fail("generate needs a prompt: -p TEXT or --ids LIST (one of them)");
    int n = 0, rc = 1;
    int *ids = NULL;
    if (ids_s && !(ids = app_parse_ids(ids_s, &n, "--ids"))) return 1;
    rl_model m;
    if (app_load(&mo, &m)) { free(ids); return 1; }
    app_text tx = {0};
    rl_tok_stream *ts = NULL;
    int *gen_ids = NULL;
    float *gen_lp = NULL;
    if (prompt) {
        if (app_text_load(mo.dir, &m.cfg, false, &tx)) { rl_model_free(&m); return 1; }
        int32_t *t32;
        size_t tn;
        rl_err te = {0};
        if (rl_tok_encode(tx.tok, prompt, strlen(prompt), true, &t32, &tn, &te)) {
            app_fail("%s", te.msg);
            goto out0;
        }
        ids = malloc(sizeof(int) * (tn ? tn : 1));
        for (size_t i = 0; ids && i < tn; i++) ids[i] = t32[i];
        free(t32);
        n = (int)tn;
        if (!ids) { app_fail("out of memory"); goto out0; }
        if (n == 0) { app_fail("the prompt encodes to no tokens"); goto out0; }
        ts = rl_tok_stream_new(tx.tok, !special);
        if (!ts) { app_fail("out of memory"); goto out0; }
    } else {
        for (int k = 0; k < m.cfg.n_eos && k < 32; k++) tx.stop[tx.n_stop++] = m.cfg.eos_token_ids[k];
    }
    gen_ids = malloc(sizeof(int) * (size_t)(n_predict ? n_predict : 1));
    gen_lp = malloc(sizeof(float) * (size_t)(n_predict ? n_predict : 1));
    if (!gen_ids || !gen_lp) { app_fail("out of memory"); goto out0; }
    app_engine eng = {0};
    app_seq slot = {0};
    rl_sampler smp = {0};
    rl_err e = {0};
    size_t V = (size_t)m.cfg.vocab_size;
    float *logits = malloc(sizeof(float) * V);
    if (!logits || app_engine_init(&eng, &m, &mo, &e) || app_seq_init(&eng, &slot, &e)) {
        app_fail("%s", e.msg[0] ? e.msg : "out of memory");
        goto out;
    }
    if (rl_sampler_init(&smp, &sp, (int)V)) { app_fail("out of memory"); goto out; }
    fprintf(stderr, "seed: %llu\n", (unsigned long long)rl_sampler_seed(&smp));
    for (int i = 0; i < n; i++) rl_sampler_accept(&smp, ids[i]);
    /* ids the tokenizer does not define (padding rows) are never sampled */
    int n_valid = (int)V;
    if (tx.tok && rl_tok_vocab_size(tx.tok) < n_valid) n_valid = rl_tok_vocab_size(tx.tok);
    /* each step also draws the next token (on the GPU the logits stay there) */
    rl_sample_req req = {&smp, n_valid, 0, 0.0f};
    float *step_logits = mo.device == APP_CUDA ? NULL : logits;
    double t0 = app_now();
    app_span s = {&slot, ids, n, 0, RL_LOGITS_LAST, step_logits, &req};
    if (app_step(&eng, &s, 1, &e)) { app_fail("%s", e.msg); goto out; }
    double t1 = app_now();
    int gen = 0;
    for (; gen < n_predict; gen++) {
        int tok = req.token;
        rl_sampler_accept(&smp, tok);
        gen_ids[gen] = tok;
        gen_lp[gen] = req.logprob;
        if (ts) {
            const char *piece;
            size_t len;
            rl_err te = {0};
            if (rl_tok_stream_feed(ts, tok, &piece, &len, &te)) { app_fail("%s", te.msg); goto out; }
            fwrite(piece, 1, len, stdout);
        } else {
            printf("%s%d", gen ? "," : "", tok);
        }
        fflush(stdout);
        if (app_text_is_stop(&tx, tok) && !ignore_eos) { gen++; break; }
        if (gen + 1 == n_predict) { gen++; break; }
        app_span d = {&slot, &tok, 1, app_seq_pos(&eng, &slot), RL_LOGITS_LAST, step_logits,
                      &req};
        if (app_step(&eng, &d, 1, &e)) { app_fail("%s", e.msg); goto out; }
    }
    if (ts) {
        const char *piece;
        size_t len;
        rl_err te = {0};
        if (rl_tok_stream_finish(ts, &piece, &len, &te) == 0) fwrite(piece, 1, len, stdout);
    }
    double t2 = app_now();
    printf("\n");
    fflush(stdout); /* the text ends its line before the timings on stderr */
    fprintf(stderr, "prefill: %d tokens in %.3f s (%.2f tokens/s)\n", n, t1 - t0, n / (t1 - t0));
    if (gen > 1)
        fprintf(stderr, "decode:  %d tokens in %.3f s (%.2f tokens/s)\n", gen - 1, t2 - t1,
                (gen - 1) / (t2 - t1));
    if (ids_out) {
        FILE *f = fopen(ids_out, "w");
        if (!f) { app_fail("%s: cannot write", ids_out); goto out; }
        fputc('[', f);
        for (int i = 0; i < gen; i++) fprintf(f, "%s%d", i ? ", " : "", gen_ids[i]);
        fputs("]\n", f);
        if (fclose(f)) { app_fail("%s: write failed", ids_out); goto out; }
    }
    if (lp_out) {
        FILE *f = fopen(lp_out, "wb");
        if (!f || fwrite(gen_lp, sizeof(float), (size_t)gen, f) != (size_t)gen || fclose(f)) {
            app_fail("%s: write failed", lp_out);
            goto out;
        }
    }
    rc = 0;
out:
    rl_sampler_free(&smp);
    if (eng.m) {
        app_seq_free(&eng, &slot);
        app_engine_free(&eng);
    }
    free(logits);
out0:
    if (ts) rl_tok_stream_free(ts);
    app_text_free(&tx);
    rl_model_free(&m);
    free(gen_ids);
    free(gen_lp);
    free(ids);
    return rc;
}
