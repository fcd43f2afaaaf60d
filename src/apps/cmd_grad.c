/* ringlm grad: gradients of the mean next-token cross-entropy, one F32
 * tensor per parameter under its own name (safetensors). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "format/safetensors.h"
#include "train/grad.h"

static const char *const help =
    "usage: ringlm grad -m DIR --ids 1,2,3 --out FILE.safetensors [options]\n"
    "Writes the gradient of the mean next-token cross-entropy of the ids (a sequence from\n"
    "position 0) w.r.t. every parameter, as F32 tensors named like the checkpoint's\n"
    "(expert_bias has none). Prints the loss.\n"
    "  --ids LIST               token ids, comma-separated (at least 2)\n"
    "  --out FILE               output .safetensors file\n"
    "  --recompute auto|on|off  recompute each layer's activations in the backward\n"
    "                           instead of keeping them all (default auto: on when the\n"
    "                           whole tape would exceed 1 GiB); same gradients bitwise\n";

int cmd_grad(int argc, char **argv) {
    app_model_opts mo = {.decay_conv = -1};
    const char *out;
    int n = 0, rc = 1, *ids = NULL, recompute = RL_RECOMPUTE_AUTO;
    /* --recompute is grad's own: taken out before the shared parser */
    char **av = malloc(sizeof(char *) * ((size_t)argc + 1));
    if (!av) return app_fail("out of memory");
    int ac = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--recompute")) {
            recompute = i + 1 < argc ? rl_recompute_parse(argv[i + 1]) : -1;
            if (recompute < 0) {
                free(av);
                return app_fail("--recompute needs auto, on or off");
            }
            i++;
            continue;
        }
        av[ac++] = argv[i];
    }
    av[ac] = NULL;
    int pr = app_ids_out_args("grad", help, ac, av, &mo, 2, &ids, &n, &out);
    free(av);
    if (pr) return pr < 0;
    rl_model m;
    if (app_load(&mo, &m)) { free(ids); return 1; }
    rl_engine eng;
    rl_grads g = {0};
    rl_st_entry *ents = NULL;
    rl_err e = {0};
    if (rl_engine_init(&eng, &m, 0, &e)) { app_fail("%s", e.msg); goto done1; }
    if (rl_grads_init(&g, &m, &e)) { app_fail("%s", e.msg); goto done2; }
    float loss = 0;
    double t0 = app_now();
    bool rec = rl_recompute_resolve((rl_recompute)recompute, &m, n);
    if (rl_train_grad(&eng, ids, n, (rl_recompute)recompute, &g, &loss, &e)) {
        app_fail("%s", e.msg);
        goto done2;
    }
    double t1 = app_now();
    ents = calloc((size_t)g.n, sizeof *ents);
    if (!ents) { app_fail("out of memory"); goto done2; }
    for (int i = 0; i < g.n; i++) {
        ents[i].name = g.p[i].name;
        ents[i].dtype = RL_F32;
        ents[i].ndim = g.p[i].ndim;
        ents[i].shape[0] = g.p[i].shape[0];
        ents[i].shape[1] = g.p[i].shape[1];
        ents[i].data = g.p[i].g;
    }
    char meta[128];
    snprintf(meta, sizeof meta, "{\"loss\": \"%.9g\", \"tokens\": \"%d\"}", loss, n);
    if (rl_st_write(out, ents, g.n, meta, NULL, NULL, NULL, NULL, &e)) {
        app_fail("%s", e.msg);
        goto done2;
    }
    fprintf(stderr,
            "forward + backward: %d tokens in %.3f s (%.1f tokens/s), tape %.1f MiB (recompute %s; "
            "whole tape %.1f MiB); written in %.3f s\n",
            n, t1 - t0, n / (t1 - t0), rl_tape_bytes(&m, n, rec) / 1048576.0, rec ? "on" : "off",
            rl_tape_bytes(&m, n, false) / 1048576.0, app_now() - t1);
    printf("loss %.9g\n", loss);
    rc = 0;
done2:
    free(ents);
    rl_grads_free(&g);
    rl_engine_free(&eng);
done1:
    rl_model_free(&m);
    free(ids);
    return rc;
}
