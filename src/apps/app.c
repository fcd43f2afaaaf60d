#include "apps/app.h"
#include "apps/app_engine.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int app_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ringlm: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int *app_parse_ids(const char *s, int *n, const char *what) {
    int cap = 16, k = 0;
    int *ids = malloc(sizeof(int) * (size_t)cap);
    if (!ids) return NULL;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT_MIN || v > INT_MAX || (*end && *end != ',')) {
            app_fail("%s: '%s' is not a comma-separated list of integers (at character %d)", what,
                     s, (int)(p - s) + 1);
            free(ids);
            return NULL;
        }
        if (k == cap) {
            int *q = realloc(ids, sizeof(int) * (size_t)(cap *= 2));
            if (!q) { free(ids); return NULL; }
            ids = q;
        }
        ids[k++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        app_fail("%s: empty list", what);
        free(ids);
        return NULL;
    }
    *n = k;
    return ids;
}

bool app_int(const char *opt, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || x < lo || x > hi) {
        app_fail("%s needs an integer in [%ld, %ld], got '%s'", opt, lo, hi, v ? v : "(nothing)");
        return false;
    }
    *out = (int)x;
    return true;
}

bool app_float(const char *opt, const char *v, float *out) {
    char *end;
    errno = 0;
    float x = v ? strtof(v, &end) : 0;
    if (!v || end == v || *end || errno) {
        app_fail("%s needs a number, got '%s'", opt, v ? v : "(nothing)");
        return false;
    }
    *out = x;
    return true;
}

void app_progress_layers(void *ctx, int done, int total) {
    if (!isatty(2)) return;
    if (done >= 0)
        fprintf(stderr, "\r%s: layer %d/%d", (const char *)ctx, done, total);
    else
        fprintf(stderr, "\r%s: laying out matrices %d/%d", (const char *)ctx, -done, total);
    if (done == total || -done == total) fputs("\n", stderr);
}

void app_progress_bytes(void *ctx, size_t done, size_t total) {
    if (!isatty(2)) return;
    static double last;
    double now = app_now();
    if (done < total && now - last < 0.2) return;
    last = now;
    fprintf(stderr, "\r%s: %5.1f%% (%.2f / %.2f GB)", (const char *)ctx,
            total ? 100.0 * (double)done / (double)total : 100.0, (double)done / 1e9,
            (double)total / 1e9);
    if (done >= total) fputs("\n", stderr);
}

const char *const app_model_opts_help =
    "  -m, --model DIR          checkpoint directory (config.json + *.safetensors)\n"
    "  -t, --threads N          threads (default: all cores)\n"
    "  --decay-convention C     Lightning decay layer factor: engine (default,\n"
    "                           f(l)=1-l/(L-1)) or hf (f(l)=1-(l-1)/(L-1)); overrides\n"
    "                           config.json's ringlm_decay_convention\n"
    "  --ref-ops                use the plain reference kernels (slow; for testing)\n"
    "  --device cpu|cuda        where the model runs (default cpu; cuda: generate, logits,\n"
    "                           bench; info names the GPU)\n"
    "  --deterministic          GPU: every GEMM in one fixed order, so logits are bitwise\n"
    "                           independent of the batch and of the step split (slower)\n";

int app_model_opt(app_model_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        if (!v) return app_fail("%s needs a directory", a), -1;
        o->dir = v;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (!app_int(a, v, 0, 4096, &o->threads)) return -1;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--decay-convention")) {
        if (v && !strcmp(v, "engine")) o->decay_conv = RL_DECAY_ENGINE;
        else if (v && !strcmp(v, "hf")) o->decay_conv = RL_DECAY_HF;
        else return app_fail("--decay-convention must be 'engine' or 'hf'"), -1;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--ref-ops")) {
        o->ref_ops = true;
        return 1;
    }
    if (!strcmp(a, "--device")) {
        if (v && !strcmp(v, "cpu")) o->device = APP_CPU;
        else if (v && !strcmp(v, "cuda")) o->device = APP_CUDA;
        else return app_fail("--device must be 'cpu' or 'cuda'"), -1;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--deterministic")) {
        o->deterministic = true;
        return 1;
    }
    return 0;
}

int app_load(const app_model_opts *o, rl_model *m) {
    if (!o->dir) return app_fail("no model: pass -m DIR");
    if (o->device == APP_CUDA && app_device_check(o)) return 1;
    if (o->threads > 0) rl_set_threads(o->threads);
    /* on the GPU the host copy is only read once, for the upload */
    rl_load_opts lo = {.ops = o->ref_ops ? &rl_ops_ref : NULL, .decay_conv = o->decay_conv,
                       .no_pack = o->device == APP_CUDA,
                       .progress = app_progress_layers, .progress_ctx = (void *)"loading"};
    rl_err e = {0};
    if (rl_model_load(o->dir, &lo, m, &e)) return app_fail("%s", e.msg);
    return 0;
}

double app_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *const app_sampler_opts_help =
    "  --temp T                 temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K                (default 40; 0 = off)\n"
    "  --top-p P                (default 0.95; 1 = off)\n"
    "  --min-p P                (default 0.05; 0 = off)\n"
    "  --repeat-penalty X       (default 1.0 = off)\n"
    "  --repeat-last-n N        window of the penalties (default 64; -1 = all)\n"
    "  --presence-penalty X     (default 0)\n"
    "  --frequency-penalty X    (default 0)\n"
    "  -s, --seed S             (default: random; the seed used is printed)\n";

int app_sampler_opt(rl_sampler_params *sp, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    bool ok;
    if (!strcmp(a, "--temp")) ok = app_float(a, v, &sp->temperature);
    else if (!strcmp(a, "--top-k")) ok = app_int(a, v, 0, 1 << 30, &sp->top_k);
    else if (!strcmp(a, "--top-p")) ok = app_float(a, v, &sp->top_p);
    else if (!strcmp(a, "--min-p")) ok = app_float(a, v, &sp->min_p);
    else if (!strcmp(a, "--repeat-penalty")) ok = app_float(a, v, &sp->repeat_penalty);
    else if (!strcmp(a, "--repeat-last-n")) ok = app_int(a, v, -1, 1 << 20, &sp->repeat_last_n);
    else if (!strcmp(a, "--presence-penalty")) ok = app_float(a, v, &sp->presence_penalty);
    else if (!strcmp(a, "--frequency-penalty")) ok = app_float(a, v, &sp->frequency_penalty);
    else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
        char *end = NULL;
        if (v) sp->seed = strtoull(v, &end, 10);
        ok = v && end && *end == 0 && end != v && v[0] != '-';
        if (!ok) app_fail("%s needs a non-negative integer", a);
    } else return 0;
    if (!ok) return -1;
    (*i)++;
    return 1;
}

int app_ids_out_args(const char *cmd, const char *help, int argc, char **argv,
                     app_model_opts *mo, int min_ids, int **ids, int *n, const char **out) {
    const char *ids_s = NULL;
    *out = NULL;
    for (int i = 1; i < argc; i++) {
        int r = app_model_opt(mo, argc, argv, &i);
        if (r < 0) return -1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s", help, app_model_opts_help);
            return 1;
        } else if (!strcmp(a, "--ids") && v) { ids_s = v; i++; }
        else if (!strcmp(a, "--out") && v) { *out = v; i++; }
        else return app_fail("%s: unknown or incomplete option '%s' (see ringlm %s --help)", cmd, a, cmd), -1;
    }
    if (!ids_s || !*out) return app_fail("%s needs --ids and --out (see ringlm %s --help)", cmd, cmd), -1;
    if (!(*ids = app_parse_ids(ids_s, n, "--ids"))) return -1;
    if (*n < min_ids) {
        free(*ids);
        return app_fail("%s needs at least %d ids", cmd, min_ids), -1;
    }
    return 0;
}
