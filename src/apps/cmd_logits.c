/* ringlm logits: raw float32 logits of every position, for tests and tools. */
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "apps/app_engine.h"

static const char *const help =
    "usage: ringlm logits -m DIR --ids 1,2,3 --out FILE [options]\n"
    "Writes little-endian float32 logits [n, vocab_size]: row i = logits after token i.\n"
    "  --ids LIST               token ids, comma-separated\n"
    "  --out FILE               output file\n"
    "  --steps 7,1,1,...        feed the ids in steps of these sizes (sum = number of ids);\n"
    "                           default: one step\n"
    "  --companion LIST         another sequence run in the same steps (repeatable); its\n"
    "                           logits are discarded: a sequence's logits must not depend\n"
    "                           on its companions\n";

int cmd_logits(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1, .cuda_ok = true};
    const char *ids_s = NULL, *out = NULL, *steps_s = NULL;
    const char *comp_s[64];
    int n_comp = 0;
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(&mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s", help, app_model_opts_help);
            return 0;
        } else if (!strcmp(a, "--ids") && v) { ids_s = v; i++; }
        else if (!strcmp(a, "--out") && v) { out = v; i++; }
        else if (!strcmp(a, "--steps") && v) { steps_s = v; i++; }
        else if (!strcmp(a, "--companion") && v) {
            if (n_comp == 64) return app_fail("at most 64 --companion sequences");
            comp_s[n_comp++] = v;
            i++;
        } else return app_fail("logits: unknown or incomplete option '%s' (see ringlm logits --help)", a);
    }
    if (!ids_s || !out) return app_fail("logits needs --ids and --out (see ringlm logits --help)");
    int n = 0, n_steps = 0, rc = 1;
    int *ids = app_parse_ids(ids_s, &n, "--ids"), *steps = NULL;
    int *cids[64] = {0}, cn[64] = {0}, cdone[64] = {0};
    if (!ids) return 1;
    if (steps_s) {
        if (!(steps = app_parse_ids(steps_s, &n_steps, "--steps"))) goto done0;
        long sum = 0;
        for (int i = 0; i < n_steps; i++) {
            if (steps[i] <= 0) { app_fail("--steps: sizes must be positive"); goto done0; }
            sum += steps[i];
        }
        if (sum != n) { app_fail("--steps add up to %ld but there are %d ids", sum, n); goto done0; }
    } else {
        steps = malloc(sizeof(int));
        if (!steps) goto done0;
        steps[0] = n;
        n_steps = 1;
    }
    for (int c = 0; c < n_comp; c++)
        if (!(cids[c] = app_parse_ids(comp_s[c], &cn[c], "--companion"))) goto done0;
    rl_model m;
    if (app_load(&mo, &m)) goto done0;
    app_engine eng;
    rl_err e = {0};
    app_seq slots[65];
    int n_slots = 0;
    float *logits = NULL;
    if (app_engine_init(&eng, &m, &mo, &e)) { app_fail("%s", e.msg); goto done1; }
    for (; n_slots <= n_comp; n_slots++)
        if (app_seq_init(&eng, &slots[n_slots], &e)) { app_fail("%s", e.msg); goto done2; }
    size_t V = (size_t)m.cfg.vocab_size;
    logits = malloc(sizeof(float) * V * (size_t)n);
    if (!logits) { app_fail("out of memory for %d x %zu logits", n, V); goto done2; }
    int pos = 0;
    for (int s = 0; s < n_steps; s++) {
        app_span sp[65];
        int k = 0;
        sp[k++] = (app_span){&slots[0], ids + pos, steps[s], pos, RL_LOGITS_ALL, logits + (size_t)pos * V, NULL};
        for (int c = 0; c < n_comp; c++) {
            int take = cn[c] - cdone[c] < steps[s] ? cn[c] - cdone[c] : steps[s];
            if (take <= 0) continue;
            sp[k++] = (app_span){&slots[c + 1], cids[c] + cdone[c], take, cdone[c], RL_LOGITS_NONE, NULL, NULL};
            cdone[c] += take;
        }
        if (app_step(&eng, sp, k, &e)) { app_fail("%s", e.msg); goto done2; }
        pos += steps[s];
    }
    FILE *f = fopen(out, "wb");
    if (!f) { app_fail("%s: cannot write", out); goto done2; }
    size_t w = fwrite(logits, sizeof(float), V * (size_t)n, f);
    if (fclose(f) != 0 || w != V * (size_t)n) { app_fail("%s: write failed", out); goto done2; }
    rc = 0;
done2:
    free(logits);
    for (int i = 0; i < n_slots; i++) app_seq_free(&eng, &slots[i]);
    app_engine_free(&eng);
done1:
    rl_model_free(&m);
done0:
    free(ids);
    free(steps);
    for (int c = 0; c < n_comp; c++) free(cids[c]);
    return rc;
}
