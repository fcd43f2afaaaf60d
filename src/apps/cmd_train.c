/* ringlm train: AdamW over a token file, from a checkpoint or a fresh
 * preset/config; a progress line per step, periodic validation, checkpoints
 * in the Hugging Face layout that resume bitwise, a clean stop on SIGINT. */
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/app.h"
#include "model/mkmodel.h"
#include "train/train_loop.h"

static volatile sig_atomic_t stop_flag;
static void on_sigint(int sig) {
    (void)sig;
    stop_flag = 1;
}

static const char *help =
    "usage: ringlm train --data FILE -o DIR (--model DIR | --preset NAME | --config FILE | --resume)\n"
    "                    [options]\n"
    "Trains with AdamW (fp32 master weights and moments), global-norm clipping, linear\n"
    "warmup + cosine decay and the aux-loss-free expert-bias update. DIR receives a\n"
    "Hugging Face checkpoint (config.json, model.safetensors, tokenizer files) plus\n"
    "optimizer.safetensors and trainer_state.json; --resume continues it bitwise as if\n"
    "never stopped. Ctrl-C saves and stops.\n"
    "  --data FILE           token file from `ringlm prepare-data`\n"
    "  -o, --out DIR         checkpoint directory to write\n"
    "  --model DIR           start from this checkpoint\n"
    "  --preset NAME         start from random weights of a preset (%s);\n"
    "  --config FILE         or of a config.json; vocab_size and eos come from the data\n"
    "  --init-dtype T        weights of a fresh model: f32 (default), bf16, f16\n"
    "  --resume              continue the run saved in DIR\n"
    "  --tokenizer FILE      tokenizer.json copied into DIR (default: the model's)\n"
    "  --config-file FILE    a JSON object of these options (\"lr\": 1e-3, \"steps\": 500, ...);\n"
    "                        flags given on the command line win\n"
    "  --steps N             optimizer steps (default 100)\n"
    "  --seq-len N           tokens per window (default 256)\n"
    "  --batch-tokens N      tokens per step, a multiple of --seq-len (default 4096)\n"
    "  --lr X                peak learning rate (default 1e-3)\n"
    "  --lr-min X            cosine floor (default lr/10)\n"
    "  --warmup N            warmup steps (default steps/20)\n"
    "  --weight-decay X      (default 0.1; matrices only)\n"
    "  --beta1 X --beta2 X --eps X   AdamW (default 0.9, 0.95, 1e-8)\n"
    "  --clip X              max gradient norm (default 1; 0 = off)\n"
    "  --bias-rate X         expert_bias update rate per step (default 1e-3; 0 = off)\n"
    "  --seed N              data order and fresh weights (default 0)\n"
    "  --val-fraction X      share of windows held out for validation (default 0.02)\n"
    "  --eval-every N        validate every N steps (default 50; 0 = at the end)\n"
    "  --eval-windows N      validation windows per evaluation (default 32; 0 = all)\n"
    "  --save-every N        save every N steps (default 0 = at the end and on Ctrl-C)\n"
    "  --recompute M         auto (default), on, off: keep only each layer's input in the\n"
    "                        forward and recompute its activations in the backward (same\n"
    "                        results bitwise, one more forward); auto: on when a window's\n"
    "                        whole activation tape would exceed 1 GiB\n"
    "  --stop-at N           save and stop after step N (as Ctrl-C would)\n"
    "  -t, --threads N       threads (default: all cores)\n";

typedef struct opts {
    const char *data, *out, *model, *preset, *config, *tokenizer;
    int resume, init_dtype;
    rl_train_cfg c;
    long long stop_at;
    int threads;
    float lr_min;
    long long warmup;
    json_t *record; /* the options as given, for trainer_state.json */
} opts;

/* One option; v its value (NULL for --resume). Returns 0, or 1 on error. */
static int set_opt(opts *o, const char *a, const char *v) {
    if (!strcmp(a, "--resume")) { o->resume = 1; return 0; }
    if (!v) return app_fail("train: option '%s' is unknown or needs a value", a);
    long long ll;
    double d;
    char *end;
    const char *key = a + (a[1] == '-' ? 2 : 1);
    if (!strcmp(key, "o")) key = "out";
    if (!strcmp(key, "t")) key = "threads";
#define INT(name, field, lo)                                                                     \
    if (!strcmp(key, name)) {                                                                    \
        ll = strtoll(v, &end, 10);                                                               \
        if (*end || end == v || ll < (lo)) return app_fail("--%s needs an integer >= %d", name, lo); \
        field = ll;                                                                              \
        json_object_set_new(o->record, name, json_integer(ll));                                  \
        return 0;                                                                                \
    }
#define FLT(name, field)                                                                         \
    if (!strcmp(key, name)) {                                                                    \
        d = strtod(v, &end);                                                                     \
        if (*end || end == v || !(d >= 0) || isinf(d)) return app_fail("--%s needs a number >= 0", name); \
        field = (float)d;                                                                        \
        json_object_set_new(o->record, name, json_real(d));                                      \
        return 0;                                                                                \
    }
#define STR(name, field)                                                                         \
    if (!strcmp(key, name)) {                                                                    \
        field = v;                                                                               \
        json_object_set_new(o->record, name, json_string(v));                                    \
        return 0;                                                                                \
    }
    STR("data", o->data) STR("out", o->out) STR("model", o->model)
    STR("preset", o->preset) STR("config", o->config) STR("tokenizer", o->tokenizer)
    INT("steps", o->c.steps, 1) INT("seq-len", o->c.seq_len, 1) INT("batch-tokens", o->c.batch_tokens, 1)
    INT("warmup", o->warmup, 0) INT("seed", o->c.seed, 0) INT("eval-every", o->c.eval_every, 0)
    INT("eval-windows", o->c.eval_windows, 0) INT("save-every", o->c.save_every, 0)
    INT("stop-at", o->stop_at, 1) INT("threads", o->threads, 1)
    FLT("lr", o->c.sched.lr) FLT("lr-min", o->lr_min) FLT("weight-decay", o->c.adam.weight_decay)
    FLT("beta1", o->c.adam.beta1) FLT("beta2", o->c.adam.beta2) FLT("eps", o->c.adam.eps)
    FLT("clip", o->c.adam.clip) FLT("bias-rate", o->c.bias_rate)
    if (!strcmp(key, "val-fraction")) {
        d = strtod(v, &end);
        if (*end || end == v || !(d >= 0 && d < 1)) return app_fail("--val-fraction needs a number in [0, 1)");
        o->c.val_fraction = d;
        json_object_set_new(o->record, key, json_real(d));
        return 0;
    }
    if (!strcmp(key, "recompute")) {
        int r = rl_recompute_parse(v);
        if (r < 0) return app_fail("--recompute: auto, on or off");
        o->c.recompute = (rl_recompute)r;
        json_object_set_new(o->record, key, json_string(v));
        return 0;
    }
    if (!strcmp(key, "init-dtype")) {
        if (!strcmp(v, "f32")) o->init_dtype = RL_F32;
        else if (!strcmp(v, "bf16")) o->init_dtype = RL_BF16;
        else if (!strcmp(v, "f16")) o->init_dtype = RL_F16;
        else return app_fail("--init-dtype: f32, bf16 or f16");
        json_object_set_new(o->record, key, json_string(v));
        return 0;
    }
#undef INT
#undef FLT
#undef STR
    return app_fail("train: unknown option '%s'", a);
}

/* Applies a JSON object of options; keys in skip (NULL-terminated) are ignored. */
static int apply_json(opts *o, json_t *j, const char *path, const char *const *skip) {
    const char *k;
    json_t *v;
    int rc = 0;
    static char store[128][512]; /* values outlive the JSON */
    static int ns = 0;
    json_object_foreach(j, k, v) {
        char flag[128], val[512];
        snprintf(flag, sizeof flag, "--%s", k);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_') *p = '-';
        bool skipped = false;
        for (int q = 0; skip && skip[q]; q++) skipped |= !strcmp(flag + 2, skip[q]);
        if (skipped) continue;
        if (json_is_string(v)) snprintf(val, sizeof val, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(val, sizeof val, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) snprintf(val, sizeof val, "%.17g", json_real_value(v));
        else if (json_is_true(v) && !strcmp(flag, "--resume")) { o->resume = 1; continue; }
        else if (json_is_false(v)) continue;
        else { rc = app_fail("%s: key '%s' has an unsupported value", path, k); break; }
        if (ns == 128) { rc = app_fail("%s: too many keys", path); break; }
        snprintf(store[ns], sizeof store[ns], "%s", val);
        if ((rc = set_opt(o, flag, store[ns++]))) {
            fprintf(stderr, "  (in %s)\n", path);
            break;
        }
    }
    return rc;
}

static int load_config_file(opts *o, const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return app_fail("%s: %s", path, j ? "not a JSON object" : je.text);
    }
    int rc = apply_json(o, j, path, NULL);
    json_decref(j);
    return rc;
}

/* --resume: the saved run's options are the base (how it started is not). */
static int load_saved_options(opts *o, const char *out) {
    static const char *const skip[] = {"preset", "config", "model", "stop-at", "resume", "tokenizer",
                                       "init-dtype", "out", "data", NULL};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer_state.json", out);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return app_fail("--resume: %s: %s", path, je.text);
    json_t *c = json_object_get(j, "config");
    int rc = json_is_object(c) ? apply_json(o, c, path, skip) : 0;
    json_decref(j);
    return rc;
}

static bool exists(const char *p) { return access(p, R_OK) == 0; }

/* Creates a fresh model in out (mkmodel's code) sized to the data's vocabulary. */
static int init_model(const opts *o, const rl_data *d) {
    rl_config c;
    rl_err e = {0};
    if (o->preset) {
        if (rl_config_preset(o->preset, &c, &e)) return app_fail("%s", e.msg);
    } else {
        char *txt;
        size_t len;
        if (rl_read_file(o->config, &txt, &len, &e)) return app_fail("%s", e.msg);
        int rc = rl_config_parse(txt, o->config, &c, &e);
        free(txt);
        if (rc) return app_fail("%s", e.msg);
    }
    c.vocab_size = d->vocab_size;
    c.eos_token_ids[0] = d->eos_id;
    c.n_eos = 1;
    c.pad_token_id = d->eos_id;
    c.bos_token_id = -1;
    c.router_fp32 = true;
    rl_mkmodel_opts mo = {.seed = o->c.seed, .shards = 1, .dtype = (rl_dtype)o->init_dtype,
                          .router_dtype = RL_F32};
    if (rl_mkmodel(&c, o->out, &mo, &e)) return app_fail("%s", e.msg);
    return 0;
}

int cmd_train(int argc, char **argv) {
    opts o = {.c = {.steps = 100, .seq_len = 256, .batch_tokens = 4096,
                    .sched = {.lr = 1e-3f},
                    .adam = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 1.0f},
                    .bias_rate = 1e-3f, .val_fraction = 0.02, .eval_every = 50, .eval_windows = 32},
              .lr_min = -1, .warmup = -1, .init_dtype = RL_F32, .record = json_object()};
    int rc = 1;
    rl_trainer t = {0};
    bool have_trainer = false;
    char *cfg_txt = NULL;
    const char *resume_out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) o.resume = 1;
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) && i + 1 < argc) resume_out = argv[i + 1];
    }
    if (o.resume && resume_out && load_saved_options(&o, resume_out)) goto out;
    for (int i = 1; i < argc; i++) { /* the config file first: flags override it */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf(help, rl_config_preset_names());
            json_decref(o.record);
            return 0;
        }
        if (!strcmp(argv[i], "--config-file")) {
            if (i + 1 >= argc) { app_fail("--config-file needs a file"); goto out; }
            if (load_config_file(&o, argv[i + 1])) goto out;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config-file")) { i++; continue; }
        if (!strcmp(a, "--resume")) { o.resume = 1; continue; }
        if (set_opt(&o, a, i + 1 < argc ? argv[i + 1] : NULL)) goto out;
        i++;
    }
    if (!o.data || !o.out) { app_fail("train needs --data FILE and -o DIR (see --help)"); goto out; }
    int sources = !!o.model + !!o.preset + !!o.config + o.resume;
    if (sources != 1) { app_fail("train needs exactly one of --model, --preset, --config, --resume"); goto out; }
    if (o.c.batch_tokens % o.c.seq_len) {
        app_fail("--batch-tokens (%d) must be a multiple of --seq-len (%d)", o.c.batch_tokens, o.c.seq_len);
        goto out;
    }
    o.c.sched.total = o.c.steps;
    o.c.sched.warmup = o.warmup >= 0 ? o.warmup : o.c.steps / 20;
    o.c.sched.lr_min = o.lr_min >= 0 ? o.lr_min : o.c.sched.lr / 10;
    if (o.c.sched.warmup > o.c.steps) o.c.sched.warmup = o.c.steps;
    /* Every window allocates and frees its tape and backward buffers (tens
     * of MB): with glibc's defaults they come back as fresh mmapped or
     * trimmed pages, and the page faults took ~20% of the CPU time (300k
     * faults per step of models/tiny). Keeping freed memory in the heap
     * makes them reuse it (60k). Process-wide, so here and not in the
     * library. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* the ops (matmul teams) and the model's own loops: rl_set_threads sets both */
    if (o.threads > 0) rl_set_threads(o.threads);
    rl_err e = {0};
    const char *model_dir = o.model ? o.model : o.out;
    char ckpath[PATH_MAX];
    snprintf(ckpath, sizeof ckpath, "%s/trainer_state.json", o.out);
    if (!o.resume && !o.model && exists(ckpath)) {
        app_fail("%s already holds a training run (use --resume, or another -o)", o.out);
        goto out;
    }
    if (o.preset || o.config) {
        rl_data d;
        if (rl_data_open(o.data, &d, &e)) { app_fail("%s", e.msg); goto out; }
        int r = init_model(&o, &d);
        rl_data_close(&d);
        if (r) goto out;
    }
    if (o.tokenizer) { /* the checkpoint's tokenizer.json */
        char dst[PATH_MAX];
        snprintf(dst, sizeof dst, "%s/tokenizer.json", o.out);
        mkdir(o.out, 0755);
        if (rl_train_copy_file(o.tokenizer, dst, &e)) { app_fail("%s", e.msg); goto out; }
    }
    /* files copied into every checkpoint (from a --model directory) */
    static char files[8][PATH_MAX];
    const char *copy[9] = {0};
    int nc = 0;
    static const char *const side[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                                       "chat_template.jinja", "special_tokens_map.json"};
    for (size_t k = 0; k < sizeof side / sizeof side[0]; k++) {
        snprintf(files[nc], PATH_MAX, "%s/%s", model_dir, side[k]);
        if (exists(files[nc])) copy[nc] = files[nc], nc++;
    }
    if (rl_trainer_init(&t, model_dir, o.data, &o.c, o.resume, &e)) { app_fail("%s", e.msg); goto out; }
    have_trainer = true;
    cfg_txt = json_dumps(o.record, JSON_COMPACT | JSON_SORT_KEYS);
    int64_t n_params = 0;
    for (int i = 0; i < t.g.n; i++) n_params += t.params[i].numel;
    int B = o.c.batch_tokens / o.c.seq_len;
    printf("train: %lld parameters (%d tensors); data %lld tokens: %lld training / %lld validation windows "
           "of %d; %d windows per step; lr %.2e -> %.2e, warmup %lld of %lld steps%s\n",
           (long long)n_params, t.g.n, (long long)t.data.n_tokens, (long long)t.loader.n_train,
           (long long)t.loader.n_val, o.c.seq_len, B, o.c.sched.lr, o.c.sched.lr_min,
           (long long)o.c.sched.warmup, (long long)o.c.steps,
           o.resume ? "" : "");
    bool rec = rl_recompute_resolve(o.c.recompute, &t.m, o.c.seq_len + 1);
    double tape_mib = rl_tape_bytes(&t.m, o.c.seq_len + 1, rec) / 1048576.0;
    printf("train: activation tape %.1f MiB per window (recompute %s: %s; whole tape %.1f MiB)\n",
           tape_mib, rl_recompute_name(o.c.recompute), rec ? "on" : "off",
           rl_tape_bytes(&t.m, o.c.seq_len + 1, false) / 1048576.0);
    if (o.resume) printf("train: resuming at step %lld (epoch %lld, window %lld)\n", (long long)t.st.step,
                         (long long)t.st.loader.epoch, (long long)t.st.loader.index);
    fflush(stdout);
    char logpath[PATH_MAX];
    snprintf(logpath, sizeof logpath, "%s/train_log.tsv", o.out);
    FILE *log = fopen(logpath, o.resume ? "a" : "w");
    if (log && !o.resume) fprintf(log, "step\tloss\tlr\tgrad_norm\ttokens_per_s\tload_max_over_mean\tval_loss\n");
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_sa);
    bool stopped = false;
    while (t.st.step < o.c.steps) {
        double t0 = app_now();
        rl_step_info info;
        if (rl_trainer_step(&t, &info, &e)) { app_fail("step %lld: %s", (long long)t.st.step + 1, e.msg); goto out_sig; }
        double dt = app_now() - t0;
        long long s = (long long)t.st.step;
        printf("step %lld/%lld | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s", s, (long long)o.c.steps,
               info.loss, info.lr, info.grad_norm, (double)info.tokens / dt);
        if (info.balance > 0) printf(" | load max/mean %.2f cv %.2f", info.balance, info.balance_cv);
        printf(" | tape %.1f MiB\n", tape_mib);
        double vl = NAN;
        bool last = t.st.step == o.c.steps;
        if ((o.c.eval_every && s % o.c.eval_every == 0) || last) {
            if (rl_trainer_eval(&t, o.c.eval_windows, &vl, &e)) { app_fail("validation: %s", e.msg); goto out_sig; }
            printf("eval step %lld | val loss %.4f | ppl %.2f\n", s, vl, exp(vl));
        }
        fflush(stdout);
        if (log) {
            fprintf(log, "%lld\t%.6f\t%.6e\t%.6f\t%.1f\t%.4f\t", s, info.loss, info.lr, info.grad_norm,
                    (double)info.tokens / dt, info.balance);
            if (isnan(vl)) fprintf(log, "\n");
            else fprintf(log, "%.6f\n", vl);
            fflush(log);
        }
        bool stop = stop_flag || (o.stop_at && s >= o.stop_at);
        if (last || stop || (o.c.save_every && s % o.c.save_every == 0)) {
            if (rl_trainer_save(&t, o.out, copy, cfg_txt, &e)) { app_fail("save: %s", e.msg); goto out_sig; }
            printf("saved %s (step %lld)\n", o.out, s);
            fflush(stdout);
        }
        if (stop && !last) {
            printf("stopped at step %lld%s; continue with: ringlm train --resume --data %s -o %s\n", s,
                   stop_flag ? " (interrupted)" : "", o.data, o.out);
            stopped = true;
            break;
        }
    }
    (void)stopped;
    rc = 0;
out_sig:
    sigaction(SIGINT, &old_sa, NULL);
    if (log) fclose(log);
out:
    if (have_trainer) rl_trainer_free(&t);
    free(cfg_txt);
    json_decref(o.record);
    return rc;
}
