/* ringlm score: the trainer forward's log-probs of a token sequence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "train/grad.h"

static const char *const help =
    "usage: ringlm score -m DIR --ids 1,2,3 --out FILE [options]\n"
    "Writes n-1 little-endian float32 values: value i = log p(ids[i+1] | ids[0..i]), computed\n"
    "by the trainer's forward (bitwise what `generate --logprobs-out` reports).\n"
    "  --ids LIST               token ids, comma-separated (at least 2)\n"
    "  --out FILE               output file\n";

int cmd_score(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1};
    const char *ids_s = NULL, *out = NULL;
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
        else return app_fail("score: unknown or incomplete option '%s' (see ringlm score --help)", a);
    }
    if (!ids_s || !out) return app_fail("score needs --ids and --out (see ringlm score --help)");
    int n = 0, rc = 1;
    int *ids = app_parse_ids(ids_s, &n, "--ids");
    if (!ids) return 1;
    if (n < 2) { free(ids); return app_fail("score needs at least 2 ids"); }
    rl_model m;
    if (app_load(&mo, &m)) { free(ids); return 1; }
    rl_engine eng;
    rl_err e = {0};
    float *lp = malloc(sizeof(float) * (size_t)(n - 1));
    if (!lp) { app_fail("out of memory"); goto done1; }
    if (rl_engine_init(&eng, &m, 0, &e)) { app_fail("%s", e.msg); goto done1; }
    if (rl_train_logprobs(&eng, ids, n, lp, &e)) { app_fail("%s", e.msg); goto done2; }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(lp, sizeof(float), (size_t)(n - 1), f) != (size_t)(n - 1) || fclose(f)) {
        app_fail("%s: write failed", out);
        goto done2;
    }
    rc = 0;
done2:
    rl_engine_free(&eng);
done1:
    free(lp);
    rl_model_free(&m);
    free(ids);
    return rc;
}
