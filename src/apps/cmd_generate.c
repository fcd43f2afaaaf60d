/* ringlm generate: prefill a prompt, then sample tokens one step at a time. */
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "engine/sampler.h"

static const char *const help =
    "usage: ringlm generate -m DIR --ids 1,2,3 [-n N] [sampling options]\n"
    "Streams the generated token ids to stdout and reports speed on stderr.\n"
    "  --ids LIST               prompt token ids\n"
    "  -n, --n-predict N        tokens to generate (default 32)\n"
    "  --temp T                 temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K                (default 40; 0 = off)\n"
    "  --top-p P                (default 0.95; 1 = off)\n"
    "  --min-p P                (default 0.05; 0 = off)\n"
    "  --repeat-penalty X       (default 1.0 = off)\n"
    "  --repeat-last-n N        window of the penalties (default 64; -1 = all)\n"
    "  --presence-penalty X     (default 0)\n"
    "  --frequency-penalty X    (default 0)\n"
    "  -s, --seed S             (default: random; the seed used is printed)\n"
    "  --ignore-eos             do not stop at end-of-sequence tokens\n";

int cmd_generate(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1};
    rl_sampler_params sp;
    rl_sampler_defaults(&sp);
    const char *ids_s = NULL;
    int n_predict = 32;
    bool ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s", help, app_model_opts_help);
            return 0;
        } else if (!strcmp(a, "--ignore-eos")) { ignore_eos = true; continue; }
        else if (!v) return app_fail("generate: unknown option or missing value: '%s'", a);
        else if (!strcmp(a, "--ids")) ids_s = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) ok = app_int(a, v, 0, 1 << 30, &n_predict);
        else if (!strcmp(a, "--temp")) ok = app_float(a, v, &sp.temperature);
        else if (!strcmp(a, "--top-k")) ok = app_int(a, v, 0, 1 << 30, &sp.top_k);
        else if (!strcmp(a, "--top-p")) ok = app_float(a, v, &sp.top_p);
        else if (!strcmp(a, "--min-p")) ok = app_float(a, v, &sp.min_p);
        else if (!strcmp(a, "--repeat-penalty")) ok = app_float(a, v, &sp.repeat_penalty);
        else if (!strcmp(a, "--repeat-last-n")) ok = app_int(a, v, -1, 1 << 20, &sp.repeat_last_n);
        else if (!strcmp(a, "--presence-penalty")) ok = app_float(a, v, &sp.presence_penalty);
        else if (!strcmp(a, "--frequency-penalty")) ok = app_float(a, v, &sp.frequency_penalty);
        else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            char *end;
            sp.seed = strtoull(v, &end, 10);
            ok = *end == 0 && end != v;
            if (!ok) app_fail("%s needs a non-negative integer", a);
        } else return app_fail("generate: unknown option '%s' (see ringlm generate --help)", a);
        if (!ok) return 1;
        i++;
    }
    if (!ids_s) return app_fail("generate needs a prompt: --ids LIST");
    int n = 0, rc = 1;
    int *ids = app_parse_ids(ids_s, &n, "--ids");
    if (!ids) return 1;
    rl_model m;
    if (app_load(&mo, &m)) { free(ids); return 1; }
    rl_engine eng = {0};
    rl_slot slot = {0};
    rl_sampler smp = {0};
    rl_err e = {0};
    size_t V = (size_t)m.cfg.vocab_size;
    float *logits = malloc(sizeof(float) * V);
    if (!logits || rl_engine_init(&eng, &m, 0, &e) || rl_slot_init(&slot, &m, &e)) {
        app_fail("%s", e.msg[0] ? e.msg : "out of memory");
        goto out;
    }
    if (rl_sampler_init(&smp, &sp, (int)V)) { app_fail("out of memory"); goto out; }
    fprintf(stderr, "seed: %llu\n", (unsigned long long)rl_sampler_seed(&smp));
    for (int i = 0; i < n; i++) rl_sampler_accept(&smp, ids[i]);
    double t0 = app_now();
    rl_span s = {&slot, ids, n, 0, RL_LOGITS_LAST, logits};
    if (rl_step(&eng, &s, 1, &e)) { app_fail("%s", e.msg); goto out; }
    double t1 = app_now();
    int gen = 0;
    for (; gen < n_predict; gen++) {
        int tok = rl_sampler_sample(&smp, logits, (int)V);
        rl_sampler_accept(&smp, tok);
        printf("%s%d", gen ? "," : "", tok);
        fflush(stdout);
        bool eos = false;
        for (int k = 0; k < m.cfg.n_eos; k++) eos |= tok == m.cfg.eos_token_ids[k];
        if (eos && !ignore_eos) { gen++; break; }
        if (gen + 1 == n_predict) { gen++; break; }
        rl_span d = {&slot, &tok, 1, slot.pos, RL_LOGITS_LAST, logits};
        if (rl_step(&eng, &d, 1, &e)) { app_fail("%s", e.msg); goto out; }
    }
    double t2 = app_now();
    printf("\n");
    fprintf(stderr, "prefill: %d tokens in %.3f s (%.2f tokens/s)\n", n, t1 - t0, n / (t1 - t0));
    if (gen > 1)
        fprintf(stderr, "decode:  %d tokens in %.3f s (%.2f tokens/s)\n", gen - 1, t2 - t1,
                (gen - 1) / (t2 - t1));
    rc = 0;
out:
    rl_sampler_free(&smp);
    rl_slot_free(&slot, &eng.pool);
    rl_engine_free(&eng);
    rl_model_free(&m);
    free(logits);
    free(ids);
    return rc;
}
