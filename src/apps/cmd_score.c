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
    const char *out;
    int n = 0, rc = 1, *ids = NULL;
    int pr = app_ids_out_args("score", help, argc, argv, &mo, 2, &ids, &n, &out);
    if (pr) return pr < 0;
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
